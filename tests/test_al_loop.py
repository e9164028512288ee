"""The AL loop on digits: every strategy runs, resumption is exact, palm_bayes reads the output."""

import json

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("torch")
pytest.importorskip("faiss")

import palm_bayes as pb
from al_runner.datasets import load_dataset
from al_runner.errors import ALRunnerError
from al_runner.experiment.loop import RunConfig, representation, run_experiment, state_path
from al_runner.strategies import STRATEGIES


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def all_strategies(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("all") / "curves.nc"
    cfg = RunConfig("digits", ["all"], rounds=4, labels_per_round=15, seeds=[0, 1])
    return run_experiment(cfg, out, data=digits, progress=False), out


def test_every_strategy_runs_three_acquisition_rounds_on_digits(all_strategies):
    curves, out = all_strategies
    assert list(curves.strategy.values) == list(STRATEGIES)
    assert curves.accuracy.shape == (1, len(STRATEGIES), 1, 2, 4)
    assert curves.attrs["complete"] == 1
    assert np.isfinite(curves.accuracy).all()
    budget = curves.budget.isel(dataset=0, embedding=0, seed=0)
    np.testing.assert_array_equal(budget, np.tile([15, 30, 45, 60], (len(STRATEGIES), 1)))
    # same initial set per seed -> same step-0 accuracy for every strategy
    step0 = curves.accuracy.isel(step=0)
    assert (step0 == step0.isel(strategy=0)).all()
    # learning happens: accuracy at 60 labels beats 15 labels on average, and beats chance
    assert float(curves.accuracy.isel(step=-1).mean()) > float(step0.mean()) + 0.05
    assert float(curves.accuracy.isel(step=-1).min()) > 0.3
    # labelled sets are distinct indices of the pool
    state = json.loads(state_path(out).read_text())
    for run in state["runs"].values():
        assert len(set(run["labelled"])) == len(run["labelled"]) == 60


def test_output_loads_in_palm_bayes(all_strategies):
    _, out = all_strategies
    raw = xr.open_dataset(out, engine="h5netcdf", mask_and_scale=False)
    assert raw["budget"].dtype == np.int32
    for key in ("dataset", "learner", "epochs", "labels_per_round", "versions", "date", "n_test"):
        assert key in raw.attrs
    raw.close()
    curves = pb.load_curves(out)
    assert set(curves.strategy.values) == set(STRATEGIES)
    assert curves.sizes["seed"] == 2 and curves.sizes["step"] == 4
    assert float(curves["n_test"].max()) == 539
    assert curves.attrs["labels_per_round"] == 15


class _Killed(Exception):
    pass


@pytest.mark.parametrize("learner", ["linear", "mlp"])
def test_resume_after_kill_gives_the_same_curve(digits, tmp_path, learner):
    cfg = dict(
        strategies=["margin", "typiclust", "bald"], learner=learner, rounds=4, labels_per_round=10
    )
    cfg["seeds"] = [3, 4]
    if learner == "mlp":
        cfg["epochs"] = 20
    full = run_experiment(
        RunConfig("digits", **cfg), tmp_path / "full.nc", data=digits, progress=False
    )

    seen = []

    def kill_after_five(event):
        seen.append(event)
        if len(seen) == 5:
            raise _Killed

    out = tmp_path / "killed.nc"
    with pytest.raises(_Killed):
        run_experiment(
            RunConfig("digits", **cfg), out, data=digits, progress=False, callback=kill_after_five
        )
    with xr.open_dataset(out, engine="h5netcdf") as partial:  # written after every round
        assert int(partial.accuracy.notnull().sum()) == 5
        assert int(partial.budget.notnull().sum()) == 5
        assert partial.attrs["complete"] == 0
    resumed_events = []
    resumed = run_experiment(
        RunConfig("digits", **cfg), out, data=digits, progress=False,
        callback=resumed_events.append,
    )  # fmt: skip
    assert len(resumed_events) == 2 * 3 * 4 - 5  # only the missing rounds ran
    xr.testing.assert_equal(full[["budget", "accuracy"]], resumed[["budget", "accuracy"]])
    a = json.loads(state_path(tmp_path / "full.nc").read_text())["runs"]
    b = json.loads(state_path(out).read_text())["runs"]
    assert {k: v["labelled"] for k, v in a.items()} == {k: v["labelled"] for k, v in b.items()}


def test_resume_refuses_other_settings(digits, tmp_path):
    out = tmp_path / "c.nc"
    run_experiment(
        RunConfig("digits", ["random"], rounds=2, labels_per_round=5),
        out,
        data=digits,
        progress=False,
    )
    with pytest.raises(ALRunnerError, match="other settings"):
        run_experiment(
            RunConfig("digits", ["random"], rounds=3, labels_per_round=5),
            out,
            data=digits,
            progress=False,
        )
    again = run_experiment(
        RunConfig("digits", ["random"], rounds=3, labels_per_round=5),
        out,
        data=digits,
        progress=False,
        resume=False,
    )
    assert again.sizes["step"] == 3


def test_cold_start_uses_representation_strategies(digits):
    cfg = RunConfig(
        "digits", ["random", "typiclust"], rounds=2, labels_per_round=10, initial="cold"
    )
    curves = run_experiment(cfg, data=digits, progress=False)
    step0 = curves.accuracy.isel(step=0).squeeze()
    assert step0.sel(strategy="typiclust") > step0.sel(strategy="random")


def test_config_errors(digits):
    with pytest.raises(ALRunnerError, match="known: random"):
        run_experiment(RunConfig("digits", ["foo"]), data=digits, progress=False)
    with pytest.raises(ALRunnerError, match="unknown learner 'svm'"):
        run_experiment(RunConfig("digits", ["random"], learner="svm"), data=digits)
    with pytest.raises(ALRunnerError, match="pool has only 1258"):
        run_experiment(RunConfig("digits", ["random"], rounds=70, labels_per_round=20), data=digits)
    with pytest.raises(ALRunnerError, match="seeds repeat"):
        run_experiment(RunConfig("digits", ["random"], seeds=[1, 1]), data=digits)


def test_representation_pca_is_deterministic_and_ordered():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 100)) * np.linspace(5, 0.1, 100)
    z = representation(x, dim=8)
    assert z.shape == (300, 8)
    np.testing.assert_array_equal(z, representation(x, dim=8))
    var = z.var(axis=0)
    assert np.all(np.diff(var) <= 1e-6)  # components by decreasing variance
    assert representation(x[:, :5]).shape == (300, 5)  # small inputs pass through


@pytest.mark.slow
def test_palm_fit_runs_on_runner_output(all_strategies):
    _, out = all_strategies
    curves = pb.load_curves(out).sel(strategy=["random", "margin"])
    fit = pb.fit(curves, chains=2, draws=100, tune=100, seed=0, progress=False)
    forecast = fit.forecast([80, 120])
    assert np.isfinite(forecast["median"]).all()
    assert ((forecast["median"] > 0.3) & (forecast["median"] <= 1)).all()


def test_pca_embedding_is_fitted_on_the_pool(digits, monkeypatch):
    import al_runner.experiment.features as features

    fitted = []
    real = features.pca_basis
    monkeypatch.setattr(features, "pca_basis", lambda x, *a: fitted.append(x.shape) or real(x, *a))
    cfg = RunConfig("digits", ["coreset"], rounds=2, labels_per_round=20, embedding="pca")
    curves = run_experiment(cfg, data=digits, progress=False)
    assert fitted == [(digits.n_pool, 64)]  # the pool only, never the test set
    assert list(curves.embedding.values) == ["pca"]
    assert float(curves.accuracy.isel(step=-1).squeeze()) > 0.3  # chance is 0.1
