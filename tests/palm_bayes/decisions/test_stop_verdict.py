"""The stop verdict of a fit on a hand-built posterior: every number checked exactly.

``random`` is a point mass (A_max 0.9); ``margin`` has A_max 0.95 in 6 of its 8 draws and 0.85
in 2 (both delta 0.5, alpha 0, beta 1, b = 50, observed to 200 labels, zero extrapolation
discrepancy): every forecast is the PALM curve of a draw, so gains, utilities and the
verdicts' probabilities can be written down.
"""

from __future__ import annotations

import numpy as np
import pytest

import palm_bayes as pb
from palm_bayes.cli import main

B = 50.0
A_M = np.array([0.95] * 3 + [0.85] + [0.95] * 3 + [0.85])  # 6 of 8 draws at 0.95
CURVES = {
    "random": dict(A_max=0.9, delta=0.5, alpha=0.0, beta=1.0),
    "margin": dict(A_max=A_M, delta=0.5, alpha=0.0, beta=1.0),
}


def acc(budget: float, a_max) -> np.ndarray:
    return np.asarray(pb.palm_curve(budget, A_max=a_max, delta=0.5, alpha=0.0, beta=1.0, b=B))


@pytest.fixture
def fit(known_fit):
    return known_fit(CURVES, b=B)


def row(out, strategy):
    return out.sel(strategy=strategy).squeeze(["dataset", "embedding"])


def test_gains_and_their_probabilities(fit):
    out = fit.stop(rounds_ahead=(1, 3), epsilon=0.03)
    r = row(out, "random")
    gain = [acc(250, 0.9) - acc(200, 0.9), acc(350, 0.9) - acc(200, 0.9)]
    np.testing.assert_allclose(r["gain_mean"], gain, rtol=1e-12)
    np.testing.assert_allclose(r["gain_lower"], gain, rtol=1e-12)  # a point mass
    assert r["p_gain"].values.tolist() == [0.0, 1.0]  # 0.028 < 0.03 <= 0.049
    m = row(out, "margin")
    draws = acc(250, A_M) - acc(200, A_M)
    assert float(m["gain_mean"].sel(rounds_ahead=1)) == pytest.approx(draws.mean(), rel=1e-12)
    assert float(m["accuracy_now"]) == pytest.approx(acc(200, A_M).mean(), rel=1e-12)
    assert float(m["budget_now"]) == 200.0


def test_the_cost_model_verdicts(fit):
    out = fit.stop(cost_per_label=1.0, value_per_point=10.0, rounds_ahead=(1, 3))
    r = row(out, "random")
    # switching to margin for one round: 1000 * (A_margin(250) - A_random(200)) - 50
    switch = 1000 * (acc(250, A_M) - acc(200, 0.9)) - 50
    assert r["verdict"].item() == "switch to margin" and r["action"].item() == "margin"
    assert float(r["rounds"]) == 1.0
    assert float(r["expected_saved"]) == pytest.approx(switch.mean(), rel=1e-9)  # stop is next
    assert float(r["probability"]) == pytest.approx(np.mean(switch > 0))  # 0.75
    assert float(r["probability"]) == 0.75
    m = row(out, "margin")
    # running margin: continue (in every draw < 0) or switch to random (> 0 where A_max 0.85)
    u = {
        (name, r): 1000 * (acc(200 + r * B, a) - acc(200, A_M)) - r * B
        for name, a in (("margin", A_M), ("random", 0.9))
        for r in (1, 3)
    }
    assert (u["margin", 1] < 0).all() and (u["random", 1] > 0).sum() == 2
    assert m["verdict"].item() == "stop"
    stop_wins = np.all([v <= 0 for v in u.values()], axis=0)
    assert float(m["probability"]) == pytest.approx(stop_wins.mean()) == 0.75
    best_other = max(np.mean(v) for v in u.values())
    assert float(m["expected_saved"]) == pytest.approx(-best_other, rel=1e-9)


def test_without_a_cost_model_epsilon_per_round_is_the_break_even(fit):
    out = fit.stop(rounds_ahead=(1, 3), epsilon=0.005)
    r = row(out, "random")
    switch3 = acc(350, A_M) - acc(200, 0.9) - 3 * 0.005
    cont3 = acc(350, 0.9) - acc(200, 0.9) - 3 * 0.005
    assert r["verdict"].item() == "switch to margin" and float(r["rounds"]) == 3.0
    assert float(r["expected_saved"]) == pytest.approx(switch3.mean() - cont3, rel=1e-9)
    assert float(r["probability"]) == pytest.approx(np.mean(switch3 > cont3))


def test_a_reached_target_stops_and_the_target_columns(fit):
    # margin gains 0.045 (A_max 0.95) or 0.040 (0.85) from 200 to 300 labels: within a
    # tolerance of 0.045 in every draw, so the reached target (P = 0.75) stops
    out = fit.stop(target=0.87, budget=300, tolerance=0.045)
    m = row(out, "margin")
    assert float(m["p_target_now"]) == pytest.approx(np.mean(acc(200, A_M) >= 0.87))  # 0.75
    assert float(m["p_gain_to_budget"]) == 0.0 and float(m["target_budget"]) == 300.0
    assert m["verdict"].item() == "stop" and m["reason"].item() == "target reached"
    assert float(m["probability"]) == 0.75
    r = row(out, "random")
    need = np.ceil(pb.labels_for_accuracy(0.87, A_max=0.9, delta=0.5, alpha=0.0, beta=1.0, b=B))
    assert float(r["labels_to_target"]) == need - 200
    assert float(r["p_target_by_budget"]) == float(need <= 300)
    assert float(r["p_target_now"]) == 0.0 and r["reason"].item() == "expected utility"


