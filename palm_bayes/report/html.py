"""One self-contained HTML report of a fit: curves, who beats whom, labels needed, parameters.

Images are embedded as base64 PNGs, so the file can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from palm_bayes.data.contract import atomic_write
from palm_bayes.errors import PalmInputError
from palm_bayes.palm_fit import PalmFit
from palm_bayes.report.figures import log_budget_axis, new_figure, plot_fit, plot_prob_better
from palm_bayes.report.tables import column_notes, sampling_advice, tidy

__all__ = ["write_report", "SECTIONS"]

SECTIONS = (
    "curves",
    "advice",
    "win-matrix",
    "prob-better",
    "labels-needed",
    "parameters",
    "diagnostics",
)
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
td, th { border: 1px solid #ddd; padding: .25em .5em; text-align: right; }
img { max-width: 100%; }
.warn { background: #fff3cd; padding: .6em; border-left: 4px solid #e0a800; }
.legend { font-size: .8em; color: #555; }
.ok { background: #e8f5e9; padding: .6em; border-left: 4px solid #43a047; }
"""


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _others(fit: PalmFit, dim: str) -> list[dict]:
    """Every combination of the id dims other than ``dim`` that holds a fitted curve."""
    fitted = fit.idata.constant_data["fitted"].any(dim)
    others = [d for d in fit.curve_dims if d != dim]
    frame = fitted.to_dataframe(name="ok").reset_index()
    return [{d: row[d] for d in others} for _, row in frame[frame["ok"]].iterrows()]


def _text_colour(rgba: Sequence[float]) -> str:
    """Black or white, whichever reads better on a cell of this colour (WCAG luminance)."""
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3])
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.18 else "white"


def _win_matrix_figure(fit: PalmFit, budgets: Sequence[float], dim: str) -> str:
    wins = fit.win_matrix(budgets)
    cmap = matplotlib.colormaps["RdBu_r"]
    parts = []
    for where in _others(fit, dim)[:6]:
        sub = wins.sel(where)
        names = [str(s) for s in sub[dim].to_numpy()]
        side = max(3.6, 0.55 * len(names) + 1.6)
        fig = new_figure(figsize=((side + 1.6) * len(budgets), side + 0.6), layout="constrained")
        axes = fig.subplots(1, len(budgets), squeeze=False)
        for ax, budget in zip(axes[0], budgets, strict=True):
            m = sub.sel(budget=budget).to_numpy()
            image = ax.imshow(m, vmin=0, vmax=1, cmap=cmap)
            ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
            ax.set_yticks(range(len(names)), names, fontsize=8)
            for i in range(len(names)):
                for j in range(len(names)):
                    if np.isfinite(m[i, j]):
                        ax.text(
                            j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=8,
                            color=_text_colour(cmap(m[i, j])),
                        )  # fmt: skip
            ax.set_title(f"at {budget:,.0f} labels", fontsize=9)
            ax.set_xlabel(f"column {dim}", fontsize=8)
            ax.set_ylabel(f"row {dim}", fontsize=8)
            fig.colorbar(image, ax=ax, shrink=0.8, label="P(row beats column)")
        fig.suptitle(
            "P(row beats column)" + "".join(f", {k} {v}" for k, v in _shown(fit, where).items()),
            fontsize=10,
        )
        parts.append(_png(fig))
    return "\n".join(parts)


def _shown(fit: PalmFit, labels: dict) -> dict:
    """The labels worth naming: those of dims with more than one member."""
    sizes = fit.idata.posterior.sizes
    return {k: v for k, v in labels.items() if sizes.get(k, 1) > 1}


def _forest_figure(fit: PalmFit, target: float) -> str:
    need = fit.labels_needed(target).to_dataframe().reset_index().dropna(subset=["p_reachable"])
    labels = [_curve_label(fit, {d: row[d] for d in fit.curve_dims}) for _, row in need.iterrows()]
    finite = np.concatenate([need[c].to_numpy() for c in ("lower", "median", "upper")])
    finite = finite[np.isfinite(finite)]
    right = finite.max() * 1.5 if finite.size else 1.0
    fig = new_figure(figsize=(7, 0.35 * len(need) + 1.2))
    ax = fig.subplots()
    for i, (_, row) in enumerate(need.iterrows()):
        if not np.isfinite(row["lower"]):
            ax.text(
                0.02, i, f"not reached within the horizon (P = {row['p_reachable']:.2f})",
                transform=ax.get_yaxis_transform(), va="center", fontsize=8, color="0.35",
            )  # fmt: skip
            continue
        lo = row["lower"]
        hi = row["upper"] if np.isfinite(row["upper"]) else right
        ax.plot([lo, hi], [i, i], color="tab:blue")
        if np.isfinite(row["median"]):
            ax.plot(row["median"], i, "o", color="tab:blue")
        if not np.isfinite(row["upper"]):
            ax.annotate("", xy=(right, i), xytext=(lo, i), arrowprops={"arrowstyle": "->"})
    ax.set_yticks(range(len(need)), labels, fontsize=8)
    log_budget_axis(ax)
    ax.set_xlabel(
        f"labels needed for accuracy {target:g} (median, 90% interval; arrow: may never reach)"
    )
    return _png(fig)


