"""Every command and snippet of README.md runs as written, in order, from a fresh folder.

The fenced ``bash`` and ``python`` blocks are read from the README itself, so a renamed flag,
file or strategy there fails this test. Commands run in-process (``palm`` and ``al-runner``'s
``main``) in a temporary folder holding a link to ``examples/``; snippets run in one shared
namespace. The sampler is capped (2 chains x 100 draws) so that the whole README takes a few
minutes: this checks that the commands work, not the precision of their answers.

A few commands cannot run here: they need data the user supplies (CIFAR-10 folder, their own
feature file), a Ray cluster, or hours of CPU (SSL training on Fashion-MNIST). Those are parsed
by the command's own argument parser, so their flags are still checked; ``SKIPPED`` lists them
with the reason.
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest

import palm_bayes as pb

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: Commands parsed but not run (a substring of the command -> why).
SKIPPED = {
    "make ": "the set-up commands themselves (CI runs `make test`)",
    "pip install": "installation (done by the set-up)",
    "apt-get install": "installation (a Debian package)",
    "--dataset fashion-mnist": "SSL training / AL on 70k Fashion-MNIST images: hours of CPU",
    "--dataset cifar10": "needs CIFAR-10 in a folder the user supplies (DATA)",
    "feats.np": "the user's own feature file",
    "al-runner sweep": "a Ray sweep of grid.toml (Fashion-MNIST, SimCLR): hours of CPU",
}
SAMPLER_CAP = {"chains": 2, "draws": 100, "tune": 100}


def readme_blocks() -> list[tuple[int, str, str]]:
    """``(line, language, text)`` of every fenced block, in README order."""
    blocks, lines = [], README.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if fence:
            start, body = i + 1, []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            blocks.append((start + 1, fence.group(1), "\n".join(body)))
        i += 1
    return blocks


def shell_commands(text: str) -> list[str]:
    """Logical command lines of a bash block (continuations joined, comments dropped)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(shlex.join(words))
    return commands


def test_readme_has_blocks_of_both_kinds():
    kinds = {lang for _, lang, _ in readme_blocks()}
    assert {"bash", "python"} <= kinds
    commands = [c for _, lang, t in readme_blocks() if lang == "bash" for c in shell_commands(t)]
    skipped = [c for c in commands if any(k in c for k in SKIPPED)]
    assert len(commands) >= 30 and len(skipped) <= 15, (len(commands), skipped)


@pytest.fixture
def capped_sampler(monkeypatch):
    """``pb.fit`` with at most 2 chains x 100 draws, wherever it is called from."""
    fit_module = importlib.import_module("palm_bayes.palm_fit")
    original = fit_module.fit

    def capped(curves, **kwargs):
        return original(curves, **(kwargs | SAMPLER_CAP))

    monkeypatch.setattr(fit_module, "fit", capped)
    monkeypatch.setattr(pb, "fit", capped)


def _run_command(command: str) -> None:
    from al_runner.cli import build_parser as runner_parser
    from al_runner.cli import main as runner_main
    from palm_bayes.cli import build_parser as palm_parser
    from palm_bayes.cli import main as palm_main

    program, *argv = shlex.split(command)
    tools = {"palm": (palm_main, palm_parser), "al-runner": (runner_main, runner_parser)}
    reason = next((why for key, why in SKIPPED.items() if key in command), None)
    if program not in tools:
        assert reason, f"README command {command!r} is neither palm nor al-runner nor skipped"
        return
    main, parser = tools[program]
    if reason:
        parser().parse_args(argv)  # flags and values must still be valid
        return
    code = main(argv)
    assert code in (0, None), f"README command failed ({code}): {command}"


def test_every_readme_block_runs(tmp_path, monkeypatch, capped_sampler, capsys):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    done: set[str] = set()
    for line, lang, text in readme_blocks():
        where = f"README.md line {line}"
        if lang == "bash":
            for command in shell_commands(text):
                if command in done:  # the same command shown again in another section
                    continue
                done.add(command)
                try:
                    _run_command(command)
                except SystemExit as exc:  # argparse refused the command line
                    pytest.fail(f"{where}: {command!r} exited with {exc.code}")
        elif lang == "python":
            try:
                exec(compile(text, where, "exec"), namespace)
            except Exception as exc:
                pytest.fail(f"{where}: {type(exc).__name__}: {exc}")
        elif lang == "toml":
            name = re.match(r"#\s*(\S+\.toml)", text)
            assert name, f"{where}: a toml block starts with '# <file>.toml'"
            (tmp_path / name.group(1)).write_text(text)
            from al_runner.sweep.run import SweepGrid

            SweepGrid.from_toml(tmp_path / name.group(1))  # the example grid is valid
    out = capsys.readouterr().out
    assert "PALM posterior" in out and "Advice for target accuracy" in out
    for made in ("fit/fit.nc", "pooled/fit.nc", "report.html", "my_prior.json", "curves.nc"):
        assert (tmp_path / made).exists(), made
