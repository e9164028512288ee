"""Errors for bad input: one-line messages that name the problem and, where one exists, the fix."""


class ALRunnerError(ValueError):
    """Datasets, strategies, learners or settings that al_runner cannot use as given."""
