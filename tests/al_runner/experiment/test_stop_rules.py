"""The baseline stopping rules of al_runner: each rule's defining behaviour (issue 28, item 3).

Rules see synthetic pool probabilities here (no learner): a round is a RoundView, measured and
decided by ``apply_rule`` exactly as the loop does it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from al_runner.errors import ALRunnerError
from al_runner.experiment.stop_rules import (
    STOP_RULES,
    RoundView,
    StopRule,
    apply_rule,
    cohen_kappa,
    entropy,
    get_stop_rule,
    parse_stop_rule,
)

N_POOL, C = 200, 3


def onehot(labels: np.ndarray, sure: float = 0.9) -> np.ndarray:
    """Probabilities putting ``sure`` on each label and the rest evenly on the others."""
    p = np.full((labels.size, C), (1 - sure) / (C - 1))
    p[np.arange(labels.size), labels] = sure
    return p


def run_rule(rule: StopRule, rounds: list[np.ndarray], per_round: int = 10) -> list[bool]:
    """Verdicts of ``rule`` over rounds of pool probabilities (labels bought in pool order)."""
    history: dict[str, list[float]] = {}
    verdicts, previous = [], None
    stop_set = np.arange(0, N_POOL, 2)
    for step, proba in enumerate(rounds):
        budget = per_round * (step + 1)
        history.setdefault("budget", []).append(budget)
        view = RoundView(
            step=step, budget=budget, proba=proba, previous=previous,
            unlabelled=np.arange(budget, N_POOL), stop_set=stop_set, history=history,
        )  # fmt: skip
        verdicts.append(apply_rule(rule, view)[1])
        previous = proba
    return verdicts


def test_kappa_is_one_for_agreement_zero_for_chance_and_negative_for_disagreement():
    a = np.array([0, 1, 2, 0, 1, 2])
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa(a, (a + 1) % 3) < 0
    b = np.array([0, 0, 1, 1])
    assert cohen_kappa(b, np.array([0, 1, 0, 1])) == pytest.approx(0.0)
    assert cohen_kappa(np.zeros(5, int), np.zeros(5, int)) == 1.0  # constant and equal


def test_stabilizing_predictions_stops_after_a_window_of_stable_models():
    rng = np.random.default_rng(0)
    moving = [onehot(rng.integers(0, C, N_POOL)) for _ in range(3)]
    stable = onehot(rng.integers(0, C, N_POOL))
    rounds = moving + [stable] * 4
    verdicts = run_rule(get_stop_rule("stabilizing_predictions"), rounds)
    # kappas: nan, low, low, low, 1, 1, 1 -> the window of 3 is all 1 only at the last round
    assert verdicts == [False] * 6 + [True]
    assert run_rule(get_stop_rule("stabilizing_predictions:0.99,window=2"), rounds).index(True) == 5


def test_stabilizing_predictions_ignores_changes_outside_the_stop_set():
    base = np.zeros(N_POOL, int)
    flipped = base.copy()
    flipped[1::2] = 1  # odd indices: the stop set holds the even ones
    rounds = [onehot(base), onehot(flipped), onehot(base), onehot(flipped)]
    assert run_rule(get_stop_rule("stabilizing_predictions"), rounds)[-1]


def test_classification_change_stops_when_no_unlabelled_prediction_changes():
    labels = np.zeros(N_POOL, int)
    changed_labelled = labels.copy()
    changed_labelled[:15] = 2  # only examples labelled by round 2 (budget 20) and earlier
    changed_pool = labels.copy()
    changed_pool[150] = 1
    rounds = [onehot(labels), onehot(changed_pool), onehot(changed_labelled)]
    # round 1: example 150 changed; round 2: it changed back (still unlabelled) -> no stop
    assert run_rule(get_stop_rule("classification_change"), rounds) == [False, False, False]
    rounds = [onehot(labels), onehot(labels), onehot(changed_labelled)]
    # round 1 changes nothing; round 2 changes only examples that are labelled by then
    assert run_rule(get_stop_rule("classification_change"), rounds) == [False, True, True]


def test_max_confidence_waits_for_the_least_confident_example():
    sure = onehot(np.zeros(N_POOL, int), sure=1 - 1e-6)
    one_doubt = sure.copy()
    one_doubt[190] = [0.5, 0.5, 0.0]
    rule = get_stop_rule("max_confidence")
    assert run_rule(rule, [one_doubt, sure]) == [False, True]
    # the doubtful example labelled (index < budget): it no longer counts
    early_doubt = sure.copy()
    early_doubt[5] = [0.5, 0.5, 0.0]
    assert run_rule(rule, [early_doubt]) == [True]


def test_overall_uncertainty_reads_the_mean_not_the_worst():
    sure = onehot(np.zeros(N_POOL, int), sure=1 - 1e-6)
    one_doubt = sure.copy()
    one_doubt[190] = [0.5, 0.5, 0.0]  # mean entropy log(2) / 190 < 0.01
    assert entropy(one_doubt[10:]).mean() < 0.01
    assert run_rule(get_stop_rule("overall_uncertainty"), [one_doubt]) == [True]
    unsure = onehot(np.zeros(N_POOL, int), sure=0.6)
    assert run_rule(get_stop_rule("overall_uncertainty:0.01"), [unsure]) == [False]


def test_fixed_budget_stops_at_the_budget():
    rounds = [None] * 5
    assert run_rule(get_stop_rule("fixed_budget:30"), rounds) == [False, False, True, True, True]


def test_verdicts_depend_on_the_recorded_history_only():
    """A resumed run replays the state file's history: the same verdict without the models."""
    rng = np.random.default_rng(1)
    stable = onehot(rng.integers(0, C, N_POOL))
    history = {"stop_kappa": [float("nan"), 0.2, 1.0, 1.0, 1.0]}
    view = RoundView(step=4, budget=50, history=history)
    assert get_stop_rule("stabilizing_predictions").update(view)
    assert run_rule(get_stop_rule("stabilizing_predictions"), [stable] * 5)[-1]


