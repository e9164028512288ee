"""What a newcomer meets first: fast help, plain tables, visible progress."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import palm_bayes as pb
from palm_bayes.report.tables import column_notes, tidy

HEAVY = ("pymc", "pytensor", "arviz", "pandas", "xarray", "matplotlib", "nutpie")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return set(out.stdout.split())


def test_help_and_argument_errors_load_no_heavy_library():
    for argv in (["--help"], ["fit"], ["forecast", "--help"]):
        call = f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass"
        code = "from palm_bayes.cli import main\n" + call
        loaded = _modules_after(code)
        assert "palm_bayes.cli" in loaded
        assert not loaded & set(HEAVY), (argv, loaded & set(HEAVY))


def test_public_names_load_on_first_use_and_fit_stays_the_function():
    import palm_bayes.palm_fit  # noqa: F401
    import palm_bayes.queries.loo  # noqa: F401  (a submodule named like a function)

    assert callable(pb.fit) and pb.fit.__name__ == "fit"
    assert pb.compare.__name__ == "compare"
    assert set(pb.__all__) - {"__version__"} <= set(dir(pb))
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        pb.nonsense  # noqa: B018


def test_tables_print_whole_labels_as_integers_and_drop_placeholder_ids():
    frame = pd.DataFrame(
        {
            "strategy": ["a", "b", "c"],
            "embedding": ["none"] * 3,
            "median": [31883.0, np.inf, np.nan],
            "p_reachable": [0.98765, 0.4, np.nan],
        }
    )
    shown = tidy(frame)
    assert "embedding" not in shown
    assert shown["median"].tolist() == ["31883", "inf", ""]
    assert shown["p_reachable"].tolist()[:2] == [0.988, 0.4]
    assert column_notes(frame) == [
        "p_reachable: probability of reaching the target within the search horizon"
    ]


@pytest.mark.slow
def test_pooled_sampling_shows_progress_with_divergences(capsys):
    import pymc as pm

    from palm_bayes.inference.sampling import compile_model, run_nutpie

    with pm.Model() as model:
        pm.Normal("x", shape=3)
    trace = run_nutpie(
        compile_model(model), progress=True, desc="pooled fit", chains=2, draws=200, tune=100
    )
    assert trace.posterior.sizes["draw"] == 200
    err = capsys.readouterr().err
    assert "pooled fit" in err and "600/600" in err and "divergences=" in err


def test_progress_returns_as_soon_as_the_sampler_finishes(monkeypatch):
    """A long pause between two reads of a big trace must not delay the end of sampling."""
    from palm_bayes.inference import sampling

    class Sampler:
        checks = 0

        @property
        def is_finished(self):
            self.checks += 1
            return self.checks > 3

    slept = []
    monkeypatch.setattr(sampling.time, "sleep", slept.append)
    assert sampling._wait(Sampler(), 3600.0)
    assert sum(slept) <= 1.5  # three naps, not the hour of the pause


def test_every_command_line_option_is_explained():
    import argparse

    from al_runner.cli import build_parser as runner_parser
    from palm_bayes.cli import build_parser as palm_parser

    for parser in (palm_parser(), runner_parser()):
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for name, sub in commands.choices.items():
            silent = [a.dest for a in sub._actions if a.help is None]
            assert not silent, f"{parser.prog} {name}: {silent} have no help text"
            assert not any("``" in (a.help or "") for a in sub._actions), name
