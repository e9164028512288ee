"""The ``al-runner`` command: run AL experiments and list what is available. Thin: it parses."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from al_runner.errors import ALRunnerError

PROG = "al-runner"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # noqa: D102 - argparse API
        self.print_usage(sys.stderr)
        self.exit(2, f"{PROG}: error: {message}\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seeds(text: str) -> list[int]:
    """``3`` -> seeds 0, 1, 2; ``0,5,7`` -> those seeds."""
    try:
        if "," in text:
            return [int(s) for s in text.split(",") if s.strip()]
        n = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--seeds takes a count (3) or a list (0,5,7), got {text!r}"
        ) from exc
    if n < 1:
        raise argparse.ArgumentTypeError(f"--seeds must be >= 1, got {n}")
    return list(range(n))


def _option(text: str) -> tuple[str, str, float]:
    name, sep, value = text.partition("=")
    strategy, dot, key = name.partition(".")
    if not (sep and dot):
        raise argparse.ArgumentTypeError(
            f"--strategy-option {text!r} must look like STRATEGY.KEY=VALUE, "
            "e.g. probcover.delta=0.6"
        )
    try:
        number = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--strategy-option {text!r}: not a number") from exc
    return strategy, key, int(number) if number.is_integer() and "." not in value else number


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``al-runner``."""
    parser = _Parser(prog=PROG, description=__doc__.split(". Thin")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run (or resume) an AL experiment and write curves.nc")
    run.add_argument("--dataset", required=True, help="dataset name (see al-runner list)")
    run.add_argument(
        "--strategies", default="all", help="comma-separated strategy names or 'all' (default)"
    )
    run.add_argument("--learner", default="linear", help="learner name (default linear)")
    run.add_argument("--rounds", type=_positive, default=10, help="points per curve (10)")
    run.add_argument("--budget", type=_positive, default=20, help="labels per round b (20)")
    run.add_argument("--initial-size", type=_positive, help="initial labelled set (default b)")
    run.add_argument(
        "--initial",
        choices=("random", "cold"),
        default="random",
        help="initial set: random (shared per seed) or each strategy's cold start",
    )
    run.add_argument("--seeds", type=_seeds, default=[0], help="count (3) or list (0,5,7)")
    run.add_argument("--epochs", type=_positive, help="training epochs (default per learner)")
    run.add_argument(
        "--embedding", default="raw", help="fixed features of images: raw pixels or pca (64-d)"
    )
    run.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    run.add_argument("--threads", type=_positive, default=1, help="CPU threads (default 1)")
    run.add_argument("--data-root", help="local data path (cifar*, imagenet*, features)")
    run.add_argument("--class-list", help="ImageNet subsets: file of class ids, one per line")
    run.add_argument("--labels", help="features given as .npy: the labels .npy")
    run.add_argument(
        "--strategy-option",
        type=_option,
        action="append",
        default=[],
        metavar="S.KEY=VALUE",
        help="strategy parameter, e.g. probcover.delta=0.6 or bald.samples=20 (repeatable)",
    )
    run.add_argument("--out", required=True, help="output curves file (.nc)")
    run.add_argument(
        "--overwrite", action="store_true", help="start over instead of resuming from --out"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    sub.add_parser("list", help="list datasets, strategies and learners")
    return parser


def _list() -> None:
    from al_runner.datasets import DATASETS
    from al_runner.learners import LEARNERS
    from al_runner.strategies import STRATEGIES

    print("datasets:")
    for name, entry in DATASETS.items():
        print(f"  {name:14s} {entry.description}")
    print("strategies:")
    for name, cls in STRATEGIES.items():
        print(f"  {name:14s} {(cls.__doc__ or '').strip().splitlines()[0]}")
    print("learners:")
    for name, cls in LEARNERS.items():
        print(f"  {name:14s} {(cls.__doc__ or '').strip().splitlines()[0]}")


def _run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from al_runner.loop import RunConfig, run_experiment, state_path, strategies_arg

    options: dict[str, dict[str, float]] = {}
    for strategy, key, value in args.strategy_option:
        options.setdefault(strategy, {})[key] = value
    config = RunConfig(
        dataset=args.dataset,
        strategies=strategies_arg(args.strategies),
        learner=args.learner,
        rounds=args.rounds,
        budget=args.budget,
        initial_size=args.initial_size,
        initial=args.initial,
        seeds=args.seeds,
        epochs=args.epochs,
        embedding=args.embedding,
        device=args.device,
        threads=args.threads,
        data_root=args.data_root,
        class_list=args.class_list,
        labels=args.labels,
        strategy_options=options,
    )
    out = Path(args.out)
    if out.suffix.lower() not in (".nc", ".nc4"):
        raise ALRunnerError(f"--out must be a netCDF file ending in .nc, got {out}")
    unknown = sorted(set(options) - set(config.validate().strategies))
    if unknown:
        raise ALRunnerError(f"--strategy-option names strategies not in the run: {unknown}")
    if state_path(out).exists() and not args.overwrite:
        print(f"{PROG}: resuming from {state_path(out)}", file=sys.stderr)
    curves = run_experiment(config, out, resume=not args.overwrite, progress=not args.no_progress)
    table = curves["accuracy"].mean("seed").squeeze(["dataset", "embedding"], drop=True)
    budgets = config.budgets()
    print(f"wrote {out}  (mean test accuracy over {len(config.seeds)} seed(s))")
    width = max(len(s) for s in config.strategies)
    print(" " * width + "".join(f"{int(b):>8d}" for b in budgets))
    for name in config.strategies:
        row = table.sel(strategy=name).to_numpy()
        print(f"{name:<{width}s}" + "".join(f"{v:8.3f}" for v in row))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``al-runner``; returns the exit status (2 for bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            _list()
        else:
            _run(args)
    except (ALRunnerError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
