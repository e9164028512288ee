import numpy as np
import pytest

import palm_bayes as pb
from palm_bayes.inference.least_squares import fit_curve_least_squares
from palm_bayes.model.curve import palm_curve

CASES = [
    dict(A_max=0.9, delta=0.2, alpha=0.5, beta=1.1),
    dict(A_max=0.75, delta=0.05, alpha=0.0, beta=0.8),
    dict(A_max=0.95, delta=0.1, alpha=2.0, beta=1.5),
]


@pytest.mark.parametrize("true", CASES)
def test_recovers_noiseless_parameters(true):
    budget = np.arange(1, 21) * 50.0
    acc = palm_curve(budget, b=50.0, **true)
    res = fit_curve_least_squares(budget, acc, 50.0)
    assert res["success"]
    assert res["rmse"] < 1e-5
    np.testing.assert_allclose(
        palm_curve(budget, b=50.0, **{k: res[k] for k in true}), acc, atol=1e-5
    )
    assert res["A_max"] == pytest.approx(true["A_max"], abs=0.01)
    assert res["beta"] == pytest.approx(true["beta"], rel=0.1)


def test_flags_a_fit_on_a_bound():
    # a straight line keeps rising: the asymptote runs into A_max = 1
    budget = np.arange(1, 11) * 100.0
    res = fit_curve_least_squares(budget, 0.5 + 0.05 * np.arange(10), 100.0)
    assert res["at_bound"]


def test_constant_curve_fits_its_level():
    # a flat curve is PALM at its asymptote from the first round: A_max is the level and the
    # fitted curve reproduces it at every budget
    budget = np.arange(1, 8) * 10.0
    res = fit_curve_least_squares(budget, np.full(7, 0.6), 10.0)
    assert res["success"]
    assert not res["at_bound"]
    assert res["A_max"] == pytest.approx(0.6, abs=1e-3)
    assert res["rmse"] < 1e-6
    fitted = palm_curve(budget, b=10.0, **{k: res[k] for k in ("A_max", "delta", "alpha", "beta")})
    np.testing.assert_allclose(fitted, 0.6, atol=1e-6)


def test_dataset_wrapper_dims_and_nan_padding():
    curves = pb.simulate_curves(
        {"a": CASES[0], "b": CASES[1]},
        np.arange(1, 11) * 100.0,
        seeds=2,
        noise=0.0,
        n_test=10**7,
    )
    curves["accuracy"][..., -2:] = np.nan
    curves["budget"][..., -2:] = np.nan
    out = pb.fit_least_squares(curves)
    assert out["A_max"].dims == ("dataset", "strategy", "embedding")
    assert bool(out["success"].all())
    assert float(out["A_max"].sel(strategy="a").squeeze()) == pytest.approx(0.9, abs=0.02)
