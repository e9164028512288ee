"""palm_bayes: Bayesian PALM learning curves for active learning.

Fit PALM (Machnio et al., ICCV 2025) to active-learning curves with PyMC and answer, with
posterior uncertainty: forecasts at any budget, P(strategy A beats B), and labels needed for a
target accuracy; hierarchical fits pool curves across datasets and strategies.

The public names are imported on first use (PEP 562), so that ``palm --help`` and light
commands start without loading PyMC.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "DEFAULT_PRIORS": "palm_bayes.model.single",
    "HIERARCHICAL_PRIORS": "palm_bayes.inference.pooled",
    "Advice": "palm_bayes.decisions.advise",
    "CurvePrior": "palm_bayes.priors.curve_prior",
    "PalmFit": "palm_bayes.palm_fit",
    "PalmInputError": "palm_bayes.errors",
    "advise": "palm_bayes.decisions.advise",
    "compare": "palm_bayes.queries.loo",
    "compare_models": "palm_bayes.queries.loo",
    "default_priors": "palm_bayes.model.single",
    "fit": "palm_bayes.palm_fit",
    "fit_least_squares": "palm_bayes.inference.least_squares",
    "learn_prior": "palm_bayes.learn.prior",
    "load_curves": "palm_bayes.data.load",
    "load_prior": "palm_bayes.priors.curve_prior",
    "save_curves": "palm_bayes.data.contract",
    "labels_for_accuracy": "palm_bayes.model.curve",
    "palm_curve": "palm_bayes.model.curve",
    "phases": "palm_bayes.phase_analysis.analysis",
    "schedule": "palm_bayes.decisions.schedule",
    "simulate_curves": "palm_bayes.model.simulate",
    "simulate_hierarchy": "palm_bayes.model.simulate",
    "write_report": "palm_bayes.report.html",
}
#: Read on every access, never cached here: a fresh copy each time (see ``default_priors``).
_COPIED = {"DEFAULT_PRIORS": "default_priors"}

__all__ = [
    "DEFAULT_PRIORS",
    "HIERARCHICAL_PRIORS",
    "Advice",
    "CurvePrior",
    "PalmFit",
    "PalmInputError",
    "advise",
    "compare",
    "compare_models",
    "default_priors",
    "fit",
    "fit_least_squares",
    "learn_prior",
    "load_curves",
    "load_prior",
    "save_curves",
    "labels_for_accuracy",
    "palm_curve",
    "phases",
    "schedule",
    "simulate_curves",
    "simulate_hierarchy",
    "write_report",
    "__version__",
]

if TYPE_CHECKING:
    from palm_bayes.data.contract import save_curves
    from palm_bayes.data.load import load_curves
    from palm_bayes.decisions.advise import Advice, advise
    from palm_bayes.decisions.schedule import schedule
    from palm_bayes.errors import PalmInputError
    from palm_bayes.inference.least_squares import fit_least_squares
    from palm_bayes.inference.pooled import HIERARCHICAL_PRIORS
    from palm_bayes.learn.prior import learn_prior
    from palm_bayes.model.curve import labels_for_accuracy, palm_curve
    from palm_bayes.model.simulate import simulate_curves, simulate_hierarchy
    from palm_bayes.model.single import DEFAULT_PRIORS, default_priors
    from palm_bayes.palm_fit import PalmFit, fit
    from palm_bayes.phase_analysis.analysis import phases
    from palm_bayes.priors.curve_prior import CurvePrior, load_prior
    from palm_bayes.queries.loo import compare, compare_models
    from palm_bayes.report.html import write_report


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'palm_bayes' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    if name in _COPIED:  # a copy on every access: the defaults cannot be changed through it
        return getattr(module, _COPIED[name])()
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
