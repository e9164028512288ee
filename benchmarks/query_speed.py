"""Time the posterior queries of a 40-curve fit: P(better), forecasts, labels needed, win matrix.

Fits 40 simulated pilots once (2 datasets x 20 strategies, 8 rounds of 50 labels, 3 seeds;
4 chains x 1,000 draws, the shipped curve prior) and saves the fit (``--fit``; reused when the
file exists). Each query is timed on a fit freshly read from that file (``cold``: its first
query, which builds the per-fit arrays of :mod:`palm_bayes.queries.paths`) and then again
(``warm``: the median of ``--repeats`` further calls on the same fit, each with another pair,
budgets or target: ``s02`` vs ``s03`` at 2,100 labels, ``s04`` vs ``s05`` at 2,200, ...;
budgets scaled by 1.05, 1.10, ...; targets 0.86, 0.87, ...). With ``--baseline COMMIT`` the same
queries are timed, in a subprocess on the same fit and machine, with the ``palm_bayes`` of that
commit (``git archive``), so the speed-up is measured in one run; the numbers the issue
measured on main (idle machine) are kept in the JSON as ``issue_reference_s``.

Writes ``benchmarks/results/query_speed.json`` (atomically)::

    python benchmarks/query_speed.py --baseline ba9fd72
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "query_speed.json"
#: Measured on main by the issue (27): 40 independent LCDB pilots, 4 x 1,000 draws, idle.
ISSUE_REFERENCE_S = {
    "forecast_1_budget": 2.0,
    "forecast_5_budgets": 5.3,
    "labels_needed": 9.2,
    "prob_better_one_pair": 2.9,
}
TARGETS_S = {
    "prob_better_one_pair": 0.02,
    "forecast_1_budget": 0.2,
    "forecast_5_budgets": 0.2,
    "labels_needed": 0.2,
    "win_matrix_20_strategies": 1.0,
}
BUDGETS = [500.0, 1000.0, 2000.0, 4000.0, 8000.0]
TARGET = 0.85


def make_fit(path: Path) -> None:
    """Simulate and fit the 40 pilots, saving the fit to ``path``."""
    import palm_bayes as pb

    rng = np.random.default_rng(0)
    parts = []
    for d in range(2):
        params = {
            f"s{i:02d}": dict(
                A_max=float(rng.uniform(0.75, 0.95)),
                delta=float(rng.uniform(0.05, 0.4)),
                alpha=0.0,
                beta=float(rng.uniform(0.7, 1.3)),
            )
            for i in range(20)
        }
        c = pb.simulate_curves(params, np.arange(1, 9) * 50.0, seeds=3, dataset=f"d{d}", rng=d)
        parts.append(c[["budget", "accuracy", "n_test"]])
    curves = xr.concat(parts, "dataset", data_vars="all")
    fit = pb.fit(curves, seed=0, progress=False)
    fit.to_netcdf(path)


def queries(fit_path: Path):
    """``name -> (load, ask)``: what each timing loads, and ``ask(fit, k)`` its ``k``-th query.

    Query 0 is the cold one; the warm ones (``k >= 1``) ask another pair, budget or target
    each time, so that no answer of an earlier call can be reused.
    """
    import palm_bayes as pb

    def whole():
        return pb.PalmFit.from_netcdf(fit_path)

    def one_dataset():
        return whole().select({"dataset": "d0"})

    def pair(k):
        return {"strategy": f"s{2 * k:02d}"}, {"strategy": f"s{2 * k + 1:02d}"}

    def scale(k):
        return 1.0 + 0.05 * k

    return {
        "prob_better_one_pair": (
            whole,
            lambda f, k: f.prob_better(*pair(k), 2000.0 * scale(k)),
        ),
        "forecast_1_budget": (whole, lambda f, k: f.forecast([2000.0 * scale(k)])),
        "forecast_5_budgets": (
            whole,
            lambda f, k: f.forecast([b * scale(k) for b in BUDGETS]),
        ),
        "labels_needed": (whole, lambda f, k: f.labels_needed(TARGET + 0.01 * k)),
        "win_matrix_20_strategies": (
            one_dataset,
            lambda f, k: f.win_matrix([2000.0 * scale(k)]),
        ),
        "advise_20_strategies": (one_dataset, lambda f, k: f.advise(TARGET + 0.01 * k)),
    }


def measure(fit_path: Path, repeats: int) -> dict[str, dict[str, float]]:
    """Cold and warm seconds of every query."""
    out = {}
    for name, (load, ask) in queries(fit_path).items():
        fit = load()
        start = time.perf_counter()
        ask(fit, 0)
        cold = time.perf_counter() - start
        warm = []
        for k in range(1, repeats + 1):
            start = time.perf_counter()
            ask(fit, k)
            warm.append(time.perf_counter() - start)
        out[name] = {"cold_s": round(cold, 4), "warm_s": round(float(np.median(warm)), 4)}
        print(f"{name:28s} cold {cold:8.3f} s   warm {out[name]['warm_s']:8.3f} s", flush=True)
    return out


def baseline(commit: str, fit_path: Path, repeats: int) -> dict[str, dict[str, float]]:
    """The same measurements with the palm_bayes of ``commit``, in a subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit, "palm_bayes"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        result = Path(tmp) / "baseline.json"
        env = os.environ | {"PYTHONPATH": tmp}
        subprocess.run(
            [sys.executable, __file__, "--fit", str(fit_path), "--repeats", str(repeats),
             "--measure-only", str(result)],
            check=True,
            env=env,
            cwd=tmp,
        )  # fmt: skip
        return json.loads(result.read_text())


