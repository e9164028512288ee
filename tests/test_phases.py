"""Phase analysis: boundaries with credible intervals, the reference's files and DP baseline."""

import json

import numpy as np
import pandas as pd
import pytest

from palm_bayes.cli import main
from palm_bayes.data.contract import PROXIES
from palm_bayes.errors import PalmInputError
from palm_bayes.model.simulate import simulate_phase_records
from palm_bayes.phase_analysis.analysis import dp_bic_phases, phase_table, phases


@pytest.fixture(scope="module")
def records():
    budgets = np.geomspace(20, 3000, 30)
    return simulate_phase_records((150.0, 700.0), budgets=budgets, noise=0.01, rng=4)


def test_boundaries_recovered_with_intervals(records):
    result = phases(records, seed=0)
    bounds = result.boundaries()
    assert result.n_boundaries == 2
    truth = np.array(records.attrs["true_boundaries"])
    assert ((bounds["low"] < truth) & (truth <= bounds["high"])).all()
    # the reference's DP + BIC is kept as a baseline and agrees here
    assert result.baseline["segment_count"] == 3
    np.testing.assert_allclose(result.baseline["breakpoints"], bounds["median"], rtol=0.3)
    coef = result.coefficients()
    assert set(coef["term"]) == {"intercept", *PROXIES}
    assert coef["segment"].max() == 3
    assert list(result.loo.index)[0] == 2 and "log_evidence" in result.loo


def test_intervals_cover_over_simulated_cases():
    """Over 12 clear cases the 90% intervals cover >= 80% of the true boundaries."""
    rng = np.random.default_rng(11)
    covered = total = right = dp_right = 0
    for _ in range(12):
        budgets = np.geomspace(20, 3000, 26)
        k = int(rng.integers(1, 3))
        idx = np.array([8]) if k == 1 else np.array([7, 17])
        idx = idx + rng.integers(-2, 3, size=k)
        truth = np.sqrt(budgets[idx - 1] * budgets[idx])
        rec = simulate_phase_records(
            truth, budgets=budgets, noise=0.008, effect=0.03, rng=int(rng.integers(1e9))
        )
        result = phases(rec, max_boundaries=2, draws=1000, seed=1)
        bounds = result.boundaries()
        covered += sum(((bounds["low"] < t) & (t <= bounds["high"])).any() for t in truth)
        total += k
        right += result.n_boundaries == k
        dp_right += result.baseline["segment_count"] == k + 1
    assert covered / total >= 0.8
    assert right >= 10 and dp_right >= 9  # the benchmark compares the two over 200 cases


def test_reference_records_are_realigned(tmp_path, records):
    """The reference's annotation_budget is one round ahead of its test_accuracy."""
    ref = records.rename(columns={"strategy": "method", "budget": "annotation_budget"})
    ref["episode"] = ref.groupby(["method", "seed"]).cumcount()
    ref["test_accuracy"] = ref.groupby(["method", "seed"])["accuracy"].shift(1) * 100
    ref = ref.drop(columns="accuracy").dropna()
    path = tmp_path / "mechanistic_proxy_records.csv"
    ref.to_csv(path, index=False)
    ours = phase_table(records)
    theirs = phase_table(path)
    merged = ours.merge(theirs, on=["strategy", "budget"], suffixes=("", "_ref"))
    assert len(merged) >= len(ours) - 2 * records["strategy"].nunique()
    np.testing.assert_allclose(merged["risk"], merged["risk_ref"], atol=1e-9)


def test_cli_writes_the_reference_files(tmp_path, records, capsys):
    src = tmp_path / "records.csv"
    records.to_csv(src, index=False)
    out = tmp_path / "phases"
    assert main(["phases", str(src), "--out", str(out), "--quiet", "--max-boundaries", "2"]) == 0
    assert "3 phase(s)" in capsys.readouterr().out
    data = json.loads((out / "global_phase_analysis.json").read_text())
    assert data["segment_count"] == 3 and len(data["breakpoints"]) == 2
    assert len(data["breakpoint_interval"]) == 2 and data["baseline_dp_bic"]["breakpoints"]
    for name in ("pooled_phase_records.csv", "phase_boundaries.csv", "phases.png"):
        assert (out / name).stat().st_size > 0
    pooled = pd.read_csv(out / "pooled_phase_records.csv")
    assert {"strategy", "budget", "risk", *PROXIES} <= set(pooled.columns)


def test_dp_baseline_finds_a_single_clear_break():
    rng = np.random.default_rng(0)
    budgets = np.repeat(np.arange(1, 31, dtype=float), 2)
    z = rng.normal(size=(60, 2))
    risk = np.where(budgets < 16, 0.5 + 0.1 * z[:, 0], 0.3 - 0.1 * z[:, 1])
    table = pd.DataFrame({"budget": budgets, "risk": risk + rng.normal(0, 1e-3, 60)})
    table["a"], table["b"] = z[:, 0], z[:, 1]
    assert dp_bic_phases(table, ["a", "b"], max_segments=3)["breakpoints"] == [16.0]


def test_clear_errors(tmp_path, records):
    with pytest.raises(PalmInputError, match="no proxy variables"):
        phase_table(records[["strategy", "seed", "budget", "accuracy"]])
    with pytest.raises(PalmInputError, match="datasets"):
        phase_table(pd.concat([records.assign(dataset="a"), records.assign(dataset="b")]))
    with pytest.raises(PalmInputError, match="no such file"):
        phase_table(tmp_path / "missing.csv")
    few = records[records["budget"] < 40]
    with pytest.raises(PalmInputError, match="pooled records"):
        phases(few)
    (tmp_path / "file").write_text("x")
    assert main(["phases", str(tmp_path / "missing.csv")]) == 2
