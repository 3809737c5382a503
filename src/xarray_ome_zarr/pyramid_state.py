"""The marker of a pyramid whose lower levels are not yet up to date.

Regions written at once by several writers update every level where each covers whole
chunks and whole pyramid blocks; the coarser levels wait for
:func:`xarray_ome_zarr.build_pyramid`. Until then the image group's attributes carry
``{"xarray_ome_zarr": {"stale_from_level": k}}`` beside the OME metadata (peers ignore
keys they do not know): levels ``k`` and below may be stale. The reader warns (rule
:data:`RULE`), ``validate`` reports it, ``build_pyramid`` removes it. Imports no xarray.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import zarr

#: The attribute holding the marker (beside ``ome`` in 0.5, in ``.zattrs`` for 0.4).
MARKER_KEY = "xarray_ome_zarr"
#: The marker's field: the first level that may be stale.
STALE_FROM = "stale_from_level"
#: The rule id of the warning (docs/errors.md).
RULE = "pyramid-incomplete"


def stale_from(attrs: Mapping[str, Any]) -> int | None:
    """The first level that may be stale, from an image group's attributes; ``None`` when
    the pyramid is complete."""
    marker = attrs.get(MARKER_KEY)
    if not isinstance(marker, Mapping):
        return None
    level = marker.get(STALE_FROM)
    if isinstance(level, bool) or not isinstance(level, int) or level < 1:
        return None
    return level


def stale_message(level: int) -> str:
    """What the warning and ``validate`` say about a marked image."""
    return (
        "the pyramid is incomplete: regions were written without a lock and levels from "
        f"{level} on may be stale until xarray_ome_zarr.build_pyramid(store) rebuilds them "
        "(level 0 is complete)"
    )


def mark_stale(group: zarr.Group, level: int) -> None:
    """Record that levels from ``level`` on may be stale (the lowest such level wins)."""
    for _ in range(3):  # writers without a lock: read back, and lower it again if lost
        attrs: dict[str, Any] = dict(group.attrs.asdict())
        known = stale_from(attrs)
        if known is not None and known <= level:
            return
        old = attrs.get(MARKER_KEY)
        marker = dict(old) if isinstance(old, Mapping) else {}
        marker[STALE_FROM] = level
        group.attrs.update({MARKER_KEY: marker})
        group = zarr.open_group(group.store, path=group.path or None, mode="r+")


def clear_stale(group: zarr.Group) -> None:
    """Remove the marker: every level is up to date."""
    attrs: dict[str, Any] = dict(group.attrs.asdict())
    old = attrs.get(MARKER_KEY)
    if not isinstance(old, Mapping):
        return
    marker = {k: v for k, v in old.items() if k != STALE_FROM}
    if marker:
        group.attrs.update({MARKER_KEY: marker})
    else:
        group.attrs.put({k: v for k, v in attrs.items() if k != MARKER_KEY})


__all__ = ["MARKER_KEY", "RULE", "STALE_FROM", "clear_stale", "mark_stale", "stale_from"]
