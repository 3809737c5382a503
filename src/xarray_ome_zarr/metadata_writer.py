"""``xoz.write_metadata``: rewrite the OME metadata of an existing store, never a pixel.

The edited object (opened with the engine, its channel names, colours, windows, units or
variable name changed) is planned exactly as :func:`~xarray_ome_zarr.to_ome_zarr` plans it,
in the store's version; the plan is then held against the store (the same arrays, shapes,
dtypes and axes; the same scale and translation at every level) and only the groups'
attributes are written, the deepest first, then consolidated metadata where the store has
it. Geometry and shapes are the pixels' business: an object whose geometry differs from the
store's is refused.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
import zarr

from .consolidated import kept_consolidated
from .errors import OmeZarrError
from .existing import look_at, node_path, version_for
from .layout import PATH_ATTR, as_image_dataarray, level_names
from .ngff.emit import split_source
from .ngff.parse import parse_node
from .node_attrs import group_attrs, node_attrs
from .reader import open_ome_groups
from .store import open_store
from .targets import Plan
from .transforms import level_geometry
from .writer import Options, make_plan

__all__ = ["write_metadata"]

#: Relative tolerance when comparing scales and translations with the stored ones.
GEOMETRY_RTOL = 1e-9


def write_metadata(
    obj: xr.DataArray | xr.Dataset | xr.DataTree,
    store: Any,
    *,
    group: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Rewrite the OME metadata of the image (or hierarchy) at ``store`` from ``obj``,
    without touching a pixel.

    What it changes is what the metadata says about the pixels: channel names (the channel
    coordinate; a renamed channel keeps its colour and window), ``omero`` colours, windows
    and other keys, axis units (the coordinates' ``units`` attrs), the multiscale's name
    (the data variable's name), ``image-label`` colours and properties, plate and well
    names and any other key in the attrs. It never changes the geometry (scale and
    translation), the shapes, the dtype or the levels: those are the pixels' business,
    so an ``obj`` whose coordinates differ from the store's is refused (write the image
    again with :func:`~xarray_ome_zarr.to_ome_zarr` for that).

    Parameters
    ----------
    obj
        The object as opened from the store (``xr.open_dataset``/``open_datatree`` with
        ``engine="ome-zarr"``), edited. One level (a Dataset or DataArray of any level)
        stands for its whole image: its attrs, channel names, units and name are applied
        to every level. A DataTree is written node by node (an image, or a hierarchy with
        labels, plates, wells).
    store
        The existing store: a local path, URL, zarr store or ``zarr.Group``.
    group
        The image (or hierarchy) inside the store that ``obj`` describes; default the root.
    storage_options
        fsspec options, for URLs.

    Raises
    ------
    OmeZarrError
        When the store or the node is not there, ``obj`` has other levels, shapes, axes or
        coordinates than the store, names a node the store does not have, or its metadata
        would not validate. Nothing is written then.

    Examples
    --------
    >>> ds = xr.open_dataset("cells.ome.zarr", engine="ome-zarr")          # doctest: +SKIP
    >>> ds = ds.assign_coords(c=["nuclei", "membrane"])                    # doctest: +SKIP
    >>> ds.ome.group_attrs["ome"]["omero"]["channels"][0]["color"] = "FF00FF"  # doctest: +SKIP
    >>> xoz.write_metadata(ds, "cells.ome.zarr")                           # doctest: +SKIP
    """
    path = node_path(group)
    existing = look_at(store, path, storage_options)
    if not existing.exists:
        raise OmeZarrError.at(
            "no such store: write_metadata changes an existing one", store=existing.name
        )
    version = version_for(None, existing, path)
    stored = _open_stored(store, path, storage_options, existing.name)
    edited = _as_tree(obj, stored, existing.name, path)
    try:
        plan = make_plan(edited, Options(version))
    except OmeZarrError as err:
        raise err.in_store(existing.name) from None
    opened, _, close = (
        (store, None, None)
        if isinstance(store, zarr.Group)
        else open_store(store, storage_options=storage_options, read_only=False)
    )
    try:
        root = (
            opened
            if isinstance(opened, zarr.Group)
            else zarr.open_group(opened, mode="r+", use_consolidated=False)
        )
        node = _group(root, path)
        _check_against_store(plan, node, existing.name, path)
        with kept_consolidated(root):
            for where in sorted(plan.groups, key=lambda p: (-p.count("/"), p)):
                _group(node, where).attrs.put(plan.groups[where])
    finally:
        if close is not None:
            close()


