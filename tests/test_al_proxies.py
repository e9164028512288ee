"""Operational proxies recorded by the AL loop, and read by `palm phases`."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("faiss")

from al_runner.datasets import load_dataset
from al_runner.experiment.loop import RunConfig, run_experiment
from al_runner.experiment.proxies import (
    PROXIES,
    confidence_term,
    feature_discrepancy,
    geometric_coverage,
    label_discrepancy,
)
from palm_bayes.phase_analysis.analysis import phase_table, phases


@pytest.fixture(scope="module")
def curves(tmp_path_factory):
    out = tmp_path_factory.mktemp("proxies") / "curves.nc"
    cfg = RunConfig("digits", ["random", "margin"], rounds=10, labels_per_round=15, seeds=[0])
    return run_experiment(cfg, out, data=load_dataset("digits"), progress=False), out


def test_proxy_definitions():
    y = np.array([0, 0, 1, 1, 2, 2])
    assert label_discrepancy(y[[0, 1]], y, 3) == pytest.approx(2 / 3)
    assert label_discrepancy(y, y, 3) == 0.0
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    # pool -> nearest labelled (0, 1): distances 0, 0, 1 - cos45, 1 - cos90 (to 1)
    expected = (0 + 0 + (1 - np.sqrt(0.5)) + 1.0) / 4
    assert feature_discrepancy(x, np.array([0, 1])) == pytest.approx(expected, abs=1e-6)
    assert geometric_coverage(x, np.array([0, 3])) == pytest.approx(2.0, abs=1e-6)
    assert confidence_term(100, 0.05) == pytest.approx(np.sqrt(2 * np.log(80) / 100))


def test_loop_records_proxies_on_the_curve_dims(curves):
    ds, _ = curves
    for name in (*PROXIES, "proxy_seconds"):
        assert ds[name].dims == ds["accuracy"].dims
    err = ds["empirical_risk_reduction"]
    assert err.isel(step=0).isnull().all() and err.isel(step=slice(1, None)).notnull().all()
    # the newly labelled batch is fitted better after retraining on it
    assert float(err.isel(step=slice(1, None)).mean()) > 0
    for name in ("label_discrepancy", "feature_discrepancy", "geometric_coverage"):
        values = ds[name].to_numpy()
        assert np.isfinite(values).all() and (values >= 0).all() and (values <= 2).all()
    # more labels cover the pool better
    fd = ds["feature_discrepancy"].isel(dataset=0, embedding=0, seed=0)
    assert (fd.isel(step=-1) < fd.isel(step=0)).all()
    np.testing.assert_allclose(
        ds["confidence_term"], np.sqrt(2 * np.log(80) / ds["budget"]), rtol=1e-6
    )
    assert (ds["model_complexity"] > 0).all()


def test_palm_phases_reads_al_runner_curves(curves):
    _, out = curves
    table = phase_table(out)
    assert len(table) == 2 * 9  # step 0 has no risk reduction
    result = phases(out, max_boundaries=1, draws=500)
    assert result.n_boundaries in (0, 1)


def test_schedule_switches_at_its_budgets(tmp_path):
    from al_runner.errors import ALRunnerError
    from al_runner.strategies import PoolState, get_strategy

    spec = "typiclust>margin@45"
    schedule = get_strategy(spec)
    assert schedule.name == spec
    assert schedule.active(30).name == "typiclust" and schedule.active(45).name == "margin"
    out = tmp_path / "curves.nc"
    cfg = RunConfig("digits", ["margin", spec], rounds=5, labels_per_round=15, seeds=[0],
                    initial="cold", proxies=False)  # fmt: skip
    ds = run_experiment(cfg, out, data=load_dataset("digits"), progress=False)
    assert spec in ds.strategy.values and "proxy_seconds" not in ds
    assert np.isfinite(ds.accuracy.sel(strategy=spec)).all()
    # before its switch a schedule repeats its first strategy's run exactly
    plain = run_experiment(
        RunConfig(
            "digits",
            ["typiclust"],
            rounds=3,
            labels_per_round=15,
            seeds=[0],
            initial="cold",
            proxies=False,
        ),  # fmt: skip
        data=load_dataset("digits"),
        progress=False,
    )
    np.testing.assert_array_equal(
        ds.accuracy.sel(strategy=spec).isel(step=slice(0, 3)),
        plain.accuracy.sel(strategy="typiclust"),
    )
    # each round is the active stage's own selection
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    proba = rng.dirichlet(np.ones(3), size=200)
    for n_labelled, stage in ((30, "typiclust"), (45, "margin"), (60, "margin")):
        state = PoolState(np.arange(n_labelled), 200, 3, representation=x, proba=proba)
        picks = schedule.select(state, 5, np.random.default_rng(1))
        alone = get_strategy(stage).select(state, 5, np.random.default_rng(1))
        np.testing.assert_array_equal(picks, alone)
    for bad, message in (
        ("typiclust>margin", "needs a start budget"),
        ("typiclust>nope@30", "unknown strategy 'nope'"),
        ("typiclust>margin@50>coreset@40", "must increase"),
        ("typiclust@5>margin@50", "starts at 0"),
    ):
        with pytest.raises(ALRunnerError, match=message):
            RunConfig("digits", [bad]).validate()
