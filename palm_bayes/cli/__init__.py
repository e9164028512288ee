"""The ``palm`` command: fit curves, then query the saved fit. Thin: it parses and prints.

The handlers of the sub-commands are in :mod:`palm_bayes.cli.commands`.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Any

from palm_bayes.cli.commands import (
    cmd_advise,
    cmd_compare,
    cmd_compare_models,
    cmd_export_palm,
    cmd_fit,
    cmd_forecast,
    cmd_labels_needed,
    cmd_learn_prior,
    cmd_phases,
    cmd_plot,
    cmd_report,
    cmd_schedule,
    cmd_speedup,
    cmd_stop,
)
from palm_bayes.errors import PalmInputError


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``palm``."""
    parser = argparse.ArgumentParser(
        prog="palm",
        description="Bayesian PALM: forecast AL curves, compare strategies, "
        "estimate labels needed.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    _fit_parser(sub)
    _export_palm_parser(sub)
    _learn_prior_parser(sub)
    _forecast_parser(sub)
    _compare_parser(sub)
    _labels_needed_parser(sub)
    _speedup_parser(sub)
    _compare_models_parser(sub)
    _advise_parser(sub)
    _report_parser(sub)
    _plot_parser(sub)
    _phases_parser(sub)
    _schedule_parser(sub)
    _stop_parser(sub)
    return parser


def _fit_parser(sub: Any) -> None:
    """``palm fit``."""
    p = sub.add_parser("fit", help="fit PALM to curves and save the posterior")
    p.add_argument("curves", help="curves: .csv, .nc or a PALM run folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed of the sampler (0)")
    p.add_argument(
        "--draws", type=int, default=None, help="kept draws per chain (1000; 2000 with --hierarchy)"
    )
    p.add_argument("--tune", type=int, default=None, help="tuning draws per chain (as --draws)")
    p.add_argument("--chains", type=int, default=4, help="Markov chains (4)")
    p.add_argument("--workers", type=int, default=None, help="Ray tasks of independent fits")
    p.add_argument(
        "--target-accept",
        type=float,
        default=None,
        help="NUTS target acceptance (0.99; pooled: 0.98 below 50 curves, else 0.95): raise "
        "it when the fit reports divergent transitions",
    )
    p.add_argument(
        "--method",
        choices=("importance", "nuts", "two-stage"),
        default=None,
        help="how curves are sampled: importance (independent default: all curves at once, "
        "NUTS where the Pareto k check fails) or nuts (every curve); pooled fits: nuts "
        "(default, one joint model) or two-stage (each curve alone, then the population)",
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
    p.add_argument(
        "--palm-output",
        default=None,
        metavar="DIR",
        help="also write the reference PALM.py's output folders (palm_params.json/.csv, "
        "y_avg.npy, y_fit.npy) per curve into DIR, with the posterior medians as extra columns",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the table as JSON records")
    p.set_defaults(func=cmd_fit)


def _export_palm_parser(sub: Any) -> None:
    """``palm export-palm``."""
    p = sub.add_parser("export-palm", help="write a fit as the reference PALM.py's output folders")
    p.add_argument("dir", help="a fit folder written by `palm fit`")
    p.add_argument("out", help="folder to write one PALM.py output folder per curve into")
    unit = p.add_mutually_exclusive_group()
    unit.add_argument(
        "--percent",
        dest="percent",
        action="store_const",
        const=True,
        default=None,
        help="write accuracies and A_max in percent (default: the unit the curves came in)",
    )
    unit.add_argument(
        "--fraction", dest="percent", action="store_const", const=False, help="write fractions"
    )
    p.add_argument("--model", default=None, help="the reference's `model` field")
    p.set_defaults(func=cmd_export_palm)


def _learn_prior_parser(sub: Any) -> None:
    """``palm learn-prior``."""
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
    p.set_defaults(func=cmd_learn_prior)


def _forecast_parser(sub: Any) -> None:
    """``palm forecast``."""
    p = sub.add_parser("forecast", help="accuracy at budgets, with an HDI")
    p.add_argument("dir", help="a fit folder written by `palm fit`")
    p.add_argument("--budget", type=float, nargs="+", required=True, help="label budgets")
    p.add_argument("--hdi", type=float, default=0.9, help="interval probability (0.9)")
    p.add_argument("--predictive", action="store_true", help="a new single run, not the mean")
    p.add_argument(
        "--new", default=None, metavar="DIM", help="for a new member of DIM (pooled fits)"
    )
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(func=cmd_forecast)


def _compare_parser(sub: Any) -> None:
    """``palm compare``."""
    p = sub.add_parser("compare", help="P(a beats b) at budgets")
    p.add_argument("dir", help="a fit folder written by `palm fit`")
    p.add_argument("--a", required=True, help="e.g. strategy=typiclust")
    p.add_argument("--b", required=True, help="e.g. strategy=random")
    p.add_argument("--budget", type=float, nargs="+", required=True, help="label budgets")
    p.add_argument(
        "--new", default=None, metavar="DIM", help="for a new member of DIM (pooled fits)"
    )
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(func=cmd_compare)


def _labels_needed_parser(sub: Any) -> None:
    """``palm labels-needed``."""
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
    p.set_defaults(func=cmd_labels_needed)


def _speedup_parser(sub: Any) -> None:
    """``palm speedup``."""
    p = sub.add_parser(
        "speedup", help="speed-up factor: the fraction of the reference's labels each needs"
    )
    p.add_argument("dir", help="a fit folder written by `palm fit`")
    p.add_argument("--reference", default="random", help="strategy to match (random)")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--accuracy", type=float, nargs="+", default=None, help="per accuracy level (fractions)"
    )
    where.add_argument(
        "--budget", type=float, nargs="+", default=None, help="per reference budget (labels)"
    )
    where.add_argument(
        "--budget-range",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=None,
        help="one factor over this range (default: the observed range)",
    )
    p.add_argument("--hdi", type=float, default=0.9, help="interval probability (0.9)")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(func=cmd_speedup)


def _compare_models_parser(sub: Any) -> None:
    """``palm compare-models``."""
    p = sub.add_parser("compare-models", help="rank fits of the same curves by PSIS-LOO")
    p.add_argument("dirs", nargs="+", help="fit folders (e.g. independent and pooled)")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(func=cmd_compare_models)


def _advise_parser(sub: Any) -> None:
    """``palm advise``."""
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
    p.set_defaults(func=cmd_advise)


def _report_parser(sub: Any) -> None:
    """``palm report``."""
    p = sub.add_parser("report", help="one self-contained HTML report of a fit")
    p.add_argument("dir", help="a fit folder written by `palm fit`")
    p.add_argument("--out", default=None, help="default DIR/report.html")
    p.add_argument(
        "--target", type=float, default=None, help="target accuracy (default: from the data)"
    )
    p.add_argument("--budget", type=float, nargs="+", default=None, help="win-matrix budgets")
    p.add_argument("--reference", default="random", help="strategy to compare against")
    p.set_defaults(func=cmd_report)


def _plot_parser(sub: Any) -> None:
    """``palm plot``."""
    p = sub.add_parser("plot", help="data, posterior band and least squares as a PNG")
    p.add_argument("dir", help="a fit folder written by `palm fit`")
    p.add_argument("--out", default=None, help="PNG to write (default DIR/fit.png)")
    p.set_defaults(func=cmd_plot)


def _phases_parser(sub: Any) -> None:
    """``palm phases``."""
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
    p.add_argument(
        "--max-boundaries",
        type=int,
        default=5,
        help="most boundaries tried (5: the reference's 6 segments)",
    )
    p.add_argument(
        "--no-standardise",
        "--no-standardize-features",
        dest="standardise",
        action="store_false",
        help="use the proxies on their own scales (the reference's --no-standardize-features)",
    )
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
    p.set_defaults(func=cmd_phases)


def _schedule_parser(sub: Any) -> None:
    """``palm schedule``."""
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
    p.add_argument(
        "--json",
        nargs="?",
        const=True,
        default=None,
        metavar="FILE",
        help="alone: print the plan as JSON; with FILE: write the schedule as the reference's "
        "mechanistic-hard-switch-v1 JSON (al-runner run --strategies @FILE runs it)",
    )
    p.set_defaults(func=cmd_schedule)


def _stop_parser(sub) -> None:
    p = sub.add_parser("stop", help="stop, continue or switch: the verdict per strategy")
    p.add_argument("dir", help="a fit folder written by `palm fit` (the rounds so far)")
    p.add_argument("--target", type=float, default=None, help="target accuracy (fraction)")
    p.add_argument("--cost-per-label", type=float, default=None, help="cost of one label")
    p.add_argument(
        "--value-per-point",
        type=float,
        default=None,
        help="value of one accuracy point over the model's use (same currency)",
    )
    p.add_argument(
        "--rounds-ahead", type=float, nargs="+", default=[1, 3], help="horizons in rounds (1 3)"
    )
    p.add_argument("--epsilon", type=float, default=0.005, help="gain that counts (0.005)")
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="the run's total label budget B: of P(target by B) and of the gain left that the "
        "target stop weighs (default: the largest horizon)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.7,
        help="with --target, stop needs P(target reached) >= this (0.7)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="accuracy gain by B that the target stop may leave on the table (0.01: 1 point)",
    )
    p.add_argument(
        "--gain-risk",
        type=float,
        default=0.05,
        help="with --target, stop also needs P(gain by B > tolerance) <= this (0.05)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the extrapolation draws")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(func=cmd_stop)


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
