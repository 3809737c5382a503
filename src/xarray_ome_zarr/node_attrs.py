"""How an xarray node's ``attrs`` hold its zarr group's attributes, both ways.

Every node the reader opens keeps the group's attributes verbatim under one key of its
own, ``attrs["ome_group_attrs"]``, rather than at the top level of ``attrs``: xarray's own
writers (``ds.to_zarr``, ``dt.to_zarr``) then write a store that makes no OME claim (its
layout is xarray's, not OME-Zarr's). :func:`group_attrs` is the one place that turns a
node's ``attrs`` back into group attributes for writing, validating and describing: the
nested dict, with the other top-level attrs (a user's ``ds.attrs["experiment"]``, or the
group attributes spelled at the top level as before this key existed) merged on top.

The top level also holds the package's own per-node keys, which are not group attributes:
a level Dataset's ``ome_dataset_path`` and the ``ome_coordinate_system`` chosen at open.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import numpy as np

from .errors import OmeZarrError

#: The attrs key holding the zarr group's attributes, verbatim.
GROUP_ATTRS = "ome_group_attrs"
#: Level Dataset attribute recording the level's dataset path on disk.
PATH_ATTR = "ome_dataset_path"
#: Dataset attribute naming the coordinate system chosen with ``coordinate_system=`` (0.6).
SYSTEM_ATTR = "ome_coordinate_system"
#: Rule id of a group with OME metadata whose attributes also hold ``ome_group_attrs``.
NESTED_COPY_RULE = "nested-group-attrs"
#: The package's own top-level attrs keys: never group attributes.
OWN_KEYS = frozenset({GROUP_ATTRS, PATH_ATTR, SYSTEM_ATTR})


def node_attrs(group_attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The attrs of a node opened from a group with these attributes (kept verbatim)."""
    return {GROUP_ATTRS: dict(group_attributes)}


def nested_group_attrs(attrs: Mapping[Any, Any], where: str = "") -> dict[str, Any] | None:
    """``attrs["ome_group_attrs"]`` itself (the same dict, for editing in place), or ``None``.

    Raises
    ------
    OmeZarrError
        When it is there but not a dict.
    """
    nested = attrs.get(GROUP_ATTRS)
    if nested is None or isinstance(nested, dict):
        return nested
    raise OmeZarrError(
        f"{where + ': ' if where else ''}attrs[{GROUP_ATTRS!r}] holds the zarr group's "
        f"attributes and must be a dict, got {type(nested).__name__}"
    )


def group_attrs(attrs: Mapping[Any, Any], where: str = "") -> dict[str, Any]:
    """The zarr group attributes a node's ``attrs`` stand for (a new dict, shallow).

    ``attrs["ome_group_attrs"]`` when present, with every other top-level key except the
    package's own (``ome_dataset_path``, ``ome_coordinate_system``) merged on top: attrs a
    user adds are group attributes too, and the spelling from before the nested key
    (``attrs={"ome": {...}}``, ``attrs={"multiscales": [...]}``) keeps working.

    Raises
    ------
    OmeZarrError
        When a key is both in ``attrs["ome_group_attrs"]`` and at the top level with another
        value (which one is meant cannot be told), or the nested value is not a dict.
    """
    nested = nested_group_attrs(attrs, where)
    out: dict[str, Any] = dict(nested) if nested is not None else {}
    for key, value in attrs.items():
        name = str(key)
        if name in OWN_KEYS:
            continue
        if name in out and not _same(out[name], value):
            prefix = f"{where}: " if where else ""
            raise OmeZarrError(
                f"{prefix}attrs key {name!r} is both in attrs[{GROUP_ATTRS!r}] and at the top "
                "level of attrs, with different values, and only one can be written as the "
                f"group's attribute; keep one (the group's attributes belong in "
                f"attrs[{GROUP_ATTRS!r}], also reached as obj.ome.group_attrs)",
                key=name,
            )
        out[name] = value
    return out


def attached_group_attrs(attrs: MutableMapping[Any, Any], move: Iterable[Any]) -> dict[str, Any]:
    """``attrs["ome_group_attrs"]`` itself, for editing in place; where there is none, one
    is made of the top-level keys ``move`` (the group attributes spelled at the top level,
    taken out of it), so that what the attrs stand for is unchanged."""
    nested = nested_group_attrs(attrs)
    if nested is None:
        keys = [k for k in move if str(k) not in OWN_KEYS]
        nested = {str(k): attrs.pop(k) for k in keys}
        attrs[GROUP_ATTRS] = nested
    return nested


def _same(a: Any, b: Any) -> bool:
    """Whether two attribute values are equal (numpy arrays included)."""
    try:
        return bool(a == b)
    except (ValueError, TypeError):  # arrays: elementwise comparison
        try:
            return bool(np.array_equal(np.asarray(a), np.asarray(b)))
        except (ValueError, TypeError):
            return False


def written_by_xarray_hint(group_attributes: Mapping[str, Any]) -> str:
    """What to say about a group without OME metadata whose attributes hold
    ``ome_group_attrs``: a store xarray's own ``to_zarr`` wrote from an object we opened."""
    if GROUP_ATTRS not in group_attributes:
        return ""
    return (
        f"; its attributes hold {GROUP_ATTRS!r}: it looks written by xarray's own to_zarr "
        "from an object opened as OME-Zarr, which keeps the OME metadata but in xarray's "
        "layout, not OME-Zarr's. To get OME-Zarr back, open it with engine='zarr' "
        "(xr.open_zarr or xr.open_datatree(..., engine='zarr')), then write it with "
        "xoz.to_ome_zarr"
    )


def nested_copy_message(group_attributes: Mapping[str, Any]) -> str | None:
    """What to say about an OME group whose attributes also hold ``ome_group_attrs`` (an
    opened object's attributes, copied by xarray's ``to_zarr`` under a writer that adds its
    own OME metadata, such as multiscale-spatial-image's ``msi.to_zarr``); ``None`` if not.
    """
    nested = group_attributes.get(GROUP_ATTRS)
    if not isinstance(nested, Mapping):
        return None
    unread = sorted(str(k) for k in nested if k not in group_attributes)
    blocks = f"; its blocks {unread} are not read as OME metadata" if unread else ""
    return (
        f"the group's attributes also hold {GROUP_ATTRS!r}, a copy of an opened object's "
        "attributes written by xarray's own to_zarr (e.g. under multiscale-spatial-image's "
        f"msi.to_zarr){blocks}: only the group's own OME metadata is read (the copy stays in "
        "attrs, verbatim); xoz.to_ome_zarr writes an opened object with all its metadata"
    )
