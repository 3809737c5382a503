"""Read OME-Zarr groups into the in-memory model: levels as Datasets, hierarchies as dicts.

Opening reads metadata only, never a chunk. The walk of the hierarchy and its structural
checks are ``hierarchy``'s, shared with ``validate``; this module builds the Datasets.
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import xarray as xr
import zarr
from xarray.core import indexing
from xarray.indexes import Index, PandasIndex

from ._compat import dataset_from_parts
from .array import OmeZarrArray
from .collector import without_collection
from .coordinate_index import pixel_centre_index
from .errors import OmeZarrError, OmeZarrWarning
from .hierarchy import (
    Findings,
    Node,
    Walker,
    first_multiscale,
    join,
    level_dims,
    level_position,
)
from .layout import PATH_ATTR, SCALE_ATTR, TYPE_ATTR, UNITS_ATTR, variable_name
from .ngff.limits import MAX_DASK_BLOCKS, dask_chunks
from .ngff.model import TYPE_BY_NAME, Multiscale, NodeMeta, Omero
from .ngff.transformations import TransformGraph
from .ngff.v06 import is_06
from .node_attrs import node_attrs, written_by_xarray_hint
from .plate_view import plate_dataset
from .store import OpenedStore, open_root
from .systems import add_to_graph, express_in, find_system, image_system, missing_system_error
from .transforms import coordinate_values, level_geometry


class NodeReader:
    """Reads one opened store: node metadata, levels, and the hierarchy below a group.

    The walk of the hierarchy and its checks are ``hierarchy.Walker``'s, raising at the
    first problem; this class turns what it finds into Datasets.
    """

    #: Make the coordinates of one level of one parsed document once (see ``coordinates``).
    remember_coordinates = True

    def __init__(
        self,
        store_name: str,
        *,
        validate: bool = True,
        lazy_coordinates: bool = True,
        strict: bool = False,
        coordinate_system: str | None = None,
    ) -> None:
        self.store_name = store_name
        self.validate = validate
        self.lazy_coordinates = lazy_coordinates
        findings = Findings(store_name, collect=False, strict=strict)
        self.walker = Walker(findings, validate=validate)
        #: 0.6: the coordinate system the coordinates are wanted in (``None``: each image's own).
        self.coordinate_system = coordinate_system
        self.graph = TransformGraph()
        self._channel_indexes: dict[tuple[str, tuple[str, ...]], PandasIndex] = {}
        #: coordinates made, by (parsed document, level, shape, first axis): see coordinates
        self._coordinates: dict[tuple[int, int, tuple[int, ...], int], Any] = {}

    def where(self, node: str) -> str:
        """Name a node of this store for messages."""
        return self.walker.where(node)

    # ---- metadata -----------------------------------------------------------------
    def meta(self, group: zarr.Group, node: str) -> NodeMeta:
        """Parse a group's OME metadata."""
        meta = self.walker.metadata(group, node)
        assert meta is not None  # the reader's parse raises instead
        return meta

    # ---- one image ----------------------------------------------------------------
    def level_index(self, multiscale: Multiscale, level: int | str, node: str) -> int:
        """Resolve ``level`` (int, negative int, ``"scaleN"`` or dataset path) to an index
        (:func:`.hierarchy.level_position`); an error says why it names none."""
        paths = [lv.path for lv in multiscale.levels]
        index = level_position(paths, level)
        if index is not None:
            return index
        count = len(paths)
        if isinstance(level, int | np.integer) and not isinstance(level, bool):
            raise OmeZarrError(
                f"{self.where(node)}: level {level} out of range; the image has {count} levels"
            )
        if isinstance(level, str):
            raise OmeZarrError(
                f"{self.where(node)}: no level {level!r}; levels are scale0..scale{count - 1} "
                f"at dataset paths {paths}"
            )
        raise OmeZarrError(f"{self.where(node)}: level must be an int or a path, got {level!r}")

    def first_multiscale(self, meta: NodeMeta, node: str) -> Multiscale:
        """The image's first multiscale; a warning names the others."""
        return first_multiscale(meta, self.where(node))

    def level_array(
        self, group: zarr.Group, meta: NodeMeta, index: int, node: str
    ) -> tuple[zarr.Array, NodeMeta, tuple[int, ...]]:
        """The checked array of one level of the image at ``group`` (one round trip), the
        metadata with the level's transforms filled in where the store has none, and the
        level's shape as read (trimmed to what level 0 allows, rule ``uneven-levels``)."""
        array, meta, shape = self.walker.level_of(group, meta, index, node)
        assert array is not None  # the reader's walk raises instead
        return array, meta, shape

    def level_dataset(
        self,
        group: zarr.Group,
        meta: NodeMeta,
        index: int,
        node: str,
        drop_variables: Iterable[str] = (),
        member: Any = None,
        shape: tuple[int, ...] | None = None,
    ) -> xr.Dataset:
        """One resolution level of the image at ``group`` as a Dataset.

        ``member`` is the level's array when the walk already fetched and checked it, and
        ``shape`` its shape as read (the walk's, trimmed where an append is under way).
        """
        multiscale = meta.multiscales[0]
        level = multiscale.levels[index]
        if member is None:
            member, meta, shape = self.level_array(group, meta, index, node)
        array = member
        shape = tuple(array.shape) if shape is None else shape
        axes = multiscale.axes
        dims = level_dims(meta, multiscale, array.ndim)
        axes = axes[len(axes) - len(dims) :]
        name = variable_name(multiscale.name)
        coord_vars, indexes = self.coordinates(
            meta, index, shape, node, first=len(multiscale.axes) - len(axes)
        )
        ds_attrs = {PATH_ATTR: level.path}
        dropped = set(drop_variables)
        coord_vars = {k: v for k, v in coord_vars.items() if k not in dropped}
        indexes = {k: v for k, v in indexes.items() if k in coord_vars}
        if name in dropped:
            return dataset_from_parts({}, coord_vars, indexes, ds_attrs)
        data = indexing.LazilyIndexedArray(OmeZarrArray(array, self.where(node), shape))
        var_attrs = {k: v for k, v in array.attrs.asdict().items() if k != "_ARRAY_DIMENSIONS"}
        encoding = encoding_of(array, dims, self.where(node))
        encoding["original_shape"] = shape
        variable = xr.Variable(dims, data, attrs=var_attrs, encoding=encoding, fastpath=True)
        return dataset_from_parts({name: variable}, coord_vars, indexes, ds_attrs)

    def coordinates(
        self, meta: NodeMeta, index: int, shape: tuple[int, ...], node: str, first: int = 0
    ) -> tuple[dict[str, xr.Variable], dict[str, Index]]:
        """Pixel-centre coordinates of every axis but the channel axis (space, time and
        custom axes: their scale and translation are just as real), and channel names:
        the coordinate variables and their indexes, by name.

        Space and time coordinates are lazy indexes (:mod:`.coordinate_index`) unless the
        reader was made with ``lazy_coordinates=False``: their cost does not grow with the
        image.

        Those of one level of one parsed document are made once (a plate's fields share
        their parsed metadata): each call gets its own variables, with their own attrs,
        over the same immutable indexes; coordinates that said something (a warning) are
        made again, so each node says it.
        """
        key = (id(meta), index, tuple(shape), first)
        known = self._coordinates.get(key) if self.remember_coordinates else None
        if known is not None and known[0] is meta:
            return _own_variables(known[1]), dict(known[2])
        variables, indexes, said = self._made_coordinates(meta, index, shape, node, first)
        if not said and self.remember_coordinates:
            self._coordinates[key] = (meta, variables, indexes)
            return _own_variables(variables), dict(indexes)
        return variables, indexes

    def _made_coordinates(
        self, meta: NodeMeta, index: int, shape: tuple[int, ...], node: str, first: int
    ) -> tuple[dict[str, xr.Variable], dict[str, Index], bool]:
        """:meth:`coordinates`, made, and whether a warning said something about them."""
        said = False
        multiscale = meta.multiscales[0]
        try:
            scale, translation = level_geometry(multiscale, index)
        except OmeZarrError as err:
            raise OmeZarrError(f"{self.where(node)}: {err}") from None
        variables: dict[str, xr.Variable] = {}
        indexes: dict[str, Index] = {}
        for axis, size, s, t in zip(
            multiscale.axes[first:], shape, scale[first:], translation[first:], strict=True
        ):
            if (axis.type or TYPE_BY_NAME.get(axis.name)) != "channel":
                s, t = float(s), float(t)
                if not (math.isfinite(s) and math.isfinite(t) and math.isfinite(t + s * size)):
                    raise OmeZarrError.at(
                        f"axis {axis.name!r} of {size} pixels with scale {s:g} and translation "
                        f"{t:g} has coordinates beyond the range of float64",
                        store=self.store_name,
                        node=node,
                        key=f"multiscales/0/datasets/{index}/coordinateTransformations",
                    )
                attrs: dict[str, Any] = {TYPE_ATTR: axis.type} if axis.type else {}
                attrs[SCALE_ATTR] = s
                if axis.unit:
                    attrs[UNITS_ATTR] = axis.unit
                if is_06(meta.version):  # RFC-4 orientation and other axis keys, verbatim
                    attrs.update({k: v for k, v in axis.extra.items() if k not in attrs})
                if self.lazy_coordinates:
                    lazy_index, made = pixel_centre_index(size, s, t, axis.name, attrs)
                    variables.update(made)
                    indexes.update(dict.fromkeys(made, lazy_index))
                else:
                    values = coordinate_values(size, s, t)
                    _add_indexed(variables, indexes, axis.name, values, attrs)
            else:
                labels = channel_labels(meta.omero, size, self.where(node))
                if labels is not None:
                    self.add_channels(variables, indexes, axis.name, labels)
                else:  # channel_labels warns where omero names a different count
                    said = said or (meta.omero is not None and meta.omero.labels is not None)
        return variables, indexes, said

    def add_channels(
        self,
        variables: dict[str, xr.Variable],
        indexes: dict[str, Index],
        dim: str,
        labels: list[str],
    ) -> None:
        """Add the channel coordinate; its index is made once per set of names and shared
        (indexes are immutable; each Dataset gets its own variable)."""
        key = (dim, tuple(labels))
        index = self._channel_indexes.get(key)
        values = np.asarray(labels, dtype=str)
        variable = xr.Variable((dim,), values, {TYPE_ATTR: "channel"}, fastpath=True)
        if index is None:
            index = _pandas_index(dim, values)
            self._channel_indexes[key] = index
        variables.update(index.create_variables({dim: variable}))
        indexes[dim] = index

    # ---- a plate as one Dataset per level --------------------------------------------
    def plate_view(
        self, group: zarr.Group, node: str, level: int | str, drop_variables: Iterable[str]
    ) -> xr.Dataset:
        """The plate at ``group`` as one lazy Dataset of ``level`` (:mod:`.plate_view`)."""

        def index_of(multiscale: Multiscale, where: str = node) -> int:
            return self.level_index(multiscale, level, where)

        self.walker.one_level, self.walker.level_hint = index_of, level
        root = self.walker.walk(group, node)
        assert root is not None  # the reader's walk raises instead
        ds = plate_dataset(root, index_of, self.coordinates, encoding_of, self.where)
        dropped = [name for name in drop_variables if name in ds.variables]
        return ds.drop_vars(dropped) if dropped else ds

    # ---- hierarchy ----------------------------------------------------------------
    def tree(
        self, group: zarr.Group, node: str = "", drop_variables: Iterable[str] = ()
    ) -> dict[str, xr.Dataset]:
        """Every OME node below ``group`` (itself included), keyed by path relative to it."""
        root = self.walker.walk(group, node)
        assert root is not None  # the reader's walk raises instead
        if self.coordinate_system is not None:
            self.check_system_everywhere(root)
        return self.datasets(root, drop_variables)

    def add_graph(self, node: Node, prefix: str = "") -> list[tuple[str, NodeMeta]]:
        """Add the 0.6 graph of ``node`` and below to ``self.graph``; the images found."""
        add_to_graph(self.graph, node.meta, prefix, self.where(node.path))
        images = [(prefix, node.meta)] if node.meta is not None and node.meta.is_image else []
        for path, child in node.children.items():
            images += self.add_graph(child, join(prefix, path))
        return images

    def check_system_everywhere(self, root: Node) -> None:
        """Every image of the tree reaches ``coordinate_system``; else name those that do not."""
        name = str(self.coordinate_system)
        images = self.add_graph(root)
        lacking = [prefix for prefix, meta in images if not self.reaches(meta, prefix, name)]
        if lacking or not images:
            known = sorted({n for _, n in self.graph.systems})  # type: ignore[type-var]
            raise missing_system_error(self.where(root.path), name, lacking, known)  # type: ignore[arg-type]

    def reaches(self, meta: NodeMeta, prefix: str, name: str) -> bool:
        """Whether a chain of transforms leads from the image at ``prefix`` to ``name``."""
        source, target = image_system(meta, prefix), find_system(self.graph, name, prefix)
        if source is None or target is None:
            return False
        try:
            self.graph.path(source, target)
        except OmeZarrError:
            return False
        return True

    def in_system(self, ds: xr.Dataset, meta: NodeMeta, prefix: str, node: str) -> xr.Dataset:
        """``ds`` with coordinates in ``coordinate_system`` (already checked reachable)."""
        if self.coordinate_system is None:
            return ds
        source = image_system(meta, prefix)
        target = find_system(self.graph, self.coordinate_system, prefix)
        if source is None or target is None:
            known = sorted({n for _, n in self.graph.systems})  # type: ignore[type-var]
            raise missing_system_error(
                self.where(node),
                self.coordinate_system,
                [prefix or node],  # the image: its path in the graph, else in the store
                known,  # type: ignore[arg-type]
            )
        return express_in(
            ds, self.graph, source, target, self.where(node), lazy=self.lazy_coordinates
        )

    def datasets(
        self, node: Node, drop_variables: Iterable[str], prefix: str = ""
    ) -> dict[str, xr.Dataset]:
        """A walked node and those below it as Datasets: an image's levels are ``scaleN``."""
        out = {"": dataset_from_parts({}, {}, {}, node_attrs(node.group.attrs.asdict()))}
        meta = node.meta
        if meta is not None and meta.is_image:
            shapes = node.shapes or tuple(tuple(a.shape) for a in node.levels)
            for i, (array, shape) in enumerate(zip(node.levels, shapes, strict=True)):
                level = self.level_dataset(
                    node.group, meta, i, node.path, drop_variables, array, shape
                )
                out[f"scale{i}"] = self.in_system(level, meta, prefix, node.path)
        for path, child in node.children.items():
            out.update(_prefixed(path, self.datasets(child, drop_variables, join(prefix, path))))
        return out


