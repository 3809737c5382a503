"""A lock that serialises writers of one store across threads and processes.

Region writes that share chunks (or need pixels another region writes) run one at a time
under :func:`store_lock`: a real lock on a file inside the store (``fcntl`` record locks,
which NFS honours too; ``msvcrt`` on Windows), plus a lock within the process, since record
locks do not exclude threads of one process. Only stores that are directories on this
machine can be locked; for others :func:`lock_path` is ``None``. Imports no xarray.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zarr

#: The lock file, at the root of the locked group (zarr ignores files it does not know).
LOCK_NAME = ".xarray-ome-zarr.lock"

_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def lock_path(store: Any, path: str = "") -> Path | None:
    """The lock file of the group at ``path`` of ``store``; ``None`` for a store that is not
    a local directory (an object store, a memory store, a zip)."""
    root: Path | None = None
    if isinstance(store, zarr.storage.LocalStore):
        root = Path(store.root)
    elif isinstance(store, zarr.storage.FsspecStore):
        protocol = store.fs.protocol
        protocols = protocol if isinstance(protocol, tuple) else (protocol,)
        if "file" in protocols or "local" in protocols:
            root = Path(store.path)
    if root is None:
        return None
    return root.joinpath(*[p for p in path.split("/") if p]) / LOCK_NAME


def _thread_lock(key: str) -> threading.Lock:
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(key, threading.Lock())


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing) while the block
    runs; waits for other holders, in this process or another."""
    key = os.path.abspath(path)
    with _thread_lock(key):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd)
            try:
                yield
            finally:
                _unlock(fd)
        finally:
            os.close(fd)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> None:
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                return
            except OSError:  # LK_LOCK gives up after 10 s: keep waiting
                continue

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.lockf(fd, fcntl.LOCK_EX)

    def _unlock(fd: int) -> None:
        fcntl.lockf(fd, fcntl.LOCK_UN)


__all__ = ["LOCK_NAME", "file_lock", "lock_path"]
