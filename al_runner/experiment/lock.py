"""One writer per output file: an exclusive lock held for a run's lifetime.

Two ``al-runner run`` processes given the same ``--out`` would overwrite each other's state
and lose one run's work; the second one now stops at once with an error naming the first.
The lock is an OS file lock (``filelock``), released by the kernel when its holder dies, so a
killed run never blocks the next one.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from al_runner.errors import ALRunnerError

__all__ = ["exclusive_output"]


def _owner_path(out: Path) -> Path:
    return out.with_name(out.name + ".lock.owner")


@contextmanager
def exclusive_output(out: str | os.PathLike) -> Iterator[None]:
    """Hold ``<out>.lock`` while the body runs; remove temporary files of killed writers first."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out.with_name(out.name + ".lock")), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        try:
            owner = json.loads(_owner_path(out).read_text())
            who = f"process {owner['pid']} on {owner['host']} ({owner['command']}), since " + (
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner["started"]))
            )
        except (OSError, ValueError, KeyError):
            who = "another process"
        raise ALRunnerError(
            f"{out} is being written by {who}; wait for it to finish or choose another --out"
        ) from None
    try:
        for stale in out.parent.glob(f".{out.name}.*.tmp"):  # left by writes killed mid-way
            stale.unlink(missing_ok=True)
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(sys.argv)[:200],
            "started": time.time(),
        }
        _owner_path(out).write_text(json.dumps(owner))
        yield
    finally:
        _owner_path(out).unlink(missing_ok=True)
        lock.release()
