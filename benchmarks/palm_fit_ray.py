"""Does fitting many independent curves pay off on Ray? One process vs K Ray tasks.

``pb.fit`` compiles one nutpie model and samples every curve with it, its chains in parallel
threads. The Ray alternative splits the curves into K chunks, each fitted by its own task
(each compiles its own model). Both fit the same random LCDB curves; the table gives wall
times including Ray's start and each task's imports and compile.

    python benchmarks/palm_fit_ray.py --n-curves 64 --tasks 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from palm_bayes.data.lcdb import lcdb_curves


def _fit_chunk(curves, cores: int) -> float:
    import palm_bayes as pb

    fit = pb.fit(curves, cores=cores, progress=False)
    return float(fit.summary()["r_hat"].max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-curves", type=int, default=64)
    parser.add_argument("--tasks", type=int, default=2, help="Ray tasks (chunks of curves)")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    curves = lcdb_curves(n_curves=args.n_curves, seed=args.seed)
    stacked = curves.stack(curve=("dataset", "strategy", "embedding"))
    observed = stacked["accuracy"].notnull().any(["seed", "step"])
    stacked = stacked.isel(curve=np.flatnonzero(observed))
    n = stacked.sizes["curve"]
    cores = os.cpu_count() or 1
    rows = []

    t0 = time.perf_counter()
    r_hat = _fit_chunk(curves, cores)
    rows.append(("one process", 1, time.perf_counter() - t0, r_hat))

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only
    import ray

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=max(1, cores // args.tasks))(_fit_chunk)
    chunks = np.array_split(np.arange(n), args.tasks)
    parts = [stacked.isel(curve=idx).unstack("curve") for idx in chunks]
    refs = [remote.remote(part, max(1, cores // args.tasks)) for part in parts]
    r_hats = ray.get(refs)
    rows.append((f"Ray, {args.tasks} tasks", args.tasks, time.perf_counter() - t0, max(r_hats)))
    ray.shutdown()

    print(f"{n} LCDB curves, 4 chains x 1000 draws, {cores} cores")
    print(f"{'engine':16s} {'tasks':>6s} {'wall s':>8s} {'max r_hat':>10s}")
    for name, tasks, seconds, rh in rows:
        print(f"{name:16s} {tasks:6d} {seconds:8.1f} {rh:10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