def table_rows(report: dict) -> list[dict]:
    """One record per query (seconds): what the report page's ``results-table`` shows."""
    rows = []
    for name, new in report["new"].items():
        old = (report.get("baseline") or {}).get(name) or {}
        rows.append(
            {
                "query": name,
                "issue_idle_s": report["issue_reference_s"].get(name),
                "baseline_cold_s": old.get("cold_s"),
                "baseline_warm_s": old.get("warm_s"),
                "new_cold_s": new["cold_s"],
                "new_warm_s": new["warm_s"],
                "speedup_warm": (report.get("speedup_warm") or {}).get(name),
                "target_s": report["targets_s"].get(name),
            }
        )
    return rows


def markdown_table(report: dict) -> str:
    """The report's numbers as a Markdown table (seconds; speed-up of the warm call)."""
    head = (
        "| query | main, idle (issue) | baseline cold / warm | new cold / warm | "
        "speed-up warm | target |\n|---|---|---|---|---|---|"
    )

    def pair(times: dict | None) -> str:
        return "" if times is None else f"{times['cold_s']:.3g} / {times['warm_s']:.3g}"

    rows = []
    for name, new in report["new"].items():
        issue = report["issue_reference_s"].get(name)
        target = report["targets_s"].get(name)
        speedup = (report.get("speedup_warm") or {}).get(name)
        cells = [
            name,
            "" if issue is None else f"{issue:g}",
            pair((report.get("baseline") or {}).get(name)),
            pair(new),
            "" if speedup is None else f"{speedup:g}x",
            "" if target is None else f"<= {target:g}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, *rows])


def main(argv: list[str] | None = None) -> None:
    """Time the queries (and the baseline commit's), write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", type=Path, default=Path(tempfile.gettempdir()) / "qs_fit40.nc")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", help="a commit whose palm_bayes is timed too")
    parser.add_argument("--baseline-repeats", type=int, default=1)
    parser.add_argument("--measure-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--table", action="store_true", help="print the saved results' table")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(RESULTS.read_text())))
        return
    warnings.simplefilter("ignore")
    if args.measure_only is not None:
        args.measure_only.write_text(json.dumps(measure(args.fit, args.repeats)))
        return
    if not args.fit.is_file():
        start = time.perf_counter()
        make_fit(args.fit)
        print(f"fitted 40 pilots in {time.perf_counter() - start:.0f} s")
    load_before = os.getloadavg()
    import palm_bayes as pb

    fit = pb.PalmFit.from_netcdf(args.fit)
    sizes = {d: int(fit.idata.posterior.sizes[d]) for d in fit.idata.posterior["A_max"].dims}
    new = measure(args.fit, args.repeats)
    old = None
    if args.baseline:
        print(f"baseline: palm_bayes of {args.baseline}")
        old = baseline(args.baseline, args.fit, args.baseline_repeats)
    report = {
        "what": "posterior queries of 40 independent simulated pilots (2 datasets x 20 "
        "strategies, 8 rounds of 50 labels, 3 seeds), shipped curve prior",
        "warm_means": "median of the later calls on the same fit, each with another pair, "
        "budgets or target than any call before it",
        "draws": sizes,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },  # fmt: skip
        "targets_s": TARGETS_S,
        "issue_reference_s": ISSUE_REFERENCE_S,
        "new": new,
        "baseline_commit": args.baseline,
        "baseline": old,
        "speedup_warm": None
        if old is None
        else {k: round(old[k]["warm_s"] / new[k]["warm_s"], 1) for k in new},
        "speedup_cold": None
        if old is None
        else {k: round(old[k]["cold_s"] / new[k]["cold_s"], 1) for k in new},
    }
    report["rows"] = table_rows(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=RESULTS.parent, delete=False) as tmp:
        json.dump(report, tmp, indent=1)
    Path(tmp.name).replace(RESULTS)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
