"""What is in a store, as plain data: :func:`info` (and ``xarray-ome-zarr info --json``).

One walk of an opened tree gives a JSON-ready dict: every image (kind, name, version, axes,
channel names, label images, and per level the path on disk, shape, dtype, chunks, shards,
scale and translation of every axis but the channel axis: space, time and custom types),
plate, well and bioformats2raw collection, in hierarchy order. The command's text listing is
printed from the same dict. Only metadata is read, never a chunk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import xarray as xr

from .layout import (
    PATH_ATTR,
    SCALE_ATTR,
    UNITS_ATTR,
    axis_type,
    level_names,
    ome_document,
    stored_axes,
)
from .ngff.parse import parse_plate, parse_well
from .node_attrs import group_attrs

__all__ = ["describe_tree", "info"]


def info(
    store: Any, *, storage_options: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """What is in an OME-Zarr store, as a JSON-ready dict (``info --json`` prints it).

    Parameters
    ----------
    store
        A local path, URL, ``.ozx`` file, zarr store or ``zarr.Group``; or a DataTree
        already opened with the ``ome-zarr`` engine.
    storage_options
        For fsspec URLs (``{"anon": True}`` for a public bucket).
    **kwargs
        Passed to ``xr.open_datatree(..., engine="ome-zarr")`` (``group``, ``strict``...).

    Returns
    -------
    dict
        ``{"store": name, "nodes": [...]}``: one entry per image, plate, well and
        collection, in hierarchy order, each with its ``path`` and ``kind``. An image has
        ``name``, ``version``, ``axes`` (``name``, ``type``, ``unit``), ``channels``,
        ``labels`` and ``levels`` (``name``, ``path``, ``shape``, ``dtype``, ``chunks``,
        ``shards``, ``scale`` and ``translation`` by axis, every axis but the channel
        axis).

    Examples
    --------
    >>> summary = xoz.info("cells.ome.zarr")                            # doctest: +SKIP
    >>> image = summary["nodes"][0]                                     # doctest: +SKIP
    >>> image["kind"], image["levels"][0]["shape"], image["levels"][-1]["scale"]
    ... # doctest: +SKIP
    ('image', [2, 16, 128, 128], {'z': 8.0, 'y': 2.0, 'x': 2.0})
    """
    from .store import store_name

    if isinstance(store, xr.DataTree):
        return {"store": None, "nodes": describe_tree(store)}
    options: dict[str, Any] = {}
    if storage_options is not None:
        options["storage_options"] = storage_options
    tree = xr.open_datatree(store, engine="ome-zarr", **options, **kwargs)
    try:
        return {"store": store_name(store, storage_options), "nodes": describe_tree(tree)}
    finally:
        tree.close()


def describe_tree(tree: xr.DataTree) -> list[dict[str, Any]]:
    """One dict per image, plate, well and collection of an opened tree, in order."""
    out: list[dict[str, Any]] = []
    _walk(tree, out)
    return out


def _walk(node: xr.DataTree, out: list[dict[str, Any]]) -> None:
    version, document = ome_document(group_attrs(node.attrs))
    levels = level_names(node)
    if levels:
        out.append(_image(node, version, document, levels))
    elif isinstance(document.get("plate"), Mapping):
        out.append(_plate(node.path, version, document["plate"]))
    elif isinstance(document.get("well"), Mapping):
        out.append(_well(node.path, document["well"]))
    elif "bioformats2raw.layout" in document:
        series = [name for name, child in node.children.items() if level_names(child)]
        out.append({"path": node.path, "kind": "bioformats2raw collection", "series": series})
    for name, child in node.children.items():
        if name not in levels:
            _walk(child, out)


def _image(
    node: xr.DataTree, version: str | None, document: Mapping[str, Any], levels: list[str]
) -> dict[str, Any]:
    multiscales = document.get("multiscales")
    multiscale = multiscales[0] if isinstance(multiscales, list) and multiscales else {}
    name = multiscale.get("name") if isinstance(multiscale, Mapping) else None
    datasets = [(level, node[level].to_dataset()) for level in levels]
    first = datasets[0][1]
    variable = _variable(first)
    dims = variable.dims if variable is not None else tuple(first.dims)
    axes = _axes(first, dims, group_attrs(node.attrs))
    channel = next((a["name"] for a in axes if a["type"] == "channel"), None)
    channels = None
    if channel is not None and channel in first.coords:
        channels = [str(v) for v in first.coords[channel].values]
    labels = node.children.get("labels")
    label_names = None
    if labels is not None:
        label_names = [n for n, child in labels.children.items() if level_names(child)]
    # every axis but the channel axis has a position: space, time and custom types alike
    positional = [a["name"] for a in axes if a["type"] != "channel"]
    return {
        "path": node.path,
        "kind": "label image" if "image-label" in document else "image",
        "name": name if isinstance(name, str) and name else None,
        "version": version,
        "axes": axes,
        "channels": channels,
        "labels": label_names,
        "levels": [_level(level, ds, positional) for level, ds in datasets],
    }


def _variable(ds: xr.Dataset) -> xr.DataArray | None:
    names = list(ds.data_vars)
    return ds[names[0]] if names else None


def _axes(ds: xr.Dataset, dims: Sequence[Any], attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """name, type and unit of each dim: from the coordinates, else from the metadata."""
    stored = stored_axes(attrs)
    out = []
    for dim in map(str, dims):
        coord = ds.coords.get(dim)
        coord_attrs = coord.attrs if coord is not None else {}
        unit = coord_attrs.get(UNITS_ATTR) or (stored[dim].unit if dim in stored else None)
        out.append({"name": dim, "type": axis_type(dim, coord_attrs, stored), "unit": unit})
    return out


def _level(name: str, ds: xr.Dataset, positional: list[str]) -> dict[str, Any]:
    variable = _variable(ds)
    encoding = variable.encoding if variable is not None else {}
    shards = encoding.get("shards")
    chunks = encoding.get("chunks")
    return {
        "name": name,
        "path": ds.attrs.get(PATH_ATTR),
        "shape": [int(n) for n in variable.shape] if variable is not None else None,
        "dtype": str(variable.dtype) if variable is not None else None,
        "chunks": [int(c) for c in chunks] if chunks else None,
        "shards": [int(s) for s in shards] if shards else None,
        "scale": {d: _scale_of(ds, d) for d in positional},
        "translation": {
            d: float(ds.coords[d].values[0]) if _numeric(ds, d) and ds.sizes[d] else None
            for d in positional
        },
    }


def _numeric(ds: xr.Dataset, dim: str) -> bool:
    """Whether ``dim`` has a coordinate of numbers (a custom axis may hold labels)."""
    coord = ds.coords.get(dim)
    return coord is not None and coord.dims == (dim,) and coord.dtype.kind in "iuf"


def _scale_of(ds: xr.Dataset, dim: str) -> float | None:
    if not _numeric(ds, dim):
        return None
    coord = ds.coords[dim]
    scale = coord.attrs.get(SCALE_ATTR)
    if scale is None and coord.size > 1:
        scale = float(coord.values[1] - coord.values[0])
    return float(scale) if scale is not None else None


def _plate(path: str, version: str | None, block: Mapping[str, Any]) -> dict[str, Any]:
    plate = parse_plate(block)
    return {
        "path": path,
        "kind": "plate",
        "name": plate.name,
        "version": version,
        "rows": list(plate.rows),
        "columns": list(plate.columns),
        "wells": len(plate.wells),
        "acquisitions": len(plate.acquisitions) if plate.acquisitions else None,
    }


def _well(path: str, block: Mapping[str, Any]) -> dict[str, Any]:
    fields = [str(i.path) for i in parse_well(block).images or () if i.raw]
    return {"path": path, "kind": "well", "fields": fields}
