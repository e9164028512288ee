"""Benchmark results as JSON: ``benchmarks/results/<name>.json``, written atomically.

Every file records when it was measured (UTC date), the commit of the code (``-dirty`` when the
working tree had changes) and the command line, beside the numbers; the report pages of the
documentation render their tables from these files (the ``results-table`` directive), so a
rerun changes data, not prose.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

__all__ = ["RESULTS", "write_results"]


def _commit() -> str:
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def write_results(name: str, payload: dict[str, Any], folder: Path = RESULTS) -> Path:
    """Write ``payload`` with ``date``, ``commit`` and ``command`` to ``folder/<name>.json``.

    The file is written to a temporary name in the same folder and renamed, so a reader never
    sees half a file. Returns the path.
    """
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "commit": _commit(),
        "command": "python " + shlex.join(["benchmarks/" + Path(sys.argv[0]).name, *sys.argv[1:]]),
    } | payload
    path = folder / f"{name}.json"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle, indent=1, default=float)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
