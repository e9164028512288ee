"""Hierarchical fits: recovery of the hierarchy, pooling gains, population queries, errors."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import xarray as xr

import palm_bayes as pb
from palm_bayes.inference.two_stage import OVERSAMPLE
from palm_bayes.model.curve import palm_curve
from palm_bayes.model.single import palm_from_theta

STRATEGIES = ["random", "margin", "typiclust"]
BUDGETS = np.arange(1, 11) * 100.0
PARTIAL = {"dataset": "d00", "strategy": "margin"}
# the curves are PALM curves: no extrapolation discrepancy, so that the intervals measure
# what the data and the pooling know about the PALM parameters
SAMPLER = dict(draws=500, tune=500, progress=False, priors={"extrapolation": {"sd": 0.0}})


@pytest.fixture(scope="module")
def curves() -> xr.Dataset:
    ds = pb.simulate_hierarchy(6, STRATEGIES, BUDGETS, rng=3)
    # one curve observed for its first four rounds only
    short = (ds["dataset"] == PARTIAL["dataset"]) & (ds["strategy"] == PARTIAL["strategy"])
    keep = ~short | (ds["step"] < 4)
    ds["accuracy"] = ds["accuracy"].where(keep)
    ds["budget"] = ds["budget"].where(keep)
    return ds


@pytest.fixture(scope="module")
def pooled(curves) -> pb.PalmFit:
    # pooled fits at their default 2,000 + 2,000 draws: group scales of 3-6 levels mix slowly,
    # and 500 + 500 gave r_hat 1.011-1.054 over seeds 0-9 (benchmarks/pooled_seed_health.py)
    return pb.fit(
        curves,
        hierarchy=("strategy", "dataset"),
        seed=1,
        progress=False,
        priors=SAMPLER["priors"],
    )


@pytest.fixture(scope="module")
def independent(curves) -> pb.PalmFit:
    return pb.fit(curves, seed=1, **SAMPLER)


@pytest.mark.slow
def test_sampling_is_clean(pooled):
    # at the defaults, seeds 0-9 of this fixture gave r_hat_max 1.002-1.011 and at most 0.09%
    # divergent transitions (benchmarks/pooled_seed_health.py): thresholds with margin
    assert float(pooled.diagnostics()["r_hat_max"].max()) <= 1.015
    assert float(pooled.idata.sample_stats["diverging"].mean()) < 0.005
    assert set(pooled.idata.posterior["effect_dataset"].dims) == {
        "chain",
        "draw",
        "dataset",
        "param",
    }


@pytest.mark.slow
def test_group_effects_and_scales_recovered(pooled, curves):
    hdi = az.hdi(pooled.idata.posterior, hdi_prob=0.9)
    covered = []
    for name, dim in (("effect_strategy", "strategy"), ("effect_dataset", "dataset")):
        truth = curves[f"true_{name}"] - curves[f"true_{name}"].mean(dim)  # effects sum to 0
        inside = (hdi[name].sel(hdi="lower") <= truth) & (truth <= hdi[name].sel(hdi="higher"))
        covered.append(inside.to_numpy().ravel())
    assert np.mean(np.concatenate(covered)) >= 0.75
    # the scales that generated the dataset effects lie in their 90% HDIs for most parameters
    true_sd = np.array([0.6, 0.5, 0.2, 0.1])
    s = hdi["sigma_dataset"]
    inside = (s.sel(hdi="lower").to_numpy() <= true_sd) & (
        true_sd <= s.sel(hdi="higher").to_numpy()
    )
    assert inside.sum() >= 3


@pytest.mark.slow
def test_partial_curve_borrows_strength(pooled, independent, curves):
    truth = curves["true_A_max"].sel(PARTIAL)
    args = {k: float(curves[f"true_{k}"].sel(PARTIAL)) for k in ("A_max", "delta", "alpha", "beta")}
    true_final = palm_curve(BUDGETS[-1], b=100.0, **args)
    sel = PARTIAL | {"embedding": "none"}
    fc_pooled = pooled.forecast([BUDGETS[-1]]).sel(sel).squeeze()
    fc_indep = independent.forecast([BUDGETS[-1]]).sel(sel).squeeze()
    width_pooled = float(fc_pooled["upper"] - fc_pooled["lower"])
    width_indep = float(fc_indep["upper"] - fc_indep["lower"])
    assert width_pooled < 0.7 * width_indep
    assert float(fc_pooled["lower"]) <= true_final <= float(fc_pooled["upper"])
    assert abs(float(fc_pooled["median"]) - true_final) < 0.05
    # the asymptote of the four-round curve: pooled, its interval holds the truth and is
    # narrower than the independent fit's
    a_pooled = pooled.summary().sel(sel | {"parameter": "A_max"})
    a_indep = independent.summary().sel(sel | {"parameter": "A_max"})
    assert float(a_pooled["lower"]) <= float(truth) <= float(a_pooled["upper"])
    assert float(a_pooled["upper"] - a_pooled["lower"]) < float(a_indep["upper"] - a_indep["lower"])


@pytest.mark.slow
def test_population_prob_better_matches_monte_carlo(pooled, curves):
    budget = 500.0
    # Monte Carlo from the true generating hierarchy: new dataset effect + new curve deviation
    rng = np.random.default_rng(0)
    n = 20000
    mu = curves["true_mu"].to_numpy()
    eff = curves["true_effect_strategy"]
    sd_d, sd_c = np.array([0.6, 0.5, 0.2, 0.1]), np.array([0.1, 0.2, 0.1, 0.05])
    new_d = rng.normal(size=(n, 4)) * sd_d
    acc = {}
    for s in ("margin", "random"):
        theta = mu + eff.sel(strategy=s).to_numpy() + new_d + rng.normal(size=(n, 4)) * sd_c
        p = palm_from_theta(theta, 1.0, float(np.sqrt(10.0)))
        acc[s] = palm_curve(budget, p["A_max"], p["delta"], p["alpha"], p["beta"], 100.0)
    truth = float(np.mean(acc["margin"] > acc["random"]))
    est = float(
        pooled.prob_better(
            {"strategy": "margin"}, {"strategy": "random"}, budget, new="dataset"
        ).squeeze()
    )
    assert abs(est - truth) < 0.2, (est, truth)
    fc = pooled.forecast([budget], new="dataset")
    assert set(fc.dims) == {"strategy", "embedding", "budget"}
    assert np.all(fc["lower"] < fc["upper"])


@pytest.mark.slow
def test_queries_summary_roundtrip_and_loo(pooled, independent, tmp_path):
    need = pooled.labels_needed(0.6)
    assert float(need["p_reachable"].min()) > 0.5
    summary = pooled.summary()
    assert "A_max" in summary["parameter"].values
    path = pooled.to_netcdf(tmp_path / "pooled.nc")
    back = pb.PalmFit.from_netcdf(path)
    assert back.hierarchy == ("strategy", "dataset")
    np.testing.assert_allclose(
        back.forecast([300])["median"].to_numpy(), pooled.forecast([300])["median"].to_numpy()
    )
    table = pb.compare_models([independent, pooled])
    assert set(table.index) == {"independent", "pooled: strategy+dataset"}
    assert np.all(np.isfinite(table["elpd_loo"]))


def test_bad_hierarchy_specs(curves):
    with pytest.raises(pb.PalmInputError, match="unknown dimension 'learner'"):
        pb.fit(curves, hierarchy=("learner",), progress=False)
    with pytest.raises(pb.PalmInputError, match="single level"):
        pb.fit(curves, hierarchy=("embedding",), progress=False)
    with pytest.raises(pb.PalmInputError, match="replicate"):
        pb.fit(curves, hierarchy=("seed",), progress=False)
    with pytest.raises(pb.PalmInputError, match="repeats"):
        pb.fit(curves, hierarchy=("strategy", "strategy"), progress=False)


@pytest.mark.slow
def test_population_needs_a_pooled_fit(independent, pooled):
    with pytest.raises(pb.PalmInputError, match="hierarchical fit"):
        independent.forecast([100], new="dataset")
    with pytest.raises(pb.PalmInputError, match="unknown dimension 'learner'"):
        pooled.forecast([100], new="learner")


def test_hierarchical_fits_default_to_more_draws(curves, monkeypatch):
    """Group scales mix slowly: pooled fits default to 2,000 + 2,000 draws, independent 1,000."""
    import sys

    fit_module = sys.modules["palm_bayes.palm_fit"]  # the attribute palm_bayes.fit is the function
    seen = {}

    def capture(stats, hierarchy, priors, *, cores, progress, **sampler):
        seen.update(sampler)
        raise RuntimeError("captured")

    monkeypatch.setattr(fit_module, "sample_hierarchical", capture)
    with pytest.raises(RuntimeError, match="captured"):
        pb.fit(curves, hierarchy="strategy", progress=False)
    assert (seen["draws"], seen["tune"], seen["target_accept"]) == (2000, 2000, 0.98)
    with pytest.raises(RuntimeError, match="captured"):
        pb.fit(curves, hierarchy="strategy", draws=300, progress=False)
    assert (seen["draws"], seen["tune"]) == (300, 2000)


@pytest.mark.slow
def test_two_stage_fit_matches_the_joint_fit(pooled, curves):
    """Each curve alone, then the population: the joint NUTS posterior within Monte Carlo error."""
    two = pb.fit(
        curves,
        hierarchy=("strategy", "dataset"),
        seed=1,
        progress=False,
        priors=SAMPLER["priors"],
        method="two-stage",
    )
    # the population draws are the stage-2 chains (r_hat 1.000-1.001, ESS of mu > 4,000 over
    # seeds 0-4) resampled chain by chain by the correction's weights, of which 2-3% are
    # effective here: r_hat after resampling (1.009-1.038 over seeds 0-4) measures the
    # correction's Monte Carlo error, bounded instead by its Pareto k and effective draws
    const = two.idata.constant_data
    assert int(two.idata.sample_stats["diverging"].sum()) <= 4
    assert float(const["population_pareto_k"]) <= 0.7
    stage_two_draws = OVERSAMPLE * two.idata.posterior.sizes["chain"] * 2000
    assert float(const["population_ess_share"]) * stage_two_draws >= 300
    assert float(two.diagnostics()["two_stage_ess"].min()) >= 30
    # forecasts at 1x, 2x and 5x the last budget, including the four-round curve
    budgets = [BUDGETS[-1], 2 * BUDGETS[-1], 5 * BUDGETS[-1]]
    joint, staged = pooled.forecast(budgets), two.forecast(budgets)
    width = (joint["upper"] - joint["lower"]).to_numpy()
    gap = np.abs((staged["median"] - joint["median"]).to_numpy())
    assert np.nanmax(gap) < 0.02 and np.nanmax(gap / width) < 0.25
    for end in ("lower", "upper"):
        assert np.nanmax(np.abs((staged[end] - joint[end]).to_numpy()) / width) < 0.3
    # the population of the well-identified parameters: accuracy and slope at the reference
    q = [0.05, 0.5, 0.95]
    for name in ("mu", "sigma_curve"):
        a = pooled.idata.posterior[name].quantile(q, ("chain", "draw"))
        b = two.idata.posterior[name].quantile(q, ("chain", "draw"))
        for param in ("logit_ref_accuracy", "log_ref_slope"):
            assert float(np.abs(a - b).sel(param=param).max()) < 0.05, (name, param)


def test_two_stage_needs_a_hierarchy(curves):
    with pytest.raises(pb.PalmInputError, match="two-stage' is for pooled fits"):
        pb.fit(curves, method="two-stage", progress=False)
    with pytest.raises(pb.PalmInputError, match="method must be"):
        pb.fit(curves, hierarchy="strategy", method="laplace", progress=False)
