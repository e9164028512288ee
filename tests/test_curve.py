import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from palm_bayes.model.curve import labels_for_accuracy, palm_curve


def paper_equation(budget, A_max, delta, alpha, beta, b):  # noqa: N803
    """Direct transcription of the paper's equation."""
    return A_max * (1 - (1 - delta) ** ((budget / b + alpha) ** beta))


params = st.fixed_dictionaries(
    {
        "A_max": st.floats(0.2, 1.0),
        "delta": st.floats(1e-3, 0.9),
        "alpha": st.floats(-0.9, 20.0),
        "beta": st.floats(0.1, 3.0),
        "b": st.floats(10.0, 1000.0),
    }
)


@settings(max_examples=200, deadline=None)
@given(params)
def test_matches_paper_equation(p):
    budget = p["b"] * np.array([1.0, 2.0, 5.0, 10.0, 40.0])
    np.testing.assert_allclose(palm_curve(budget, **p), paper_equation(budget, **p), rtol=1e-9)


@settings(max_examples=200, deadline=None)
@given(params, st.floats(0.05, 0.95))
def test_closed_form_inverse_matches_root_finding(p, share):
    target = share * p["A_max"]
    closed = labels_for_accuracy(target, **p)
    lo = p["b"] * max(-p["alpha"], 0.0)
    if palm_curve(lo, **p) >= target:  # already reached before any label
        assert closed <= lo + 1e-6 * p["b"]
        return
    hi = lo + p["b"]
    while palm_curve(hi, **p) < target:
        hi *= 2
    root = brentq(lambda B: palm_curve(B, **p) - target, lo, hi, xtol=1e-10, rtol=1e-12)
    np.testing.assert_allclose(closed, root, rtol=1e-6, atol=1e-8 * p["b"])


def test_unreachable_target_is_inf():
    assert np.isinf(labels_for_accuracy(0.95, A_max=0.9, delta=0.1, alpha=0, beta=1, b=10))
    assert np.isinf(labels_for_accuracy(0.9, A_max=0.9, delta=0.1, alpha=0, beta=1, b=10))


def test_log_space_is_finite_near_the_asymptote():
    # lambda underflows while beta is large: the direct form gives 0 * inf = NaN
    values = palm_curve(np.array([1.0, 10.0, 100.0]), 0.9, 1e-300, 2.0, 200.0, 1.0)
    assert np.all(np.isfinite(values))
    assert values[-1] == pytest.approx(0.9)


def test_before_onset_is_zero():
    assert palm_curve(0.0, 0.9, 0.1, -2.0, 1.0, 1.0) == 0.0


def test_xarray_broadcasts_by_name():
    budget = xr.DataArray([100.0, 200.0], dims="budget")
    a_max = xr.DataArray([0.8, 0.9], dims="strategy")
    out = palm_curve(budget, a_max, 0.1, 0.0, 1.0, 100.0)
    assert set(out.dims) == {"budget", "strategy"}
    assert float(out.sel(strategy=1).isel(budget=0)) == pytest.approx(0.9 * 0.1)


def test_pytensor_matches_numpy():
    x = pt.dvector("x")
    f = pytensor.function([x], palm_curve(x, 0.85, 0.07, 1.5, 0.8, 50.0))
    budget = np.array([50.0, 300.0, 2000.0])
    np.testing.assert_allclose(f(budget), palm_curve(budget, 0.85, 0.07, 1.5, 0.8, 50.0))