def _group(node: zarr.Group, path: str) -> zarr.Group:
    found = node[path] if path else node
    if not isinstance(found, zarr.Group):
        raise OmeZarrError.at("is an array, not a group", node=path)
    return found


def _open_stored(
    store: Any, path: str, storage_options: Mapping[str, Any] | None, name: str
) -> xr.DataTree:
    groups = open_ome_groups(
        store, group=path or None, storage_options=dict(storage_options or {}), validate=False
    )
    return xr.DataTree.from_dict(groups)


def _as_tree(obj: Any, stored: xr.DataTree, name: str, path: str) -> Any:
    """``obj`` as a tree of the stored node: a level stands for its whole image."""
    if isinstance(obj, xr.DataTree):
        return obj
    if not isinstance(obj, xr.DataArray | xr.Dataset):
        raise OmeZarrError.at(
            f"write_metadata takes a DataArray, Dataset or DataTree, got {type(obj).__name__}",
            store=name,
            node=path,
        )
    levels = level_names(stored)
    if not levels:
        raise OmeZarrError.at(
            "is not an image: pass the DataTree of the hierarchy", store=name, node=path
        )
    array, attrs = as_image_dataarray(obj, f"store {name!r}, node {'/' + path!r}")
    _check_level(obj, array, stored, levels, name, path)
    out = stored.copy()
    written = dict(attrs) if attrs else group_attrs(stored.attrs)
    first = stored[levels[0]].to_dataset()
    old = next(iter(first.data_vars))
    new_name = str(array.name) if array.name is not None else str(old)
    channel = next((str(d) for d in array.dims if _is_channel(array, str(d))), None)
    if channel is not None and channel in array.coords and channel in first.coords:
        renamed = [str(v) for v in array[channel].values]
        before = [str(v) for v in first[channel].values]
        if len(renamed) == len(before) and renamed != before:
            written = _relabelled(written, before, renamed)
    out.attrs = node_attrs(written)
    for level in levels:
        ds = stored[level].to_dataset()
        ds = ds.rename({old: new_name}) if new_name != old else ds
        updates = {}
        for dim in map(str, array.dims):
            if dim not in array.coords or dim not in ds.coords:
                continue
            if dim == channel:
                updates[dim] = ds[dim].copy(data=array[dim].values)
            else:
                attrs_now = dict(ds[dim].attrs)
                if "units" in array[dim].attrs:
                    attrs_now["units"] = array[dim].attrs["units"]
                else:
                    attrs_now.pop("units", None)
                updates[dim] = ds[dim].copy()
                updates[dim].attrs = attrs_now
        out[level] = xr.DataTree(ds.assign_coords(updates))
    return out


def _check_level(
    obj: xr.DataArray | xr.Dataset,
    array: xr.DataArray,
    stored: xr.DataTree,
    levels: list[str],
    name: str,
    path: str,
) -> None:
    """Refuse one level whose shape or coordinates are not those of its stored level."""
    on_disk = obj.attrs.get(PATH_ATTR)
    index = 0
    for i, level in enumerate(levels):
        if stored[level].to_dataset().attrs.get(PATH_ATTR) == on_disk and on_disk is not None:
            index = i
    ds = stored[levels[index]].to_dataset()
    image = next(iter(ds.data_vars.values()))
    if dict(array.sizes) != dict(image.sizes):
        raise OmeZarrError.at(
            f"the object has shape {dict(array.sizes)}, the store's level {index} "
            f"{dict(image.sizes)}: write_metadata changes metadata only",
            store=name,
            node=path,
        )
    for dim in map(str, array.dims):
        if _is_channel(array, dim) or dim not in array.coords or dim not in ds.coords:
            continue
        mine = np.asarray(array[dim].values, dtype=float)
        theirs = np.asarray(ds[dim].values, dtype=float)
        step = abs(float(theirs[1] - theirs[0])) if theirs.size > 1 else 1.0
        if not np.allclose(mine, theirs, rtol=0, atol=GEOMETRY_RTOL * max(step, 1e-300)):
            raise OmeZarrError.at(
                f"the coordinates along {dim!r} are not the store's at level {index}: "
                "write_metadata does not move pixels (write the image again with "
                "to_ome_zarr to change its geometry)",
                store=name,
                node=path,
                key=f"multiscales/0/datasets/{index}",
            )


def _is_channel(array: xr.DataArray, dim: str) -> bool:
    if dim in array.coords and array[dim].attrs.get("axis_type") == "channel":
        return True
    return dim == "c"