def _own_variables(variables: Mapping[str, xr.Variable]) -> dict[str, xr.Variable]:
    """Shallow copies of ``variables`` (the same immutable data) with attrs of their own."""
    out = {}
    for name, variable in variables.items():
        copied = variable.copy(deep=False)  # attrs copied, their values shared
        if not all(isinstance(v, str | int | float | bool | None) for v in copied.attrs.values()):
            copied.attrs = copy.deepcopy(variable.attrs)
        out[name] = copied
    return out


def _add_indexed(
    variables: dict[str, xr.Variable],
    indexes: dict[str, Index],
    dim: str,
    values: np.ndarray,
    attrs: dict[str, Any],
) -> None:
    """Add a dimension coordinate over numpy values, with its pandas index built here.

    ``fastpath`` and the index given skip xarray's checks for dask arrays, which import
    ``dask.array`` (and with it scipy): a third of a second of a fresh process's open.
    """
    variable = xr.Variable((dim,), values, attrs, fastpath=True)
    index = _pandas_index(dim, values)
    variables.update(index.create_variables({dim: variable}))
    indexes[dim] = index


def _pandas_index(dim: str, values: np.ndarray) -> PandasIndex:
    """The pandas index of a dimension coordinate's values (no dask check: see above)."""
    import pandas as pd

    return PandasIndex(pd.Index(values), dim, coord_dtype=values.dtype)


