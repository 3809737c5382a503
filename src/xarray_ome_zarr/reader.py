"""Read OME-Zarr groups into the in-memory model: levels as Datasets, hierarchies as dicts.

Opening reads metadata only, never a chunk.
"""

from __future__ import annotations

import asyncio
import functools
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import xarray as xr
import zarr
from xarray.core import indexing

from .array import OmeZarrArray
from .errors import OmeZarrError, OmeZarrWarning
from .layout import PATH_ATTR, SCALE_ATTR, TYPE_ATTR, UNITS_ATTR, variable_name
from .ngff.model import Multiscale, NodeMeta
from .ngff.parse import parse_node
from .store import open_root
from .transforms import coordinate_values, level_geometry


def fetch_members(group: zarr.Group, paths: Sequence[str]) -> list[Any]:
    """Open several members of ``group`` at once: one round trip's latency over a network.

    Each result is a ``zarr.Array``, a ``zarr.Group``, or the exception opening it raised
    (``KeyError`` for a missing member, others for unreadable metadata).
    """
    from zarr.core.array import AsyncArray
    from zarr.core.sync import sync

    async def one(path: str) -> Any:
        try:
            member = await group._async_group.getitem(path)
        except Exception as err:  # reported with its key by the caller
            return err
        return zarr.Array(member) if isinstance(member, AsyncArray) else zarr.Group(member)

    async def every() -> list[Any]:
        return list(await asyncio.gather(*(one(p) for p in paths)))

    return sync(every())


#: Most subtrees (label images, wells, fields, series) read at once: each mostly waits on
#: the network, so a hierarchy costs about one round trip per level of depth, not per node.
MAX_CONCURRENT_NODES = 16


def in_parallel(
    jobs: Sequence[tuple[str, Callable[[], dict[str, xr.Dataset]]]],
) -> dict[str, xr.Dataset]:
    """Run independent subtree reads at once; merge their results, prefixed, in job order.

    The first failing job in job order raises, so errors do not depend on timing.
    """
    if len(jobs) <= 1:
        return {k: v for prefix, job in jobs for k, v in _prefixed(prefix, job()).items()}
    with ThreadPoolExecutor(max_workers=min(MAX_CONCURRENT_NODES, len(jobs))) as pool:
        futures = [(prefix, pool.submit(job)) for prefix, job in jobs]
        out: dict[str, xr.Dataset] = {}
        for prefix, future in futures:
            out.update(_prefixed(prefix, future.result()))
    return out


