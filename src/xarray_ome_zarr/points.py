"""Map points between OME-Zarr 0.6 coordinate systems: ``xoz.transform_points``.

The graph comes from an object we opened (a level Dataset or DataArray, an image or scene
DataTree: their attrs hold the documents verbatim) or from a store (a path, URL or store
object: the root group's document, and for a scene the documents of the images it
references, read in one round trip). Displacement and coordinate fields and stored affine
parameters are read from the store only when a point goes through them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from .errors import OmeZarrError
from .ngff.transformations import FieldGrid, TransformGraph, graph_of_document
from .ngff.v06 import is_06, normalise_spelling, scene_image_paths
from .node_attrs import SYSTEM_ATTR, group_attrs


def _document(attrs: Mapping[Any, Any]) -> Mapping[str, Any] | None:
    ome = attrs.get("ome")
    if isinstance(ome, Mapping) and is_06(ome.get("version")):
        return normalise_spelling(ome)[0]
    return None


def _node_document(attrs: Mapping[Any, Any]) -> Mapping[str, Any] | None:
    """The 0.6 document of an xarray node's attrs (its group attributes')."""
    return _document(group_attrs(attrs))


def _document_node(obj: Any) -> Any:
    """The node of an opened tree whose attrs hold the document (a level: its image)."""
    node = obj
    while _node_document(node.attrs) is None and node.parent is not None and not node.children:
        node = node.parent
    return node


def graph_of(obj: Any) -> TransformGraph:
    """The transformation graph an opened object carries in its attrs.

    A DataTree contributes every node's document below it (prefixed by its path); a level
    (no document of its own) uses its parent image's.
    """
    graph = TransformGraph()
    if isinstance(obj, xr.DataTree):
        node = _document_node(obj)  # a level node: its image holds the document
        for sub in node.subtree:
            doc = _node_document(sub.attrs)
            if doc is not None:
                prefix = sub.relative_to(node) if sub is not node else ""
                graph_of_document(doc, "", "" if prefix == "." else prefix, graph)
    elif isinstance(obj, xr.Dataset | xr.DataArray):
        doc = _node_document(obj.attrs)
        if doc is not None:
            graph_of_document(doc, "", "", graph)
    if not graph.systems and not graph.edges:
        raise OmeZarrError(
            "no OME-Zarr 0.6 coordinate systems here: transform_points needs a 0.6 image, "
            "multiscale or scene (its attrs['ome_group_attrs'] keep the 'ome' document)"
        )
    return graph


def transform_points(
    obj: Any,
    points: Any,
    *,
    source: Any,
    target: Any,
    storage_options: dict[str, Any] | None = None,
) -> np.ndarray:
    """Map an ``(N, ndim)`` array of points from coordinate system ``source`` to ``target``.

    Parameters
    ----------
    obj
        A 0.6 image, multiscale or scene: a path, URL or store object, or an object this
        package opened (Dataset, DataArray, DataTree).
    points
        ``(N, ndim)`` coordinates in ``source`` (one point may be given as ``(ndim,)``).
    source, target
        A coordinate system name; or ``{"path": ..., "name": ...}`` for a system of an image
        of a scene (``{"path": "s0"}`` alone: the pixel indices of that array); or a
        ``(path, name)`` pair.
    storage_options
        Passed to fsspec for URLs.

    Returns
    -------
    numpy.ndarray
        ``(N, ndim_target)`` points; NaN where a field does not reach.

    Raises
    ------
    OmeZarrError
        When a system is unknown, no chain of transforms joins the two, or a transform
        on the way has no inverse.

    Examples
    --------
    >>> xoz.transform_points("scene.ome.zarr", [[0, 0, 0]], source={"path": "a",
    ...     "name": "physical"}, target="scene")                        # doctest: +SKIP
    """
    if isinstance(obj, xr.DataTree | xr.Dataset | xr.DataArray):
        loader = source_loader(obj, storage_options)
        return graph_of(obj).transform_points(points, source, target, loader)
    from .store import open_root

    opened = open_root(obj, storage_options=storage_options)
    try:
        graph = graph_of_group(opened.group)
        return graph.transform_points(points, source, target, _loader(opened.group))
    finally:
        opened.close()


def graph_of_group(group: Any) -> TransformGraph:
    """The graph of a stored 0.6 image or scene (the scene's images' documents included)."""
    from .hierarchy import fetch_members

    doc = _document(group.attrs.asdict())
    if doc is None:
        raise OmeZarrError(f"{group.store!s}: not an OME-Zarr 0.6 image or scene")
    graph = graph_of_document(doc)
    scene = doc.get("scene")
    if isinstance(scene, Mapping):
        paths = list(scene_image_paths(scene))
        for path, member in zip(paths, fetch_members(group, paths), strict=True):
            image = _document(member.attrs.asdict()) if hasattr(member, "attrs") else None
            if image is not None:
                graph_of_document(image, "", path, graph)
    return graph


def source_loader(obj: Any, storage_options: dict[str, Any] | None) -> Any:
    """Reads stored parameters and fields for an object opened from a path or URL.

    xarray records where a Dataset or DataTree was opened from (``encoding["source"]``).
    The store is opened only when a point goes through stored data, and used only if the
    group there holds the object's own document; otherwise (a copy in memory, an object
    opened with ``group=``) ``None``, and the graph says to map points on the store.
    """
    if isinstance(obj, xr.DataTree):
        node = _document_node(obj)
        source = node.root.encoding.get("source")
        group_path = node.relative_to(node.root) if node is not node.root else ""
    elif isinstance(obj, xr.Dataset):
        node, source, group_path = obj, obj.encoding.get("source"), ""
    else:
        return None
    document = group_attrs(node.attrs).get("ome")
    if not isinstance(source, str) or document is None:
        return None

    def load(path: str, kind: str) -> Any:
        from .store import open_root

        opened = open_root(source, storage_options=storage_options)
        try:
            group = opened.group[group_path] if group_path not in ("", ".") else opened.group
            if group.attrs.asdict().get("ome") != document:
                raise OmeZarrError(
                    f"the {kind} at {path!r} is stored in {source!r}, whose document is "
                    "not this object's any more: map points through xoz.transform_points "
                    "on the store"
                )
            return _loader(group)(path, kind)
        finally:
            opened.close()

    return load


def _loader(group: Any) -> Any:
    """Reads what transforms store in arrays: parameters, or a field's grid."""

    def load(path: str, kind: str) -> Any:
        try:
            member = group[path]
        except Exception as err:
            raise OmeZarrError(f"the {kind} at {path!r} cannot be read: {err}") from err
        if kind == "parameters":
            return np.asarray(member[...])
        return _field_grid(member, path, kind)

    return load


