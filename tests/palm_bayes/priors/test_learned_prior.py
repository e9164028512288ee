"""The learned curve prior: recovery of a known discrepancy, I/O, and its use in every query."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import palm_bayes as pb
from palm_bayes.model.curve import palm_curve
from palm_bayes.priors.curve_prior import CurvePrior, logit, prefix_features
from palm_bayes.priors.shipped import DEFAULT_PRIOR_PATH

BUDGETS = np.round(20 * 1.35 ** np.arange(14))
CUT = 0.3


def drifting_library(w_0: float, n_datasets: int = 12, seed: int = 0) -> pd.DataFrame:
    """PALM curves that, beyond 30% of their final budget, drift by ``w_0`` logit per e-fold."""
    rng = np.random.default_rng(seed)
    b_cut = CUT * BUDGETS[-1]
    rows = []
    for k in range(n_datasets):
        for strategy in ("a", "b"):
            params = dict(
                A_max=rng.uniform(0.75, 0.95),
                delta=rng.uniform(0.05, 0.3),
                alpha=rng.uniform(0.0, 1.0),
                beta=rng.uniform(0.6, 1.2),
            )
            z = logit(palm_curve(BUDGETS, b=20.0, **params))
            z = z + w_0 * np.log(np.maximum(BUDGETS / b_cut, 1.0))
            for s in range(3):
                acc = 1 / (1 + np.exp(-(z + rng.normal(0, 0.02, BUDGETS.size))))
                rows.append(
                    pd.DataFrame(
                        {
                            "dataset": f"d{k}",
                            "strategy": strategy,
                            "seed": s,
                            "budget": BUDGETS,
                            "accuracy": acc,
                        }
                    )  # fmt: skip
                )
    return pd.concat(rows, ignore_index=True)


@pytest.mark.slow
def test_learning_recovers_a_known_drift():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prior = pb.learn_prior(
            drifting_library(0.3), cuts=(CUT,), seed=0, draws=300, progress=False
        )
    summary = prior.summary()
    lower, upper = summary.loc["w_0", ["lower", "upper"]]
    assert lower <= 0.3 <= upper + 0.03, summary
    assert summary.loc["w_0", "mean"] == pytest.approx(0.3, abs=0.08)
    assert prior.meta["n_curves"] == 24 and prior.meta["n_datasets"] == 12
    assert prior.seed_offsets  # learned priors add the pilot's seed offset


def test_prior_roundtrip_and_bad_files(tmp_path):
    prior = CurvePrior(
        drift=np.tile([0.1, 0.2, 0.0, -0.3], (5, 1)),
        scale=np.tile([-1.0, 0.5, 0.0, 0.0], (5, 1)),
        rho=np.full(5, 0.4),
        meta={"kind": "learned", "source": "test"},
    )
    back = pb.load_prior(prior.save(tmp_path / "p.json"))
    np.testing.assert_allclose(back.drift, prior.drift)
    assert back.rho.tolist() == [0.4] * 5 and "test" in repr(back)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(pb.PalmInputError, match="not a readable curve prior"):
        pb.load_prior(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"format": "something-else"}')
    with pytest.raises(pb.PalmInputError, match="not a palm-bayes curve prior"):
        pb.load_prior(tmp_path / "other.json")
    with pytest.raises(pb.PalmInputError, match="rho"):
        CurvePrior(drift=np.zeros((1, 4)), scale=np.zeros((1, 4)), rho=np.array([1.5]))


def test_shipped_prior_is_loadable_and_says_where_it_came_from():
    assert DEFAULT_PRIOR_PATH.is_file(), "palm_bayes/priors/lcdb.json is part of the package"
    prior = pb.load_prior(DEFAULT_PRIOR_PATH)
    assert "LCDB" in prior.meta["source"] and "MIT" in prior.meta["license"]
    assert prior.n_draws >= 100
    assert 0 <= prior.rho.mean() < 1


def test_brownian_is_the_old_random_walk():
    prior = CurvePrior.brownian(0.3)
    template = xr.DataArray(np.zeros((2, 50, 3)), dims=("chain", "draw", "strategy"))
    e, index = prior.shocks(template, None, seed=0)
    d = xr.DataArray([0.0, 1.0, 4.0], dims="budget")
    zero = template[0, 0] * 0
    features = xr.Dataset({"palm_slope": zero, "palm_level": zero})
    widened = prior.widen(template, d, d * 0, features, e, index)
    np.testing.assert_allclose(widened.sel(budget=0), 0.0)  # nothing inside the data
    np.testing.assert_allclose(widened.isel(budget=2), 2 * widened.isel(budget=1), rtol=1e-12)
    np.testing.assert_allclose(widened.isel(budget=1), 0.3 * e.transpose(*template.dims))


def test_features_come_from_the_posterior_curve_and_older_priors_still_use_the_data(
    two_strategies,
):
    fit = two_strategies
    features = fit._prefix_features()
    assert set(features.data_vars) == {"palm_slope", "palm_level", "n_seeds"}
    post, const = fit.idata.posterior, fit.idata.constant_data
    level = logit(
        palm_curve(
            const["last_budget"], post["A_max"], post["delta"], post["alpha"], post["beta"],
            const["b"],
        )
    ).median(("chain", "draw"))  # fmt: skip
    np.testing.assert_allclose(features["palm_level"], level, atol=1e-6)
    assert bool((features["palm_slope"] > 0).all())  # both curves still rise at the cut
    old = CurvePrior(
        drift=np.zeros((1, 4)), scale=np.zeros((1, 4)), rho=np.zeros(1),
        feature_mean={"end_slope": 0.0, "last_logit": 0.0},
        feature_sd={"end_slope": 1.0, "last_logit": 1.0},
    )  # fmt: skip
    assert set(fit.with_prior(old)._prefix_features().data_vars) == {"end_slope", "last_logit"}


def test_identical_curves_get_identical_features():
    same = dict(A_max=0.9, delta=0.2, alpha=0.0, beta=1.0)
    curves = pb.simulate_curves({"a": same, "b": same}, np.arange(1, 9) * 50.0, seeds=3, rng=2)
    fit = pb.fit(curves, seed=0, progress=False, draws=300, tune=300, chains=2)
    f = fit._prefix_features().squeeze(["dataset", "embedding"])
    raw = prefix_features(curves).squeeze(["dataset", "embedding"])
    gap = abs(float(f["palm_slope"].sel(strategy="a") - f["palm_slope"].sel(strategy="b")))
    raw_gap = abs(float(raw["end_slope"].sel(strategy="a") - raw["end_slope"].sel(strategy="b")))
    assert gap < 0.5 * raw_gap, (gap, raw_gap)  # the posterior smooths the seeds' noise


def test_prefix_features_are_the_end_slope_and_last_level():
    budgets = np.array([10.0, 20, 40, 80])
    acc = 1 / (1 + np.exp(-(0.5 * np.log(budgets) - 1)))  # slope 0.5 in logit per e-fold
    curves = pb.load_curves(pd.DataFrame({"budget": budgets, "accuracy": acc}))
    f = prefix_features(curves).squeeze()
    assert float(f["end_slope"]) == pytest.approx(0.5, abs=1e-9)
    assert float(f["last_logit"]) == pytest.approx(0.5 * np.log(80) - 1, abs=1e-9)


@pytest.fixture(scope="module")
def two_strategies() -> pb.PalmFit:
    params = {
        "fast": dict(A_max=0.85, delta=0.3, alpha=0.5, beta=0.9),
        "slow": dict(A_max=0.90, delta=0.12, alpha=0.5, beta=0.9),
    }
    curves = pb.simulate_curves(params, np.arange(1, 7) * 50.0, seeds=3, rng=1)
    return pb.fit(curves, seed=0, progress=False, draws=400, tune=400)


def test_correlated_departures_cancel_in_comparisons(two_strategies):
    base = dict(drift=np.zeros((200, 4)), scale=np.tile([0.0, 0.5, 0, 0], (200, 1)))
    far = 300 * 20.0
    a, b = {"strategy": "slow"}, {"strategy": "fast"}

    def p(prior):
        return float(two_strategies.with_prior(prior).prob_better(a, b, far).squeeze())

    p_palm = p(CurvePrior.brownian(0.0))
    p_ind = p(CurvePrior(rho=np.zeros(200), **base))
    p_shared = p(CurvePrior(rho=np.full(200, 0.95), **base))
    # independent departures blur the comparison towards a coin; departures shared by the
    # curves of one dataset cancel in the difference and leave the PALM posterior's answer
    assert abs(p_ind - p_palm) > 0.05, (p_palm, p_ind)
    assert abs(p_shared - p_palm) < 0.4 * abs(p_ind - p_palm), (p_palm, p_ind, p_shared)
    width = {
        rho: float(
            np.diff(
                two_strategies.with_prior(CurvePrior(rho=np.full(200, rho), **base))
                .forecast([far]).sel(strategy="slow")[["lower", "upper"]]
                .to_array().squeeze().to_numpy()
            )[0]
        )
        for rho in (0.0, 0.95)
    }  # fmt: skip
    assert width[0.95] == pytest.approx(width[0.0], rel=0.15)  # marginals unchanged


def test_every_query_sees_the_same_paths(two_strategies):
    """Forecasts, labels needed and P(A beats B) come from one forecast-draw path."""
    fit = two_strategies
    far = np.array([400.0, 1000.0, 3000.0])
    draws = fit.forecast_draws(far, seed=3)
    need = fit.labels_needed_draws(0.82, seed=3, max_budget=3000.0)
    # a draw that reaches 0.82 by 1000 labels (on the path) needs at most ~1000 labels
    reached = (draws.sel(budget=1000.0) >= 0.82).to_numpy()
    needed = need.to_numpy().reshape(reached.shape)
    assert reached.any()
    assert np.mean(needed[reached] <= 1000.0 * 1.02) > 0.97
    p = fit.prob_better({"strategy": "slow"}, {"strategy": "fast"}, far, seed=3)
    direct = (draws.sel(strategy="slow") > draws.sel(strategy="fast")).mean(("chain", "draw"))
    np.testing.assert_allclose(p.squeeze().to_numpy(), direct.squeeze().to_numpy())


def test_default_fit_uses_the_shipped_prior_and_brownian_on_request(two_strategies):
    assert two_strategies.curve_prior.meta.get("kind") == "learned"
    brown = two_strategies.with_prior("brownian")
    assert brown.curve_prior.meta == {"kind": "brownian", "sd": 0.3}
    explicit = pb.fit(
        pb.simulate_curves(
            {"s": dict(A_max=0.8, delta=0.2, alpha=0.5, beta=1.0)}, np.arange(1, 6) * 50.0, rng=0
        ),  # fmt: skip
        priors={"extrapolation": {"sd": 0.0}},
        progress=False,
        draws=100,
        tune=100,
    )
    assert explicit.curve_prior.is_zero


def test_cli_refuses_bad_prior_options_before_any_work(tmp_path, capsys):
    from palm_bayes.cli import main

    frame = pd.DataFrame({"budget": [10, 20, 30, 40, 50], "accuracy": [0.5, 0.6, 0.7, 0.74, 0.76]})
    frame.to_csv(tmp_path / "c.csv", index=False)
    assert main(["learn-prior", str(tmp_path / "c.csv"), "--out", "p.json", "--cuts", "1.5"]) == 2
    assert "--cuts" in capsys.readouterr().err
    args = ["fit", str(tmp_path / "c.csv"), "--out", str(tmp_path / "f")]
    assert main(args + ["--prior-file", str(tmp_path / "missing.json")]) == 2
    assert "no curve prior file" in capsys.readouterr().err


def test_note_when_curves_have_many_more_seeds_than_the_prior_was_learned_on():
    from palm_bayes.report.tables import prior_seed_note

    params = {"a": dict(A_max=0.9, delta=0.1, alpha=0.0, beta=1.0)}
    budgets = np.arange(20, 220, 20)
    many = pb.fit(pb.simulate_curves(params, budgets, seeds=10, rng=1), draws=50, tune=50,
                  chains=1, progress=False)  # fmt: skip
    few = pb.fit(pb.simulate_curves(params, budgets, seeds=3, rng=1), draws=50, tune=50,
                 chains=1, progress=False)  # fmt: skip
    assert many.curve_prior.meta["pilot_seeds"] == 3  # the shipped LCDB prior
    assert "learned from 3-seed pilots" in prior_seed_note(many)
    assert prior_seed_note(few) is None
    assert prior_seed_note(many.with_prior("brownian")) is None


def test_learning_recovers_how_the_scale_shrinks_with_seeds():
    """Cases whose discrepancy scale falls as seeds^-0.5: a_seeds is learned near -0.5."""
    from palm_bayes.learn.prior import fit_discrepancy

    rng = np.random.default_rng(0)
    rows = []
    for i in range(400):
        n_seeds = 3 if i % 2 else 30
        scale = 0.3 * (n_seeds / 3) ** -0.5
        shock = rng.standard_normal()
        med_last = rng.normal()
        for ratio in (1.5, 2.5, 4.0):
            med = med_last + 0.2 * np.log(ratio)
            rows.append({
                "pilot_dataset": f"p{i}", "strategy": "s", "embedding": "e",
                "budget": 100 * ratio, "last_budget": 100.0, "med": med, "med_last": med_last,
                "psd": 0.01, "palm_slope": rng.normal(), "palm_level": med_last,
                "n_seeds": float(n_seeds), "y": med + scale * np.log(ratio) ** 0.5 * shock,
            })  # fmt: skip
    cases = pd.DataFrame(rows)
    *_, a_seeds = fit_discrepancy(cases, draws=300, seed=1)
    assert a_seeds is not None and np.mean(a_seeds) == pytest.approx(-0.5, abs=0.15)
    *_, none = fit_discrepancy(cases.assign(n_seeds=3.0), draws=100, seed=1)
    assert none is None  # one seed count: no seed term

    prior = CurvePrior(
        drift=np.zeros((2, 4)), scale=np.tile([np.log(0.3), 0.5, 0.0, 0.0], (2, 1)),
        rho=np.zeros(2), seed_scale=np.full(2, -0.5), seed_ref=3.0,
    )  # fmt: skip
    back = CurvePrior.from_dict(json.loads(prior.to_json()))
    np.testing.assert_allclose(back.seed_scale, -0.5)
    assert back.seed_ref == 3.0
    index = xr.DataArray(np.zeros((1, 2), dtype=int), dims=("chain", "draw"))
    e = xr.DataArray(np.ones((1, 2)), dims=("chain", "draw"))
    widths = [
        float(
            back.widen(
                xr.zeros_like(e), xr.full_like(e, 1.0), xr.zeros_like(e),
                xr.Dataset({"palm_slope": 0.0, "palm_level": 0.0, "n_seeds": n}), e, index,
            ).mean()
        )
        for n in (3.0, 30.0)
    ]  # fmt: skip
    assert widths[1] == pytest.approx(widths[0] * 10**-0.5, rel=1e-6)


def test_adapting_a_prior_learns_its_width_and_keeps_its_drift():
    """Cases 2x wider than the base prior at 3 seeds, 2x narrower at 30: both are learned."""
    from palm_bayes.learn.adapt import adapt_prior

    base = CurvePrior(
        drift=np.tile([0.1, 0.0, 0.0, -0.5], (50, 1)),
        scale=np.tile([np.log(0.3), 0.5, 0.0, 0.0], (50, 1)),
        rho=np.full(50, 0.2),
        meta={"kind": "learned", "source": "a test"},
    )
    rng = np.random.default_rng(2)
    rows = []
    for i in range(300):
        n_seeds = 3 if i % 2 else 30
        factor = 2.0 if n_seeds == 3 else 0.5
        shock = rng.standard_normal()
        med_last = rng.normal()
        for ratio in (1.5, 2.5, 4.0):
            d = np.log(ratio)
            med = med_last + 0.2 * d
            drift = 0.1 * d - 0.5 * (med - med_last)
            rows.append({
                "dataset": f"d{i % 7}", "pilot_dataset": f"p{i}", "strategy": "s",
                "embedding": "e", "budget": 100 * ratio, "last_budget": 100.0, "med": med,
                "med_last": med_last, "psd": 0.01, "palm_slope": rng.normal(),
                "palm_level": med_last, "n_seeds": float(n_seeds),
                "y": med + drift + factor * 0.3 * d**0.5 * shock,
            })  # fmt: skip
    cases = pd.DataFrame(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adapted = adapt_prior(base, None, cases=cases, pilot_seeds=(3, None), draws=300)
    # log factor at 3 seeds: log 2; per log(seeds / 3): (log 0.5 - log 2) / log 10
    shift = adapted.scale[:, 0] - np.log(0.3)
    assert np.mean(shift) == pytest.approx(np.log(2.0), abs=0.15)
    assert np.mean(adapted.seed_scale) == pytest.approx(np.log(0.25) / np.log(10), abs=0.15)
    np.testing.assert_array_equal(adapted.drift, np.tile(base.drift[0], (adapted.n_draws, 1)))
    assert adapted.meta["kind"] == "adapted" and np.allclose(adapted.rho, 0.2)
    with pytest.raises(pb.PalmInputError, match="brownian"):
        adapt_prior(CurvePrior.brownian(0.3), None, cases=cases)


@pytest.mark.parametrize("true_rho", [0.0, 0.6, 0.92])
def test_pairwise_correlation_recovers_a_known_shared_shock(true_rho):
    """Two curves per dataset whose shocks share a component: its weight is found."""
    from palm_bayes.learn.correlation import pairwise_correlation

    prior = CurvePrior(
        drift=np.zeros((10, 4)),
        scale=np.tile([np.log(0.3), 0.5, 0.0, 0.0], (10, 1)),
        rho=np.zeros(10),
        meta={"kind": "learned"},
    )
    rng = np.random.default_rng(3)
    rows = []
    for k in range(400):
        shared = rng.standard_normal()
        med = {"a": rng.normal(), "b": rng.normal()}
        med["b"] = med["a"] + rng.normal(0, 0.2)  # close contests
        for strategy in ("a", "b"):
            e = np.sqrt(true_rho) * shared + np.sqrt(1 - true_rho) * rng.standard_normal()
            for ratio in (1.5, 3.0):
                d = np.log(ratio)
                rows.append({
                    "dataset": f"d{k}", "pilot_dataset": f"d{k}@cut=0.2", "strategy": strategy,
                    "embedding": "e", "budget": 100 * ratio, "last_budget": 100.0,
                    "med": med[strategy], "med_last": med[strategy], "psd": 0.01,
                    "palm_slope": 0.0, "palm_level": 0.0, "y": med[strategy] + 0.3 * d**0.5 * e,
                })  # fmt: skip
    draws = pairwise_correlation(pd.DataFrame(rows), prior, 100, seed=0)
    assert np.median(draws) == pytest.approx(true_rho, abs=0.12)


@pytest.mark.slow
def test_pilot_fits_in_worker_processes_give_the_cases_of_one_process():
    from palm_bayes.learn.prior import forecast_cases, prefix_cases

    library = pb.load_curves(drifting_library(0.3, n_datasets=3))
    pilots, truths = prefix_cases(library, (CUT,), 3)
    options = dict(chunk=1, seed=0, sampler={"draws": 100, "tune": 100}, progress=False)
    one = forecast_cases(pilots, truths, **options)
    two = forecast_cases(pilots, truths, processes=2, **options)
    pd.testing.assert_frame_equal(one, two)
    assert one["pilot_dataset"].nunique() == 3
