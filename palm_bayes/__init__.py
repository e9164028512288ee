"""palm_bayes: Bayesian PALM learning curves for active learning.

Fit PALM (Machnio et al., ICCV 2025) to active-learning curves with PyMC and answer, with
posterior uncertainty: forecasts at any budget, P(strategy A beats B), and labels needed for a
target accuracy; hierarchical fits pool curves across datasets and strategies.
"""

from palm_bayes.compare import compare
from palm_bayes.curve import labels_for_accuracy, palm_curve
from palm_bayes.data import load_curves, save_curves
from palm_bayes.discrepancy import CurvePrior, load_prior
from palm_bayes.errors import PalmInputError
from palm_bayes.fit import PalmFit, fit
from palm_bayes.hierarchy import HIERARCHICAL_PRIORS
from palm_bayes.learn import learn_prior
from palm_bayes.lsq import fit_least_squares
from palm_bayes.model import DEFAULT_PRIORS
from palm_bayes.simulate import simulate_curves, simulate_hierarchy

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PRIORS",
    "HIERARCHICAL_PRIORS",
    "CurvePrior",
    "PalmFit",
    "PalmInputError",
    "compare",
    "fit",
    "fit_least_squares",
    "learn_prior",
    "load_curves",
    "load_prior",
    "save_curves",
    "labels_for_accuracy",
    "palm_curve",
    "simulate_curves",
    "simulate_hierarchy",
    "__version__",
]
