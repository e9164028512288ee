"""Batched independent fits (importance sampling) against NUTS, and their guarantees."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pytest
import xarray as xr

import palm_bayes as pb
from palm_bayes.errors import SamplingWarning

pytestmark = pytest.mark.slow

BUDGETS = np.arange(1, 11) * 100.0
#: One curve of every shape a user meets (``dataset`` label = shape).
SHAPES = {
    "fast": dict(A_max=0.9, delta=0.5, alpha=0.0, beta=1.0),
    "slow": dict(A_max=0.9, delta=0.02, alpha=0.0, beta=0.7),
    "noiseless": dict(A_max=0.85, delta=0.1, alpha=0.0, beta=1.0),
    "flat": dict(A_max=0.7, delta=0.999, alpha=0.0, beta=1.0),
    "falling": dict(A_max=0.9, delta=0.1, alpha=0.0, beta=1.0),
    "short": dict(A_max=0.9, delta=0.1, alpha=0.0, beta=1.0),
}
SAMPLER = dict(chains=2, draws=500, tune=500, progress=False)
QUANTILES = (0.05, 0.5, 0.95)


def shaped_curves() -> xr.Dataset:
    """Six curves (one per shape) over the ``dataset`` dim, with NaN-padded short ones."""
    parts = []
    for k, (name, params) in enumerate(SHAPES.items()):
        budgets = BUDGETS[:4] if name == "short" else BUDGETS
        options = dict(noise=0.0, n_test=10**7) if name == "noiseless" else {}
        ds = pb.simulate_curves(
            {"s": params}, budgets, dataset=name, labels_per_round=100.0, rng=k, **options
        )
        ds = ds.drop_vars([v for v in ds.data_vars if v.startswith("true_")])
        if name == "falling":
            ds["accuracy"] = ds["accuracy"].copy(data=ds["accuracy"].to_numpy()[..., ::-1])
        ds["n_test"] = xr.full_like(ds["accuracy"], float(ds["n_test"]))
        parts.append(ds)
    curves = xr.concat(parts, "dataset", join="outer")
    return pb.load_curves(curves)


@pytest.fixture(scope="module")
def curves():
    return shaped_curves()


@pytest.fixture(scope="module")
def fits(curves):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = pb.fit(curves, seed=3, **SAMPLER)
        nuts = pb.fit(curves, seed=3, method="nuts", **SAMPLER)
    return fast, nuts


def _features(fit) -> dict[str, xr.DataArray]:
    """PALM parameters and forecasts (no discrepancy) at 1x, 2x, 5x each curve's last budget."""
    post = fit.idata.posterior
    const = fit.idata.constant_data
    out = {v: post[v] for v in ("A_max", "delta", "alpha", "beta")}
    for factor in (1, 2, 5):
        x = factor * const["last_budget"] / const["b"]
        out[f"forecast_{factor}x"] = post["A_max"] * (
            1 - (1 - post["delta"]) ** ((x + post["alpha"]) ** post["beta"])
        )
    return out


def _z_scores(fast, nuts, curve: str) -> list[float]:
    """(quantile difference) / (combined Monte Carlo standard error), per feature and q."""
    sel = dict(dataset=curve, strategy="s", embedding="none")
    ess = float(fast.idata.constant_data["importance_ess"].sel(sel))
    zs = []
    for name, draws in _features(nuts).items():
        a = _features(fast)[name].sel(sel).to_numpy()
        b = draws.sel(sel).to_numpy()
        for q in QUANTILES:
            se_b = float(az.mcse(b, method="quantile", prob=q))
            # resampled draws: the standard error of an iid sample of the weights' ESS
            se_a = float(az.mcse(a.reshape(1, -1), method="quantile", prob=q))
            se_a *= np.sqrt(a.size / ess)
            zs.append((np.quantile(a, q) - np.quantile(b, q)) / np.hypot(se_a, se_b))
    return zs


def test_importance_matches_nuts_or_falls_back_on_every_shape(fits):
    fast, nuts = fits
    const = fast.idata.constant_data.sel(strategy="s", embedding="none")
    assert bool(const["pareto_k"].notnull().all())
    kept = ~const["nuts_fallback"]
    assert int(kept.sum()) >= 4  # most shapes are answered without NUTS
    for curve in const["dataset"].to_numpy():
        sel = dict(dataset=curve, strategy="s", embedding="none")
        if bool(kept.sel(dataset=curve)):
            z = np.abs(_z_scores(fast, nuts, str(curve)))
            # 21 quantiles per curve: |z| <= 4 for all of them, and the typical one near 1
            assert z.max() <= 4.0, (curve, np.round(z, 1))
            assert np.median(z) <= 1.5, (curve, np.round(z, 1))
        else:  # fell back to the very draws of method="nuts" (same seed per curve)
            np.testing.assert_array_equal(
                fast.idata.posterior["A_max"].sel(sel), nuts.idata.posterior["A_max"].sel(sel)
            )


def test_output_format_is_that_of_nuts(fits):
    fast, nuts = fits
    assert fast.idata.groups() == nuts.idata.groups()
    assert set(fast.idata.posterior.data_vars) == set(nuts.idata.posterior.data_vars)
    assert fast.idata.posterior["A_max"].dims == nuts.idata.posterior["A_max"].dims
    assert fast.idata.posterior["A_max"].shape == nuts.idata.posterior["A_max"].shape
    assert '"method": "importance"' in fast.idata.posterior.attrs["sampler"]
    assert "method" not in nuts.idata.posterior.attrs["sampler"]
    assert "pareto_k" not in nuts.idata.constant_data
    # queries work unchanged
    fc = fast.forecast([1500.0])
    assert bool(fc["median"].notnull().all())


def test_same_seed_same_draws(curves):
    one = curves.isel(dataset=[0, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = pb.fit(one, seed=5, **SAMPLER).idata.posterior["A_max"].to_numpy()
        b = pb.fit(one, seed=5, **SAMPLER).idata.posterior["A_max"].to_numpy()
        c = pb.fit(one, seed=6, **SAMPLER).idata.posterior["A_max"].to_numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_method_is_refused(curves):
    with pytest.raises(pb.PalmInputError, match="method"):
        pb.fit(curves, method="vi", progress=False)
    with pytest.raises(pb.PalmInputError, match="pooled"):
        pb.fit(curves, hierarchy="dataset", method="importance", progress=False)


def test_fit_warns_in_plain_words_when_nuts_struggles(curves):
    """Ten tuning steps and a low target acceptance: divergences and chains that disagree."""
    one = curves.sel(dataset=["slow"])
    with pytest.warns(SamplingWarning) as caught:
        pb.fit(one, seed=0, chains=2, draws=30, tune=10, target_accept=0.6, method="nuts",
               progress=False)  # fmt: skip
    text = " ".join(str(w.message) for w in caught)
    assert "target_accept" in text or "draws and tune" in text