def _parameter_figure(fit: PalmFit) -> str:
    post = fit.idata.posterior
    fitted = fit.idata.constant_data["fitted"]
    fig = new_figure(figsize=(15, 4.2), layout="constrained")
    axes = fig.subplots(1, 4)
    stacked = fitted.stack(curve=fit.curve_dims)
    curves = [
        c for c, ok in zip(stacked["curve"].to_numpy(), stacked.to_numpy(), strict=True) if ok
    ][:12]
    for ax, name in zip(axes, ("A_max", "delta", "alpha", "beta"), strict=True):
        values = post[name].stack(curve=fit.curve_dims)
        for curve in curves:
            draws = values.sel(curve=curve).to_numpy().ravel()
            draws = draws[np.isfinite(draws)]
            lo, hi = np.quantile(draws, [0.005, 0.995])
            ax.hist(
                draws,
                bins=40,
                range=(lo, hi),
                histtype="step",
                density=True,
                label=_curve_label(fit, dict(zip(fit.curve_dims, curve, strict=True))),
            )
        ax.set_title(name)
        ax.set_yticks([])
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(4, len(names)), fontsize=8)
    return _png(fig)


def _curve_label(fit: PalmFit, labels: dict) -> str:
    return " / ".join(str(v) for v in _shown(fit, labels).values()) or "curve"


def _table_html(frame) -> str:
    """The table with whole numbers as integers and a legend of its columns."""
    notes = "".join(f"<li>{html.escape(line)}</li>" for line in column_notes(frame))
    legend = f'<ul class="legend">{notes}</ul>' if notes else ""
    return tidy(frame).to_html(index=False) + legend


def _diagnostics_html(fit: PalmFit) -> str:
    diag = fit.diagnostics().to_dataframe().reset_index().dropna(subset=["r_hat_max"])
    bad = diag[(diag["r_hat_max"] > 1.01) | (diag["divergences"] > 0)]
    if len(bad) and fit.hierarchy:
        advice = " ".join(html.escape(line[0].upper() + line[1:] + ".") for line in
                          sampling_advice(diag, fit))  # fmt: skip
        note = f'<p class="warn">The pooled fit sampled poorly: {advice}</p>'
    elif len(bad):
        advice = " ".join(html.escape(line[0].upper() + line[1:] + ".") for line in
                          sampling_advice(diag, fit))  # fmt: skip
        note = (
            f'<p class="warn">{len(bad)} of {len(diag)} curves sampled poorly: their intervals '
            f"may be wrong. {advice}</p>"
        )
    else:
        note = (
            '<p class="ok">The sampler converged for every curve (r_hat at most 1.01, no '
            "divergent transitions).</p>"
        )
    return note + _table_html(
        diag.assign(seconds=diag["seconds"].round(1), ess_bulk_min=diag["ess_bulk_min"].round())
    )


def write_report(
    fit: PalmFit,
    path: str | Path,
    *,
    target: float | None = None,
    budgets: Sequence[float] | None = None,
    reference: str = "random",
    dim: str = "strategy",
    title: str = "PALM report",
) -> Path:
    """Write the HTML report of ``fit`` to ``path`` (atomically) and return the path.

    Parameters
    ----------
    target : float, optional
        Target accuracy of the advice and the labels-needed forest plot (default: the median
        of the curves' last observed seed-mean accuracies, rounded down to 0.05).
    budgets : sequence of float, optional
        Budgets of the win matrix (default: the largest observed budget and twice it).
    reference : str
        Strategy of the P(a beats reference) plot and of the labels saved.
    """
    if dim not in fit.curve_dims:
        raise PalmInputError(
            f"unknown dimension {dim!r}; the curves are identified by {list(fit.curve_dims)}"
        )
    const = fit.idata.constant_data
    last = float(const["last_budget"].max())
    budgets = list(budgets) if budgets is not None else [last, 2 * last]
    if target is None:
        ends = fit.curves["accuracy"].mean("seed").max("step")
        target = float(np.floor(float(ends.median()) * 20) / 20)
    labels = [str(s) for s in fit.idata.posterior[dim].to_numpy()]
    sections: dict[str, tuple[str, str]] = {}
    sections["curves"] = ("Curves and posterior bands", _png(plot_fit(fit)))
    if len(labels) > 1:
        advice = fit.advise(target, reference=reference if reference in labels else None)
        reasons = "".join(f"<li>{html.escape(r)}</li>" for r in advice.recommendation["reason"])
        table = advice.table.to_dataframe().reset_index().dropna(subset=["p_reachable"])
        sections["advice"] = (
            f"Advice for target accuracy {target:g}",
            f"<ul>{reasons}</ul>" + _table_html(table),
        )
        sections["win-matrix"] = ("Who beats whom", _win_matrix_figure(fit, budgets, dim))
        ref = reference if reference in labels else labels[0]
        grid = np.geomspace(float(const["first_budget"].min()), 4 * last, 60)
        figures = [
            _png(plot_prob_better(fit, {dim: s}, {dim: ref}, grid)) for s in labels if s != ref
        ][:6]
        sections["prob-better"] = (f"P(strategy beats {ref}) against the budget", "".join(figures))
    else:
        sections["advice"] = ("Advice", "<p>One strategy only: nothing to compare.</p>")
    sections["labels-needed"] = (
        f"Labels needed for accuracy {target:g}",
        _forest_figure(fit, target),
    )
    sections["parameters"] = ("Posterior of A_max, delta, alpha, beta", _parameter_figure(fit))
    sections["diagnostics"] = ("Sampler diagnostics", _diagnostics_html(fit))
    body = "\n".join(
        f'<section id="{key}"><h2>{html.escape(name)}</h2>\n{content}</section>'
        for key, (name, content) in sections.items()
    )
    document = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(fit.describe())}. Made by palm_bayes.</p>{body}</body></html>"
    )
    return atomic_write(path, lambda tmp: Path(tmp).write_text(document, encoding="utf-8"))
