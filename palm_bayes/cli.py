"""The ``palm`` command: fit curves, then query the saved fit. Thin: it parses and prints."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from palm_bayes.errors import PalmInputError

if TYPE_CHECKING:
    import pandas as pd

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


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


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
    from palm_bayes.fit import PalmFit

    path = Path(folder)
    path = path / FIT_FILE if path.is_dir() else path
    if not path.exists():
        raise PalmInputError(f"no fit at {path}; run `palm fit CURVES --out DIR` first")
    return PalmFit.from_netcdf(path)


def _emit(frame: pd.DataFrame, as_json: bool, title: str, notes: bool = True) -> None:
    from palm_bayes.tables import column_notes, tidy

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


def _cmd_fit(args: argparse.Namespace) -> None:
    import palm_bayes as pb
    from palm_bayes.io_utils import atomic_folder, check_writable_folder
    from palm_bayes.plots import plot_fit

    out = Path(args.out)
    try:
        check_writable_folder(out, FIT_FILE)
    except ValueError as err:
        raise PalmInputError(f"--out: {err}") from None
    lsq_init = _parse_pairs(args.lsq_init, "--lsq-init")
    lsq_bounds = _parse_bounds(args.lsq_bounds)
    for name in [*lsq_init, *lsq_bounds]:
        if name not in ("A_max", "delta", "alpha", "beta"):
            raise PalmInputError(f"--lsq-init/--lsq-bounds: unknown PALM parameter {name!r}")
    curves = pb.load_curves(
        args.curves, labels_per_round=args.labels_per_round, percent=args.percent
    )
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
    table = _fit_table(fit)
    _emit(table, args.json, f"PALM posterior (mean and 90% HDI) per curve, written to {out}/")
    from palm_bayes.tables import sampling_advice

    for line in sampling_advice(table, fit):
        print(f"warning: {line}", file=sys.stderr)


def _cmd_learn_prior(args: argparse.Namespace) -> None:
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


def _cmd_forecast(args: argparse.Namespace) -> None:
    fit = _load_fit(args.dir)
    fc = fit.forecast(
        args.budget,
        hdi_prob=args.hdi,
        kind="predictive" if args.predictive else "expected",
        new=args.new,
    )
    frame = fc.to_dataframe().reset_index().dropna(subset=["median"])
    _emit(frame, args.json, f"Forecast accuracy ({args.hdi:.0%} HDI){_on_new(args)}")


def _cmd_compare(args: argparse.Namespace) -> None:
    fit = _load_fit(args.dir)
    a, b = _parse_selection(args.a, fit), _parse_selection(args.b, fit)
    p = fit.prob_better(a, b, args.budget, new=args.new)
    frame = p.to_dataframe().reset_index().dropna(subset=["prob_better"])
    _emit(frame, args.json, f"P({args.a} beats {args.b}){_on_new(args)}")


def _cmd_labels_needed(args: argparse.Namespace) -> None:
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


def _cmd_compare_models(args: argparse.Namespace) -> None:
    import palm_bayes as pb

    fits = {folder: _load_fit(folder) for folder in args.dirs}
    table = pb.compare_models(fits)
    note = table.attrs.get("note")
    table = table.reset_index().rename(columns={"index": "fit"})
    _emit(table, args.json, "PSIS-LOO model comparison (best first)")
    if note and not args.json:
        print(note)


def _cmd_advise(args: argparse.Namespace) -> None:
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
            from palm_bayes.contract import truncate

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
        from palm_bayes.advise import alda_least_squares

        attrs = advice.table.attrs
        lsq = pb.fit_least_squares(fit.curves)
        reference = alda_least_squares(
            lsq, attrs["target"], attrs["target_tolerance"],
            attrs["cost_tolerance"],
        )  # fmt: skip
        if args.alda_csv:
            from palm_bayes.reference import write_alda_csv

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


def _cmd_report(args: argparse.Namespace) -> None:
    from palm_bayes.report import write_report

    fit = _load_fit(args.dir)
    out = Path(args.out) if args.out else Path(args.dir) / "report.html"
    print(write_report(fit, out, target=args.target, budgets=args.budget, reference=args.reference))


def _cmd_plot(args: argparse.Namespace) -> None:
    from palm_bayes.plots import plot_fit

    fit = _load_fit(args.dir)
    out = Path(args.out) if args.out else Path(args.dir) / "fit.png"
    plot_fit(fit).savefig(out, dpi=110)
    print(out)


def _cmd_phases(args: argparse.Namespace) -> None:
    from palm_bayes.io_utils import check_writable_folder
    from palm_bayes.phases import PHASES_FILE, phases

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


def _cmd_schedule(args: argparse.Namespace) -> None:
    from palm_bayes.schedule import schedule

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
    if args.json:
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``palm``."""
    parser = argparse.ArgumentParser(
        prog="palm",
        description="Bayesian PALM: forecast AL curves, compare strategies, "
        "estimate labels needed.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fit", help="fit PALM to curves and save the posterior")
    p.add_argument("curves", help="curves: .csv, .nc or a PALM run folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed of the sampler (0)")
    p.add_argument(
        "--draws", type=int, default=None, help="kept draws per chain (1000; 2000 with --hierarchy)"
    )
    p.add_argument("--tune", type=int, default=None, help="tuning draws per chain (as --draws)")
    p.add_argument("--chains", type=int, default=4, help="Markov chains (4)")
    p.add_argument(
        "--target-accept",
        type=float,
        default=None,
        help="NUTS target acceptance (0.99; pooled: 0.98 below 50 curves, else 0.95): raise "
        "it when the fit reports divergent transitions",
    )
    p.add_argument(
        "--labels-per-round",
        type=_positive_float,
        default=None,
        help="b, labels per round (default: from the data)",
    )
    scale = p.add_mutually_exclusive_group()
    scale.add_argument(
        "--percent",
        dest="percent",
        action="store_const",
        const=True,
        default=None,
        help="accuracies are percentages (default: decided per curve, mixed curves refused)",
    )
    scale.add_argument(
        "--fraction",
        dest="percent",
        action="store_const",
        const=False,
        help="accuracies are fractions in [0, 1]",
    )
    p.add_argument(
        "--hierarchy",
        default=None,
        metavar="DIMS",
        help="pool curves over these id dims, e.g. strategy or strategy,dataset",
    )
    p.add_argument(
        "--prior",
        action="append",
        default=[],
        metavar="NAME.FIELD=VALUE",
        help="override a prior, e.g. logit_headroom.mu=0.5 (repeatable)",
    )
    p.add_argument(
        "--prior-file",
        default=None,
        metavar="FILE",
        help="curve prior for forecasts beyond the data: a file from `palm learn-prior`, or "
        "'brownian' for the fixed random walk (default: the prior learned from LCDB)",
    )
    p.add_argument(
        "--lsq-init",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="start value of the least-squares fit (least_squares.csv), e.g. delta=0.5 "
        "(repeatable; the reference's --init_*)",
    )
    p.add_argument(
        "--lsq-bounds",
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH",
        help="bounds of the least-squares fit, e.g. alpha=-5:5 or beta=0:3 (repeatable; the "
        "reference's --alpha_lo/--alpha_hi/--beta_hi)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the table as JSON records")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser(
        "learn-prior", help="learn how curves leave the PALM form from fully observed curves"
    )
    p.add_argument("curves", help="library of fully observed curves: .csv, .nc or a run folder")
    p.add_argument("--out", required=True, help="prior file to write (.json)")
    p.add_argument(
        "--cuts", type=float, nargs="+", default=[0.1, 0.2, 0.4], help="pilot lengths (fractions)"
    )
    p.add_argument(
        "--pilot-seeds",
        type=int,
        nargs="+",
        default=[3],
        help="seeds per pilot (0: all); several (e.g. 3 0) make the scale follow the seed count",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_learn_prior)

    p = sub.add_parser("forecast", help="accuracy at budgets, with an HDI")
    p.add_argument("dir", help="a fit folder written by `palm fit`")
    p.add_argument("--budget", type=float, nargs="+", required=True, help="label budgets")
    p.add_argument("--hdi", type=float, default=0.9, help="interval probability (0.9)")
    p.add_argument("--predictive", action="store_true", help="a new single run, not the mean")
    p.add_argument(
        "--new", default=None, metavar="DIM", help="for a new member of DIM (pooled fits)"
    )
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(func=_cmd_forecast)

    p = sub.add_parser("compare", help="P(a beats b) at budgets")
    p.add_argument("dir", help="a fit folder written by `palm fit`")
    p.add_argument("--a", required=True, help="e.g. strategy=typiclust")
    p.add_argument("--b", required=True, help="e.g. strategy=random")
    p.add_argument("--budget", type=float, nargs="+", required=True, help="label budgets")
    p.add_argument(
        "--new", default=None, metavar="DIM", help="for a new member of DIM (pooled fits)"
    )
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("labels-needed", help="labels to reach a target accuracy")
    p.add_argument("dir", help="a fit folder written by `palm fit`")
    p.add_argument("--target", type=float, required=True, help="target accuracy")
    p.add_argument("--hdi", type=float, default=0.9, help="interval probability (0.9)")
    p.add_argument(
        "--max-budget",
        type=_positive_float,
        default=None,
        help="search horizon in labels (default: 100x the last observed budget)",
    )
    p.add_argument(
        "--new", default=None, metavar="DIM", help="for a new member of DIM (pooled fits)"
    )
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(func=_cmd_labels_needed)

    p = sub.add_parser("compare-models", help="rank fits of the same curves by PSIS-LOO")
    p.add_argument("dirs", nargs="+", help="fit folders (e.g. independent and pooled)")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(func=_cmd_compare_models)

    p = sub.add_parser("advise", help="which strategy to continue with, with probabilities")
    p.add_argument("source", help="a fit folder, or curves (.csv/.nc/run folder) to fit")
    p.add_argument(
        "--target", type=float, required=True, help="target accuracy (fraction, or percent > 1)"
    )
    p.add_argument(
        "--rule",
        choices=["cheapest", "alda"],
        default="cheapest",
        help="cheapest: fewest labels to the target; alda: the reference advisor's rule "
        "(smallest window W among the cost-competitive), per posterior draw",
    )
    p.add_argument(
        "--tolerance", type=float, default=None, help="dtau of the window W (0.01; alda: 0.05)"
    )
    p.add_argument(
        "--cost-tolerance",
        "--eta",
        dest="cost_tolerance",
        type=float,
        default=None,
        help="relative cost tolerance, the reference's eta (0.10; alda: 0.05)",
    )
    p.add_argument(
        "--max-budget",
        type=_positive_float,
        default=None,
        help="search horizon in labels (default: 100x the last observed budget)",
    )
    p.add_argument("--reference", default="random", help="count labels saved against it")
    p.add_argument("--threshold", type=float, default=0.7, help="P(cheapest) to recommend")
    p.add_argument("--max-points", type=int, default=None, help="advise from the first N rounds")
    p.add_argument(
        "--labels-per-round",
        type=_positive_float,
        default=None,
        help="labels per round, for run folders that store episode indices or no budgets",
    )
    p.add_argument(
        "--alda-csv",
        default=None,
        metavar="DIR",
        help="with --rule alda: write ALDA's alda_fits.csv and alda_advice.csv (reference "
        "columns from least squares, plus the posterior's probabilities) into DIR",
    )
    p.add_argument("--crossover", default=None, metavar="A,B", help="budget where B overtakes A")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(func=_cmd_advise)

    p = sub.add_parser("report", help="one self-contained HTML report of a fit")
    p.add_argument("dir", help="a fit folder written by `palm fit`")
    p.add_argument("--out", default=None, help="default DIR/report.html")
    p.add_argument(
        "--target", type=float, default=None, help="target accuracy (default: from the data)"
    )
    p.add_argument("--budget", type=float, nargs="+", default=None, help="win-matrix budgets")
    p.add_argument("--reference", default="random", help="strategy to compare against")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("plot", help="data, posterior band and least squares as a PNG")
    p.add_argument("dir", help="a fit folder written by `palm fit`")
    p.add_argument("--out", default=None, help="PNG to write (default DIR/fit.png)")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("phases", help="phase boundaries of AL curves from their recorded proxies")
    p.add_argument(
        "curves",
        help="al-runner curves (.nc) with proxies, a long .csv, or the reference's "
        "mechanistic_proxy_records.csv",
    )
    p.add_argument("--dataset", default=None, help="dataset to analyse (when several)")
    p.add_argument(
        "--proxies", nargs="+", default=None, help="proxy columns (default: all recorded)"
    )
    p.add_argument("--max-boundaries", type=int, default=3, help="most boundaries tried")
    p.add_argument(
        "--min-segment-points",
        type=int,
        default=8,
        help="fewest pooled records (strategy x budget) in a phase",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the posterior draws")
    p.add_argument("--out", default=None, help="folder for the JSON/CSV files and phases.png")
    p.add_argument("--json", action="store_true", help="print the analysis as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_phases)

    p = sub.add_parser(
        "schedule", help="switch budgets of a strategy schedule, from a fit's posterior curves"
    )
    p.add_argument("dir", help="a fit folder written by `palm fit` (a pilot is enough)")
    p.add_argument(
        "--candidates", nargs="+", required=True, help="strategies in the order they run"
    )
    p.add_argument(
        "--objective",
        choices=["aubc", "labels_to_target"],
        default="aubc",
        help="maximise the mean accuracy over the range, or minimise labels to --target",
    )
    p.add_argument("--target", type=float, default=None, help="target accuracy")
    p.add_argument(
        "--budget-range",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="budgets to plan over (default: the observed range)",
    )
    p.add_argument("--round-to", type=int, default=1, help="round switches to this (labels/round)")
    p.add_argument(
        "--switches",
        type=float,
        nargs="+",
        default=None,
        help="fixed switch budgets (e.g. phase boundaries): predict that schedule only",
    )
    p.add_argument(
        "--where", nargs="+", default=None, help="DIM=VALUE selections (dataset, embedding)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the extrapolation draws")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_schedule)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``palm``; returns the exit code (2 for bad input, with a one-line message)."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except PalmInputError as exc:
        print(f"palm: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
