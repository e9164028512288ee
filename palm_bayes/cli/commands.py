"""The ``palm`` command's handlers: each reads its parsed arguments, queries and prints.

:mod:`palm_bayes.cli` builds the parser and dispatches here. Heavy modules (PyMC, ArviZ,
xarray) are imported inside the handlers, so ``palm --help`` starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from palm_bayes.errors import EarlySamplingWarning, PalmInputError, SamplingWarning

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FIT_FILE",
    "cmd_advise",
    "cmd_compare",
    "cmd_compare_models",
    "cmd_export_palm",
    "cmd_fit",
    "cmd_forecast",
    "cmd_labels_needed",
    "cmd_learn_prior",
    "cmd_phases",
    "cmd_plot",
    "cmd_report",
    "cmd_schedule",
    "cmd_speedup",
    "cmd_stop",
]

FIT_FILE = "fit.nc"


def _parse_selection(text: str, fit) -> dict[str, Any]:
    """``"strategy=x,dataset=y"`` -> ``{"strategy": "x", "dataset": "y"}`` with coord dtypes."""
    import numpy as np

    selection: dict[str, Any] = {}
    for part in filter(None, text.split(",")):
        dim, sep, label = part.partition("=")
        if not sep:
            raise PalmInputError(
                f"selection {part!r} must look like dim=label, e.g. strategy=random"
            )
        dim = dim.strip()
        coord = fit.idata.posterior[dim] if dim in fit.idata.posterior.dims else None
        value: Any = label.strip()
        if coord is not None and np.issubdtype(coord.dtype, np.integer):
            try:
                value = int(value)
            except ValueError as exc:
                raise PalmInputError(f"{dim} labels are integers, got {value!r}") from exc
        selection[dim] = value
    return selection


def _parse_priors(items: Sequence[str]) -> dict[str, dict[str, float]]:
    priors: dict[str, dict[str, float]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        name, dot, field = key.partition(".")
        if not (sep and dot):
            raise PalmInputError(
                f"--prior {item!r} must look like NAME.FIELD=VALUE, e.g. noise.sigma=0.02"
            )
        try:
            priors.setdefault(name, {})[field] = float(value)
        except ValueError as exc:
            raise PalmInputError(f"--prior {item!r}: {value!r} is not a number") from exc
    return priors


def _parse_pairs(items: Sequence[str], flag: str) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise PalmInputError(f"{flag} {item!r} must look like NAME=NUMBER, e.g. delta=0.5")
    return out


def _parse_bounds(items: Sequence[str]) -> dict[str, tuple[float, float]]:
    out = {}
    for item in items:
        name, _, text = item.partition("=")
        lo, sep, hi = text.partition(":")
        try:
            out[name.strip()] = (float(lo), float(hi))
        except ValueError:
            sep = ""
        if not sep:
            raise PalmInputError(f"--lsq-bounds {item!r} must look like NAME=LOW:HIGH")
    return out


def _load_fit(folder: str):
    from palm_bayes.palm_fit import PalmFit

    path = Path(folder)
    path = path / FIT_FILE if path.is_dir() else path
    if not path.exists():
        raise PalmInputError(f"no fit at {path}; run `palm fit CURVES --out DIR` first")
    return PalmFit.from_netcdf(path)


def _emit(frame: pd.DataFrame, as_json: bool, title: str, notes: bool = True) -> None:
    from palm_bayes.report.tables import column_notes, tidy

    if as_json:
        hidden = tidy(frame.head(1)).columns
        print(frame[[c for c in frame.columns if c in hidden]].to_json(orient="records"))
        return
    print(title)
    print(tidy(frame).to_string(index=False))
    if notes and (lines := column_notes(frame)):
        print("  " + "\n  ".join(lines))


def _fit_table(fit) -> pd.DataFrame:
    summary = fit.summary()
    diag = fit.diagnostics()
    frame = diag[["r_hat_max", "divergences"]].to_dataframe()
    for name in ("A_max", "delta", "alpha", "beta"):
        s = summary.sel(parameter=name)
        frame[name] = s["mean"].to_series()
        frame[f"{name}_hdi"] = [
            f"[{lo:.3g}, {hi:.3g}]"
            for lo, hi in zip(s["lower"].to_series(), s["upper"].to_series(), strict=True)
        ]
    frame = frame.dropna(subset=["r_hat_max"]).reset_index()
    cols = [c for c in frame.columns if c not in ("r_hat_max", "divergences")]
    return frame[cols + ["r_hat_max", "divergences"]]


def cmd_fit(args: argparse.Namespace) -> None:
    """``palm fit``: fit PALM to curves and save the posterior folder (one writer per --out)."""
    from palm_bayes.data.files import check_writable_folder
    from palm_bayes.data.outlock import exclusive_output

    out = Path(args.out)
    try:
        check_writable_folder(out, FIT_FILE)
    except ValueError as err:
        raise PalmInputError(f"--out: {err}") from None
    with exclusive_output(out):
        _fit_into(args, out)


def _fit_into(args: argparse.Namespace, out: Path) -> None:
    """The body of ``palm fit`` (run while holding the lock of ``out``)."""
    import palm_bayes as pb
    from palm_bayes.data.files import atomic_folder
    from palm_bayes.report.figures import plot_fit

    lsq_init = _parse_pairs(args.lsq_init, "--lsq-init")
    lsq_bounds = _parse_bounds(args.lsq_bounds)
    for name in [*lsq_init, *lsq_bounds]:
        if name not in ("A_max", "delta", "alpha", "beta"):
            raise PalmInputError(f"--lsq-init/--lsq-bounds: unknown PALM parameter {name!r}")
    curves = pb.load_curves(
        args.curves, labels_per_round=args.labels_per_round, percent=args.percent
    )
    with warnings.catch_warnings():  # the same advice is printed below the table
        warnings.simplefilter("ignore", SamplingWarning)
        warnings.simplefilter("default", EarlySamplingWarning)  # said while it samples
        fit = pb.fit(
            curves,
            hierarchy=args.hierarchy,
            priors=_parse_priors(args.prior),
            prior=args.prior_file,
            seed=args.seed,
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            target_accept=args.target_accept,
            progress=not args.quiet,
            method=getattr(args, "method", None),
            workers=getattr(args, "workers", None),
        )
    lsq = pb.fit_least_squares(
        curves,
        init=_parse_pairs(args.lsq_init, "--lsq-init"),
        bounds=_parse_bounds(args.lsq_bounds),
    )
    # every file goes into a temporary folder that replaces --out in one step: a kill at
    # any moment leaves the complete old fit or the complete new one, never a mix
    with atomic_folder(out) as tmp:
        pb.save_curves(curves, tmp / "curves.nc")
        lsq.to_dataframe().reset_index().dropna(subset=["b"]).to_csv(
            tmp / "least_squares.csv", index=False
        )
        fit.summary().to_dataframe().reset_index().dropna(subset=["mean"]).to_csv(
            tmp / "summary.csv", index=False
        )
        plot_fit(fit, lsq=lsq).savefig(tmp / "fit.png", dpi=110)
        fit.to_netcdf(tmp / FIT_FILE)  # last: its presence marks a complete folder
    if args.palm_output:
        _write_palm_outputs(args.palm_output, curves, lsq, fit, args.percent)
    table = _fit_table(fit)
    _emit(table, args.json, f"PALM posterior (mean and 90% HDI) per curve, written to {out}/")
    from palm_bayes.report.tables import sampling_advice

    for line in sampling_advice(table, fit):
        print(f"warning: {line}", file=sys.stderr)
    if not args.json:
        calibration = fit.self_calibration
        print("self-calibration: " + ("off" if calibration is None else calibration.describe()))


def cmd_learn_prior(args: argparse.Namespace) -> None:
    """``palm learn-prior``: learn a curve prior from fully observed curves."""
    import palm_bayes as pb

    if any(not 0 < c < 1 for c in args.cuts):
        raise PalmInputError(f"--cuts are fractions of the final budget in (0, 1), got {args.cuts}")
    prior = pb.learn_prior(
        args.curves,
        cuts=args.cuts,
        pilot_seeds=[k or None for k in args.pilot_seeds]
        if len(args.pilot_seeds) > 1
        else (args.pilot_seeds[0] or None),
        seed=args.seed,
        source=str(args.curves),
        progress=not args.quiet,
    )
    prior.save(args.out)
    print(f"{prior}, written to {args.out}")
    print(prior.summary().round(3).to_string())


def cmd_forecast(args: argparse.Namespace) -> None:
    """``palm forecast``: accuracy forecasts with intervals."""
    fit = _load_fit(args.dir)
    fc = fit.forecast(
        args.budget,
        hdi_prob=args.hdi,
        kind="predictive" if args.predictive else "expected",
        new=args.new,
    )
    frame = fc.to_dataframe().reset_index().dropna(subset=["median"])
    _emit(frame, args.json, f"Forecast accuracy ({args.hdi:.0%} HDI){_on_new(args)}")


def cmd_compare(args: argparse.Namespace) -> None:
    """``palm compare``: P(A beats B) at budgets."""
    fit = _load_fit(args.dir)
    a, b = _parse_selection(args.a, fit), _parse_selection(args.b, fit)
    p = fit.prob_better(a, b, args.budget, new=args.new)
    frame = p.to_dataframe().reset_index().dropna(subset=["prob_better"])
    frame = _with_decided_span(fit, frame, a, b, args.new)
    _emit(frame, args.json, f"P({args.a} beats {args.b}){_on_new(args)}")


def _with_decided_span(fit, frame: pd.DataFrame, a: dict, b: dict, new) -> pd.DataFrame:
    """Add ``decided_up_to`` when ``a`` and ``b`` pick labels of one and the same dim."""
    if new is not None or len(a) != 1 or a.keys() != b.keys():
        return frame
    (dim,) = a
    if fit.idata.posterior.sizes.get(dim, 0) < 2:
        return frame
    span = fit.decided_up_to(dim=dim).sel({dim: a[dim], "opponent": b[dim]}, drop=True)
    others = [d for d in span.dims if d in frame.columns]
    values = span.to_dataframe().reset_index()
    if not others:
        return frame.assign(decided_up_to=float(span))
    return frame.merge(values[[*others, "decided_up_to"]], on=others, how="left")


def cmd_labels_needed(args: argparse.Namespace) -> None:
    """``palm labels-needed``: labels to reach a target accuracy."""
    fit = _load_fit(args.dir)
    out = fit.labels_needed(
        args.target, hdi_prob=args.hdi, max_budget=args.max_budget, new=args.new
    )
    frame = out.to_dataframe().reset_index().dropna(subset=["p_reachable"])
    _emit(
        frame,
        args.json,
        f"Labels needed for accuracy {args.target} ({args.hdi:.0%} interval; inf = not reached)"
        + _on_new(args),
    )


def _on_new(args: argparse.Namespace) -> str:
    return f", on a new {args.new}" if args.new else ""


def cmd_compare_models(args: argparse.Namespace) -> None:
    """``palm compare-models``: PSIS-LOO comparison of saved fits."""
    import palm_bayes as pb

    fits = {folder: _load_fit(folder) for folder in args.dirs}
    table = pb.compare_models(fits)
    note = table.attrs.get("note")
    table = table.reset_index().rename(columns={"index": "fit"})
    _emit(table, args.json, "PSIS-LOO model comparison (best first)")
    if note and not args.json:
        print(note)


def cmd_advise(args: argparse.Namespace) -> None:
    """``palm advise``: which strategy to continue with."""
    import palm_bayes as pb

    if args.alda_csv and args.rule != "alda":
        raise PalmInputError("--alda-csv writes ALDA's files: use it with --rule alda")
    source = Path(args.source)
    if args.max_points is None and (source / FIT_FILE).is_file():
        fit = _load_fit(args.source)
    else:
        # a fit folder's curves, or any curves input; refit (on the first rounds only with
        # --max-points, replaying a pilot)
        curves_path = source / "curves.nc" if (source / FIT_FILE).is_file() else source
        curves = full = pb.load_curves(curves_path, labels_per_round=args.labels_per_round)
        if args.max_points is not None:
            if args.max_points < 4:
                raise PalmInputError(f"--max-points must be at least 4, got {args.max_points}")
            from palm_bayes.data.contract import truncate

            names = ["budget", "accuracy"] + (["n_test"] if "n_test" in full else [])
            curves = truncate(full[names], steps=args.max_points).dropna("step", how="all")
        fit = pb.fit(curves, seed=args.seed, progress=not args.quiet)
    advice = fit.advise(
        args.target,
        rule=args.rule,
        target_tolerance=args.tolerance,
        cost_tolerance=args.cost_tolerance,
        max_budget=args.max_budget,
        reference=args.reference,
        threshold=args.threshold,
    )
    import pandas as pd

    table = advice.table.to_dataframe().reset_index().dropna(subset=["p_reachable"])
    if args.json:
        print(
            pd.DataFrame(advice.recommendation)
            .assign(table=[table.to_dict(orient="records")] * len(advice.recommendation))
            .to_json(orient="records")
        )
        return
    _emit(table, False, f"Advice for target accuracy {args.target}")
    if args.crossover:
        a, b = args.crossover.split(",")
        cross = fit.crossover(a.strip(), b.strip(), max_budget=args.max_budget)
        _emit(
            cross.to_dataframe().reset_index(),
            False,
            f"Budget at which {b.strip()} overtakes {a.strip()} (90% interval)",
        )
    print()
    print("\n".join(advice.recommendation["reason"]))
    if args.rule == "alda":
        from palm_bayes.decisions.advise import alda_least_squares

        attrs = advice.table.attrs
        lsq = pb.fit_least_squares(fit.curves)
        reference = alda_least_squares(
            lsq, attrs["target"], attrs["target_tolerance"],
            attrs["cost_tolerance"],
        )  # fmt: skip
        if args.alda_csv:
            from palm_bayes.data.reference import write_alda_csv

            for path in write_alda_csv(args.alda_csv, reference, lsq, advice):
                print(f"wrote {path}")
        picks = reference[reference["selected"]]
        shown = [c for c in picks.columns if c not in ("selected", "cost_competitive", "risky")]
        _emit(
            picks[shown],
            False,
            "\nThe reference advisor's answer (ALDA on least-squares fits, one point estimate):",
            notes=False,
        )


def cmd_report(args: argparse.Namespace) -> None:
    """``palm report``: the HTML report of a fit."""
    from palm_bayes.report.html import write_report

    fit = _load_fit(args.dir)
    out = Path(args.out) if args.out else Path(args.dir) / "report.html"
    print(write_report(fit, out, target=args.target, budgets=args.budget, reference=args.reference))


def cmd_plot(args: argparse.Namespace) -> None:
    """``palm plot``: the figure of a fit."""
    from palm_bayes.report.figures import plot_fit

    fit = _load_fit(args.dir)
    out = Path(args.out) if args.out else Path(args.dir) / "fit.png"
    plot_fit(fit).savefig(out, dpi=110)
    print(out)


def cmd_phases(args: argparse.Namespace) -> None:
    """``palm phases``: phase boundaries from the proxies."""
    from palm_bayes.data.files import check_writable_folder
    from palm_bayes.phase_analysis.analysis import PHASES_FILE, phases

    if args.out:
        try:
            check_writable_folder(args.out, PHASES_FILE)
        except ValueError as err:
            raise PalmInputError(f"--out: {err}") from None
    result = phases(
        args.curves,
        max_boundaries=args.max_boundaries,
        proxies=args.proxies,
        dataset=args.dataset,
        min_segment_points=args.min_segment_points,
        standardise=args.standardise,
        seed=args.seed,
        progress=not args.quiet,
    )
    bounds = result.boundaries()
    if args.json:
        print(json.dumps(result.reference_json()))
    else:
        k = result.n_boundaries
        print(f"{k + 1} phase(s); boundaries = first budget of a new phase (posterior median)")
        print("and a 90% credible interval (low, high]: the phase changes after low, by high")
        print(bounds.to_string(index=False) if k else "  (no boundary: one phase)")
        print("\nPSIS-LOO by number of boundaries (the best is kept)")
        print(result.loo[["elpd_loo", "se", "elpd_diff", "dse", "log_evidence"]].round(2))
        dp = result.baseline["breakpoints"]
        print(f"reference DP + BIC breakpoints: {[round(b, 1) for b in dp] or 'none'}")
        for note in result.notes:
            print(f"note: {note}")
    if args.out:
        print(result.write(args.out))


def cmd_schedule(args: argparse.Namespace) -> None:
    """``palm schedule``: switch budgets of a strategy schedule."""
    from palm_bayes.decisions.schedule import schedule

    fit = _load_fit(args.dir)
    plan = schedule(
        fit,
        args.candidates,
        objective=args.objective,
        target=args.target,
        budget_range=tuple(args.budget_range) if args.budget_range else None,
        where=_parse_where(args.where),
        round_to=args.round_to,
        switches=args.switches,
        seed=args.seed,
    )
    if isinstance(args.json, str):
        _write_schedule_file(plan, args.json)
    elif args.json:
        print(
            json.dumps(
                {
                    "schedule": plan.spec,
                    "stages": plan.stages,
                    "best_single": plan.best_single,
                    "gain": plan.gain,
                    "p_beats_best_single": plan.p_beats_best_single,
                    "budget_range": plan.budget_range,
                }
            )
        )
        return
    print(plan.describe())
    print(f"run it: al-runner run ... --strategies '{plan.spec}'")
    label = "mean accuracy over the range" if args.objective == "aubc" else "labels to target"
    print(f"\nposterior {label} (median, mean or P(reached)):")
    print(plan.table.round(4).to_string(index=False))


def _parse_where(items: Sequence[str] | None) -> dict[str, str]:
    where = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise PalmInputError(f"--where takes DIM=VALUE, got {item!r}")
        where[key] = value
    return where


def _write_schedule_file(plan, path: str) -> None:
    """``palm schedule --json FILE``: the plan as a mechanistic-hard-switch-v1 file."""
    from palm_bayes.decisions.schedule_file import reference_compatible, write_schedule_json

    print(
        f"wrote {write_schedule_json(plan, path)} (run it: al-runner run ... --strategies @{path})"
    )
    if not reference_compatible(plan.stages):
        print(
            f"note: the reference's hard_switch runs typiclust>coreset>uncertainty at two "
            f"thresholds whatever the file's stages say; {plan.spec} runs as written in "
            "al-runner only",
            file=sys.stderr,
        )


def _write_palm_outputs(folder, curves, lsq, fit, percent, model=None) -> None:
    from palm_bayes.report.palm_outputs import posterior_medians, write_palm_outputs

    written = write_palm_outputs(
        folder, curves, lsq, posterior_medians(fit.idata), percent=percent, model=model
    )
    print(f"wrote {len(written)} PALM.py output folder(s) into {folder}/")


def cmd_export_palm(args: argparse.Namespace) -> None:
    """``palm export-palm``: a fit folder as the reference PALM.py's output folders."""
    import palm_bayes as pb

    fit = _load_fit(args.dir)
    source = Path(args.dir)
    curves = (
        pb.load_curves(source / "curves.nc") if (source / "curves.nc").is_file() else fit.curves
    )
    lsq = _read_least_squares(source / "least_squares.csv", fit)
    if lsq is None:
        lsq = pb.fit_least_squares(curves)
    _write_palm_outputs(args.out, curves, lsq, fit, args.percent, args.model)


