"""al_runner: active-learning loops that generate PALM learning curves.

Select ``b`` samples with a query strategy, label them, retrain a learner from scratch, test,
repeat; several strategies and seeds; resumable. The output is the curves contract that
:func:`palm_bayes.load_curves` reads (``dataset, strategy, embedding, seed, step`` with
``budget`` and ``accuracy``). Command line: ``al-runner run`` and ``al-runner list``.

Examples
--------
>>> from al_runner import RunConfig, run_experiment
>>> cfg = RunConfig("digits", ["random", "margin"], rounds=10, labels_per_round=20, seeds=[0, 1, 2])
>>> curves = run_experiment(cfg, "curves.nc")  # doctest: +SKIP
"""

from al_runner.datasets import DATASETS, load_dataset
from al_runner.errors import ALRunnerError
from al_runner.learners import LEARNERS, get_learner
from al_runner.loop import RunConfig, run_experiment
from al_runner.strategies import STRATEGIES, PoolState, get_strategy

__all__ = [
    "ALRunnerError",
    "DATASETS",
    "LEARNERS",
    "PoolState",
    "RunConfig",
    "STRATEGIES",
    "get_learner",
    "get_strategy",
    "load_dataset",
    "run_experiment",
]
