"""Caps on what a store's metadata can make the reader do: bounded memory, bounded time.

Opening reads metadata only, and what it allocates must not grow with the array shapes nor
beyond the size of the metadata documents. Lists in the metadata that the reader walks
(levels, wells, fields, label images, channels, series) are capped far above any real
image, and refused above the cap before any of them is read or validated: a store
anyone can publish must not be able to hang or kill the reader. Pure Python, no xarray.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, TypeVar

from ..errors import OmeZarrError

#: Datasets (resolution levels) in one multiscale: each halves the image at least.
MAX_LEVELS = 64
#: Wells listed in one plate (the largest plates in use have 3456).
MAX_WELLS = 10_000
#: Rows or columns listed in one plate.
MAX_PLATE_AXIS = 10_000
#: Fields of view listed in one well.
MAX_FIELDS = 10_000
#: Label images listed in one labels group.
MAX_LABELS = 10_000
#: Series listed by one bioformats2raw ``OME`` group.
MAX_SERIES = 100_000
#: Channels in one ``omero`` block.
MAX_CHANNELS = 100_000
#: Multiscales in one group (only the first is read).
MAX_MULTISCALES = 1_000
#: Dask blocks of one array opened with ``chunks={}``: beyond, the stored chunks are grouped
#: (whole multiples of them) so that a graph never holds more tasks than this.
MAX_DASK_BLOCKS = 1_000_000


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def remember_bounded(memo: dict[K, V], key: K, value: V, most: int) -> None:
    """Keep ``value`` under ``key`` in ``memo``, first dropping the oldest entry (a dict keeps
    insertion order) where a new key would make it hold more than ``most``: the memos of
    documents seen lately stay bounded however many documents a store has."""
    if key not in memo and len(memo) >= most:
        memo.pop(next(iter(memo)))
    memo[key] = value


def check_list_lengths(document: Mapping[str, Any], where: str) -> None:
    """Refuse lists of an OME document longer than their cap, naming the key and the cap.

    Raises
    ------
    OmeZarrError
        For a list longer than its cap (before anything in it is read or validated).
    """
    multiscales = document.get("multiscales")
    _cap(multiscales, MAX_MULTISCALES, "multiscales", where)
    for i, multiscale in enumerate(multiscales if isinstance(multiscales, list) else ()):
        if isinstance(multiscale, Mapping):
            _cap(multiscale.get("datasets"), MAX_LEVELS, f"multiscales/{i}/datasets", where)
    plate = document.get("plate")
    if isinstance(plate, Mapping):
        _cap(plate.get("wells"), MAX_WELLS, "plate/wells", where)
        _cap(plate.get("rows"), MAX_PLATE_AXIS, "plate/rows", where)
        _cap(plate.get("columns"), MAX_PLATE_AXIS, "plate/columns", where)
    well = document.get("well")
    if isinstance(well, Mapping):
        _cap(well.get("images"), MAX_FIELDS, "well/images", where)
    _cap(document.get("labels"), MAX_LABELS, "labels", where)
    _cap(document.get("series"), MAX_SERIES, "series", where)
    omero = document.get("omero")
    if isinstance(omero, Mapping):
        _cap(omero.get("channels"), MAX_CHANNELS, "omero/channels", where)


def _cap(value: Any, cap: int, key: str, where: str) -> None:
    if isinstance(value, list) and len(value) > cap:
        reason = (
            f"lists {len(value)} entries, more than the {cap} the reader accepts "
            "(a cap that keeps opening within bounded time and memory)"
        )
        raise OmeZarrError(f"{where}: {key}: {reason}", key=key, reason=reason)


def dask_chunks(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[int, ...]:
    """``chunks`` grown by whole multiples until ``shape`` has at most ``MAX_DASK_BLOCKS``.

    The axis with the most blocks doubles first, so blocks stay aligned with the stored
    chunks and as even as they can be.
    """
    grown = [max(int(c), 1) for c in chunks]
    sizes = [max(int(n), 1) for n in shape]

    def blocks(axis: int) -> int:
        return -(-sizes[axis] // grown[axis])

    total = 1
    for axis in range(len(sizes)):
        total *= blocks(axis)
    while total > MAX_DASK_BLOCKS:
        axis = max(range(len(sizes)), key=blocks)
        total //= blocks(axis)
        grown[axis] = min(grown[axis] * 2, sizes[axis])
        total *= blocks(axis)
    return tuple(grown)