def _read_least_squares(path: Path, fit):
    """``least_squares.csv`` of a fit folder as the Dataset of ``fit_least_squares`` (or None)."""
    import pandas as pd

    if not path.is_file():
        return None
    dims = list(fit.curve_dims)
    frame = pd.read_csv(path, dtype={d: str for d in dims})
    if not set(dims) <= set(frame.columns):
        return None
    return frame.set_index(dims).to_xarray()


def cmd_speedup(args: argparse.Namespace) -> None:
    """``palm speedup``: the speed-up factor of every strategy against a reference."""
    fit = _load_fit(args.dir)
    out = fit.speedup(
        args.reference,
        accuracy=args.accuracy,
        budgets=args.budget,
        budget_range=tuple(args.budget_range) if args.budget_range else None,
        hdi_prob=args.hdi,
    )
    frame = out.to_dataframe().reset_index().dropna(subset=["p_defined"])
    where = (
        "per accuracy level"
        if args.accuracy
        else "per reference budget"
        if args.budget
        else "over the budget range {:g}-{:g} (geometric mean)".format(
            *(args.budget_range or _observed_range(fit))
        )
    )
    _emit(
        frame,
        args.json,
        f"Speed-up factor: labels needed / {args.reference}'s labels for the same accuracy, "
        f"{where} (median, {args.hdi:.0%} interval; < 1 is faster)",
    )


def _observed_range(fit) -> tuple[float, float]:
    const = fit.idata.constant_data
    return float(const["first_budget"].min()), float(const["last_budget"].max())


def cmd_stop(args: argparse.Namespace) -> None:
    """``palm stop``: stop, continue or switch, per strategy."""
    fit = _load_fit(args.dir)
    out = fit.stop(
        target=args.target,
        cost_per_label=args.cost_per_label,
        value_per_point=args.value_per_point,
        rounds_ahead=tuple(args.rounds_ahead),
        epsilon=args.epsilon,
        budget=args.budget,
        threshold=args.threshold,
        tolerance=args.tolerance,
        gain_risk=args.gain_risk,
        seed=args.seed,
    )
    from palm_bayes.decisions.stop import stop_table

    frame = stop_table(out)
    unit = "cost" if out.attrs["cost_model"] else "accuracy"
    _emit(
        frame,
        args.json,
        f"Stop, continue or switch (utility in {unit} units; gains over the next rounds, "
        f"{out.attrs['hdi_prob']:.0%} interval)",
        notes=False,
    )
