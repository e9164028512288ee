"""Independent fits in one process vs ``pb.fit(workers=K)`` (Ray tasks), same draws.

Fits the 20% pilots of ``--n-curves`` random LCDB curves (all seeds) with the default method
(importance sampling, NUTS where it fails) twice each way: the first call of each pays the
compiles (and Ray's start and its workers' imports), the second is warm. Checks that the Ray
fit has the same draws as the local one, prints a table and writes
``benchmarks/results/palm_fit_ray.json``::

    python benchmarks/palm_fit_ray.py --n-curves 400 --workers 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
from _results import write_results

import palm_bayes as pb
from palm_bayes.data.contract import truncate
from palm_bayes.data.lcdb import lcdb_curves
from palm_bayes.data.load import load_curves


def timed_fit(curves, **kwargs) -> tuple[float, float, pb.PalmFit]:
    """Wall and CPU seconds (this process only) of one fit, and the fit."""
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = pb.fit(curves, progress=False, seed=0, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu, fit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-curves", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2, help="Ray tasks (chunks of curves)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--results", default="palm_fit_ray")
    args = parser.parse_args(argv)
    curves = load_curves(truncate(lcdb_curves(n_curves=args.n_curves, seed=args.seed), 0.2))
    cores = os.cpu_count() or 1
    rows, fits = [], {}
    for engine, kwargs in (("one process", {}), (f"Ray, {args.workers} tasks", {})):
        if engine.startswith("Ray"):
            from al_runner.sweep.ray_session import start_ray

            start = time.perf_counter()
            start_ray(num_cpus=cores)
            ray_start = time.perf_counter() - start
            kwargs = {"workers": args.workers}
        for call in ("cold", "warm"):
            wall, cpu, fit = timed_fit(curves, **kwargs)
            if engine.startswith("Ray") and call == "cold":
                wall += ray_start
            fits[engine] = fit
            n = int(fit.idata.constant_data["fitted"].sum())
            rows.append({"engine": engine, "call": call, "curves": n, "wall_seconds": wall,
                         "driver_cpu_seconds": cpu,
                         "curves_per_minute": 60 * n / wall})  # fmt: skip
    local, spread = fits.values()
    same = all(
        np.array_equal(local.idata.posterior[v].to_numpy(), spread.idata.posterior[v].to_numpy(),
                       equal_nan=True)
        for v in ("A_max", "delta", "alpha", "beta")
    )  # fmt: skip
    print(f"{rows[0]['curves']} LCDB pilot curves, {cores} cores; same draws: {same}")
    print(f"{'engine':16s} {'call':>5s} {'wall s':>8s} {'curves/min':>11s}")
    for r in rows:
        print(f"{r['engine']:16s} {r['call']:>5s} {r['wall_seconds']:8.1f} "
              f"{r['curves_per_minute']:11.0f}")  # fmt: skip
    machine = f"{cores} cores, load average at start {os.getloadavg()[0]:.1f}"
    payload = {"machine": machine, "same_draws": same, "rows": rows}
    print(write_results(args.results, payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
