"""Count the module entries of one ``pb.fit``, call by call (issue 29, "one data path").

A *module entry* is a call that crosses from one ``palm_bayes`` module into another (the
caller is the nearest ``palm_bayes`` frame on the stack, so callbacks through numpy, xarray or
PyMC count from the module that passed them); the first call into ``palm_fit`` counts as
entry 1. Each call site counts once, however often it runs (a loop over curves is one entry),
so the count follows the code as the review read it. A *return* is an entry into a module
visited earlier in the same fit. Module code run on import is not counted.

Three fits of a small slice of ``examples/lcdb_curves.nc`` (2 datasets x 2 learners, 6 seeds),
each the first of its kind in the process (models compiled inside the trace): independent
(default method, importance sampling), independent with ``method="nuts"``, and pooled over
``strategy``. Prints a table and the entries of each fit; writes
``benchmarks/results/module_entries.json``::

    python benchmarks/module_entries.py
"""

from __future__ import annotations

import argparse
import sys
import threading
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _results import write_results  # noqa: E402

#: The issue's targets: independent fits at most 8 entries and 2 returns; pooled 10 entries.
TARGETS = {"independent": (8, 2), "independent_nuts": (8, 2), "pooled": (10, None)}
SAMPLER = {"chains": 2, "draws": 100, "tune": 100, "progress": False}
#: (entries, returns, modules) measured by this script on main before the one data path
#: (commit 21c2eda, the script itself at c3c72ef).
BEFORE = {"independent": (54, 39, 15), "independent_nuts": (38, 26, 12), "pooled": (41, 28, 13)}


class EntryTracer:
    """Record the first call at each call site that crosses ``palm_bayes`` modules."""

    def __init__(self, package: Path):
        self.package = str(package) + "/"
        self._modules: dict[object, str | None] = {}
        self.entries: list[dict[str, str]] = []
        self._seen: set[tuple] = set()

    def module(self, code) -> str | None:
        """``palm_bayes``'s module of a code object (``inference.sampling``), else None."""
        if code not in self._modules:
            name = code.co_filename
            if not name.startswith(self.package) or code.co_name == "<module>":
                self._modules[code] = None
            else:
                rel = name[len(self.package) : -len(".py")].replace("/", ".")
                self._modules[code] = rel.removesuffix(".__init__") or "__init__"
        return self._modules[code]

    def __call__(self, frame, event, arg):
        """``sys.settrace`` hook: look at calls only (no line events)."""
        if event != "call":
            return None
        callee = self.module(frame.f_code)
        if callee is None:
            return None
        caller, back = None, frame.f_back
        while back is not None:
            if back.f_code.co_name == "<module>" and back.f_code.co_filename.startswith(
                self.package
            ):
                return None  # import-time code
            caller = self.module(back.f_code)
            if caller is not None:
                break
            back = back.f_back
        if caller == callee:
            return None
        site = (back.f_code, back.f_lineno, frame.f_code) if back is not None else (frame.f_code,)
        if site in self._seen:
            return None
        self._seen.add(site)
        self.entries.append(
            {
                "from": "-" if caller is None else f"{caller}.{back.f_code.co_name}",
                "to": f"{callee}.{frame.f_code.co_name}",
                "module": callee,
            }
        )
        return None


def count(run) -> dict:
    """Trace ``run()`` and summarise its module entries."""
    import palm_bayes

    tracer = EntryTracer(Path(palm_bayes.__file__).parent)
    threading.settrace(tracer)
    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]
    visited: list[str] = []
    returns = 0
    for entry in tracer.entries:
        entry["return"] = entry["module"] in visited
        returns += entry["return"]
        visited += [] if entry["return"] else [entry["module"]]
    return {
        "entries": len(tracer.entries),
        "returns": returns,
        "modules": len(visited),
        "path": [e["module"] for e in tracer.entries],
        "calls": tracer.entries,
    }


def curves():
    """The slice of the shipped LCDB example the fits run on."""
    import palm_bayes as pb

    full = pb.load_curves(ROOT / "examples" / "lcdb_curves.nc")
    return full.isel(dataset=[0, 1], strategy=[0, 1], seed=slice(0, 6))


def main(argv: list[str] | None = None) -> dict:
    """Count the three fits, print them and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    import palm_bayes as pb

    data, fit = curves(), pb.fit  # resolved outside the trace (PEP 562 ``__getattr__``)
    fits = {
        "independent": lambda: fit(data, seed=0, **SAMPLER),
        "independent_nuts": lambda: fit(data, seed=0, method="nuts", **SAMPLER),
        "pooled": lambda: fit(data, hierarchy="strategy", seed=0, **SAMPLER),
    }
    rows, details = [], {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, run in fits.items():
            found = count(run)
            max_entries, max_returns = TARGETS[name]
            rows.append(
                {
                    "fit": name,
                    "entries": found["entries"],
                    "returns": found["returns"],
                    "modules": found["modules"],
                    "before_entries": BEFORE[name][0],
                    "before_returns": BEFORE[name][1],
                    "target_entries": max_entries,
                    "target_returns": max_returns,
                }
            )
            details[name] = found
    print(f"{'fit':<18}{'entries':>8}{'returns':>8}{'modules':>8}{'before':>10}   target")
    for row in rows:
        target = f"<= {row['target_entries']} entries" + (
            f", <= {row['target_returns']} returns" if row["target_returns"] is not None else ""
        )
        before = f"{row['before_entries']}/{row['before_returns']}"
        print(
            f"{row['fit']:<18}{row['entries']:>8}{row['returns']:>8}{row['modules']:>8}"
            f"{before:>10}   {target}"
        )
    for name, found in details.items():
        print(f"\n{name}:")
        for k, call in enumerate(found["calls"], 1):
            mark = "  (return)" if call["return"] else ""
            print(f"  {k:>2}. {call['from']} -> {call['to']}{mark}")
    payload = {
        "data": "examples/lcdb_curves.nc: datasets 0-1, learners 0-1, seeds 0-5 (4 curves)",
        "sampler": SAMPLER,
        "rows": rows,
        "fits": details,
    }
    if not args.no_write:
        print("\nwrote", write_results("module_entries", payload))
    return payload


if __name__ == "__main__":
    main()
