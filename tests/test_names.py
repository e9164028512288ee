"""Public names: compare_models, cost_tolerance, exports, copied priors, no backend switch."""

import subprocess
import sys

import numpy as np
import pytest

import palm_bayes as pb
from palm_bayes.decisions.advise import alda_least_squares


def test_compare_is_a_deprecated_alias_of_compare_models(monkeypatch):
    import palm_bayes.queries.loo  # noqa: F401  (a submodule named like a function)

    module = sys.modules["palm_bayes.queries.loo"]
    assert pb.compare_models is module.compare_models
    monkeypatch.setattr(module, "compare_models", lambda fits, ic="loo": ("ranked", fits, ic))
    with pytest.warns(DeprecationWarning, match="compare_models"):
        assert pb.compare([1, 2]) == ("ranked", [1, 2], "loo")
    assert pb.compare.__name__ == "compare"


def test_eta_is_a_deprecated_name_of_cost_tolerance():
    params = {
        "a": dict(A_max=0.9, delta=0.05, alpha=0.0, beta=1.2),
        "b": dict(A_max=0.85, delta=0.1, alpha=0.0, beta=1.0),
    }
    curves = pb.simulate_curves(params, np.arange(10.0, 410.0, 40.0), seeds=2, rng=0)
    lsq = pb.fit_least_squares(curves)
    new = alda_least_squares(lsq, 0.8, 0.05, cost_tolerance=0.2)
    with pytest.warns(DeprecationWarning, match="cost_tolerance"):
        old = alda_least_squares(lsq, 0.8, 0.05, eta=0.2)
    assert new.equals(old)


def test_new_exports():
    from palm_bayes.decisions.advise import Advice, advise
    from palm_bayes.report.html import write_report

    assert pb.advise is advise and pb.Advice is Advice and pb.write_report is write_report


def test_default_priors_cannot_be_changed_through_the_package():
    from palm_bayes.model.single import DEFAULT_PRIORS

    before = DEFAULT_PRIORS["noise"]["sigma"]
    pb.DEFAULT_PRIORS["noise"]["sigma"] = 123.0
    mine = pb.default_priors()
    mine["noise"]["sigma"] = 456.0
    assert DEFAULT_PRIORS["noise"]["sigma"] == before
    assert pb.DEFAULT_PRIORS == DEFAULT_PRIORS


def test_plots_and_report_leave_the_matplotlib_backend_alone():
    code = (
        "import matplotlib\n"
        "matplotlib.use('pdf')\n"
        "import palm_bayes.report.figures, palm_bayes.report.html\n"
        "from palm_bayes.report.figures import new_figure\n"
        "import io\n"
        "fig = new_figure(figsize=(2, 2)); fig.subplots().plot([1, 2])\n"
        "fig.savefig(io.BytesIO(), format='png')\n"
        "import matplotlib.pyplot as plt\n"
        "assert plt.get_fignums() == [], plt.get_fignums()\n"
        "print(matplotlib.get_backend())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "pdf"