def channel_labels(omero: Omero | None, size: int, where: str) -> list[str] | None:
    """Channel names from ``omero``, or ``None`` when it names none (or not all)."""
    labels = omero.labels if omero is not None else None
    if labels is None:
        return None
    if len(labels) != size:
        warnings.warn(
            f"{where}: omero names {len(labels)} channels but the channel axis has {size}; "
            "no channel coordinate is made",
            OmeZarrWarning,
            stacklevel=2,
        )
        return None
    return list(labels)


def encoding_of(array: zarr.Array, dims: tuple[str, ...], where: str = "") -> dict[str, Any]:
    """The zarr encoding of ``array`` in xarray's terms, plus what a round trip needs.

    ``preferred_chunks`` (what ``chunks={}`` uses) are the stored shards or chunks, grouped
    by whole multiples where there would be more than ``limits.MAX_DASK_BLOCKS`` of them
    (with a warning naming the array): a dask graph of that array stays bounded.
    """
    meta = array.metadata
    shards = getattr(array, "shards", None)
    stored = tuple(shards or array.chunks)
    if any(int(c) <= 0 for c in (*array.chunks, *stored)):
        reason = f"chunk shape {tuple(array.chunks)} has a size that is not positive"
        raise OmeZarrError(f"{where}: array {array.path!r}: {reason}", reason=reason)
    preferred = dask_chunks(tuple(array.shape), stored)
    if preferred != stored:
        warnings.warn(
            f"{where}: array {array.path!r} of shape {tuple(array.shape)} has more than "
            f"{MAX_DASK_BLOCKS} chunks of {stored}; chunks={{}} gives dask blocks of "
            f"{preferred} (whole multiples of them)",
            OmeZarrWarning,
            stacklevel=2,
        )
    encoding: dict[str, Any] = {
        "chunks": tuple(array.chunks),
        # as xarray's netCDF engines: a rewrite checks that an axis whose coordinate was
        # dropped still has its stored length before writing its stored geometry
        "original_shape": tuple(array.shape),
        "preferred_chunks": dict(zip(dims, preferred, strict=True)),
        "dtype": np.dtype(array.dtype),
        "zarr_format": meta.zarr_format,
        "fill_value": array.fill_value.item()
        if isinstance(array.fill_value, np.generic)
        else array.fill_value,
    }
    if meta.zarr_format == 3:
        encoding["shards"] = tuple(shards) if shards else None
        encoding["compressors"] = tuple(array.compressors)
        encoding["filters"] = tuple(array.filters)
        encoding["serializer"] = array.serializer
    else:
        encoding["compressors"] = tuple(array.compressors)
        encoding["filters"] = tuple(array.filters)
        encoding["dimension_separator"] = getattr(meta, "dimension_separator", ".")
    return encoding


