"""The seed offset: a pilot's seed mean shifted as a whole, estimated and used by queries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.special import expit, logit

import palm_bayes as pb
from palm_bayes.priors.seed_offsets import seed_offset_anova, seed_offsets
from palm_bayes.priors.shipped import default_prior
from tests.conftest import hand_built_fit


def _panel(rng, n, m, tau, within):
    return rng.normal(0, tau, (n, 1)) + rng.normal(0, within, (n, m)) + np.linspace(-1, 1, m)


def test_anova_recovers_the_offset_variance():
    rng = np.random.default_rng(0)
    tau2, _ = seed_offset_anova(_panel(rng, 400, 8, 0.2, 0.1))
    assert np.sqrt(tau2) == pytest.approx(0.2, abs=0.02)
    tau2, _ = seed_offset_anova(_panel(rng, 400, 8, 0.0, 0.1))
    assert np.sqrt(tau2) < 0.03
    assert seed_offset_anova(np.ones((1, 5)))[0] == 0.0


def test_anova_with_missing_values_still_recovers_it():
    """Seeds that miss budgets (LCDB's all-seed curves) still give the offset variance."""
    rng = np.random.default_rng(3)
    panel = _panel(rng, 400, 10, 0.2, 0.1)
    panel[rng.random(panel.shape) < 0.3] = np.nan
    panel[0, 1:] = np.nan  # a seed with one budget tells nothing about its offset
    tau2, d = seed_offset_anova(panel)
    assert np.sqrt(tau2) == pytest.approx(0.2, abs=0.02)
    assert d[0] == 0.0


def _curves(rng, *, shared: bool, seeds: int = 60, tau: float = 0.3) -> xr.Dataset:
    budgets = np.arange(1, 13) * 10.0
    base = {"a": 0.6 + 0.02 * np.log(budgets), "b": 0.65 + 0.02 * np.log(budgets)}
    common = rng.normal(0, tau, seeds)
    rows = []
    for strategy, curve in base.items():
        offsets = common if shared else rng.normal(0, tau, seeds)
        for s in range(seeds):
            z = logit(curve) + offsets[s] + rng.normal(0, 0.05, budgets.size)
            rows += [
                {"dataset": "d", "strategy": strategy, "seed": s, "budget": b, "accuracy": a}
                for b, a in zip(budgets, expit(z), strict=True)
            ]
    return pb.load_curves(pd.DataFrame(rows))


def test_seed_offsets_sd_and_correlation_per_dataset():
    rng = np.random.default_rng(1)
    shared = seed_offsets(_curves(rng, shared=True))
    own = seed_offsets(_curves(rng, shared=False))
    sd = shared["offset_sd"].to_numpy().ravel()
    assert sd == pytest.approx(np.full(2, 0.3 / np.sqrt(60)), rel=0.25)
    assert float(shared["offset_rho"].max()) > 0.8
    assert float(own["offset_rho"].max()) < 0.3


def test_single_seed_curves_get_no_offset():
    rng = np.random.default_rng(2)
    curves = _curves(rng, shared=True, seeds=1)
    assert float(np.abs(seed_offsets(curves)["offset_sd"]).max()) == 0.0


def _with_seeds(fit, offsets: np.ndarray) -> pb.PalmFit:
    """The hand-built fit observed by seeds whose whole curves are shifted by ``offsets``."""
    obs = fit.idata.observed_data
    acc = obs["accuracy"].isel(seed=0, drop=True)
    shifted = expit(logit(acc) + xr.DataArray(offsets, dims="seed"))
    observed = xr.Dataset(
        {
            "budget": obs["budget"].isel(seed=0, drop=True).expand_dims(seed=offsets.size).copy(),
            "accuracy": shifted.transpose(*obs["accuracy"].dims),
        }
    ).assign_coords(seed=np.arange(offsets.size))
    idata = fit.idata.copy()
    idata.observed_data = observed
    return pb.PalmFit(idata)


def test_forecast_inside_the_data_carries_the_seed_offset():
    curve = dict(A_max=np.full(4000, 0.9), delta=0.3, alpha=0.0, beta=1.0)
    base = hand_built_fit({"a": curve})
    fit = _with_seeds(base, np.array([-0.3, 0.0, 0.3]))
    sd = float(fit.seed_offsets()["offset_sd"].squeeze())
    assert sd > 0.1
    prior = default_prior().to_dict() | {"seed_offsets": True}
    widened = fit.with_prior(pb.CurvePrior.from_dict(prior))
    at = 100.0  # an observed budget: no discrepancy, only the offset
    level = float(pb.palm_curve(at, A_max=0.9, delta=0.3, alpha=0.0, beta=1.0, b=50.0))
    band = widened.forecast([at], hdi_prob=0.9).sel(budget=at).squeeze()
    expected = expit(logit(level) + np.array([-1, 1]) * 1.645 * sd)
    assert [float(band["lower"]), float(band["upper"])] == pytest.approx(expected, abs=0.01)
    plain = fit.with_prior(pb.CurvePrior.from_dict(prior | {"seed_offsets": False}))
    flat = plain.forecast([at], hdi_prob=0.9).sel(budget=at).squeeze()
    assert float(flat["upper"] - flat["lower"]) < 1e-6
    # labels needed for the level reached at 100 labels: an interval around 100, not a point
    need = widened.labels_needed(level).squeeze()
    assert float(need["lower"]) < 90 < 100 <= float(need["median"]) + 2 < 112 < float(need["upper"])


def test_the_shipped_prior_adds_seed_offsets_and_files_keep_the_flag(tmp_path):
    prior = default_prior()
    assert prior.seed_offsets
    assert not pb.CurvePrior.brownian(0.3).seed_offsets
    path = prior.save(tmp_path / "prior.json")
    assert pb.load_prior(path).seed_offsets
    older = prior.to_dict()
    del older["seed_offsets"]  # prior files written before offsets existed
    assert not pb.CurvePrior.from_dict(older).seed_offsets
