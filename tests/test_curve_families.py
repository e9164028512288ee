"""benchmarks/curve_families.py and benchmarks/proper_scores.py: the harness's baselines."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm


def _load(name):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


families = _load("curve_families")
scores = _load("proper_scores")

X = np.geomspace(20, 2000, 25)
KNOWN = {
    "pow3": (0.9, 1.5, 0.6),
    "pow4": (0.92, 2.0, 0.7, 15.0),
    "mmf4": (0.3, 400.0, 0.95, 1.2),
    "wbl4": (0.02, 0.5, 0.9, 0.8),
    "exp3": (0.4, 0.004, 0.88),
    "logpower3": (0.93, 4.0, -0.9),
    "palm4": (0.9, 0.05, 2.0, 0.7),
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_noiseless_curve_recovers_its_parameters(name):
    true = KNOWN[name]
    y = families.FAMILIES[name].func(X, *true)
    fit = families.fit_family(name, X, y)
    np.testing.assert_allclose(fit.mean(X), y, atol=1e-5)
    np.testing.assert_allclose(fit.params, true, rtol=0.02)


def test_extrapolation_from_a_prefix_of_a_noiseless_curve():
    y = families.FAMILIES["pow4"].func(X, *KNOWN["pow4"])
    fit = families.fit_family("pow4", X[:12], y[:12])
    mean, sd = fit.predict(X[-1])
    assert abs(mean[0] - y[-1]) < 1e-3
    assert sd[0] < 0.01


def test_noisy_fit_has_a_wider_predictive_far_out_than_near():
    rng = np.random.default_rng(0)
    y = families.FAMILIES["pow3"].func(X, *KNOWN["pow3"]) + rng.normal(0, 0.01, X.size)
    fit = families.fit_family("pow3", X[:10], y[:10])
    _, sd = fit.predict([X[9], 50 * X[9]])
    assert sd[1] > sd[0] >= fit.sigma * 0.999


def test_fit_rejects_too_few_points_and_unknown_families():
    with pytest.raises(ValueError, match="at least 4 points"):
        families.fit_family("pow4", X[:3], X[:3] / 3000)
    with pytest.raises(ValueError, match="unknown curve family"):
        families.fit_family("pow9", X, X / 3000)


def test_crps_of_a_point_mass_is_the_absolute_error():
    assert scores.crps_draws(np.full(100, 0.8), 0.75) == pytest.approx(0.05)
    assert scores.crps_draws([0.6], 0.9) == pytest.approx(0.3)


def test_crps_of_gaussian_draws_matches_the_closed_form():
    mean, sd, y = 0.8, 0.03, 0.84
    draws = norm.ppf((np.arange(20000) + 0.5) / 20000, mean, sd)
    closed = scores.crps_gaussian(mean, sd, y)
    assert scores.crps_draws(draws, y) == pytest.approx(float(closed), rel=2e-3)
    # the closed form itself, by numerical integration of (F(t) - 1{t >= y})^2
    t = np.linspace(mean - 12 * sd, mean + 12 * sd, 200001)
    integrand = (norm.cdf(t, mean, sd) - (t >= y)) ** 2
    assert float(closed) == pytest.approx(np.trapezoid(integrand, t), rel=1e-4)


def test_log_score_of_draws_approaches_the_gaussian_density():
    mean, sd = 0.7, 0.02
    draws = np.random.default_rng(1).normal(mean, sd, 4000)
    for y in (0.69, 0.72):
        exact = float(scores.log_score_gaussian(mean, sd, y))
        assert scores.log_score_draws(draws, y) == pytest.approx(exact, abs=0.05)


def test_a_sharper_correct_forecast_scores_better():
    y = 0.8
    assert scores.crps_gaussian(0.8, 0.01, y) < scores.crps_gaussian(0.8, 0.05, y)
    assert scores.log_score_gaussian(0.8, 0.01, y) > scores.log_score_gaussian(0.8, 0.05, y)
