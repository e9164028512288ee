import numpy as np
import pymc as pm
import pytest

from palm_bayes.data.prepare import model_data
from palm_bayes.errors import PalmInputError
from palm_bayes.model.curve import palm_curve_log_lambda
from palm_bayes.model.single import DEFAULT_PRIORS, create_palm_model, merge_priors


def _data():
    budget = np.tile([100.0, 200.0, 300.0, 400.0, 600.0], (3, 1))
    acc = np.array([[0.5, 0.6, 0.66, 0.7, 0.74]] * 3) + np.array([[0.0], [0.01], [-0.01]])
    return model_data(budget, acc, b=100.0, n_test=1000)


def test_sufficient_statistics():
    d = _data()
    np.testing.assert_allclose(d["x"], [1, 2, 3, 4, 6])
    np.testing.assert_allclose(d["n_seeds"], 3)
    np.testing.assert_allclose(d["mean_accuracy"], [0.5, 0.6, 0.66, 0.7, 0.74])
    np.testing.assert_allclose(d["rep_sq_dev"], 2e-4)
    assert d["x_first"] == 1.0
    assert d["x_mid"] == pytest.approx(np.sqrt(6.0))


def test_nan_padding_is_dropped():
    d = model_data(np.array([100.0, 200.0, np.nan]), np.array([0.5, 0.6, np.nan]), 100.0, np.inf)
    assert d["x"].tolist() == [1.0, 2.0]
    assert d["inv_n_test"].tolist() == [0.0, 0.0]
    assert d["rep_index"].size == 0


def test_prior_predictive_shapes_and_ranges():
    with create_palm_model(_data()) as model:
        prior = pm.sample_prior_predictive(draws=200, random_seed=1)
    assert "A_max" in model.named_vars
    a_max = prior.prior["A_max"].to_numpy()
    assert np.all((a_max > 0) & (a_max < 1))
    assert prior.prior_predictive["accuracy"].shape == (1, 200, 5)
    # the derived PALM parameters reproduce the sampled mid accuracy
    p = prior.prior
    x_mid = np.sqrt(6.0)
    mid = palm_curve_log_lambda(x_mid, p["A_max"], p["log_lambda"], p["alpha"], p["beta"], 1.0)
    np.testing.assert_allclose(mid, p["mid_accuracy"], rtol=1e-6)
    assert np.all(p["alpha"].to_numpy() > -1.0)  # the curve is defined at the first budget


def test_merge_priors():
    merged = merge_priors({"noise": {"sigma": 0.01}})
    assert merged["noise"] == {"sigma": 0.01, "floor": 0.001}
    assert merged["logit_headroom"] == DEFAULT_PRIORS["logit_headroom"]
    with pytest.raises(PalmInputError, match="unknown prior 'A_max'"):
        merge_priors({"A_max": {"mu": 1}})
    with pytest.raises(PalmInputError, match="unknown fields"):
        merge_priors({"noise": {"mu": 1}})


def test_numpy_log_likelihood_equals_the_pymc_model():
    """LOO's numpy likelihood and the sampled PyMC model agree draw by draw."""
    import arviz as az

    from palm_bayes.queries.loo import curve_log_likelihood

    data = _data()
    floor = DEFAULT_PRIORS["noise"]["floor"]
    with create_palm_model(data) as model:
        prior = pm.sample_prior_predictive(draws=50, random_seed=3)
    draws = az.InferenceData(posterior=prior.prior)
    with model:
        ll = pm.compute_log_likelihood(draws, progressbar=False).log_likelihood
    pymc_total = (
        ll["accuracy"].sum("accuracy_dim_0") + ll["seed_spread"].sum("seed_spread_dim_0")
    ).to_numpy()
    params = {k: prior.prior[k].to_numpy()[..., None] for k in ("A_max", "log_lambda", "alpha",
                                                                 "beta", "noise")}  # fmt: skip
    ours = curve_log_likelihood(data, params, floor).sum(-1)
    np.testing.assert_allclose(ours, pymc_total, rtol=1e-6, atol=1e-6)
