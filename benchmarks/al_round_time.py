"""Seconds per AL round for each strategy and learner on Fashion-MNIST (CPU or GPU).

A round is: select ``b`` samples from the 60k pool (scoring it with the current model), then
train a fresh learner on the labelled set and evaluate it on the 10k test set. Reported are
means over the acquisition rounds (the initial round has no selection); the first selection
of TypiClust/ProbCover includes their one-off k-means / ball graph, so its mean is shown too.

    python benchmarks/al_round_time.py --learners linear,mlp --rounds 4 --budget 100
    python benchmarks/al_round_time.py --learners cnn --strategies random,entropy,bald
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from al_runner.datasets import load_dataset
from al_runner.errors import ALRunnerError
from al_runner.experiment.loop import RunConfig, run_experiment, strategies_arg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--learners", default="linear,mlp")
    parser.add_argument("--strategies", default="all")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--embedding", default="raw")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        t0 = time.perf_counter()
        data = load_dataset(args.dataset)
        print(
            f"# {args.dataset}: pool {data.n_pool}, test {len(data.test)}, "
            f"loaded in {time.perf_counter() - t0:.1f} s; threads {args.threads}, "
            f"b={args.budget}, rounds={args.rounds}, embedding={args.embedding}"
        )
        rows = []
        for learner in args.learners.split(","):
            cfg = RunConfig(
                args.dataset,
                strategies_arg(args.strategies),
                learner=learner,
                rounds=args.rounds,
                labels_per_round=args.budget,
                seeds=[args.seed],
                epochs=args.epochs,
                embedding=args.embedding,
                device=args.device,
                threads=args.threads,
            )
            t0 = time.perf_counter()
            curves = run_experiment(cfg, data=data, progress=False)
            wall = time.perf_counter() - t0
            sel = curves["select_seconds"].squeeze(["dataset", "embedding", "seed"])
            train = curves["train_seconds"].squeeze(["dataset", "embedding", "seed"])
            acc = curves["accuracy"].squeeze(["dataset", "embedding", "seed"])
            prox = curves["proxy_seconds"].squeeze(["dataset", "embedding", "seed"])
            for name in cfg.strategies:
                s = sel.sel(strategy=name).to_numpy()[1:]
                t = train.sel(strategy=name).to_numpy()[1:]
                p = prox.sel(strategy=name).to_numpy()[1:]
                rows.append(
                    (
                        learner,
                        name,
                        s.mean(),
                        s[0],
                        t.mean(),
                        p.mean(),
                        float(np.mean(s + t + p)),
                        float(acc.sel(strategy=name)[-1]),
                    )
                )
            print(
                f"# {learner}: {len(cfg.strategies)} strategies x {args.rounds} rounds "
                f"in {wall:.1f} s (setup included)",
                flush=True,
            )
    except ALRunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    final = args.budget * args.rounds
    print()
    print(
        "| learner | strategy | select s | first select s | train+eval s | proxies s (share) "
        f"| round s | acc@{final} |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for learner, name, s, s0, t, p, r, a in rows:
        print(
            f"| {learner} | {name} | {s:.2f} | {s0:.2f} | {t:.2f} | {p:.2f} ({p / r:.0%}) "
            f"| {r:.2f} | {a:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
