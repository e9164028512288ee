"""Extension points: a user's strategy and learner, registered by name, run in the loop."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("faiss")

import al_runner
from al_runner import (
    LEARNERS,
    STRATEGIES,
    Learner,
    PoolState,
    RunConfig,
    Strategy,
    get_strategy,
    register_learner,
    register_strategy,
    run_experiment,
)
from al_runner.datasets import load_dataset
from al_runner.errors import ALRunnerError
from al_runner.learners.models import MLPLearner


class FarthestFromLabelled(Strategy):
    """Unlabelled samples farthest (in the fixed representation) from the labelled mean."""

    needs_model = False
    uses_representation = True

    def _select(self, state: PoolState, k: int, rng: np.random.Generator) -> np.ndarray:
        z = state.features()
        dist = np.linalg.norm(z[state.unlabelled] - z[state.labelled].mean(0), axis=1)
        return state.unlabelled[np.argsort(-dist, kind="stable")[:k]]


@pytest.fixture
def registered():
    register_strategy("farthest", FarthestFromLabelled)
    yield
    del STRATEGIES["farthest"]
    LEARNERS.pop("tiny_mlp", None)


def test_a_registered_strategy_runs_a_three_round_loop(registered):
    cfg = RunConfig("digits", ["random", "farthest"], rounds=3, labels_per_round=10)
    curves = run_experiment(cfg, data=load_dataset("digits"), progress=False)
    acc = curves["accuracy"].sel(strategy="farthest").squeeze()
    assert acc.sizes["step"] == 3 and np.isfinite(acc).all()
    assert curves.attrs["complete"] == 1
    assert get_strategy("farthest>margin@20").name == "farthest>margin@20"  # schedules take it
    assert "farthest" in str(_error(lambda: get_strategy("nope")))  # listed among the known


def test_a_registered_learner_is_found_by_name(registered):
    class TinyMLP(MLPLearner):
        hidden = 16

    register_learner("tiny_mlp", TinyMLP)
    cfg = RunConfig("digits", ["farthest"], learner="tiny_mlp", rounds=2, labels_per_round=20,
                    epochs=5)  # fmt: skip
    curves = run_experiment(cfg, data=load_dataset("digits"), progress=False)
    assert curves.attrs["learner"] == "tiny_mlp" and np.isfinite(curves["accuracy"]).all()


def test_bad_registrations_error_clearly(registered):
    assert al_runner.Strategy is Strategy and al_runner.Learner is Learner
    assert "not a usable name" in str(_error(lambda: register_strategy("a>b", Strategy)))
    assert "not a Strategy" in str(_error(lambda: register_strategy("x", int)))
    assert "registered already" in str(
        _error(lambda: register_strategy("farthest", type("Other", (Strategy,), {})))
    )
    assert "not a Learner" in str(_error(lambda: register_learner("x", Strategy)))
    assert "registered already" in str(_error(lambda: register_learner("mlp", Learner)))


def _error(call):
    with pytest.raises(ALRunnerError) as err:
        call()
    return err.value
