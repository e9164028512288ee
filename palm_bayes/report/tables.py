"""Result tables for people.

Whole labels print as integers, single-member id columns are dropped, and every column that is
not self-evident gets a one-line explanation.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from palm_bayes.palm_fit import PalmFit

__all__ = ["COLUMN_NOTES", "tidy", "column_notes", "sampling_advice"]

#: Plain-words meaning of the result columns, printed under tables and shown in the report.
COLUMN_NOTES = {
    "p_reachable": "probability of reaching the target within the search horizon",
    "labels_median": "labels needed for the target, posterior median (rounded up to whole labels)",
    "labels_lower": "labels needed, 5% quantile",
    "labels_upper": "labels needed, 95% quantile (inf: may never be reached)",
    "window_median": "deployment window W = labels for target + tolerance minus labels for "
    "target - tolerance (median; small W: a steep, predictable approach to the target)",
    "p_cheapest": "probability that this strategy needs the fewest labels to reach the target",
    "p_within_eta": "probability that it needs at most (1 + eta) x the cheapest's labels",
    "p_feasible": "ALDA: probability of reaching the target within the horizon",
    "p_competitive": "ALDA: probability of needing at most (1 + eta) x the cheapest's labels",
    "p_pick": "ALDA: probability of being the pick (smallest window among the competitive)",
    "p_fallback_pick": "ALDA: probability of being the fallback pick (no strategy reaches the "
    "target; highest A_max)",
    "p_risky": "ALDA: probability of being feasible with a wider window than the pick",
    "expected_saved": "mean labels saved against the reference strategy (draws where both "
    "reach the target)",
    "speedup_median": "speed-up factor at the target: labels needed / the reference's labels "
    "(median; < 1: fewer labels, Kath et al. 2026)",
    "speedup_lower": "speed-up factor, 5% quantile",
    "speedup_upper": "speed-up factor, 95% quantile (inf: may never match the reference)",
    "prob_better": "probability that a beats b at that budget (0.5: cannot tell apart)",
    "undecided": "True: P lies in [0.2, 0.8], not a decision (on curves whose rankings change "
    "after the pilot such answers were right little more often than a coin)",
    "decided_up_to": "largest budget up to which the comparison stays decided (P outside "
    "[0.2, 0.8]); empty: undecided already at the pilot's end",
    "r_hat_max": "worst R-hat of the curve's parameters (at most 1.01: chains agree)",
    "divergences": "divergent transitions of the sampler (0: no sign of a biased posterior)",
    "warning": "PSIS-LOO is approximate for this fit: some observations have Pareto k > 0.7",
    "elpd_loo": "expected log predictive density (higher: better predictions of held-out points)",
    "p_loo": "effective number of parameters",
    "p_crossover": "probability that b overtakes a within the horizon",
}

_HIDDEN_LABELS = ("none", "default")


def tidy(frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A copy for display: whole numbers as integers, other numbers rounded.

    Id columns with one placeholder label (e.g. ``embedding=none``) are dropped.
    """
    frame = frame.drop(
        columns=[
            c
            for c in ("embedding",)
            if c in frame and frame[c].nunique() == 1 and str(frame[c].iloc[0]) in _HIDDEN_LABELS
        ]
    ).copy()
    for col in frame.columns:
        values = frame[col]
        if values.dtype.kind == "b" or values.dtype.kind not in "fc":
            continue
        finite = values[np.isfinite(values)]
        if finite.size and np.all(finite == np.round(finite)) and np.all(np.abs(finite) < 2**53):
            frame[col] = [
                str(int(v)) if np.isfinite(v) else ("" if np.isnan(v) else str(v)) for v in values
            ]
        else:
            frame[col] = values.round(digits)
    return frame


def column_notes(frame: pd.DataFrame) -> list[str]:
    """``column: meaning`` lines for the columns of ``frame`` that have a note."""
    return [f"{c}: {COLUMN_NOTES[c]}" for c in frame.columns if c in COLUMN_NOTES]


def sampling_advice(table: pd.DataFrame, fit: PalmFit) -> list[str]:
    """Plain-words warnings about poorly sampled curves, with the change that would help."""
    lines = []
    divergent = table[table["divergences"] > 0]
    if len(divergent):
        accept = float(json.loads(fit.idata.posterior.attrs["sampler"])["target_accept"])
        higher = 0.99 if accept < 0.99 else 0.995
        what = "the pooled fit" if fit.hierarchy else f"{len(divergent)} curve(s)"
        lines.append(
            f"{what} had divergent transitions: the sampler met curvature it could not follow, "
            f"so intervals may be off; refit with --target-accept {higher} (now {accept:g})"
        )
    slow = table[table["r_hat_max"] > 1.01]
    if len(slow):
        lines.append(
            f"{len(slow)} curve(s) have r_hat above 1.01 (chains disagree): refit with more "
            f"--draws and --tune (now {fit.idata.posterior.sizes['draw']})"
        )
    note = prior_seed_note(fit)
    if note:
        lines.append(note)
    return lines


def prior_seed_note(fit: PalmFit) -> str | None:
    """A note when the curves have many more seeds than the pilots the prior was learned on.

    On al_runner curves with 10 seeds, the shipped prior (learned from 3-seed LCDB pilots) gave
    90% forecast bands that covered 1.00 and under-confident P(A beats B); with 3 seeds 0.70-0.93.
    On LCDB itself the learned scale hardly depends on the seed count, and priors learned
    from a few AL datasets transferred badly to another one, so the note only says how to
    read the answers.
    """
    prior = fit.curve_prior
    learned_on = prior.meta.get("pilot_seeds")
    if prior.seed_scale is not None or not isinstance(learned_on, int):
        return None  # the prior's scale follows the seed count (or learned on all seeds)
    if "seed" not in fit.curves.dims:
        return None
    seeds = fit.curves["accuracy"].notnull().sum("seed")
    typical = float(seeds.where(seeds > 0).median())
    if typical <= 2 * learned_on:
        return None
    return (
        f"the curve prior was learned from {learned_on}-seed pilots and these curves have "
        f"{typical:.0f} seeds per budget: on AL curves measured this precisely its forecast "
        "bands and P(A beats B) were wider (less confident) than needed, so read them as "
        "conservative"
    )
