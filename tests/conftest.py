"""Shared test helpers."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def make_imagenet50(
    root: Path, height: int = 8, width: int = 8, train_per_class: int = 2
) -> list[str]:
    """A fake ImageNet-50 ImageFolder under ``root``: ``train_per_class`` train and 1 val random
    JPEG per class.

    Writes ``root/{train,val}/<wnid>/<k>.JPEG`` and ``root/imagenet50_classes.txt``; returns
    the class ids.
    """
    from PIL import Image

    rng = np.random.default_rng(0)
    names = [f"n{i:08d}" for i in range(50)]
    for split, n in (("train", train_per_class), ("val", 1)):
        for name in names:
            (root / split / name).mkdir(parents=True)
            for j in range(n):
                pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{j}.JPEG")
    (root / "imagenet50_classes.txt").write_text("\n".join(names))
    return names


# --------------------------------------------------------------------------- known posteriors
#: The curve dims of every fit: simulate_curves / load_curves give these three.
CURVE_DIMS = ("dataset", "strategy", "embedding")


def hand_built_fit(
    strategies: dict[str, dict[str, Any]],
    *,
    b: float = 50.0,
    budgets: Any = (50.0, 100.0, 150.0, 200.0),
    prior: Any = None,
    noise: float = 0.01,
) -> Any:
    """A :class:`palm_bayes.PalmFit` whose posterior draws are given, not sampled.

    ``strategies`` maps a strategy name to its PALM parameters ``A_max, delta, alpha, beta``,
    each a number (a point mass, 8 draws) or a 1-D array of draws (all arrays of one even
    length, split into two chains in order; numbers are broadcast). The curves are observed at
    ``budgets`` (noise-free PALM values) and fitted with labels per round ``b``. ``prior`` is
    the extrapolation discrepancy: by default ``CurvePrior.brownian(0.0)``, the prior that
    trusts the PALM form exactly, so every query has a closed-form answer.
    """
    import arviz as az
    import xarray as xr

    import palm_bayes as pb

    names = list(strategies)
    lengths = {np.size(v) for p in strategies.values() for v in p.values() if np.ndim(v) > 0}
    if len(lengths) > 1:
        raise ValueError(f"all draw arrays must have one length, got {sorted(lengths)}")
    n_draws = lengths.pop() if lengths else 8
    if n_draws % 2:
        raise ValueError("the draws are split into two chains: give an even number")

    def draws(name: str) -> np.ndarray:
        values = [np.broadcast_to(np.asarray(strategies[s][name], float), n_draws) for s in names]
        # (chain, draw, dataset, strategy, embedding): two chains of n_draws / 2
        return np.stack(values, axis=-1).reshape(2, n_draws // 2, 1, len(names), 1)

    sample_dims = ("chain", "draw", *CURVE_DIMS)
    coords = {"dataset": ["sim"], "strategy": names, "embedding": ["none"]}
    sample_coords = {"chain": [0, 1], "draw": np.arange(n_draws // 2), **coords}
    params = {name: draws(name) for name in ("A_max", "delta", "alpha", "beta")}
    params["log_lambda"] = np.log(-np.log1p(-params["delta"]))
    params["noise"] = np.full_like(params["A_max"], noise)
    posterior = xr.Dataset({n: (sample_dims, v) for n, v in params.items()}, coords=sample_coords)
    sample_stats = xr.Dataset(
        {"diverging": (sample_dims, np.zeros(params["A_max"].shape, bool))}, coords=sample_coords
    )
    budgets = np.asarray(budgets, float)
    shape = (1, len(names), 1)

    def per_curve(value) -> tuple:
        return (CURVE_DIMS, np.full(shape, value))

    constant = xr.Dataset(
        {
            "x_first": per_curve(budgets[0] / b),
            "x_mid": per_curve(np.sqrt(budgets[0] * budgets[-1]) / b),
            "first_budget": per_curve(budgets[0]),
            "last_budget": per_curve(budgets[-1]),
            "n_test": per_curve(np.inf),
            "b": per_curve(b),
            "fitted": (CURVE_DIMS, np.ones(shape, bool)),
            "sampling_seconds": per_curve(0.0),
        },
        coords=coords,
    )
    truth = {k: np.median(v, axis=(0, 1)) for k, v in params.items()}  # per curve
    accuracy = pb.palm_curve(
        budgets, **{k: truth[k][..., None] for k in ("A_max", "delta", "alpha", "beta")}, b=b
    )
    observed = xr.Dataset(
        {
            "budget": (
                (*CURVE_DIMS, "seed", "step"),
                np.broadcast_to(budgets, (*shape, 1, budgets.size)).copy(),
            ),
            "accuracy": ((*CURVE_DIMS, "seed", "step"), accuracy[..., None, :]),
        },
        coords=coords | {"seed": [0], "step": np.arange(budgets.size)},
    )
    posterior.attrs.update(
        {
            "format": "palm-bayes-fit/1",
            "priors": json.dumps(pb.DEFAULT_PRIORS, sort_keys=True),
            "curve_dims": json.dumps(list(CURVE_DIMS)),
            "hierarchy": "[]",
            "free_vars": json.dumps(["A_max", "log_lambda", "alpha", "beta", "noise"]),
            "sampler": json.dumps({"name": "hand-built"}),
        }
    )
    idata = az.InferenceData(
        posterior=posterior,
        sample_stats=sample_stats,
        constant_data=constant,
        observed_data=observed,
    )
    fit = pb.PalmFit(idata)
    return fit.with_prior(pb.CurvePrior.brownian(0.0) if prior is None else prior)


@pytest.fixture
def known_fit():
    """Factory fixture: ``known_fit({"a": dict(A_max=..., ...), ...})``, see hand_built_fit."""
    return hand_built_fit


# --------------------------------------------------------------------------- shared real fits
#: Two clearly different strategies: good reaches 0.85 at ~360 labels, poor never does.
GOOD_AND_POOR = {
    "good": dict(A_max=0.92, delta=0.3, alpha=0.0, beta=1.0),
    "poor": dict(A_max=0.75, delta=0.1, alpha=0.0, beta=1.0),
}


@pytest.fixture(scope="session")
def two_strategy_fit_dir(tmp_path_factory) -> Path:
    """``palm fit`` of good and poor (8 rounds of 50 labels, 3 seeds): its output folder.

    One small real fit, shared by the CLI and report tests (read only: write elsewhere).
    """
    import palm_bayes as pb
    from palm_bayes.cli import main

    folder = tmp_path_factory.mktemp("two-strategies")
    curves = pb.simulate_curves(GOOD_AND_POOR, np.arange(1, 9) * 50.0, seeds=3, rng=0)
    table = pb.load_curves(curves)[["budget", "accuracy", "n_test"]].to_dataframe()
    table = table.reset_index().dropna(subset=["accuracy"]).drop(columns="step")
    table.to_csv(folder / "curves.csv", index=False)  # the long CSV a user would bring
    args = ["--draws", "300", "--tune", "300", "--chains", "2", "--quiet"]
    args += [
        "--palm-output",
        str(folder / "palm"),
    ]  # the reference's files (test_reference_interop)
    assert main(["fit", str(folder / "curves.csv"), "--out", str(folder / "fit"), *args]) == 0
    return folder / "fit"


def spread_hand_built_fit(seed: int):
    """A hand-built posterior with spread draws (strategies a, b, c), under the shipped prior."""
    from palm_bayes.priors.shipped import default_prior

    rng = np.random.default_rng(seed)
    n = 400
    strategies = {
        name: dict(
            A_max=rng.uniform(lo, hi, n),
            delta=rng.uniform(0.05, 0.3, n),
            alpha=rng.uniform(-0.5, 1.0, n),
            beta=rng.uniform(0.6, 1.4, n),
        )
        for name, (lo, hi) in {"a": (0.8, 0.95), "b": (0.75, 0.9), "c": (0.85, 0.97)}.items()
    }
    return hand_built_fit(strategies, prior=default_prior())