def _prefixed(prefix: str, groups: Mapping[str, xr.Dataset]) -> dict[str, xr.Dataset]:
    prefix = prefix.strip("/")
    return {join(prefix, key): ds for key, ds in groups.items()}


# ---- public functions behind the engine ------------------------------------------------
@without_collection
def open_ome_dataset(
    store: Any,
    *,
    level: int | str = 0,
    group: str | None = None,
    storage_options: dict[str, Any] | None = None,
    drop_variables: Iterable[str] = (),
    validate: bool = True,
    consolidated: bool | None = None,
    lazy_coordinates: bool = True,
    strict: bool = False,
    coordinate_system: str | None = None,
) -> xr.Dataset:
    """Open one resolution level of the OME-Zarr image at ``store``/``group``.

    The Dataset's ``attrs["ome_group_attrs"]`` are the image group's attributes, verbatim;
    ``attrs["ome_dataset_path"]`` is the level's dataset path. See ``xarray.open_dataset`` with
    ``engine="ome-zarr"`` for chunking. ``validate=False`` skips the schema check;
    ``strict=True`` refuses the deviations from the spec that are otherwise read with a
    warning (``docs/errors.md``).
    ``coordinate_system`` (0.6) gives coordinates in another coordinate system of the
    image where the transforms to it are axis-aligned.
    """
    with _reading(
        store,
        group=group,
        storage_options=storage_options,
        consolidated=consolidated,
        probe_children=False,  # one level reads no labels
        validate=validate,
        lazy_coordinates=lazy_coordinates,
        strict=strict,
        coordinate_system=coordinate_system,
    ) as (opened, reader):
        node = (group or "").strip("/")
        meta = reader.meta(opened.group, node)
        if meta.plate is not None and not meta.is_image and coordinate_system is None:
            ds = reader.plate_view(opened.group, node, level, drop_variables)
            ds.attrs = {**node_attrs(opened.group.attrs.asdict()), **ds.attrs}
            ds.set_close(opened.close)
            return ds
        if not meta.is_image:
            hint = written_by_xarray_hint(opened.group.attrs.asdict()) if not meta.is_ome else ""
            raise OmeZarrError(
                f"{reader.where(node)}: is not a multiscale image ({_kind(meta)})"
                + (hint or "; pass group= to choose an image, or use xr.open_datatree")
            )
        index = reader.level_index(reader.first_multiscale(meta, node), level, node)
        ds = reader.level_dataset(opened.group, meta, index, node, drop_variables)
        ds.attrs = {**node_attrs(opened.group.attrs.asdict()), **ds.attrs}
        if coordinate_system is not None:
            add_to_graph(reader.graph, meta, "", reader.where(node))
            ds = reader.in_system(ds, meta, "", node)
    ds.set_close(opened.close)
    return ds


