"""Model comparison of PALM fits with PSIS-LOO (ArviZ).

An observation is one budget of one curve: its seed mean and, with replicate seeds, their
spread, scored with the likelihood both model kinds share (:mod:`palm_bayes.model.single`). Fits of
the same curves, pooled or not, can then be ranked by their expected log predictive density.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from palm_bayes.data.prepare import iter_curves, model_data
from palm_bayes.errors import PalmInputError
from palm_bayes.model.likelihood import log_likelihood
from palm_bayes.model.single import palm_mean

if TYPE_CHECKING:
    from palm_bayes.palm_fit import PalmFit

__all__ = [
    "pointwise_log_likelihood",
    "curve_log_likelihood",
    "add_log_likelihood",
    "compare_models",
    "compare",
]


def pointwise_log_likelihood(fit: PalmFit) -> xr.DataArray:
    """Log-likelihood of every observation under every posterior draw.

    Returns
    -------
    xarray.DataArray
        Dims ``(chain, draw, observation)``; coords ``curve`` (the curve's labels joined by
        ``/``) and ``budget`` along ``observation``.
    """
    post = fit.idata.posterior
    floor = fit.noise_floor
    blocks, curve_names, budgets = [], [], []
    for labels, sub in iter_curves(fit.curves):
        n_test = sub["n_test"].broadcast_like(sub["accuracy"]) if "n_test" in sub else np.inf
        b = float(fit.b.sel(labels))
        data = model_data(
            sub["budget"].to_numpy(), sub["accuracy"].to_numpy(), b, np.asarray(n_test)
        )
        draws = {k: post[k].sel(labels).to_numpy()[..., None] for k in _PALM}
        ll = curve_log_likelihood(data, draws, floor)
        blocks.append(ll)
        curve_names += ["/".join(str(v) for v in labels.values())] * ll.shape[-1]
        budgets.append(data["x"] * b)
    values = np.concatenate(blocks, axis=-1)
    return xr.DataArray(
        values,
        dims=("chain", "draw", "observation"),
        coords={
            "chain": post["chain"],
            "draw": post["draw"],
            "observation": np.arange(values.shape[-1]),
            "curve": ("observation", curve_names),
            "budget": ("observation", np.concatenate(budgets)),
        },
        name="accuracy",
    )


_PALM = ("A_max", "log_lambda", "alpha", "beta", "noise")


def curve_log_likelihood(data: dict, draws: dict, floor: float) -> np.ndarray:
    """Numpy log-likelihood per budget of one curve (the model's likelihood, for LOO).

    ``data`` is :func:`palm_bayes.model.single.model_data`'s output, ``draws`` maps
    ``A_max, log_lambda, alpha, beta, noise`` to arrays broadcasting against the budgets.
    """
    acc = palm_mean(data["x"], draws["A_max"], draws["log_lambda"], draws["beta"], draws["alpha"])
    return log_likelihood(acc, draws["noise"], data, floor)


def add_log_likelihood(fit: PalmFit) -> PalmFit:
    """Store the pointwise log-likelihood in ``fit.idata`` (group ``log_likelihood``)."""
    if "log_likelihood" not in fit.idata.groups():
        ll = pointwise_log_likelihood(fit)
        fit.idata.add_groups(log_likelihood=xr.Dataset({"accuracy": ll}))
    return fit


def compare_models(
    fits: Sequence[PalmFit] | Mapping[str, PalmFit], *, ic: str = "loo"
) -> pd.DataFrame:
    """Rank fits of the same curves by PSIS-LOO (``arviz.compare``).

    Parameters
    ----------
    fits : sequence or mapping of PalmFit
        Fits of the same observations; a sequence is named after each fit's structure
        (``independent``, ``pooled: strategy+dataset``).

    Returns
    -------
    pandas.DataFrame
        ``arviz.compare``'s table (``elpd_loo``, ``p_loo``, ``elpd_diff``, ``weight``, ``se``,
        ``dse``, ``warning``) and ``high_pareto_k`` (observations with Pareto k > 0.7), best
        first; ``attrs["note"]`` explains a warning in plain words.

    Examples
    --------
    >>> pb.compare_models([independent_fit, pooled_fit])  # doctest: +SKIP
    """
    if not isinstance(fits, Mapping):
        named: dict[str, PalmFit] = {}
        for fit in fits:
            name = "pooled: " + "+".join(fit.hierarchy) if fit.hierarchy else "independent"
            while name in named:
                name += "'"
            named[name] = fit
        fits = named
    if len(fits) < 2:
        raise PalmInputError("compare_models needs at least two fits")
    idatas = {name: add_log_likelihood(fit).idata for name, fit in fits.items()}
    sizes = {name: idata.log_likelihood.sizes["observation"] for name, idata in idatas.items()}
    if len(set(sizes.values())) != 1:
        raise PalmInputError(
            f"the fits are not of the same observations (observations per fit: {sizes})"
        )
    with warnings.catch_warnings():  # explained in the table's note instead
        warnings.simplefilter("ignore", UserWarning)
        elpd = {
            name: (az.loo if ic == "loo" else az.waic)(idata, pointwise=True)
            for name, idata in idatas.items()
        }
        table = az.compare(elpd, ic=ic)
    if ic == "loo":
        high = {name: int((e.pareto_k > 0.7).sum()) for name, e in elpd.items()}
        table["high_pareto_k"] = pd.Series(high)
        if any(high.values()):
            table.attrs["note"] = (
                "warning=True: for some observations (count in high_pareto_k) leaving them out "
                "changes the posterior a lot (Pareto k > 0.7), so that fit's elpd_loo is an "
                "approximation; a difference smaller than a few dse is not a clear preference."
            )
    return table


def compare(fits: Sequence[PalmFit] | Mapping[str, PalmFit], *, ic: str = "loo") -> pd.DataFrame:
    """Deprecated name of :func:`compare_models` (PSIS-LOO); removed in the next release.

    Not to be confused with :meth:`palm_bayes.PalmFit.prob_better` (which strategy wins).
    """
    warnings.warn(
        "palm_bayes.queries.loo is deprecated; use palm_bayes.compare_models (PSIS-LOO model "
        "comparison)",
        DeprecationWarning,
        stacklevel=2,
    )
    return compare_models(fits, ic=ic)
