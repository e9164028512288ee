"""Prior objects (pymc_extras.prior.Prior) change a sampled variable's family."""

import json

import numpy as np
import pymc as pm
import pytest
from pymc_extras.prior import Prior

import palm_bayes as pb
from palm_bayes.data.prepare import model_data
from palm_bayes.errors import PalmInputError
from palm_bayes.inference.pooled import HIERARCHICAL_PRIORS
from palm_bayes.model.single import create_palm_model, merge_priors, priors_to_json


def _data():
    budget = np.tile([100.0, 200.0, 300.0, 400.0, 600.0], (3, 1))
    acc = np.array([[0.5, 0.6, 0.66, 0.7, 0.74]] * 3) + np.array([[0.0], [0.01], [-0.01]])
    return model_data(budget, acc, b=100.0, n_test=1000)


def _family(model: pm.Model, name: str) -> str:
    return type(model[name].owner.op).__name__


def test_a_user_changed_family_is_used_by_the_model():
    priors = {
        "logit_headroom": Prior("StudentT", mu=0.0, sigma=1.5, nu=3),
        "noise": Prior("Gamma", alpha=2.0, beta=60.0),
    }
    model = create_palm_model(_data(), priors)
    assert _family(model, "logit_headroom") == "StudentTRV"
    assert _family(model, "noise") == "GammaRV"
    assert _family(create_palm_model(_data()), "noise") == "HalfNormalRV"  # the default
    with model:
        draws = pm.sample_prior_predictive(draws=400, random_seed=0).prior
    noise = draws["noise"].to_numpy()
    assert abs(noise.mean() - 2.0 / 60.0) < 0.005  # Gamma(2, 60), not HalfNormal(0.05)
    a_max = draws["A_max"].to_numpy()
    assert np.all((a_max > 0) & (a_max < 1))


def test_prior_objects_keep_the_noise_floor_and_round_trip_through_json():
    merged = merge_priors({"noise": Prior("Gamma", alpha=2.0, beta=60.0)})
    assert merged["noise"]["floor"] == 0.001
    saved = json.loads(priors_to_json(merged))
    assert saved["noise"]["prior"]["dist"] == "Gamma"
    again = merge_priors({"noise": saved["noise"]})  # a saved fit's priors read back
    assert again["noise"]["prior"].distribution == "Gamma"
    assert merge_priors({"offset": {"sigma": 2.0}})["offset"] == {"mu": 0.0, "sigma": 2.0}


def test_prior_objects_are_refused_where_the_model_has_no_such_variable():
    with pytest.raises(PalmInputError, match="Prior objects are accepted"):
        merge_priors({"extrapolation": Prior("Normal")})
    with pytest.raises(PalmInputError, match="Prior objects are accepted"):
        merge_priors({"offset": Prior("Normal")}, HIERARCHICAL_PRIORS)


@pytest.mark.slow
def test_a_fit_with_a_prior_object_samples_and_saves(tmp_path):
    curves = pb.simulate_curves(
        {"a": dict(A_max=0.9, delta=0.05, alpha=0.0, beta=1.2)},
        np.arange(100.0, 700.0, 100.0),
        seeds=2,
        rng=0,
    )
    fit = pb.fit(
        curves,
        priors={"logit_headroom": Prior("StudentT", mu=0.0, sigma=1.5, nu=3)},
        chains=1,
        draws=100,
        tune=100,
        progress=False,
    )
    back = pb.PalmFit.from_netcdf(fit.to_netcdf(tmp_path / "fit.nc"))
    assert back.priors["logit_headroom"]["prior"]["dist"] == "StudentT"
    assert np.isfinite(back.forecast([800])["median"]).all()