def test_a_reached_target_with_more_than_the_tolerance_left_continues(fit):
    # the same margin row at the default tolerance (1 point): P(gain by 300 > 0.01) = 1
    out = fit.stop(target=0.87, budget=300)
    m = row(out, "margin")
    assert float(m["p_target_now"]) == 0.75 and float(m["p_gain_to_budget"]) == 1.0
    assert m["verdict"].item() == "continue"
    assert m["reason"].item() == "target reached, but P(gain > 1 point by B=300) = 1.00"
    # between the draws' gains (0.0398 and 0.0446): P(gain left > 0.042) = 6 of 8 draws
    left = acc(300, A_M) - acc(200, A_M)
    m = row(fit.stop(target=0.87, budget=300, tolerance=0.042), "margin")
    assert float(m["p_gain_to_budget"]) == pytest.approx(np.mean(left > 0.042)) == 0.75
    assert m["verdict"].item() == "continue"
    # ... a risk the user takes: stop where P(gain left > tolerance) <= gain_risk
    m = row(fit.stop(target=0.87, budget=300, tolerance=0.042, gain_risk=0.75), "margin")
    assert m["verdict"].item() == "stop" and m["reason"].item() == "target reached"


def test_the_target_stop_weighs_the_gain_to_the_runs_budget(known_fit):
    steep = known_fit({"steep": dict(A_max=0.9, delta=0.5, alpha=0.0, beta=1.0)}, b=B)
    flat = known_fit({"flat": dict(A_max=0.9, delta=0.9, alpha=0.0, beta=1.0)}, b=B)
    # steep: 0.8438 at 200 labels (target reached), +0.056 by 1,000: keep labelling
    s = row(steep.stop(target=0.84, budget=1000), "steep")
    assert float(s["p_target_now"]) == 1.0 and float(s["p_gain_to_budget"]) == 1.0
    assert s["verdict"].item() == "continue" and s["reason"].item().startswith(
        "target reached, but"
    )
    # ... even when the cost model alone would stop
    s = row(steep.stop(target=0.84, budget=1000, cost_per_label=1.0, value_per_point=0.1), "steep")
    assert s["verdict"].item() == "stop" and s["reason"].item() == "expected utility"
    # a budget only 10 labels beyond: +0.006 left, within the point: stop at the target
    assert acc(210, 0.9) - acc(200, 0.9) < 0.01
    s = row(steep.stop(target=0.84, budget=210), "steep")
    assert s["verdict"].item() == "stop" and s["reason"].item() == "target reached"
    # no budget beyond the last observed one: the largest horizon (3 rounds: 350 labels)
    for budget in (None, 200):
        s = row(steep.stop(target=0.84, budget=budget, rounds_ahead=(1, 3)), "steep")
        assert float(s["target_budget"]) == 350.0 and s["verdict"].item() == "continue"
    # flat: 0.8999 at 200 labels, +0.0001 by 1,000: stop, even where labelling pays
    f = row(flat.stop(target=0.89, budget=1000, cost_per_label=1.0, value_per_point=1e6), "flat")
    assert float(f["p_gain_to_budget"]) == 0.0
    assert f["verdict"].item() == "stop" and f["reason"].item() == "target reached"
    assert float(f["probability"]) == 1.0


def test_bad_settings_are_one_line_errors(fit):
    for kwargs, message in (
        (dict(cost_per_label=1.0), "together"),
        (dict(rounds_ahead=(0,)), "rounds_ahead"),
        (dict(epsilon=-1), "epsilon"),
        (dict(target=1.5), "a percentage"),
        (dict(target=0.2), "below every observed accuracy"),
        (dict(target=0.87, tolerance=-0.01), "tolerance"),
        (dict(target=0.87, gain_risk=1.5), "gain_risk"),
        (dict(target=0.87, budget=0), "budget"),
    ):
        with pytest.raises(pb.PalmInputError, match=message):
            fit.stop(**kwargs)


def test_palm_stop_prints_the_table(fit, tmp_path, capsys):
    fit.to_netcdf(tmp_path / "fit.nc")
    args = ["stop", str(tmp_path), "--cost-per-label", "1", "--value-per-point", "10"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "switch to margin" in text and "stop" in text
    assert main(["stop", str(tmp_path), "--target", "1.5"]) == 2
    args = ["stop", str(tmp_path), "--target", "0.87", "--budget", "300", "--json"]
    assert main([*args, "--tolerance", "0.045"]) == 0
    assert '"p_gain_to_budget":0.0' in capsys.readouterr().out.replace(" ", "")
    assert main(args) == 0
    assert '"p_gain_to_budget":1.0' in capsys.readouterr().out.replace(" ", "")