def test_names_and_arguments():
    assert set(STOP_RULES) >= {
        "stabilizing_predictions", "classification_change", "max_confidence",
        "overall_uncertainty", "fixed_budget",
    }  # fmt: skip
    assert parse_stop_rule("palm:target=0.85,cost_per_label=2") == (
        "palm",
        {"target": 0.85, "cost_per_label": 2},
    )
    assert parse_stop_rule("my.module:Rule;x=1") == ("my.module:Rule", {"x": 1})
    rule = get_stop_rule("stabilizing_predictions:0.95,window=5")
    assert (rule.threshold, rule.window) == (0.95, 5)
    with pytest.raises(ALRunnerError, match="unknown stop rule 'nope'; known: stabilizing"):
        get_stop_rule("nope")
    with pytest.raises(ALRunnerError, match="cannot import"):
        get_stop_rule("no_such_module_xyz.rules:Rule")
    with pytest.raises(ALRunnerError, match="unexpected keyword"):
        get_stop_rule("fixed_budget:10,windw=3")


# ------------------------------------------------------------------ in the loop (digits)
@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("torch")
    pytest.importorskip("faiss")
    from al_runner.datasets import load_dataset

    return load_dataset("digits")


def _config(**kw):
    from al_runner.experiment.config import RunConfig

    base = dict(rounds=4, labels_per_round=15, seeds=[0], proxies=False)
    return RunConfig("digits", kw.pop("strategies", ["margin"]), **(base | kw))


@pytest.mark.slow
def test_a_rule_stops_the_run_and_every_round_records_its_verdict(digits, tmp_path):
    from al_runner.experiment.loop import run_experiment

    curves = run_experiment(
        _config(stop_when="fixed_budget:45", label_free=True), tmp_path / "c.nc", data=digits,
        progress=False,
    )  # fmt: skip
    acc = curves["accuracy"].squeeze(["dataset", "embedding", "seed"])
    assert acc.notnull().sum("step").values.tolist() == [3]  # 15, 30, 45 labels
    verdict = curves["stop_verdict"].squeeze(["dataset", "embedding", "seed"])
    assert verdict.sel(strategy="margin").values[:3].tolist() == [0.0, 0.0, 1.0]
    est = curves["label_free_accuracy"].squeeze(["dataset", "embedding", "seed"])
    assert est.notnull().sum().item() == 3 and float(est.max()) <= 1
    assert curves.attrs["stop_when"] == "fixed_budget:45" and curves.attrs["complete"] == 0
    # a stopped run stays stopped under its rule, and continues by hand without it
    again = run_experiment(
        _config(stop_when="fixed_budget:45", label_free=True), tmp_path / "c.nc", data=digits,
        progress=False,
    )  # fmt: skip
    assert again["accuracy"].notnull().sum().item() == 3
    more = run_experiment(_config(), tmp_path / "c.nc", data=digits, progress=False)
    assert more["accuracy"].notnull().sum().item() == 4


