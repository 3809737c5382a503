"""OME-Zarr 0.6 coordinate systems on the xarray side: a level's coordinates in another system.

A level opens with coordinates in the coordinate system its datasets' transforms output to
(the image's own). ``coordinate_system=`` at open re-expresses them in another system of
the transformation graph wherever the chain of transforms keeps every axis a scaled,
shifted copy of one axis (identity, scale, translation, mapAxis, byDimension, sequences and
inverses of them): dims are then named and ordered by that system's axes. Anything else
(rotation, shear, fields) is refused with a pointer to ``xoz.transform_points``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends.common import BackendArray
from xarray.core import indexing

from .coordinate_index import pixel_centre_coordinates
from .errors import OmeZarrError
from .layout import SCALE_ATTR, TYPE_ATTR, UNITS_ATTR
from .ngff.model import NodeMeta
from .ngff.transformations import (
    CoordinateSystem,
    Node,
    TransformGraph,
    axis_aligned,
    describe_node,
    graph_of_document,
)
from .ngff.v06 import is_06, normalise_spelling
from .node_attrs import SYSTEM_ATTR

#: ``SYSTEM_ATTR``: the Dataset attribute naming the coordinate system the coordinates are
#: in, when ``coordinate_system=`` chose one other than the image's own (:mod:`.node_attrs`).


def add_to_graph(graph: TransformGraph, meta: NodeMeta | None, prefix: str, where: str) -> None:
    """Add a node's 0.6 systems and transforms (images and scenes) to ``graph``."""
    if meta is None or not is_06(meta.version):
        return
    spelled, _ = normalise_spelling(meta.document)
    graph_of_document(spelled, where, prefix, graph)


def image_system(meta: NodeMeta, prefix: str = "") -> Node | None:
    """The graph node of an image's own coordinate system (``None`` before 0.6)."""
    if not meta.multiscales or meta.multiscales[0].coordinate_system is None:
        return None
    return (prefix.strip("/"), meta.multiscales[0].coordinate_system)


def find_system(graph: TransformGraph, name: str, prefix: str) -> Node | None:
    """The node of the system ``name`` seen from the image at ``prefix``: the image's own
    systems first, then those of the groups above it (a scene), nearest first."""
    parts = prefix.strip("/").split("/") if prefix.strip("/") else []
    for cut in range(len(parts), -1, -1):
        node = ("/".join(parts[:cut]), name)
        if node in graph.systems:
            return node
    return None


def express_in(
    ds: xr.Dataset,
    graph: TransformGraph,
    source: Node,
    target: Node,
    where: str,
    lazy: bool = True,
) -> xr.Dataset:
    """``ds`` (coordinates in ``source``) with coordinates in ``target``.

    ``lazy`` builds the new coordinates as lazy pixel-centre indexes (as the reader does).

    Raises
    ------
    OmeZarrError
        When the chain of transforms is not axis-aligned (naming ``transform_points``), or
        when an axis without coordinates would need scaling.
    """
    if source == target:
        return ds
    system: CoordinateSystem = graph.systems[target]
    ndim = graph.ndim(source)
    try:
        matrix = graph.composed(source, target).affine(ndim)
    except OmeZarrError as err:
        raise OmeZarrError(f"{where}: coordinate_system={target[1]!r}: {err}") from None
    aligned = axis_aligned(matrix) if matrix is not None else None
    if aligned is None or len(aligned) != len(system.axes):
        raise OmeZarrError(
            f"{where}: coordinate_system={target[1]!r}: the transforms from "
            f"{describe_node(source)} to {describe_node(target)} do not keep the axes apart "
            "(a rotation, shear, projection or field), so they cannot be coordinates of the "
            "array; map points with xoz.transform_points instead"
        )
    source_dims = [str(d) for d in graph.systems[source].axis_names]
    variables = {name: var for name, var in ds.data_vars.items()}
    renames: dict[str, str] = {}
    coords: dict[str, Any] = {}
    for i, (j, scale, shift) in enumerate(aligned):
        old, axis = source_dims[j], system.axes[i]
        new = str(axis["name"])
        renames[old] = new
        size = ds.sizes.get(old)
        if size is None:
            continue
        kind = axis.get("type")
        if old in ds.coords and ds[old].attrs.get(TYPE_ATTR) == "channel":
            if (scale, shift) != (1.0, 0.0):
                raise OmeZarrError(
                    f"{where}: coordinate_system={target[1]!r} scales the channel axis "
                    f"{old!r}; map points with xoz.transform_points instead"
                )
            coords[new] = xr.Variable((new,), ds[old].values, dict(ds[old].attrs))
            continue
        if old in ds.coords:
            first = float(ds[old][0]) if size else 0.0
            step = float(ds[old].attrs.get(SCALE_ATTR, 1.0))
        else:
            first, step = 0.0, 1.0
        if kind in ("channel",) or (
            old not in ds.coords and (scale, shift) == (1.0, 0.0) and kind not in ("space", "time")
        ):
            continue
        attrs: dict[str, Any] = {TYPE_ATTR: kind, SCALE_ATTR: scale * step}
        if isinstance(axis.get("unit"), str):
            attrs[UNITS_ATTR] = axis["unit"]
        attrs.update(_extra(axis))
        new_scale, new_shift = scale * step, scale * first + shift
        if lazy:
            coords[new] = pixel_centre_coordinates(size, new_scale, new_shift, new, attrs)
        else:
            values = new_shift + new_scale * np.arange(size, dtype=np.float64)
            coords[new] = xr.Variable((new,), values, attrs)
    out = ds.drop_vars([c for c in ds.coords if c in renames])
    moving = {k: v for k, v in renames.items() if k != v and k in out.dims}
    # through temporary names, so a permutation (y <-> x) never collides
    out = out.rename_dims({k: f"__ome_axis_{n}" for n, k in enumerate(moving)})
    out = out.rename_dims({f"__ome_axis_{n}": v for n, v in enumerate(moving.values())})
    for coordinate in coords.values():
        if isinstance(coordinate, xr.Coordinates):
            out = out.assign_coords(coordinate)
    out = out.assign_coords({k: v for k, v in coords.items() if not isinstance(v, xr.Coordinates)})
    order = [str(a["name"]) for a in system.axes if str(a["name"]) in out.dims]
    for name in variables:
        dims = [d for d in order if d in out[name].dims]
        if list(out[name].dims) != dims:
            out[name] = _reordered(out[name].variable, dims)
    out = out.transpose(*order)
    for name in variables:
        out[name].encoding = dict(ds[name].encoding)
        if "preferred_chunks" in out[name].encoding:
            pref = out[name].encoding["preferred_chunks"]
            out[name].encoding["preferred_chunks"] = {renames.get(k, k): v for k, v in pref.items()}
    out.attrs = {**ds.attrs, SYSTEM_ATTR: target[1]}
    return out


