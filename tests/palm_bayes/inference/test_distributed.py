"""fit(workers=K): independent fits sampled in Ray tasks give the fit of one process."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

import palm_bayes as pb

pytest.importorskip("ray")

from al_runner.sweep.ray_session import start_ray  # noqa: E402

SAMPLER = dict(chains=2, draws=200, progress=False)


@pytest.fixture(scope="module")
def local_ray():
    import ray

    if ray.is_initialized():
        ray.shutdown()
    assert start_ray(num_cpus=1)  # one worker process: one compile; chunks run in turn
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def curves():
    params = {
        f"s{k}": dict(A_max=0.8 + 0.03 * k, delta=0.05 + 0.05 * k, alpha=0.0, beta=0.8 + 0.1 * k)
        for k in range(5)
    }
    ds = pb.simulate_curves(params, np.arange(1, 9) * 50.0, labels_per_round=50.0, rng=1)
    return pb.load_curves(ds.drop_vars([v for v in ds.data_vars if v.startswith("true_")]))


@pytest.mark.parametrize("workers", [2, 3])
def test_ray_fit_is_the_local_fit_draw_for_draw(local_ray, curves, workers):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = pb.fit(curves, seed=4, **SAMPLER)
        spread = pb.fit(curves, seed=4, workers=workers, **SAMPLER)
    for name in ("A_max", "delta", "alpha", "beta"):
        np.testing.assert_array_equal(
            local.idata.posterior[name].to_numpy(), spread.idata.posterior[name].to_numpy()
        )
    xr.testing.assert_equal(
        local.forecast([800, 1600]).drop_attrs(), spread.forecast([800, 1600]).drop_attrs()
    )


def test_workers_are_refused_where_they_cannot_apply(curves):
    with pytest.raises(pb.PalmInputError, match="pooled fit is one model"):
        pb.fit(curves, hierarchy="strategy", workers=2, **SAMPLER)
    with pytest.raises(pb.PalmInputError, match="positive number of Ray tasks"):
        pb.fit(curves, workers=0, **SAMPLER)