@pytest.mark.slow
def test_a_run_killed_inside_the_rule_resumes_to_the_same_verdicts(digits, tmp_path, monkeypatch):
    from al_runner.experiment import stopping
    from al_runner.experiment.loop import run_experiment

    cfg = dict(stop_when="stabilizing_predictions:0.9,window=2", strategies=["random", "margin"])
    full = run_experiment(_config(**cfg), tmp_path / "full.nc", data=digits, progress=False)
    calls = {"n": 0}
    original = stopping.StopMonitor.after_round

    def killed_on_the_fifth(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # a kill while the rule decides (each run has >= 3 verdicts)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(stopping.StopMonitor, "after_round", killed_on_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(_config(**dict(cfg)), tmp_path / "cut.nc", data=digits, progress=False)
    monkeypatch.setattr(stopping.StopMonitor, "after_round", original)
    resumed = run_experiment(_config(**cfg), tmp_path / "cut.nc", data=digits, progress=False)
    names = ["accuracy", "stop_kappa", "stop_verdict"]
    import xarray as xr

    xr.testing.assert_equal(full[names], resumed[names])
    assert np.isfinite(full["stop_kappa"]).sum() >= 2


# ------------------------------------------------------------------ the PALM rule (a plugin)
def _palm_view(step: int, accuracy: np.ndarray, budget: np.ndarray, **context) -> RoundView:
    history = {"accuracy": list(accuracy[: step + 1]), "budget": list(budget[: step + 1])}
    context = {"strategy": "margin", "seed": 0, "labels_per_round": 20} | context
    return RoundView(step=step, budget=int(budget[step]), history=history, context=context)


def test_the_palm_rule_is_found_by_name_and_waits_for_four_rounds():
    from palm_bayes.stopping.live_rule import PalmStopRule

    rule = get_stop_rule("palm:0.9,cost_per_label=1,value_per_point=50,every=2,rounds_ahead=1/3")
    assert isinstance(rule, PalmStopRule) and rule.target == 0.9 and rule.rounds_ahead == (1, 3)
    budget = np.arange(1, 9) * 20
    acc = 0.9 * (1 - 0.7 ** (budget / 20))
    for step in (0, 2, 4):  # fewer than 4 rounds, then off the every-2 grid (3, 5, 7 fit)
        measured, stop = apply_rule(rule, _palm_view(step, acc, budget))
        assert np.isnan(measured["stop_palm_stop"]) and not stop
    # every observed round above the target (fit.stop refuses such a target): the rule weighs
    # it itself (P(reached) = 1, the gain left recorded) beside the utility verdict, which
    # stops this flat curve (no run budget in the context: B is three rounds ahead)
    high = _palm_view(3, np.full(8, 0.95), budget)
    with warnings.catch_warnings():  # a flat curve "does not rise"
        warnings.simplefilter("ignore", UserWarning)
        measured, stop = apply_rule(rule, high)
    assert stop and measured["stop_palm_p_target"] == 1.0
    assert 0.0 < measured["stop_palm_p_gain_left"] < 0.5
    with pytest.raises(ALRunnerError, match="curve must be"):
        get_stop_rule("palm:curve=holdout")


def test_the_palm_rule_can_wait_for_consecutive_stop_verdicts():
    from palm_bayes.stopping.live_rule import PalmStopRule

    def decides(rule: StopRule, verdicts: list[float]) -> bool:
        history = {"stop_palm_stop": verdicts}
        return rule.update(RoundView(step=len(verdicts) - 1, budget=10, history=history))

    nan = float("nan")
    first, twice = PalmStopRule(), get_stop_rule("palm:consecutive=2,every=2")
    assert first.consecutive == 1 and twice.consecutive == 2
    assert decides(first, [nan, 0.0, 1.0]) and not decides(twice, [nan, 0.0, 1.0])
    assert decides(twice, [1.0, 1.0]) and not decides(twice, [1.0, 0.0, 1.0])
    # rounds without a refit (NaN) neither count nor break the run of stop verdicts
    assert decides(twice, [nan, 1.0, nan, 1.0]) and not decides(twice, [nan, 1.0, nan, 1.0, nan])
    for bad in ("0", "1.5"):
        with pytest.raises(ALRunnerError, match="consecutive"):
            get_stop_rule(f"palm:consecutive={bad}")


@pytest.mark.slow
def test_the_palm_rule_stops_a_flat_curve_and_continues_a_rising_one():
    budget = np.arange(1, 9) * 20.0
    flat = 0.9 - 0.4 * 0.3 ** (budget / 20)  # at its ceiling by 100 labels
    rising = 0.95 * (1 - 0.93 ** (budget / 20))  # far from it
    rule = get_stop_rule("palm:cost_per_label=1,value_per_point=20,draws=200,tune=200")
    measured, stop = apply_rule(rule, _palm_view(7, flat, budget))
    assert stop and measured["stop_palm_probability"] > 0.7
    measured, stop = apply_rule(rule, _palm_view(7, rising, budget))
    assert not stop and measured["stop_palm_gain"] > 0.01


def test_the_palm_target_rule_stops_only_with_little_left_to_gain_by_the_runs_budget():
    budget = np.arange(1, 9) * 20.0
    flat = 0.9 - 0.4 * 0.3 ** (budget / 20)  # 0.8998 at 160 labels, at its ceiling
    rising = 0.95 * (1 - 0.93 ** (budget / 20))  # 0.418 at 160 labels, +0.04 a round
    rule = get_stop_rule("palm:target=0.35,draws=200,tune=200")
    assert rule.run_budget(_palm_view(7, rising, budget, final_budget=400)) == 400.0
    # the target is reached (0.418 >= 0.35) but far more than a point is left by 400 labels
    measured, stop = apply_rule(rule, _palm_view(7, rising, budget, final_budget=400))
    assert measured["stop_palm_p_target"] >= 0.7 and measured["stop_palm_p_gain_left"] > 0.9
    assert not stop and measured["stop_palm_stop"] == 0.0
    assert rule.gain_risk == 0.05 and rule.tolerance == 0.01
    # flat: reached, and P(gain left > 1 point) about 0.2 by 400 labels (the prior's
    # discrepancy): a stop for a user who takes that risk
    rule = get_stop_rule("palm:target=0.88,gain_risk=0.3,draws=200,tune=200")
    measured, stop = apply_rule(rule, _palm_view(7, flat, budget, final_budget=400))
    assert measured["stop_palm_p_target"] >= 0.7 and measured["stop_palm_p_gain_left"] <= 0.3
    assert stop and measured["stop_palm_probability"] == measured["stop_palm_p_target"]
    # a rule's own budget overrides the run's: 10 labels beyond leave nothing to gain
    rule = get_stop_rule("palm:target=0.35,budget=170,draws=200,tune=200")
    assert rule.run_budget(_palm_view(7, rising, budget, final_budget=400)) == 170.0


def test_the_loop_tells_a_rule_the_runs_final_budget(digits, tmp_path, monkeypatch):
    from al_runner.experiment.loop import run_experiment

    class Spy(StopRule):
        name, needs_proba, seen = "spy", False, []

        def measure(self, view):
            self.seen.append(dict(view.context))
            return {}

        def update(self, view):
            return False

    monkeypatch.setitem(STOP_RULES, "spy", Spy)
    run_experiment(_config(rounds=2, stop_when="spy"), tmp_path / "c.nc", data=digits,
                   progress=False)  # fmt: skip
    assert Spy.seen and {c["final_budget"] for c in Spy.seen} == {30}  # 15 + 1 round of 15


def test_a_misspelt_rule_fails_before_any_round(tmp_path, capsys):
    from al_runner.cli import main

    args = ["run", "--dataset", "digits", "--strategies", "random", "--rounds", "3",
            "--stop-when", "stabilising_predictions", "--out", str(tmp_path / "c.nc")]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "unknown stop rule 'stabilising_predictions'; known: stabilizing_predictions" in err
    assert not (tmp_path / "c.nc").exists()
