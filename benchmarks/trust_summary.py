"""Where the default's answers can be trusted: one row per test bed, pilot and distance.

Reads the measured P(A beats B) of the shipped default (self-calibrated prior) from
``benchmarks/results/late_crossing.json`` (held out) and
``benchmarks/results/self_calibration_scores.json`` (development beds) and says, per row, what
a user may do with the answers there:

* ``decide``: Brier <= 0.15 and confident answers (P > 0.9 or < 0.1) right >= 90% of the time;
* ``decide on confident answers only``: Brier above 0.15 but the confident answers held;
* ``near a coin``: Brier >= 0.22 (a coin scores 0.25): expect most answers undecided;
* ``confident answers unreliable``: 10 or more confident answers, fewer than 90% right.

No fits are made; rerun after the two benchmarks. Writes ``results/trust_summary.json``::

    python benchmarks/trust_summary.py
"""

from __future__ import annotations

import json
import sys

from _results import RESULTS, write_results

DEFAULT = "self-calibrated (default)"
SOURCES = {"late_crossing.json": "held out", "self_calibration_scores.json": "development"}
DECIDE_BRIER, COIN_BRIER, RIGHT, ENOUGH = 0.15, 0.22, 0.9, 10


def verdict(brier: float, confident: int, right: float | None) -> str:
    """What the measured answers of one row allow."""
    if confident >= ENOUGH and right is not None and right < RIGHT:
        return "confident answers unreliable"
    if brier >= COIN_BRIER:
        return "near a coin"
    if brier <= DECIDE_BRIER:
        return "decide"
    return "decide on confident answers only"


def rows() -> list[dict]:
    """One row per bed, pilot and distance, for the shipped default."""
    out = []
    for name, role in SOURCES.items():
        measured = json.loads((RESULTS / name).read_text())
        for r in measured["rows"]:
            if r["prior"] != DEFAULT:
                continue
            out.append(
                {
                    "bed": r["bed"].replace("_", " "),
                    "role": role,
                    "pilot": f"{r['pilot_seeds']} seeds, {round(100 * r['cut'])}%",
                    "at": r["at"],
                    "pairs": r["pairs"],
                    "brier": r["brier"],
                    "confident": r["confident"],
                    "confident_right": r["confident_right"],
                    "verdict": verdict(r["brier"], r["confident"], r["confident_right"]),
                }
            )
    return out


def main() -> int:
    table = rows()
    for r in table:
        right = "-" if r["confident_right"] is None else f"{r['confident_right']:.2f}"
        print(f"{r['bed'][:30]:30s} {r['pilot']:15s} {r['at']:6s} Brier {r['brier']:.3f} "
              f"confident {r['confident']:4d} right {right:>5s}  {r['verdict']}")  # fmt: skip
    print(write_results("trust_summary", {"sources": list(SOURCES), "rows": table}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
