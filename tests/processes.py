"""Python child processes that start without paying for the heavy imports each time.

Tests that need a real process (one to kill with SIGKILL, one under its own resource limits)
but not a fresh interpreter fork it from multiprocessing's forkserver: a server process that
imported xarray, zarr, dask and the package once, and runs nothing else (no threads), so each
child starts as a fresh interpreter would after those imports.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Mapping, Sequence

#: What the forkserver imports once, before any child forks from it.
PRELOAD = ["numpy", "xarray", "zarr", "dask.array", "xarray_ome_zarr", "s3fs", __name__]


def _run(code: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
    """In the child: ``python -c code *argv`` with the environment ``env``."""
    os.environ.clear()
    os.environ.update(env)
    sys.argv = ["-c", *argv]
    exec(compile(code, "<child>", "exec"), {"__name__": "__main__"})  # noqa: S102


class Child:
    """A running ``python -c code *argv``, forked from the forkserver; a ``Popen`` look-alike
    (``pid``, ``poll``, ``send_signal``, ``wait``, ``returncode``: ``-N`` when killed by N)."""

    def __init__(self, code: str, *argv: str, env: Mapping[str, str] | None = None) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        environment = dict(os.environ if env is None else env)
        self._process = context.Process(target=_run, args=(code, list(argv), environment))
        self._process.start()
        self.pid = self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise TimeoutError(f"the child {self.pid} still runs after {timeout} s")
        return self._process.exitcode
