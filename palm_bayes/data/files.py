"""Atomic file and folder writes.

A reader never sees a half-written file or folder, and a failed write keeps the previous one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_folder", "check_writable_folder"]

_PARTIAL = ".partial-"


def check_writable_folder(path: str | os.PathLike, marker: str) -> Path:
    """Check, before any long work, that ``path`` can become an output folder.

    ``path`` must be missing, empty or an earlier output (it holds ``marker``), and its parent
    writable. Raises :class:`OSError` subclasses' messages as ``ValueError`` with plain words.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not (path / marker).exists():
        raise ValueError(
            f"{path} is a folder with other content (no {marker}); refusing to replace it"
        )
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write into {parent} (permission denied)")
    return path


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    if not hasattr(libc, "renameat2"):
        return False
    at_fdcwd, rename_exchange = -100, 2
    done = libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return done == 0


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Write a folder's files into a temporary sibling, then swap it in as ``path``.

    The swap is atomic on Linux (an existing ``path`` and the new folder are exchanged in one
    system call), so a reader, or a process killed at any moment, sees either the complete old
    folder or the complete new one. Partial folders left by killed writers are removed on the
    next write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}{_PARTIAL}*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}{_PARTIAL}"))
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        if not path.exists():
            os.rename(tmp, path)
        elif _exchange(tmp, path):
            shutil.rmtree(tmp)  # now the old folder
        else:  # no atomic exchange here: two renames (a kill between them keeps the old
            # folder under .<name>.old-*)
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
            os.rmdir(old)
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