class NodeReader:
    """Reads one opened store: node metadata, levels, and the hierarchy below a group."""

    def __init__(self, store_name: str, *, validate: bool = True) -> None:
        self.store_name = store_name
        self.validate = validate

    def where(self, node: str) -> str:
        """Name a node of this store for messages."""
        return f"store {self.store_name!r}, node {'/' + node.strip('/')!r}"

    # ---- metadata -----------------------------------------------------------------
    def meta(self, group: zarr.Group, node: str) -> NodeMeta:
        """Parse a group's OME metadata."""
        return parse_node(group.attrs.asdict(), self.where(node), validate=self.validate)

    def child_group(self, group: zarr.Group, path: str, node: str, what: str) -> zarr.Group:
        """The group at ``path`` below ``group``, or a clear error naming ``what`` wanted it."""
        (child,) = fetch_members(group, [path])
        return self.as_group(child, path, node, what)

    def child_groups(
        self, group: zarr.Group, paths: Sequence[str], node: str, what: str | Sequence[str]
    ) -> list[zarr.Group]:
        """Several child groups of ``group``, fetched at once (one round trip).

        ``what`` names, for messages, what wanted each path (one name for all, or one each).
        """
        whats = [what] * len(paths) if isinstance(what, str) else list(what)
        members = fetch_members(group, list(paths))
        return [
            self.as_group(child, path, node, wanted)
            for path, wanted, child in zip(paths, whats, members, strict=True)
        ]

    def as_group(self, child: Any, path: str, node: str, what: str) -> zarr.Group:
        """``child`` as fetched by ``fetch_members``, or why it is not a group."""
        if isinstance(child, KeyError | FileNotFoundError):
            raise OmeZarrError(f"{self.where(node)}: {what} {path!r} does not exist") from child
        if isinstance(child, Exception):
            raise OmeZarrError(
                f"{self.where(node)}: {what} {path!r} cannot be opened "
                f"({type(child).__name__}: {child})"
            ) from child
        if not isinstance(child, zarr.Group):
            raise OmeZarrError(f"{self.where(node)}: {what} {path!r} is an array, not a group")
        return child

    def member_error(self, err: Exception, path: str, node: str, key: str) -> OmeZarrError:
        """Say why the array at ``path`` could not be opened: missing, or unreadable."""
        missing = isinstance(err, FileNotFoundError) or (
            isinstance(err, KeyError) and err.args and str(err.args[0]).strip("/") == path
        )
        if missing:
            return OmeZarrError(f"{self.where(node)}: {key}: {path!r} names no array in the store")
        return OmeZarrError(
            f"{self.where(node)}: {key}: cannot read the metadata of array {path!r} "
            f"({type(err).__name__}: {err})"
        )

    # ---- one image ----------------------------------------------------------------
    def level_index(self, multiscale: Multiscale, level: int | str, node: str) -> int:
        """Resolve ``level`` (int, negative int, ``"scaleN"`` or dataset path) to an index."""
        count = len(multiscale.levels)
        if isinstance(level, bool):
            raise OmeZarrError(f"{self.where(node)}: level must be an int or a path, got {level!r}")
        if isinstance(level, int | np.integer):
            if -count <= level < count:
                return int(level) % count
            raise OmeZarrError(
                f"{self.where(node)}: level {level} out of range; the image has {count} levels"
            )
        if isinstance(level, str):
            paths = [lv.path for lv in multiscale.levels]
            if level.strip("/") in paths:
                return paths.index(level.strip("/"))
            if level.startswith("scale") and level[5:].isdigit() and int(level[5:]) < count:
                return int(level[5:])
            raise OmeZarrError(
                f"{self.where(node)}: no level {level!r}; levels are scale0..scale{count - 1} "
                f"at dataset paths {paths}"
            )
        raise OmeZarrError(f"{self.where(node)}: level must be an int or a path, got {level!r}")

    def first_multiscale(self, meta: NodeMeta, node: str) -> Multiscale:
        """The image's first multiscale, the one the spec says to read by default; a warning
        names the others, which are neither read nor written back."""
        first, *others = meta.multiscales
        if others:
            names = [m.name for m in others]
            warnings.warn(
                f"{self.where(node)}: the group holds {len(meta.multiscales)} multiscales; "
                f"only the first ({first.name!r}) is read, and a rewrite keeps only it "
                f"(not read: {names})",
                OmeZarrWarning,
                stacklevel=2,
            )
        return first

    def level_dataset(
        self,
        group: zarr.Group,
        meta: NodeMeta,
        index: int,
        node: str,
        drop_variables: Iterable[str] = (),
        member: Any = None,
    ) -> xr.Dataset:
        """One resolution level of the image at ``group`` as a Dataset.

        ``member`` is the level's array (or the error opening it) when already fetched.
        """
        multiscale = meta.multiscales[0]
        level = multiscale.levels[index]
        key = f"multiscales/0/datasets/{index}/path"
        array = member if member is not None else fetch_members(group, [level.path])[0]
        if isinstance(array, Exception):
            raise self.member_error(array, level.path, node, key) from array
        if not isinstance(array, zarr.Array):
            raise OmeZarrError(
                f"{self.where(node)}: {key}: {level.path!r} is a group, not an array"
            )
        axes = multiscale.axes
        dims = multiscale.axis_names
        if meta.version in ("0.1", "0.2", "0.3") and len(axes) == 5 and array.ndim < 5:
            axes, dims = axes[5 - array.ndim :], dims[5 - array.ndim :]
        if array.ndim != len(dims):
            raise OmeZarrError(
                f"{self.where(node)}: array {level.path!r} has {array.ndim} dimensions but the "
                f"multiscale has {len(dims)} axes {list(dims)}"
            )
        stored_dims = getattr(array.metadata, "dimension_names", None)
        if stored_dims is not None and tuple(stored_dims) != tuple(dims):
            raise OmeZarrError(
                f"{self.where(node)}: array {level.path!r} has dimension_names "
                f"{list(stored_dims)}, which differ from the axes {list(dims)}"
            )
        if meta.image_label is not None and np.dtype(array.dtype).kind not in "iu":
            raise OmeZarrError(
                f"{self.where(node)}: {key}: label image {level.path!r} has dtype "
                f"{array.dtype}; labels must be integers"
            )
        name = variable_name(multiscale.name)
        coords = self.coordinates(
            meta, index, array.shape, node, first=len(multiscale.axes) - len(axes)
        )
        ds_attrs = {PATH_ATTR: level.path}
        dropped = set(drop_variables)
        coords = {k: v for k, v in coords.items() if k not in dropped}
        if name in dropped:
            return xr.Dataset(coords=coords, attrs=ds_attrs)
        data = indexing.LazilyIndexedArray(OmeZarrArray(array, self.where(node)))
        var_attrs = {k: v for k, v in array.attrs.asdict().items() if k != "_ARRAY_DIMENSIONS"}
        variable = xr.Variable(dims, data, attrs=var_attrs, encoding=encoding_of(array, dims))
        return xr.Dataset({name: variable}, coords=coords, attrs=ds_attrs)

    def coordinates(
        self, meta: NodeMeta, index: int, shape: tuple[int, ...], node: str, first: int = 0
    ) -> dict[str, xr.Variable]:
        """Pixel-centre coordinates of the space and time axes, and channel names."""
        multiscale = meta.multiscales[0]
        try:
            scale, translation = level_geometry(multiscale, index)
        except OmeZarrError as err:
            raise OmeZarrError(f"{self.where(node)}: {err}") from None
        coords: dict[str, xr.Variable] = {}
        for axis, size, s, t in zip(
            multiscale.axes[first:], shape, scale[first:], translation[first:], strict=True
        ):
            if axis.is_spatial:
                attrs: dict[str, Any] = {TYPE_ATTR: axis.type, SCALE_ATTR: float(s)}
                if axis.unit:
                    attrs[UNITS_ATTR] = axis.unit
                coords[axis.name] = _numpy_variable(
                    axis.name, coordinate_values(size, float(s), float(t)), attrs
                )
            elif axis.type == "channel":
                labels = channel_labels(meta.document, size, self.where(node))
                if labels is not None:
                    coords[axis.name] = _numpy_variable(
                        axis.name, np.asarray(labels, dtype=str), {TYPE_ATTR: "channel"}
                    )
        return coords

    def image_groups(
        self,
        group: zarr.Group,
        meta: NodeMeta,
        node: str,
        drop_variables: Iterable[str] = (),
        members: Sequence[Any] | None = None,
    ) -> dict[str, xr.Dataset]:
        """The image at ``group``: its own node and ``scale0..N``, keyed by relative path.

        ``members`` are the levels' arrays (or errors) when already fetched.
        """
        out = {"": xr.Dataset(attrs=group.attrs.asdict())}
        previous: tuple[int, ...] | None = None
        multiscale = self.first_multiscale(meta, node)
        if members is None:
            members = fetch_members(group, [lv.path for lv in multiscale.levels])
        for i, member in enumerate(members):
            ds = self.level_dataset(group, meta, i, node, drop_variables, member)
            shape = tuple(ds.sizes[d] for d in ds.dims)
            if previous is not None and any(b > a for a, b in zip(previous, shape, strict=False)):
                raise OmeZarrError(
                    f"{self.where(node)}: level {i} has shape {shape}, larger than level "
                    f"{i - 1} {previous}; levels must go from highest to lowest resolution"
                )
            previous = shape
            out[f"scale{i}"] = ds
        return out

    # ---- hierarchy ----------------------------------------------------------------
    def tree(
        self, group: zarr.Group, node: str = "", drop_variables: Iterable[str] = ()
    ) -> dict[str, xr.Dataset]:
        """Every OME node below ``group`` (itself included), keyed by path relative to it."""
        meta = self.meta(group, node)
        if not meta.is_ome:
            raise OmeZarrError(f"{self.where(node)}: no OME-Zarr metadata in this group")
        out: dict[str, xr.Dataset] = {}
        if meta.is_image:
            # the levels and the optional labels group in one round trip
            paths = [lv.path for lv in meta.multiscales[0].levels]
            *members, labels = fetch_members(group, [*paths, "labels"])
            out.update(self.image_groups(group, meta, node, drop_variables, members))
            if isinstance(labels, zarr.Group):
                labels_node = _join(node, "labels")
                out.update(
                    _prefixed("labels", self.labels_tree(labels, labels_node, None, drop_variables))
                )
        elif meta.labels is not None:
            out.update(self.labels_tree(group, node, meta, drop_variables))
        elif meta.plate is not None:
            out.update(self.plate_tree(group, meta, node, drop_variables))
        elif meta.well is not None:
            out.update(self.well_tree(group, meta, node, drop_variables))
        elif meta.bioformats2raw_layout is not None:
            out.update(self.bf2raw_tree(group, node, drop_variables))
        else:
            out[""] = xr.Dataset(attrs=group.attrs.asdict())
        return out

    def _optional_group(self, group: zarr.Group, path: str) -> zarr.Group | None:
        (child,) = fetch_members(group, [path])
        return child if isinstance(child, zarr.Group) else None

    def labels_tree(
        self,
        group: zarr.Group,
        node: str,
        meta: NodeMeta | None = None,
        drop_variables: Iterable[str] = (),
    ) -> dict[str, xr.Dataset]:
        """A ``labels`` group and every label image it lists."""
        meta = meta or self.meta(group, node)
        out = {"": xr.Dataset(attrs=group.attrs.asdict())}
        names = list(meta.labels or ())
        children = self.child_groups(group, names, node, "the labels list names group")
        jobs = []
        for name, child in zip(names, children, strict=True):
            child_node = _join(node, name)
            child_meta = self.meta(child, child_node)
            if not child_meta.is_image:
                raise OmeZarrError(f"{self.where(child_node)}: a label must be a multiscale image")
            jobs.append(
                (
                    name,
                    functools.partial(
                        self._label_tree, child, child_meta, child_node, drop_variables
                    ),
                )
            )
        out.update(in_parallel(jobs))
        return out

    def _label_tree(
        self, group: zarr.Group, meta: NodeMeta, node: str, drop_variables: Iterable[str]
    ) -> dict[str, xr.Dataset]:
        self.check_label_dtype(group, meta, node)
        return self.tree(group, node, drop_variables)

    def check_label_dtype(self, group: zarr.Group, meta: NodeMeta, node: str) -> None:
        """Refuse a label image whose pixels are not integers."""
        path = meta.multiscales[0].levels[0].path
        (array,) = fetch_members(group, [path])
        # A missing or unreadable array is reported with its key when the level is read.
        if isinstance(array, zarr.Array) and np.dtype(array.dtype).kind not in "iu":
            raise OmeZarrError(
                f"{self.where(node)}: label image {path!r} has dtype {array.dtype}; "
                "labels must be integers"
            )

    def plate_tree(
        self, group: zarr.Group, meta: NodeMeta, node: str, drop_variables: Iterable[str]
    ) -> dict[str, xr.Dataset]:
        """A plate, its wells and every field of every well."""
        out = {"": xr.Dataset(attrs=group.attrs.asdict())}
        wells = (meta.plate or {}).get("wells")
        if not isinstance(wells, list):
            raise OmeZarrError(f"{self.where(node)}: plate/wells must be a list")
        paths = []
        for i, well in enumerate(wells):
            path = well.get("path") if isinstance(well, Mapping) else None
            if not isinstance(path, str):
                raise OmeZarrError(f"{self.where(node)}: plate/wells/{i}/path must be a string")
            paths.append(path)
        whats = [f"plate/wells/{i}/path" for i in range(len(paths))]
        jobs = []
        for path, child in zip(paths, self.child_groups(group, paths, node, whats), strict=True):
            child_node = _join(node, path)
            child_meta = self.meta(child, child_node)
            if child_meta.well is None:
                raise OmeZarrError(f"{self.where(child_node)}: a plate's well needs well metadata")
            jobs.append(
                (
                    path,
                    functools.partial(
                        self.well_tree, child, child_meta, child_node, drop_variables
                    ),
                )
            )
        out.update(in_parallel(jobs))
        return out

    def well_tree(
        self, group: zarr.Group, meta: NodeMeta, node: str, drop_variables: Iterable[str]
    ) -> dict[str, xr.Dataset]:
        """A well and its fields of view."""
        out = {"": xr.Dataset(attrs=group.attrs.asdict())}
        images = (meta.well or {}).get("images")
        if not isinstance(images, list) or not images:
            raise OmeZarrError(f"{self.where(node)}: well/images must list at least one image")
        paths = []
        for i, image in enumerate(images):
            path = image.get("path") if isinstance(image, Mapping) else None
            if not isinstance(path, str):
                raise OmeZarrError(f"{self.where(node)}: well/images/{i}/path must be a string")
            paths.append(path)
        whats = [f"well/images/{i}/path" for i in range(len(paths))]
        children = self.child_groups(group, paths, node, whats)
        jobs = [
            (path, functools.partial(self.tree, child, _join(node, path), drop_variables))
            for path, child in zip(paths, children, strict=True)
        ]
        out.update(in_parallel(jobs))
        return out

    def bf2raw_tree(
        self, group: zarr.Group, node: str, drop_variables: Iterable[str]
    ) -> dict[str, xr.Dataset]:
        """A bioformats2raw collection: its series, and the ``OME`` group's series list."""
        out = {"": xr.Dataset(attrs=group.attrs.asdict())}
        ome = self._optional_group(group, "OME")
        series: tuple[str, ...] | None = None
        if ome is not None:
            ome_meta = self.meta(ome, _join(node, "OME"))
            series = ome_meta.series
            out["OME"] = xr.Dataset(attrs=ome.attrs.asdict())
        if series is None:
            found = []
            while self._optional_group(group, str(len(found))) is not None:
                found.append(str(len(found)))
            series = tuple(found)
        jobs = []
        for path, child in zip(
            series, self.child_groups(group, list(series), node, "series"), strict=True
        ):
            child_node = _join(node, path)
            child_meta = self.meta(child, child_node)
            if child_meta.is_image or child_meta.plate is not None:
                jobs.append((path, functools.partial(self.tree, child, child_node, drop_variables)))
        out.update(in_parallel(jobs))
        return out