def _relabelled(attrs: Mapping[Any, Any], before: list[str], after: list[str]) -> dict[Any, Any]:
    """``attrs`` whose ``omero`` channels labelled ``before`` are labelled ``after`` instead,
    so renamed channels keep their colours and windows."""
    out = copy.deepcopy(dict(attrs))
    document = out["ome"] if isinstance(out.get("ome"), dict) else out
    omero = document.get("omero")
    channels = omero.get("channels") if isinstance(omero, dict) else None
    if not isinstance(channels, list):
        return out
    for channel in channels:
        if isinstance(channel, dict) and channel.get("label") in before:
            channel["label"] = after[before.index(channel["label"])]
    return out


def _check_against_store(plan: Plan, node: zarr.Group, name: str, path: str) -> None:
    """Refuse a plan that would change what the pixels are: other arrays, shapes, dtypes,
    axes, levels or geometry than the store's, or nodes the store does not have."""

    def where(p: str) -> str:
        return "/" + "/".join(x for x in (path, p) if x)

    for array in plan.arrays:
        try:
            found = node[array.path]
        except KeyError:
            raise OmeZarrError.at(
                "no such array in the store: write_metadata changes metadata only (add "
                "levels or nodes with to_ome_zarr)",
                store=name,
                node=where(array.path),
            ) from None
        if not isinstance(found, zarr.Array):
            raise OmeZarrError.at(
                "is a group in the store, not an array", store=name, node=where(array.path)
            )
        if tuple(found.shape) != tuple(array.data.shape) or found.dtype != array.data.dtype:
            raise OmeZarrError.at(
                f"the object has shape {tuple(array.data.shape)} and dtype {array.data.dtype}, "
                f"the store {tuple(found.shape)} and {found.dtype}: write_metadata changes "
                "metadata only",
                store=name,
                node=where(array.path),
            )
    for group_path, attrs in plan.groups.items():
        try:
            found_group = node[group_path] if group_path else node
        except KeyError:
            raise OmeZarrError.at(
                "no such group in the store: write_metadata changes metadata only (add nodes "
                "with to_ome_zarr(..., mode='a'))",
                store=name,
                node=where(group_path),
            ) from None
        _same_geometry(attrs, found_group.attrs.asdict(), name, where(group_path))


def _same_geometry(new: Mapping[str, Any], old: Mapping[str, Any], name: str, node: str) -> None:
    new_source, old_source = split_source(new), split_source(old)
    if new_source.multiscales is None and old_source.multiscales is None:
        return
    if (new_source.multiscales is None) != (old_source.multiscales is None):
        raise OmeZarrError.at(
            "the object and the store disagree on whether this is an image",
            store=name,
            node=node,
            key="multiscales",
        )
    where = f"store {name!r}, node {node!r}"
    new_ms = parse_node(new, where, validate=False).multiscales[0]
    old_ms = parse_node(old, where, validate=False).multiscales[0]
    new_axes = [(a.name, a.type) for a in new_ms.axes]
    old_axes = [(a.name, a.type) for a in old_ms.axes]
    if new_axes != old_axes:
        raise OmeZarrError.at(
            f"axes {new_axes} are not the store's {old_axes}: write_metadata changes names, "
            "units and display settings, not axes",
            store=name,
            node=node,
            key="multiscales/0/axes",
        )
    if len(new_ms.levels) != len(old_ms.levels):
        raise OmeZarrError.at(
            f"{len(new_ms.levels)} levels, the store {len(old_ms.levels)}",
            store=name,
            node=node,
            key="multiscales/0/datasets",
        )
    for i, (a, b) in enumerate(zip(new_ms.levels, old_ms.levels, strict=True)):
        new_geometry, old_geometry = level_geometry(new_ms, i), level_geometry(old_ms, i)
        same = a.path == b.path and all(
            np.allclose(x, y, rtol=GEOMETRY_RTOL, atol=0)
            for x, y in zip(new_geometry, old_geometry, strict=True)
        )
        if not same:
            raise OmeZarrError.at(
                f"level {i} ({a.path!r}) has scale {new_geometry[0].tolist()} and translation "
                f"{new_geometry[1].tolist()}, the store ({b.path!r}) {old_geometry[0].tolist()} "
                f"and {old_geometry[1].tolist()}: write_metadata does not move pixels (write "
                "the image again with to_ome_zarr to change its geometry)",
                store=name,
                node=node,
                key=f"multiscales/0/datasets/{i}",
            )