class _Reordered(BackendArray):
    """A lazy variable read with its axes in another order.

    ``Variable.transpose`` of a lazily opened array would do, but xarray (2026.9) then
    fails on selections that are scalar on every axis (``IndexError`` from its
    ``LazilyVectorizedIndexedArray``); here each selection is made in the stored order and
    the pixels read are transposed.
    """

    __slots__ = ("variable", "dims", "shape", "dtype")

    def __init__(self, variable: xr.Variable, dims: list[str]) -> None:
        self.variable = variable
        self.dims = tuple(dims)
        self.shape = tuple(variable.sizes[d] for d in dims)
        self.dtype = variable.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> Any:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._outer
        )

    def _outer(self, key: tuple[Any, ...]) -> np.ndarray:
        part = self.variable.isel(dict(zip(self.dims, key, strict=True)))
        kept = [d for d in self.dims if d in part.dims]
        return np.transpose(np.asarray(part.values), [part.dims.index(d) for d in kept])


def _reordered(variable: xr.Variable, dims: list[str]) -> xr.Variable:
    """``variable`` with its dims in the order ``dims``, still lazy."""
    data = indexing.LazilyIndexedArray(_Reordered(variable, dims))
    return xr.Variable(dims, data, attrs=variable.attrs, encoding=variable.encoding)


def _extra(axis: Mapping[str, Any]) -> dict[str, Any]:
    """An axis's keys beyond name, type and unit (RFC-4 ``orientation``...), verbatim."""
    return {k: v for k, v in axis.items() if k not in ("name", "type", "unit")}


def missing_system_error(
    where: str, name: str, lacking: list[str], known: list[str]
) -> OmeZarrError:
    """The error for ``coordinate_system=`` naming a system some images lack."""
    listed = ", ".join(repr("/" + p) for p in lacking)
    return OmeZarrError(
        f"{where}: coordinate_system={name!r}: no coordinate system {name!r} is reachable "
        f"from the image(s) {listed} (systems of the store: {', '.join(known) or 'none'})"
    )


def back_to_own_system(
    ds: xr.Dataset, graph: TransformGraph, prefix: str, own: str | None, where: str
) -> xr.Dataset:
    """A level opened with ``coordinate_system=`` back in the image's own system ``own``
    (dims renamed and reordered back, scale and translation inverted through the
    axis-aligned path); ``ds`` itself when it is in the image's own system already.

    ``graph`` holds the image's document at ``prefix`` (and a scene's above it, if any).

    Raises
    ------
    OmeZarrError
        When the chosen system is not in ``graph`` (a scene's system, without the scene),
        or the path back is not axis-aligned.
    """
    chosen = ds.attrs.get(SYSTEM_ATTR)
    if not isinstance(chosen, str):
        return ds
    source = find_system(graph, chosen, prefix)
    target = (prefix.strip("/"), own) if own is not None else None
    if source is None or target is None or target not in graph.systems:
        raise OmeZarrError(
            f"{where}: the coordinates are in the coordinate system {chosen!r} chosen at open "
            f"(coordinate_system={chosen!r}), which cannot be mapped back to the image's own "
            "system: the object does not hold the transforms between them (write the whole "
            "tree, or open without coordinate_system=)"
        )
    try:
        out = express_in(ds, graph, source, target, where)
    except OmeZarrError as err:
        raise OmeZarrError(
            f"{err} (the coordinates chosen with coordinate_system={chosen!r} cannot be "
            "mapped back to the image's own system)"
        ) from None
    out.attrs = {k: v for k, v in out.attrs.items() if k != SYSTEM_ATTR}
    return out