def _numpy_variable(dim: str, values: np.ndarray, attrs: dict[str, Any]) -> xr.Variable:
    """A coordinate variable over numpy values.

    ``fastpath`` skips xarray's check for dask arrays, which imports ``dask.array`` (and
    with it scipy): half a second of a fresh process's open that ``.values`` never needs.
    """
    return xr.Variable((dim,), values, attrs, fastpath=True)


def channel_labels(document: Mapping[str, Any], size: int, where: str) -> list[str] | None:
    """Channel names from ``omero``, or ``None`` when it names none (or not all)."""
    omero = document.get("omero")
    channels = omero.get("channels") if isinstance(omero, Mapping) else None
    if not isinstance(channels, list) or not channels:
        return None
    labels = [c.get("label") if isinstance(c, Mapping) else None for c in channels]
    if not all(isinstance(label, str) for label in labels):
        return None
    if len(labels) != size:
        warnings.warn(
            f"{where}: omero names {len(labels)} channels but the channel axis has {size}; "
            "no channel coordinate is made",
            OmeZarrWarning,
            stacklevel=2,
        )
        return None
    return labels


def encoding_of(array: zarr.Array, dims: tuple[str, ...]) -> dict[str, Any]:
    """The zarr encoding of ``array`` in xarray's terms, plus what a round trip needs."""
    meta = array.metadata
    shards = getattr(array, "shards", None)
    encoding: dict[str, Any] = {
        "chunks": tuple(array.chunks),
        "preferred_chunks": dict(zip(dims, shards or array.chunks, strict=True)),
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


def _join(node: str, path: str) -> str:
    return f"{node.strip('/')}/{path.strip('/')}".strip("/")


def _prefixed(prefix: str, groups: Mapping[str, xr.Dataset]) -> dict[str, xr.Dataset]:
    prefix = prefix.strip("/")
    return {_join(prefix, key): ds for key, ds in groups.items()}


# ---- public functions behind the engine ------------------------------------------------
def open_ome_dataset(
    store: Any,
    *,
    level: int | str = 0,
    group: str | None = None,
    storage_options: dict[str, Any] | None = None,
    drop_variables: Iterable[str] = (),
    validate: bool = True,
    consolidated: bool | None = None,
) -> xr.Dataset:
    """Open one resolution level of the OME-Zarr image at ``store``/``group``.

    The Dataset's attrs are the image group's attributes, verbatim, plus the level's
    dataset path under ``ome_dataset_path``. See ``xarray.open_dataset`` with
    ``engine="ome-zarr"`` for chunking.
    """
    opened = open_root(
        store, group=group, storage_options=storage_options, consolidated=consolidated
    )
    try:
        reader = NodeReader(opened.name, validate=validate)
        node = (group or "").strip("/")
        meta = reader.meta(opened.group, node)
        if not meta.is_image:
            raise OmeZarrError(
                f"{reader.where(node)}: is not a multiscale image ({_kind(meta)}); "
                "pass group= to choose an image, or use xr.open_datatree"
            )
        index = reader.level_index(reader.first_multiscale(meta, node), level, node)
        ds = reader.level_dataset(opened.group, meta, index, node, drop_variables)
        ds.attrs = {**opened.group.attrs.asdict(), **ds.attrs}
    except BaseException:
        opened.close()
        raise
    ds.set_close(opened.close)
    return ds


def open_ome_groups(
    store: Any,
    *,
    group: str | None = None,
    storage_options: dict[str, Any] | None = None,
    drop_variables: Iterable[str] = (),
    validate: bool = True,
    consolidated: bool | None = None,
) -> dict[str, xr.Dataset]:
    """Every OME node at and below ``store``/``group``, as ``{"/path": Dataset}``."""
    opened = open_root(
        store, group=group, storage_options=storage_options, consolidated=consolidated
    )
    try:
        reader = NodeReader(opened.name, validate=validate)
        groups = reader.tree(opened.group, (group or "").strip("/"), drop_variables)
    except BaseException:
        opened.close()
        raise
    out = {"/" + key if key else "/": ds for key, ds in groups.items()}
    out["/"].set_close(opened.close)
    return out


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