def _field_grid(group: Any, path: str, kind: str) -> FieldGrid:
    """A field stored as a 0.6 multiscale: level 0, the vector axis moved last."""
    from .ngff.parse import parse_node
    from .transforms import level_geometry

    meta = parse_node(group.attrs.asdict(), f"{kind} field {path!r}", validate=False)
    if not meta.multiscales:
        raise OmeZarrError(f"the {kind} field {path!r} is not a multiscale image")
    multiscale = meta.multiscales[0]
    values = np.asarray(group[multiscale.levels[0].path][...], dtype=np.float64)
    vector = [i for i, a in enumerate(multiscale.axes) if a.type in ("displacement", "coordinate")]
    if len(vector) != 1:
        raise OmeZarrError(
            f"the {kind} field {path!r} needs one axis of type 'displacement' or 'coordinate'"
        )
    scale, translation = level_geometry(multiscale, 0)
    keep = [i for i in range(len(multiscale.axes)) if i != vector[0]]
    return FieldGrid(
        np.moveaxis(values, vector[0], -1),
        tuple(float(scale[i]) for i in keep),
        tuple(float(translation[i]) for i in keep),
    )


def coordinate_systems(obj: Any) -> dict[str, list[dict[str, Any]]]:
    """``{name: axes}`` of every coordinate system the object's document defines."""
    graph = graph_of(obj)
    out: dict[str, list[dict[str, Any]]] = {}
    for (path, name), system in graph.systems.items():
        key = f"{path}/{name}" if path else name
        out[key] = [dict(a) for a in system.axes]  # type: ignore[index]
    return out


def coordinate_transformations(obj: Any) -> list[dict[str, Any]]:
    """The transforms between coordinate systems (multiscale-wide and scene), verbatim."""
    graph = graph_of(obj)
    return [dict(e.transformation.raw) for e in graph.edges if e.source[1] is not None]


def own_system(obj: Any) -> Any:
    """The system an opened object's coordinates are in: the one ``coordinate_system=``
    chose, else the image's own (the datasets' output system)."""
    chosen = obj.attrs.get(SYSTEM_ATTR) if hasattr(obj, "attrs") else None
    if isinstance(chosen, str):
        return chosen
    node = obj
    if isinstance(obj, xr.DataTree):
        while _node_document(node.attrs) is None and node.parent is not None:
            node = node.parent
    doc = _node_document(node.attrs) or {}
    for ms in doc.get("multiscales") or ():
        for ds in ms.get("datasets") or ():
            for t in ds.get("coordinateTransformations") or ():
                output = t.get("output") if isinstance(t, Mapping) else None
                if isinstance(output, Mapping) and isinstance(output.get("name"), str):
                    return output["name"]
    raise OmeZarrError("no OME-Zarr 0.6 image here: pass source= explicitly")
