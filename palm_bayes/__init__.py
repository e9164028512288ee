"""palm_bayes: Bayesian PALM learning curves for active learning."""

from palm_bayes.curve import labels_for_accuracy, palm_curve
from palm_bayes.errors import PalmInputError

__version__ = "0.1.0"

__all__ = ["PalmInputError", "labels_for_accuracy", "palm_curve", "__version__"]
