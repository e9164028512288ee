"""Wall time of one sweep grid at 1, 2, ... concurrent runs on a local Ray instance.

Each setting runs the same grid from scratch into its own results folder, then checks that
every setting produced the same curves.

    python benchmarks/sweep_speedup.py                       # Fashion-MNIST, 1 vs 2 runs
    python benchmarks/sweep_speedup.py --dataset digits --concurrency 1,2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from al_runner.errors import ALRunnerError
from al_runner.sweep.run import SweepGrid, run_sweep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--strategies", default="random,margin,entropy,typiclust")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--learner", default="linear")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--concurrency", default="1,2")
    args = parser.parse_args(argv)
    grid = {
        "datasets": [args.dataset], "strategies": args.strategies.split(","),
        "seeds": args.seeds, "learner": args.learner, "rounds": args.rounds,
        "budget": args.budget,
    }  # fmt: skip
    rows, curves = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in (int(c) for c in args.concurrency.split(",")):
                t0 = time.perf_counter()
                result = run_sweep(
                    SweepGrid.from_dict(grid), Path(tmp) / f"c{n}.nc", max_concurrent=n,
                    progress=False,
                )  # fmt: skip
                rows.append((n, time.perf_counter() - t0, len(result.failed)))
                curves.append(result.curves["accuracy"].to_numpy())
    except ALRunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    same = all(np.array_equal(c, curves[0], equal_nan=True) for c in curves)
    runs = len(SweepGrid.from_dict(grid).runs())
    print(f"{args.dataset}, {runs} runs x {args.rounds} rounds of {args.budget} labels, "
          f"learner {args.learner}, 1 thread per run; identical curves: {same}")  # fmt: skip
    print(f"{'concurrent runs':>16s} {'wall s':>8s} {'speed-up':>9s} {'failed':>7s}")
    for n, seconds, failed in rows:
        print(f"{n:16d} {seconds:8.1f} {rows[0][1] / seconds:9.2f} {failed:7d}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
