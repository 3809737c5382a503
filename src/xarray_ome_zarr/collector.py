"""Opening without Python's cyclic garbage collector running through what the open builds.

Opening a plate builds about a million container objects (groups, parsed metadata, variables,
indexes, Datasets, tree nodes), none of them garbage. Python's collector starts a collection
every few hundred allocations, and its full collections go through every object alive, so a
384-well plate's open spent about 40 % of its time collecting nothing
(``docs/benchmarks.md``, "Plates"). The opens pause it (as Mercurial's ``util.nogc`` does for
the same reason) and restore it when the outermost open ends, in whatever thread.
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_lock = threading.Lock()
#: Opens under way (in any thread), and whether the collector ran before the first began.
_state = {"depth": 0, "was_enabled": False}


@contextmanager
def collection_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while the block runs (nested and concurrent uses
    too); where it ran before the outermost use began, it runs again after that use ends."""
    with _lock:
        if _state["depth"] == 0:
            _state["was_enabled"] = gc.isenabled()
            gc.disable()
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0 and _state["was_enabled"]:
                gc.enable()


def without_collection(func: Callable[P, R]) -> Callable[P, R]:
    """``func`` run under :func:`collection_paused`."""

    @functools.wraps(func)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        with collection_paused():
            return func(*args, **kwargs)

    return paused
