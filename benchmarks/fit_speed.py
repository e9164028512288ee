"""Independent PALM fits: importance sampling (the default) against NUTS, time and agreement.

For simulated curves (random PALM parameters, 10 budgets, 3 seeds) and the LCDB pilots of
``examples/lcdb_curves.nc`` (20% prefixes), measures

- seconds per curve of ``pb.fit(method="importance")``, cold (first fit of the process, with
  compilation) and warm, at every batch size asked for, and the share of curves that fell back
  to NUTS;
- seconds per curve of ``pb.fit(method="nuts")`` on a subset (cold and warm);
- agreement on that subset: for A_max, delta, alpha, beta and the PALM forecasts at 1x, 2x and
  5x the last budget, ``|quantile difference| / combined Monte Carlo s.e.`` at 5/50/95%.

Writes ``benchmarks/results/fit_speed.json`` (atomically). Usage::

    python benchmarks/fit_speed.py --sizes 100 1000 --nuts-curves 12
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import xarray as xr

import palm_bayes as pb

RESULTS = Path(__file__).parent / "results" / "fit_speed.json"
QUANTILES = (0.05, 0.5, 0.95)
SAMPLER = dict(chains=4, draws=1000, tune=1000, progress=False)


def simulated(n: int, rng: int = 0) -> xr.Dataset:
    """``n`` curves (strategy dim) with random PALM parameters, 10 budgets, 3 seeds."""
    gen = np.random.default_rng(rng)
    params = {
        f"c{i}": dict(
            A_max=float(gen.uniform(0.6, 0.98)),
            delta=float(np.exp(gen.uniform(np.log(0.01), np.log(0.6)))),
            alpha=float(gen.uniform(-0.5, 2.0)),
            beta=float(gen.uniform(0.5, 1.5)),
        )
        for i in range(n)
    }
    budgets = np.arange(1, 11) * 100.0
    ds = pb.simulate_curves(params, budgets, seeds=3, n_test=2000, noise=0.01, rng=gen)
    return ds.drop_vars([v for v in ds.data_vars if v.startswith("true_")])


def lcdb_pilots(prefix: float = 0.2) -> xr.Dataset:
    """The shipped LCDB sample cut to the budgets <= ``prefix`` x each curve's largest."""
    curves = pb.load_curves(Path(__file__).parents[1] / "examples" / "lcdb_curves.nc")
    largest = curves["budget"].max(("seed", "step"))
    train = curves.where(curves["budget"] <= prefix * largest)
    train["n_test"] = curves["n_test"]
    keep = train["budget"].notnull().any("seed").sum("step") >= 4
    return train.where(keep)


#: CPU seconds of this process (all threads) spent in the last timed_fit.
LAST_CPU = {"seconds": float("nan")}


def timed_fit(curves: xr.Dataset, **options) -> tuple[pb.PalmFit, float]:
    """The fit and its wall seconds (CPU seconds in ``LAST_CPU``: the machine is shared)."""
    start, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = pb.fit(curves, seed=0, **SAMPLER, **options)
    LAST_CPU["seconds"] = time.process_time() - cpu
    return fit, time.perf_counter() - start


def n_curves(fit: pb.PalmFit) -> int:
    return int(fit.idata.constant_data["fitted"].sum())


def features(fit: pb.PalmFit) -> dict[str, xr.DataArray]:
    post, const = fit.idata.posterior, fit.idata.constant_data
    out = {v: post[v] for v in ("A_max", "delta", "alpha", "beta")}
    for factor in (1, 2, 5):
        x = factor * const["last_budget"] / const["b"]
        out[f"forecast_{factor}x"] = post["A_max"] * (
            1 - (1 - post["delta"]) ** ((x + post["alpha"]) ** post["beta"])
        )
    return out


def agreement(fast: pb.PalmFit, nuts: pb.PalmFit) -> dict:
    """Per curve kept by importance sampling: z = quantile difference / combined MC s.e."""
    const = fast.idata.constant_data
    fa, fn = features(fast), features(nuts)
    stacked = const["fitted"].stack(curve=list(fast.curve_dims))
    zs, worst = [], []
    for label in stacked["curve"].to_numpy()[stacked.to_numpy()]:
        sel = dict(zip(fast.curve_dims, label, strict=True))
        if bool(const["nuts_fallback"].sel(sel)):
            continue
        ess = float(const["importance_ess"].sel(sel))
        curve_z = []
        for name in fa:
            a = fa[name].sel(sel).to_numpy()
            b = fn[name].sel(sel).to_numpy()
            for q in QUANTILES:
                se_b = float(az.mcse(b, method="quantile", prob=q))
                se_a = float(az.mcse(a.reshape(1, -1), method="quantile", prob=q))
                se_a *= np.sqrt(a.size / ess)
                curve_z.append(abs(np.quantile(a, q) - np.quantile(b, q)) / np.hypot(se_a, se_b))
        zs.extend(curve_z)
        worst.append(max(curve_z))
    zs = np.asarray(zs)
    return {
        "curves_compared": len(worst),
        "median_abs_z": float(np.median(zs)) if zs.size else None,
        "share_abs_z_above_3": float(np.mean(zs > 3)) if zs.size else None,
        "worst_curve_max_abs_z": float(max(worst)) if worst else None,
    }


