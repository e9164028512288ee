"""palm_bayes: Bayesian PALM learning curves for active learning.

Fit PALM (Machnio et al., ICCV 2025) to active-learning curves with PyMC and answer, with
posterior uncertainty: forecasts at any budget, P(strategy A beats B), and labels needed for a
target accuracy; hierarchical fits pool curves across datasets and strategies.

The public names are imported on first use (PEP 562), so that ``palm --help`` and light
commands start without loading PyMC.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "DEFAULT_PRIORS": "palm_bayes.model",
    "HIERARCHICAL_PRIORS": "palm_bayes.hierarchy",
    "Advice": "palm_bayes.advise",
    "CurvePrior": "palm_bayes.discrepancy",
    "PalmFit": "palm_bayes.fit",
    "PalmInputError": "palm_bayes.errors",
    "advise": "palm_bayes.advise",
    "compare": "palm_bayes.compare",
    "compare_models": "palm_bayes.compare",
    "default_priors": "palm_bayes.model",
    "fit": "palm_bayes.fit",
    "fit_least_squares": "palm_bayes.lsq",
    "learn_prior": "palm_bayes.learn",
    "load_curves": "palm_bayes.data",
    "load_prior": "palm_bayes.discrepancy",
    "save_curves": "palm_bayes.data",
    "labels_for_accuracy": "palm_bayes.curve",
    "palm_curve": "palm_bayes.curve",
    "phases": "palm_bayes.phases",
    "schedule": "palm_bayes.schedule",
    "simulate_curves": "palm_bayes.simulate",
    "simulate_hierarchy": "palm_bayes.simulate",
    "write_report": "palm_bayes.report",
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
    from palm_bayes.advise import Advice, advise
    from palm_bayes.compare import compare, compare_models
    from palm_bayes.curve import labels_for_accuracy, palm_curve
    from palm_bayes.data import load_curves, save_curves
    from palm_bayes.discrepancy import CurvePrior, load_prior
    from palm_bayes.errors import PalmInputError
    from palm_bayes.fit import PalmFit, fit
    from palm_bayes.hierarchy import HIERARCHICAL_PRIORS
    from palm_bayes.learn import learn_prior
    from palm_bayes.lsq import fit_least_squares
    from palm_bayes.model import DEFAULT_PRIORS, default_priors
    from palm_bayes.phases import phases
    from palm_bayes.report import write_report
    from palm_bayes.schedule import schedule
    from palm_bayes.simulate import simulate_curves, simulate_hierarchy


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


class _Package(types.ModuleType):
    """Keeps ``palm_bayes.fit`` / ``palm_bayes.compare`` / ``palm_bayes.advise`` the functions.

    Importing a submodule sets the package attribute of its name to the module; for the
    submodules named like the function they export, the function wins (as it did when this
    package imported everything eagerly). The modules stay in ``sys.modules``.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