@without_collection
def open_ome_groups(
    store: Any,
    *,
    group: str | None = None,
    storage_options: dict[str, Any] | None = None,
    drop_variables: Iterable[str] = (),
    validate: bool = True,
    consolidated: bool | None = None,
    lazy_coordinates: bool = True,
    strict: bool = False,
    coordinate_system: str | None = None,
) -> dict[str, xr.Dataset]:
    """Every OME node at and below ``store``/``group``, as ``{"/path": Dataset}``.

    ``validate`` and ``strict`` as for ``open_ome_dataset``; liberal reading leaves out a
    label image, well, field or series that cannot be read, with a warning naming it.
    ``coordinate_system`` (0.6): every image's coordinates in that system (its own, or a
    scene's above it); an error names the images that cannot reach it.
    """
    with _reading(
        store,
        group=group,
        storage_options=storage_options,
        consolidated=consolidated,
        probe_children=True,
        validate=validate,
        lazy_coordinates=lazy_coordinates,
        strict=strict,
        coordinate_system=coordinate_system,
    ) as (opened, reader):
        groups = reader.tree(opened.group, (group or "").strip("/"), drop_variables)
    out = {"/" + key if key else "/": with_default_indexes(ds) for key, ds in groups.items()}
    out["/"].set_close(opened.close)
    return out


