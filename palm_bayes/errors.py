"""Errors raised for bad input, each with a one-line message naming the curve and the problem."""


class PalmInputError(ValueError):
    """Curves, queries or settings that palm_bayes cannot use as given."""
