"""al_runner: active-learning loops that generate PALM learning curves.

Select ``b`` samples with a query strategy, label them, retrain a learner from scratch, test,
repeat; several strategies and seeds; resumable. The output is the curves contract that
:func:`palm_bayes.load_curves` reads (``dataset, strategy, embedding, seed, step`` with
``budget`` and ``accuracy``). Command line: ``al-runner run`` and ``al-runner list``. Your own
strategies and learners: subclass :class:`Strategy` / :class:`Learner` and
:func:`register_strategy` / :func:`register_learner` them.

Examples
--------
>>> from al_runner import RunConfig, run_experiment
>>> cfg = RunConfig("digits", ["random", "margin"], rounds=10, labels_per_round=20, seeds=[0, 1, 2])
>>> curves = run_experiment(cfg, "curves.nc")  # doctest: +SKIP
"""

from al_runner.datasets import DATASETS, load_dataset
from al_runner.errors import ALRunnerError
from al_runner.experiment.loop import RunConfig, run_experiment
from al_runner.learners.models import LEARNERS, Learner, get_learner, register_learner
from al_runner.strategies import STRATEGIES, PoolState, Strategy, get_strategy, register_strategy

__all__ = [
    "ALRunnerError",
    "DATASETS",
    "LEARNERS",
    "Learner",
    "PoolState",
    "RunConfig",
    "STRATEGIES",
    "Strategy",
    "get_learner",
    "get_strategy",
    "load_dataset",
    "register_learner",
    "register_strategy",
    "run_experiment",
]
