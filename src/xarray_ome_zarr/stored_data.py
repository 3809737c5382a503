"""Data that OME-Zarr 0.6 transforms keep by path, copied when an opened object is written.

Displacement and coordinate fields (multiscale groups) and affine or rotation parameters
(arrays) sit beside an image or scene, named by the ``path`` of a transform. The reader keeps
them lazy (only ``transform_points`` reads them), so they are not in the opened object: the
writer finds the store the object was opened from (through the zarr arrays its levels read
lazily) and copies them from there, lazily, as dask arrays of the stored chunks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import xarray as xr
import zarr

from .array import OmeZarrArray
from .errors import OmeZarrError
from .layout import PATH_ATTR
from .ngff.v06 import WRITTEN_VERSION, is_06, normalise_spelling
from .reader import encoding_of

#: How deep a chain of xarray's lazy wrappers is searched for the zarr array.
MAX_WRAPPERS = 16


@dataclass(frozen=True)
class StoredCopy:
    """One node to copy: a group's attributes (``array`` is ``None``) or an array."""

    path: str
    attrs: Mapping[str, Any]
    array: xr.DataArray | None = None


def backing_array(level: xr.DataArray) -> zarr.Array | None:
    """The zarr array a level reads lazily (numpy-backed or computed levels have none)."""
    data: Any = level.variable._data
    if isinstance(data, da.Array):
        originals = [
            value
            for name, layer in data.dask.layers.items()
            if str(name).startswith("original-")
            for value in layer.values()
        ]
        data = originals[0] if len(originals) == 1 else None
    for _ in range(MAX_WRAPPERS):
        if data is None:
            return None
        if isinstance(data, OmeZarrArray):
            return data.get_array()
        data = getattr(data, "array", None)
    return None


def source_group(levels: Sequence[xr.DataArray], paths: Sequence[Any], below: str = "") -> Any:
    """The source zarr group of an image (``below`` is the image's path under the wanted
    group, for a scene above it), found through its levels' lazily read arrays."""
    for level, path in zip(levels, paths, strict=False):
        array = backing_array(level)
        if array is None or not isinstance(path, str):
            continue
        full = array.path.strip("/")
        tail = "/".join(p for p in (below.strip("/"), path.strip("/")) if p)
        if full != tail and not full.endswith("/" + tail):
            continue
        where = full[: len(full) - len(tail)].strip("/")
        try:
            return zarr.open_group(store=array.store, path=where or None, mode="r")
        except Exception:  # the store went away or moved: no source
            return None
    return None


def tree_source_group(node: xr.DataTree) -> Any:
    """The source zarr group of a tree node (a scene) through any image below it."""
    for sub in node.subtree:
        if not sub.has_data or sub.parent is None:
            continue
        ds = sub.to_dataset(inherit=False)
        levels = [ds[name] for name in ds.data_vars]
        image = sub.parent
        below = "" if image is node else image.relative_to(node)
        found = source_group(levels, [ds.attrs.get(PATH_ATTR)] * len(levels), below)
        if found is not None:
            return found
    return None


def stored_copies(group: Any, path: str, where: str) -> list[StoredCopy]:
    """Everything at ``path`` under ``group`` as copies: groups (0.6 documents in the 0.6
    spelling, version ``"0.6"``) and arrays (lazy, with the stored encoding).

    Raises
    ------
    OmeZarrError
        When nothing is stored at ``path``.
    """
    try:
        member = group[path]
    except Exception as err:
        raise OmeZarrError.at(
            f"the transforms name stored data at {path!r}, which the source store does not "
            f"hold ({type(err).__name__})",
            node=where,
            key=path,
        ) from None
    if isinstance(member, zarr.Array):
        return [_array_copy(path, member, where)]
    out = [StoredCopy(path, _group_attrs(member.attrs.asdict()))]
    for name, child in sorted(member.members(max_depth=None), key=lambda item: item[0]):
        child_path = f"{path}/{name}"
        if isinstance(child, zarr.Array):
            out.append(_array_copy(child_path, child, where))
        else:
            out.append(StoredCopy(child_path, _group_attrs(child.attrs.asdict())))
    return out


def _group_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    ome = attrs.get("ome")
    if isinstance(ome, Mapping) and is_06(ome.get("version")):
        spelled, _ = normalise_spelling(ome)
        return {**attrs, "ome": {**spelled, "version": WRITTEN_VERSION}}
    return dict(attrs)


def _array_copy(path: str, array: zarr.Array, where: str) -> StoredCopy:
    names = getattr(array.metadata, "dimension_names", None)
    dims = [str(n) for n in names] if names else [f"dim_{i}" for i in range(array.ndim)]
    data = xr.DataArray(
        da.from_zarr(array),
        dims=dims,
        attrs={k: v for k, v in array.attrs.asdict().items() if k != "_ARRAY_DIMENSIONS"},
    )
    data.encoding = encoding_of(array, tuple(dims), where)
    return StoredCopy(path, {}, data)
