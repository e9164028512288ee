"""The ``al-runner`` command: run AL experiments and list what is available. Thin: it parses."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import MISSING, fields
from typing import Any

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
            seeds = [int(s) for s in text.split(",") if s.strip()]
            negative = [s for s in seeds if s < 0]
            if negative or len(set(seeds)) != len(seeds) or not seeds:
                raise argparse.ArgumentTypeError(f"--seeds lists distinct seeds >= 0, got {text!r}")
            return seeds
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
    parser = _Parser(prog=PROG, description=_plain(__doc__.split(". Thin")[0]))
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run (or resume) an AL experiment and write curves.nc")
    _config_options(run)
    run.add_argument("--out", required=True, help="output curves file (.nc)")
    run.add_argument(
        "--overwrite", action="store_true", help="start over instead of resuming from --out"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    sweep = sub.add_parser(
        "sweep", help="run a grid of datasets x strategies x embeddings x seeds on Ray"
    )
    sweep.add_argument("grid", help="grid file (.toml): datasets, strategies, embeddings, ...")
    sweep.add_argument("--out", required=True, help="merged curves file (.nc)")
    sweep.add_argument(
        "--results", help="folder of per-run curves and resume states (default <out>-runs)"
    )
    sweep.add_argument(
        "--address", help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: local)"
    )
    sweep.add_argument("--max-concurrent", type=_positive, help="most runs at once")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")

    sub.add_parser("list", help="list datasets, strategies and learners")
    _embed_parsers(sub)
    return parser


#: Help of every :class:`al_runner.experiment.config.RunConfig` field as an ``al-runner run`` option
#: (the options are generated from the fields; a field missing here is a test failure).
_HELP = {
    "dataset": "dataset name (see al-runner list)",
    "strategies": "comma-separated strategy names or 'all' (default)",
    "learner": "learner name (default linear)",
    "rounds": "points per curve (10)",
    "labels_per_round": "labels acquired per round b (20); --budget is its old name",
    "initial_size": "initial labelled set (default b)",
    "initial": "initial set: random (shared per seed) or each strategy's cold start",
    "seeds": "count (3) or list (0,5,7)",
    "epochs": "training epochs (default per learner)",
    "embedding": "fixed features of images: raw, pca (64-d), or an SSL embedding simclr|mocov2|"
    "mocov3|byol (cached in --embedding-dir, trained when missing)",
    "embedding_file": "your features: .npy (pool rows then test rows) or .npz",
    "encoder_checkpoint": "your torchvision ResNet-18/50 or DINOv2 ViT state dict",
    "embedding_dir": "SSL checkpoints and feature caches",
    "embedding_epochs": "SSL epochs when training (20)",
    "device": "auto (CUDA if present), cpu or cuda",
    "threads": "CPU threads (default 1)",
    "data_root": "local data path (see al-runner list)",
    "class_list": "ImageNet subsets: file of class ids, one per line",
    "labels": "features given as .npy: the labels .npy",
    "imbalance": "imbalanced-cifar*: largest/smallest class ratio (100)",
    "image_size": "imagefolder: resize images to this side (224)",
    "split_file": "imagefolder: CSV path,split for class folders without train/test",
    "strategy_options": "strategy parameter, e.g. probcover.delta=0.6 or bald.samples=20 "
    "(repeatable)",
    "proxies": "record the operational proxies every round (default: yes)",
    "confidence_delta": "failure probability of the proxies' confidence term (0.05)",
}

#: Options whose parsing the field's type does not say.
_SPECIAL: dict[str, dict[str, Any]] = {
    "dataset": {"required": True},
    "strategies": {"default": "all"},
    "labels_per_round": {"flags": ("--labels-per-round", "--budget")},
    "initial": {"choices": ("random", "cold")},
    "seeds": {"type": _seeds},
    "strategy_options": {
        "flags": ("--strategy-option",),
        "type": _option,
        "action": "append",
        "default": [],
        "metavar": "S.KEY=VALUE",
    },
}
_TYPES: dict[str, Any] = {"int": _positive, "float": float, "str": str}


def _config_options(parser: argparse.ArgumentParser) -> None:
    """Add one ``--field-name`` option per field of the run configuration (``RunConfig``)."""
    from al_runner.experiment.config import RunConfig

    for f in fields(RunConfig):
        kwargs: dict[str, Any] = {"dest": f.name, "help": _HELP[f.name]}
        if f.default is not MISSING:
            kwargs["default"] = f.default
        elif f.default_factory is not MISSING:
            kwargs["default"] = f.default_factory()
        base = str(f.type).replace(" | None", "")
        if base == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif base in _TYPES:
            kwargs["type"] = _TYPES[base]
        kwargs.update(_SPECIAL.get(f.name, {}))
        flags = kwargs.pop("flags", ("--" + f.name.replace("_", "-"),))
        if kwargs.get("required"):
            kwargs.pop("default", None)
        parser.add_argument(*flags, **kwargs)


def _config(args: argparse.Namespace) -> Any:
    """The :class:`al_runner.experiment.config.RunConfig` of parsed ``al-runner run`` arguments."""
    from al_runner.experiment.config import RunConfig, strategies_arg

    values = {f.name: getattr(args, f.name) for f in fields(RunConfig)}
    options: dict[str, dict[str, float]] = {}
    for strategy, key, value in values["strategy_options"]:
        options.setdefault(strategy, {})[key] = value
    values.update(strategies=strategies_arg(values["strategies"]), strategy_options=options)
    return RunConfig(**values)


def _embed_parsers(sub: argparse._SubParsersAction) -> None:
    # literal copies of embeddings.METHODS / ARCHS: building the parser must not import torch
    METHODS = ("simclr", "mocov2", "mocov3", "byol")  # noqa: N806
    ARCHS = ("small", "resnet18", "resnet50")  # noqa: N806

    emb = sub.add_parser("embed", help="train a self-supervised encoder and cache its features")
    emb.add_argument("--dataset", required=True, help="image dataset (in memory or ImageNet)")
    emb.add_argument("--method", required=True, choices=METHODS, help="SSL method")
    emb.add_argument("--epochs", type=_positive, default=20, help="training epochs (20)")
    emb.add_argument("--out", required=True, help="folder of checkpoint and feature cache")
    emb.add_argument("--arch", default="auto", choices=("auto", *ARCHS), help="encoder")
    emb.add_argument("--batch-size", type=_positive, default=256, help="batch size (256)")
    emb.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    emb.add_argument("--seed", type=int, default=0, help="random seed (0)")
    emb.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    emb.add_argument("--threads", type=_positive, default=1, help="CPU threads (default 1)")
    emb.add_argument("--data-root", help="local data path")
    emb.add_argument("--class-list", help="ImageNet subsets: file of class ids")
    _dataset_options(emb)
    emb.add_argument("--overwrite", action="store_true", help="start over instead of resuming")
    emb.add_argument("--no-progress", action="store_true", help="no progress bar")

    ev = sub.add_parser("embed-eval", help="kNN and linear-probe accuracy of an embedding")
    ev.add_argument("--dataset", required=True, help="dataset whose pool is embedded")
    src = ev.add_mutually_exclusive_group(required=True)
    src.add_argument("--method", choices=METHODS, help="the embed checkpoint in --dir")
    src.add_argument("--embedding-file", help="your features (.npy pool+test rows, or .npz)")
    src.add_argument("--encoder-checkpoint", help="your ResNet-18/50 or DINOv2 ViT state dict")
    ev.add_argument("--dir", default="embeddings", help="folder of embed checkpoints/caches")
    ev.add_argument(
        "--fractions", default="0.01,0.1,1", help="label fractions of the linear probes"
    )
    ev.add_argument("--k", type=_positive, default=20, help="kNN neighbours (20)")
    ev.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    ev.add_argument("--threads", type=_positive, default=1, help="CPU threads (default 1)")
    ev.add_argument("--data-root", help="local data path")
    ev.add_argument("--class-list", help="ImageNet subsets: file of class ids")
    _dataset_options(ev)


def _dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--imbalance", type=float, help=_HELP["imbalance"])
    parser.add_argument("--image-size", type=_positive, help=_HELP["image_size"])
    parser.add_argument("--split-file", help=_HELP["split_file"])


def _load(args: argparse.Namespace) -> Any:
    from al_runner.datasets import load_dataset

    return load_dataset(
        args.dataset, args.data_root, class_list=args.class_list, imbalance=args.imbalance,
        image_size=args.image_size, split_file=args.split_file,
    )  # fmt: skip


def _list() -> None:
    from al_runner.datasets import DATASETS
    from al_runner.learners.models import LEARNERS
    from al_runner.strategies import STRATEGIES

    print("datasets:")
    for name, entry in DATASETS.items():
        print(f"  {name:20s} {_plain(entry.description)}")
    print("strategies:")
    for name, cls in STRATEGIES.items():
        print(f"  {name:20s} {_plain((cls.__doc__ or '').strip().splitlines()[0])}")
    print("learners:")
    for name, cls in LEARNERS.items():
        print(f"  {name:20s} {_plain((cls.__doc__ or '').strip().splitlines()[0])}")


def _plain(text: str) -> str:
    """Docstring text for a terminal: reStructuredText ``literals`` without their backticks."""
    return text.replace("``", "")


def _run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from al_runner.experiment.loop import run_experiment, state_path

    config = _config(args)
    options = config.strategy_options
    out = Path(args.out)
    if out.suffix.lower() not in (".nc", ".nc4"):
        raise ALRunnerError(f"--out must be a netCDF file ending in .nc, got {out}")
    from al_runner.strategies import stage_names

    running = set().union(*(stage_names(n) for n in config.validate().strategies))
    unknown = sorted(set(options) - running)
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


def _sweep(args: argparse.Namespace) -> int:
    from al_runner.sweep.run import SweepGrid, run_sweep

    grid = SweepGrid.from_toml(args.grid)
    result = run_sweep(
        grid, args.out, results=args.results, address=args.address,
        max_concurrent=args.max_concurrent, progress=not args.no_progress,
    )  # fmt: skip
    acc = result.curves["accuracy"]
    final = acc.isel(step=-1).mean("seed")
    print(
        f"wrote {args.out}: {len(grid.runs())} runs ({result.skipped} already finished), "
        f"{result.seconds:.0f} s; final mean accuracy over {len(grid.seeds)} seed(s):"
    )
    width = max(len(f"{d}/{e}") for d in grid.datasets for e in grid.embeddings)
    print(" " * width + "".join(f"{s[:10]:>11s}" for s in grid.strategies))
    for d in grid.datasets:
        for e in grid.embeddings:
            row = final.sel(dataset=d, embedding=e).to_numpy()
            print(f"{d + '/' + e:<{width}s}" + "".join(f"{v:11.3f}" for v in row))
    if result.failed:
        print(f"{len(result.failed)} run(s) failed after retries:", file=sys.stderr)
        for name, error in result.failed.items():
            print(f"  {name}: {error}", file=sys.stderr)
        print("rerun the same command to retry them (finished runs are kept)", file=sys.stderr)
        return 1
    return 0


def _threads(n: int) -> None:
    from al_runner.experiment.loop import set_threads

    set_threads(n)


def _embed(args: argparse.Namespace) -> None:
    from al_runner.embeddings import EmbedConfig, checkpoint_features, train_encoder

    _threads(args.threads)
    data = _load(args)
    cfg = EmbedConfig(
        args.dataset, args.method, epochs=args.epochs, arch=args.arch,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed,
    )  # fmt: skip
    ckpt, losses = train_encoder(
        data, cfg, args.out, device=args.device, resume=not args.overwrite,
        progress=not args.no_progress,
    )  # fmt: skip
    feats = checkpoint_features(data, ckpt, args.out, device=args.device, tag=args.method)
    if losses:
        print(f"loss: first {losses[0]:.4f}, last {losses[-1]:.4f} ({len(losses)} steps)")
    print(f"wrote {ckpt}; features {feats['train'].shape} cached in {args.out}")


def _embed_eval(args: argparse.Namespace) -> None:
    from al_runner.datasets import dataset_features
    from al_runner.embeddings import (
        checkpoint_features,
        checkpoint_path,
        evaluate_embedding,
        load_feature_file,
    )

    _threads(args.threads)
    try:
        fractions = tuple(float(f) for f in args.fractions.split(",") if f.strip())
    except ValueError as exc:
        raise ALRunnerError(f"--fractions must be numbers, got {args.fractions!r}") from exc
    if not all(0 < f <= 1 for f in fractions):
        raise ALRunnerError(f"--fractions must lie in (0, 1], got {fractions}")
    data = _load(args)
    if args.embedding_file:
        name, feats = "file", load_feature_file(data, args.embedding_file)
    elif args.encoder_checkpoint:
        feats = checkpoint_features(
            data, args.encoder_checkpoint, args.dir, device=args.device, tag="torchvision",
            torchvision=True,
        )  # fmt: skip
        name = "checkpoint"
    else:
        ckpt = checkpoint_path(args.dir, args.dataset, args.method)
        if not ckpt.exists():
            raise ALRunnerError(f"no checkpoint {ckpt}: run al-runner embed --out {args.dir}")
        name = args.method
        feats = checkpoint_features(data, ckpt, args.dir, device=args.device, tag=args.method)
    rows = {name: evaluate_embedding(data, feats, fractions, k=args.k)}
    if data.train.in_memory:
        raw = {s: dataset_features(data, s) for s in ("train", "test")}
        rows["raw pixels" if data.kind == "image" else "raw features"] = evaluate_embedding(
            data, raw, fractions, k=args.k
        )
    cols = list(next(iter(rows.values())))
    width = max(len(r) for r in rows)
    print(" " * width + "".join(f"{c:>14s}" for c in cols))
    for r, vals in rows.items():
        print(f"{r:<{width}s}" + "".join(f"{vals[c]:14.4f}" for c in cols))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``al-runner``; returns the exit status (2 for bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            _list()
        elif args.command == "embed":
            _embed(args)
        elif args.command == "embed-eval":
            _embed_eval(args)
        elif args.command == "sweep":
            return _sweep(args)
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
