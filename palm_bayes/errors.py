"""Errors raised for bad input, each with a one-line message naming the curve and the problem."""


class PalmInputError(ValueError):
    """Curves, queries or settings that palm_bayes cannot use as given."""


class SamplingWarning(UserWarning):
    """A fit whose draws may not be trusted as they are (divergences, r_hat, Pareto k)."""


class EarlySamplingWarning(SamplingWarning):
    """Said while a pooled fit still samples: what will go wrong, and what helps."""
