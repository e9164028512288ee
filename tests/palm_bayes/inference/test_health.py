"""Early warnings while a pooled fit samples: what will go wrong, said before the wait is over."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pytest
import xarray as xr

from palm_bayes.errors import EarlySamplingWarning
from palm_bayes.inference.health import EarlyWarnings


def trace_so_far(*, steps: float, tuned: int, drawn: int, divergent: int = 0, split: float = 0.0):
    """A partial nutpie trace of 2 chains: ``tuned`` warmup draws, ``drawn`` kept draws (0:
    still tuning)."""
    rng = np.random.default_rng(0)
    warm = {"n_steps": np.full((2, tuned), steps), "diverging": np.zeros((2, tuned), bool)}
    diverging = np.zeros((2, drawn), bool)
    diverging.flat[:divergent] = True
    kept = {"n_steps": np.full((2, drawn), steps), "diverging": diverging}
    mu = rng.normal(size=(2, drawn)) + np.array([[0.0], [split]])
    if not drawn:
        return az.from_dict(warmup_sample_stats=warm, save_warmup=True)
    return az.from_dict(
        posterior={"mu": mu}, sample_stats=kept, warmup_sample_stats=warm, save_warmup=True
    )


def watcher(**kwargs) -> EarlyWarnings:
    options = {"chains": 2, "tune": 1000, "draws": 1000, "target_accept": 0.95, "free_vars": ["mu"]}
    return EarlyWarnings(80, **options | kwargs)


def said(watch: EarlyWarnings, trace, seconds: float) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        watch(trace, seconds)
    return [str(w.message) for w in caught if issubclass(w.category, EarlySamplingWarning)]


def test_a_slow_posterior_is_announced_a_quarter_into_tuning_with_what_helps():
    watch = watcher(patience=300)
    assert said(watch, trace_so_far(steps=400, tuned=200, drawn=0), seconds=80) == []
    # 2 x 250 tuning draws of 400 steps took 100 s: 2 x (750 + 1,000) draws left need ~700 s
    messages = said(watch, trace_so_far(steps=400, tuned=250, drawn=0), seconds=100)
    assert len(messages) == 1
    assert "400 leapfrog steps" in messages[0] and "12 more minutes" in messages[0]
    assert "hierarchy=None" in messages[0]
    assert said(watch, trace_so_far(steps=400, tuned=1000, drawn=4), seconds=401) == []


def test_a_quick_posterior_and_the_first_draws_of_tuning_say_nothing():
    assert said(watcher(), trace_so_far(steps=30, tuned=300, drawn=0), seconds=20) == []
    assert said(watcher(), trace_so_far(steps=30, tuned=1000, drawn=3), seconds=20) == []
    assert said(watcher(patience=0), trace_so_far(steps=9, tuned=5, drawn=0), seconds=1e6) == []


def test_the_first_divergence_is_announced_once():
    watch = watcher()
    assert said(watch, trace_so_far(steps=30, tuned=1000, drawn=50), seconds=20) == []
    first = said(watch, trace_so_far(steps=30, tuned=1000, drawn=60, divergent=2), seconds=21)
    assert len(first) == 1 and "2 divergent transition(s)" in first[0]
    assert "target_accept (now 0.95)" in first[0]
    later = trace_so_far(steps=30, tuned=1000, drawn=70, divergent=5)
    assert said(watch, later, seconds=22) == []


@pytest.mark.parametrize(("split", "warned"), [(0.0, False), (3.0, True)])
def test_chains_that_disagree_halfway_are_announced(split, warned):
    watch = watcher()
    halfway = trace_so_far(steps=30, tuned=1000, drawn=500, split=split)
    messages = said(watch, halfway, seconds=30)
    assert bool(messages) is warned
    if warned:
        assert "halfway" in messages[0] and "r_hat" in messages[0]


@pytest.mark.parametrize("fallback", [(False, False), (True, False), (False, True)])
def test_r_hat_is_judged_on_the_curves_nuts_sampled(fallback):
    """Importance-sampled chains share one weighted pool: only NUTS chains can disagree."""
    from palm_bayes.inference.health import sampling_problems

    rng = np.random.default_rng(1)
    split = rng.normal(size=(2, 200)) + np.array([[0.0], [3.0]])  # curve "b": chains disagree
    mixed = rng.normal(size=(2, 200))  # curve "a"
    posterior = xr.Dataset(
        {"A_max": (("chain", "draw", "strategy"), np.stack([mixed, split], axis=-1))},
        coords={"strategy": ["a", "b"]},
    )
    stats = xr.Dataset({"diverging": (("chain", "draw", "strategy"), np.zeros((2, 200, 2), bool))})
    constant = xr.Dataset(
        {
            "fitted": ("strategy", [True, True]),
            "nuts_fallback": ("strategy", list(fallback)),
            "pareto_k": ("strategy", [np.nan if f else 0.3 for f in fallback]),
        },
        coords={"strategy": ["a", "b"]},
    )
    lines = sampling_problems(
        posterior, stats, constant, ["A_max"], pooled=False, target_accept=0.99, draws=200,
        tune=200,
    )  # fmt: skip
    warned = [line for line in lines if "r_hat" in line]
    assert bool(warned) == fallback[1]  # only when the disagreeing curve was NUTS-sampled
    if warned:
        assert warned[0].startswith("1 curve(s) (b) have r_hat")