def fallback_share(fit: pb.PalmFit) -> float:
    const = fit.idata.constant_data
    return float(const["nuts_fallback"].sum() / const["fitted"].sum())


def run(sizes: list[int], nuts_curves: int, out: Path) -> dict:
    """Measure, writing ``out`` after every part (a later run with other sizes adds to it)."""
    results: dict = json.loads(out.read_text()) if out.exists() else {}
    results["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average at start "
        f"{os.getloadavg()[0]:.1f}"
    )
    results["sampler"] = SAMPLER
    results.setdefault("importance", {})
    first = "cold_seconds_per_curve" not in results["importance"]
    if not first:  # cold already measured: compile both samplers before timing
        timed_fit(simulated(2, rng=99), method="importance")
        timed_fit(simulated(1, rng=98), method="nuts")  # what the curves that fall back use
    for n in sizes:
        curves = simulated(n, rng=n)
        fit, seconds = timed_fit(curves, method="importance")
        entry = {"seconds": seconds, "curves": n_curves(fit), "fallback_share": fallback_share(fit)}
        if first:  # the same batch again: warm
            results["importance"]["cold_seconds_per_curve"] = seconds / n
            results["importance"]["cold_cpu_seconds_per_curve"] = LAST_CPU["seconds"] / n
            results["importance"]["cold_curves"] = n
            fit, seconds = timed_fit(curves, method="importance")
            entry["seconds"] = seconds
            first = False
        entry["cpu_seconds_per_curve"] = LAST_CPU["seconds"] / n
        entry["seconds_per_curve"] = entry["seconds"] / n
        entry["curves_per_minute"] = 60 * n / entry["seconds"]
        results["importance"][f"simulated_{n}"] = entry
        print(n, "curves, importance:", json.dumps(entry), flush=True)
        write_json(results, out)
    if nuts_curves <= 0:
        return results

    subset = simulated(nuts_curves, rng=1)
    fast, fast_s = timed_fit(subset, method="importance")
    nuts_cold, cold_s = timed_fit(subset.isel(strategy=[0]), method="nuts")
    cold_cpu = LAST_CPU["seconds"]
    nuts, nuts_s = timed_fit(subset, method="nuts")
    results["nuts"] = {
        "cold_seconds_first_curve": cold_s,
        "cold_cpu_seconds_first_curve": cold_cpu,
        "warm_seconds_per_curve": nuts_s / nuts_curves,
        "warm_cpu_seconds_per_curve": LAST_CPU["seconds"] / nuts_curves,
        "curves_per_minute": 60 * nuts_curves / nuts_s,
        "curves": nuts_curves,
    }
    results["agreement_simulated"] = agreement(fast, nuts) | {
        "fallback_share": fallback_share(fast)
    }
    print("nuts:", json.dumps(results["nuts"]), flush=True)
    print("agreement (simulated):", json.dumps(results["agreement_simulated"]), flush=True)
    write_json(results, out)

    pilots = lcdb_pilots()
    fast, fast_s = timed_fit(pilots, method="importance")
    fast_cpu = LAST_CPU["seconds"]
    nuts, nuts_s = timed_fit(pilots, method="nuts")
    count = n_curves(fast)
    results["lcdb_pilots"] = {
        "data": "examples/lcdb_curves.nc, budgets <= 20% of each curve's largest",
        "curves": count,
        "importance_seconds_per_curve": fast_s / count,
        "nuts_seconds_per_curve": nuts_s / count,
        "importance_cpu_seconds_per_curve": fast_cpu / count,
        "nuts_cpu_seconds_per_curve": LAST_CPU["seconds"] / count,
        "fallback_share": fallback_share(fast),
        "agreement": agreement(fast, nuts),
    }
    print("lcdb pilots:", json.dumps(results["lcdb_pilots"]), flush=True)
    return results


def write_json(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        json.dump(results, tmp, indent=2)
    os.replace(tmp.name, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument(
        "--nuts-curves", type=int, default=12, help="NUTS comparison curves (0: importance only)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = run(args.sizes, args.nuts_curves, args.out)
    write_json(results, args.out)
    print("written to", args.out)


if __name__ == "__main__":
    main()