def with_default_indexes(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with every dimension coordinate indexed (its default index where it has none),
    as xarray's ``open_datatree`` would make it: the reader builds them itself (lazy ones
    included), so ``xoz.open_ome_datatree`` can skip xarray's pass over every node."""
    indexes = ds.xindexes
    missing = {
        name: var
        for name, var in ds.variables.items()
        if var.dims == (name,) and name not in indexes
    }
    return ds.assign_coords(xr.Coordinates(missing)) if missing else ds


@contextlib.contextmanager
def _reading(
    store: Any,
    *,
    group: str | None,
    storage_options: dict[str, Any] | None,
    consolidated: bool | None,
    probe_children: bool,
    validate: bool,
    lazy_coordinates: bool,
    strict: bool,
    coordinate_system: str | None,
) -> Iterator[tuple[OpenedStore, NodeReader]]:
    """The opened root of ``store``/``group`` and a :class:`NodeReader` over it (with the
    children the open probed); the store is closed when the block raises, else the caller
    hands ``opened.close`` to what it returns."""
    check_strictness(validate, strict)
    opened = open_root(
        store,
        group=group,
        storage_options=storage_options,
        consolidated=consolidated,
        probe_children=probe_children,
    )
    try:
        reader = NodeReader(
            opened.name,
            validate=validate,
            lazy_coordinates=lazy_coordinates,
            strict=strict,
            coordinate_system=coordinate_system,
        )
        reader.walker.probes = opened.probes
        yield opened, reader
    except BaseException:
        opened.close()
        raise


def check_strictness(validate: bool, strict: bool) -> None:
    """Refuse ``strict=True`` with ``validate=False``: the two contradict each other."""
    if strict and not validate:
        raise OmeZarrError(
            "strict=True refuses every deviation from the spec, so it needs the schema "
            "check that validate=False turns off; pass one or the other"
        )


def _kind(meta: NodeMeta) -> str:
    if meta.plate is not None:
        return "a plate"
    if meta.well is not None:
        return "a well"
    if meta.labels is not None:
        return "a labels group"
    if meta.bioformats2raw_layout is not None:
        return "a bioformats2raw collection"
    return "no OME metadata"
