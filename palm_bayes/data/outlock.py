"""One writer per output folder: an exclusive lock held while a command writes ``--out``.

Two ``palm fit`` runs given the same ``--out`` used to race: one finished, the other died with
a traceback when its temporary folder was removed under it. The second now stops at once with
one line naming the first. The lock is an OS file lock (``fcntl.flock`` on ``<out>.lock``),
released by the kernel when its holder dies, so a killed run never blocks the next one (as
``al_runner``'s output lock).
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

from palm_bayes.errors import PalmInputError

__all__ = ["exclusive_output"]


def _owner_path(out: Path) -> Path:
    return out.with_name(out.name + ".lock.owner")


@contextmanager
def exclusive_output(out: str | os.PathLike) -> Iterator[None]:
    """Hold ``<out>.lock`` while the body runs; raise if another process holds it.

    Raises
    ------
    PalmInputError
        ``"<out> is being written by process <pid> on <host> (<command>), since <time>; ..."``.
    """
    try:
        import fcntl
    except ImportError:  # no POSIX file locks (Windows): no protection, as before
        yield
        return
    out = Path(out)
    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    lock_path = out.with_name(out.name + ".lock")
    handle = open(lock_path, "a+")  # noqa: SIM115 (held for the body's lifetime)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PalmInputError(
                f"{out} is being written by {_describe_owner(out)}; wait for it to finish or "
                "choose another --out"
            ) from None
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(sys.argv)[:200],
            "started": time.time(),
        }
        _owner_path(out).write_text(json.dumps(owner))
        try:
            yield
        finally:
            _owner_path(out).unlink(missing_ok=True)
            # the lock file stays: removing it would let a third process lock a new file
            # while a second one still waits on the old one
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def _describe_owner(out: Path) -> str:
    try:
        owner = json.loads(_owner_path(out).read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner["started"]))
        return f"process {owner['pid']} on {owner['host']} ({owner['command']}), since {since}"
    except (OSError, ValueError, KeyError):
        return "another process"
