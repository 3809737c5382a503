"""Write images, pyramids and hierarchies as OME-Zarr 0.4 (zarr v2), 0.5 or 0.6 (zarr v3).

This module decides what to write: everything is checked and planned (a :class:`Plan` of
groups and chunk-aligned arrays) before the store is touched. :mod:`.targets` writes the plan:
arrays first and the OME metadata last, so an interrupted write never looks like a complete
image; a local directory or ``.ozx`` file is staged beside the target and moved into place.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .additions import (
    finish_addition,
    label_input,
    node_target,
    open_addition,
    plan_listings,
    remove_created_parents,
)
from .append import append_to, appends, check_append_mode
from .chunking import aligned_chunks, chunked, default_chunks, grown_chunks
from .compression import AUTO, compressors_for, default_compressors
from .errors import OmeZarrError
from .existing import ExistingStore, look_at, node_path, resolve_mode, version_for
from .layout import (
    PATH_ATTR,
    as_image_dataarray,
    axes_by_name,
    axis_types,
    check_label,
    image_attributes,
    is_label_source,
    jsonable,
    level_array,
    level_number,
    level_paths,
    restore_level_coordinates,
    source_of,
    variable_name,
)
from .multiscale import method_metadata, pyramid
from .ngff.emit import (
    check_version,
    convert_blocks,
    group_attributes,
    present_entries,
    split_source,
    zarr_format_of,
)
from .ngff.emit_v06 import own_system_name, stored_multiscale_06, stored_paths
from .ngff.parse import parse_node
from .ngff.transformations import TransformGraph
from .ngff.v06 import dangling_scene_references, lost_in
from .node_attrs import group_attrs
from .store import is_zip_path, store_name
from .stored_data import source_group, stored_copies, tree_source_group
from .systems import SYSTEM_ATTR, back_to_own_system
from .targets import ArrayPlan, Plan, make_target, write_to


# ---- the plan: everything decided before the store is touched ----------------------------
@dataclass(frozen=True)
class Options:
    """What the caller asked for, shared by every image of a write."""

    version: str
    scale_factors: Any = None
    method: str | None = None
    chunks: Any = None
    shards: Any = None
    compressors: Any = AUTO
    chunks_per_shard: Any = None
    encoding: Mapping[tuple[str, str], Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    @property
    def zarr_format(self) -> int:
        """2 for 0.4, 3 for 0.5."""
        return zarr_format_of(self.version)


@dataclass
class ImageInput:
    """An image found in the input: its group attributes and its levels."""

    node: str
    attrs: Mapping[Any, Any]
    levels: list[xr.DataArray]
    paths: list[str | None]
    label: bool = False
    #: The system ``coordinate_system=`` chose at open (the levels are mapped back).
    chosen: str | None = None


# ---- metadata of one image ---------------------------------------------------------------
def _where(node: str) -> str:
    return f"node {'/' + node.strip('/')!r}"


# ---- arrays -----------------------------------------------------------------------------
def _per_dim(value: Any, dims: Sequence[str], what: str, where: str) -> dict[str, int]:
    """Caller chunks or shards as ``{dim: size}`` for the dims it names."""
    if value is None:
        return {}
    if isinstance(value, bool):
        raise OmeZarrError(f"{where}: {what} must be an int, a tuple or a dict, got {value!r}")
    if isinstance(value, int | np.integer):
        out = {d: int(value) for d in dims}
    elif isinstance(value, Mapping):
        # names of axes this image lacks are checked over the whole write (setting_axes)
        out = {str(k): int(v) for k, v in value.items() if str(k) in dims and v is not None}
    elif isinstance(value, Sequence) and len(value) == len(dims):
        out = {d: int(v) for d, v in zip(dims, value, strict=True) if v is not None}
    else:
        raise OmeZarrError(
            f"{where}: {what} {value!r} does not fit dims {list(dims)}; pass a dict by dimension"
        )
    return out


#: The caller's layout settings, by keyword.
LAYOUT_SETTINGS = ("chunks", "shards", "chunks_per_shard")


def check_layout_settings(options: Options) -> None:
    """Refuse layout settings that cannot take effect, before anything is planned."""
    if options.shards is not None and options.chunks_per_shard is not None:
        raise OmeZarrError.at(
            "pass shards (a shard shape) or chunks_per_shard (chunks in a shard), not both",
            key="shards",
        )
    sharded = options.shards is not None or options.chunks_per_shard is not None
    if sharded and options.zarr_format == 2:
        raise OmeZarrError.at("sharding needs OME-Zarr 0.5 (zarr v3), not 0.4", key="shards")
    for what in LAYOUT_SETTINGS:
        value = getattr(options, what)
        if value is None:
            continue
        if isinstance(value, Mapping):
            sizes = list(value.values())
        elif isinstance(value, Sequence) and not isinstance(value, str):
            sizes = list(value)
        else:
            sizes = [value]
        if not all(v is None or (_is_size(v) and v >= 1) for v in sizes):
            raise OmeZarrError.at(
                f"{what} sizes must be positive integers, got {value!r}", key=what
            )


def _is_size(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def check_setting_axes(options: Options, plan: Plan) -> None:
    """Refuse chunks, shards or chunks_per_shard naming an axis no image of the write has."""
    axes = list(dict.fromkeys(d for a in plan.arrays for d in a.dimension_names))
    for what in LAYOUT_SETTINGS:
        value = getattr(options, what)
        if not isinstance(value, Mapping):
            continue
        unknown = [str(k) for k in value if str(k) not in axes]
        if unknown:
            raise OmeZarrError.at(
                f"{what} name axes the image does not have: {unknown} (axes: {axes})", key=what
            )


def _asked_size(setting: Any, size: int, length: int) -> int:
    """A chunk size the caller asked for: as asked when by axis, capped at ``length`` when
    ``setting`` is one size for every axis."""
    return max(1, min(size, length)) if _is_size(setting) else size


def _asked_shards(
    setting: Any, shards: Sequence[int], chunks: Sequence[int], shape: Sequence[int]
) -> tuple[int, ...]:
    """Shard sizes the caller asked for (``shards`` or ``chunks_per_shard``): as asked when
    by axis, clipped to the level when ``setting`` is one size for every axis."""
    return _clip_shards(shards, chunks, shape) if _is_size(setting) else tuple(shards)


def _clip_shards(shards: Sequence[int], chunks: Sequence[int], shape: Sequence[int]) -> tuple:
    return tuple(min(s, -(-n // c) * c) for s, c, n in zip(shards, chunks, shape, strict=True))


def _chunk_layout(
    level: xr.DataArray, types: Mapping[str, Any], options: Options, where: str
) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """(chunks, shards): the caller's, else the encoding's, else the defaults."""
    dims = [str(d) for d in level.dims]
    encoding = level.encoding
    asked = _per_dim(options.chunks, dims, "chunks", where)
    kept = encoding.get("chunks")
    kept = dict(zip(dims, kept, strict=True)) if kept and len(kept) == len(dims) else {}
    default = default_chunks(dims, level.shape, types, level.dtype.itemsize)
    # Sizes asked by axis and the encoding's are kept as they are: zarr allows chunks larger
    # than the array, and an image started short (one time point) keeps the chunks asked for
    # as it grows. One size for every axis is a cap (it names no axis); the defaults fit.
    chunks = tuple(
        _asked_size(options.chunks, asked[d], n)
        if d in asked
        else max(1, int(kept[d]))
        if d in kept
        else c
        for d, n, c in zip(dims, level.shape, default, strict=True)
    )
    if options.zarr_format == 2:
        return chunks, None
    if options.chunks_per_shard is not None:
        per_shard = _per_dim(options.chunks_per_shard, dims, "chunks_per_shard", where)
        asked_shards = [c * per_shard.get(d, 1) for d, c in zip(dims, chunks, strict=True)]
        return chunks, _asked_shards(options.chunks_per_shard, asked_shards, chunks, level.shape)
    wanted = _per_dim(options.shards, dims, "shards", where)
    if wanted:
        small = [d for d, c in zip(dims, chunks, strict=True) if wanted.get(d, c) < c]
        if small:
            raise OmeZarrError(
                f"{where}: shards {options.shards!r} are smaller than the chunks "
                f"{dict(zip(dims, chunks, strict=True))} along {small}: a shard holds whole "
                "chunks (for a number of chunks per shard, pass chunks_per_shard)"
            )
        asked_shards = [wanted.get(d, c) for d, c in zip(dims, chunks, strict=True)]
        shards = _asked_shards(options.shards, asked_shards, chunks, level.shape)
        bad = [d for d, s, c in zip(dims, shards, chunks, strict=True) if s % c]
        if bad:
            raise OmeZarrError(
                f"{where}: shards {shards} must be multiples of the chunks {chunks} (along {bad})"
            )
        return chunks, shards
    stored = encoding.get("shards") if options.chunks is None else None
    if stored and len(stored) == len(dims):
        stored = tuple(max(int(s), c) for s, c in zip(stored, chunks, strict=True))
        if all(s % c == 0 for s, c in zip(stored, chunks, strict=True)):
            return chunks, stored  # as they are, like the encoding's chunks
    return chunks, None


def _codecs(encoding: Mapping[str, Any], options: Options) -> dict[str, Any]:
    """Compressors, filters and serializer: the caller's, else the encoding's (same format)."""
    asked = compressors_for(options.compressors, options.zarr_format, options.version)
    if asked is not None:
        return {"compressors": asked}
    if encoding.get("zarr_format") != options.zarr_format:
        return {"compressors": default_compressors(options.zarr_format)}
    keys = ("compressors", "filters") + (("serializer",) if options.zarr_format == 3 else ())
    kept = {k: encoding[k] for k in keys if encoding.get(k) is not None}
    return kept or {"compressors": default_compressors(options.zarr_format)}


def _fill_value(encoding: Mapping[str, Any], dtype: np.dtype) -> Any:
    value = encoding.get("fill_value")
    if value is None:
        return 0
    try:
        return np.asarray(value).astype(dtype).item()
    except (TypeError, ValueError):
        return 0


def _dask_data(level: xr.DataArray, unit: Sequence[int]) -> da.Array:
    """The level as a dask array whose blocks are whole write units (chunks or shards), so
    that no two tasks write the same chunk or shard; dask input keeps its blocks if they
    already are. Numpy pixels are not copied: the write ends before the caller gets them back.
    """
    if level.chunks is not None:
        data = level.data
        if aligned_chunks(data.chunks, unit) == data.chunks:
            return data
        return data.rechunk(grown_chunks(data.shape, unit, data.dtype.itemsize))
    grown = grown_chunks(level.shape, unit, level.dtype.itemsize)
    return chunked(level, dict(zip(map(str, level.dims), grown, strict=True)), views=True).data


def _array_attrs(level: xr.DataArray) -> dict[str, Any]:
    return jsonable({k: v for k, v in level.attrs.items() if k != "_ARRAY_DIMENSIONS"})


def array_plan(
    level: xr.DataArray,
    path: str,
    types: Mapping[str, Any],
    options: Options,
    where: str,
    encoding: Mapping[str, Any] | None = None,
) -> ArrayPlan:
    """How one level is written: layout, codecs and the chunk-aligned dask array.

    ``encoding`` is the caller's ``encoding=`` for this level: it overrides the keywords.
    """
    asked = dict(encoding or {})
    options = dataclasses.replace(
        options,
        chunks=asked.get("chunks", options.chunks),
        shards=asked.get("shards", options.shards),
        chunks_per_shard=None if "shards" in asked else options.chunks_per_shard,
        compressors=asked.get("compressors", options.compressors),
    )
    if "chunks" in asked or "shards" in asked:
        try:
            check_layout_settings(options)
        except OmeZarrError as err:
            raise OmeZarrError(f"{where}: encoding: {err}") from None
    chunks, shards = _chunk_layout(level, types, options, where)
    codecs = _codecs(level.encoding, options)
    if "filters" in asked:
        filters = asked["filters"]
        codecs["filters"] = () if filters is None else tuple(_as_list(filters))
    stored = asked if "fill_value" in asked else level.encoding
    return ArrayPlan(
        path=path,
        data=_dask_data(level, shards or chunks),
        chunks=chunks,
        shards=shards,
        codecs=codecs,
        fill_value=_fill_value(stored, level.dtype),
        dimension_names=tuple(str(d) for d in level.dims),
        attributes=_array_attrs(level),
    )


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return [value]


#: The keys ``encoding=`` takes for a variable.
ENCODING_KEYS = ("chunks", "shards", "compressors", "filters", "fill_value")


def encoding_by_variable(
    encoding: Mapping[Any, Any] | None, tree: bool
) -> dict[tuple[str, str], dict[str, Any]]:
    """``encoding=`` as ``{(node path, variable name): settings}``, checked.

    For a DataArray or Dataset it is xarray's ``{variable: {key: value}}``; for a DataTree
    ``{node path: {variable: {key: value}}}``, a path naming an image (all its levels) or
    one level (``"/scale0"``, ``"/labels/nuclei/scale1"``).
    """
    if not encoding:
        return {}
    if not isinstance(encoding, Mapping):
        raise OmeZarrError(f"encoding must be a dict by variable, got {type(encoding).__name__}")
    shape = "{node path: {variable: {...}}}" if tree else "{variable: {...}}"
    out: dict[tuple[str, str], dict[str, Any]] = {}
    nodes = encoding.items() if tree else [("", encoding)]
    for node, by_variable in nodes:
        if not isinstance(by_variable, Mapping):
            raise OmeZarrError(f"encoding is {shape}; {node!r} maps to {by_variable!r}")
        for variable, settings in by_variable.items():
            if not isinstance(settings, Mapping):
                example = "{'image': {'chunks': ...}}"
                raise OmeZarrError(
                    f"encoding is {shape} (e.g. encoding={example}); "
                    f"{variable!r} maps to {settings!r}"
                )
            unknown = [str(k) for k in settings if k not in ENCODING_KEYS]
            if unknown:
                raise OmeZarrError(
                    f"encoding[{variable!r}]: unknown keys {unknown}; known: "
                    f"{', '.join(ENCODING_KEYS)}"
                )
            out[(str(node).strip("/"), str(variable))] = dict(settings)
    return out


# ---- inputs -----------------------------------------------------------------------------
def refuse_lossy_06(
    attrs: Mapping[Any, Any], version: str, where: str, chosen: str | None = None
) -> None:
    """An ``OmeZarrError`` naming what writing a 0.6 group as 0.4/0.5 would lose.

    ``chosen`` is the system ``coordinate_system=`` chose at open (the levels were mapped
    back from it): the message says that this changes nothing.
    """
    ome = attrs.get("ome")
    lost = lost_in(ome, version) if isinstance(ome, Mapping) else []
    if lost:
        note = (
            f" (the levels, opened with coordinate_system={chosen!r}, are written in the "
            "image's own system: that changes nothing)"
            if chosen is not None
            else ""
        )
        raise OmeZarrError(
            f"{where}: OME-Zarr {version} cannot hold what this 0.6 image or scene has, and "
            f"writing it would lose: {'; '.join(lost)}{note}; write version='0.6' to keep it"
        )


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def _level_children(node: xr.DataTree) -> list[tuple[int, xr.DataTree]]:
    found = []
    for name, child in node.children.items():
        number = level_number(name)
        if number is not None and child.has_data:
            found.append((number, child))
    return sorted(found, key=lambda item: item[0])


def _own_coordinates(
    ds: xr.Dataset, top: xr.DataTree | None, prefix: str, attrs: Mapping[Any, Any], where: str
) -> xr.Dataset:
    """A level opened with ``coordinate_system=`` mapped back to the image's own system
    (the graph from ``top``, the tree being written, else from ``ds``'s own document)."""
    if not isinstance(ds.attrs.get(SYSTEM_ATTR), str):
        return ds
    from .points import graph_of

    try:
        graph = graph_of(top if top is not None else ds)
    except OmeZarrError:
        graph = TransformGraph()
    source = split_source(attrs, where)
    own = stored_multiscale_06(source.version, source.multiscales)
    name = own_system_name(own) if own is not None else None
    return back_to_own_system(ds, graph, prefix, name, where)


def _image_from_node(
    node: xr.DataTree, path: str, top: xr.DataTree | None = None
) -> ImageInput | None:
    where = _where(path)
    levels = _level_children(node)
    if levels:
        if node.data_vars:
            raise OmeZarrError(
                f"{where}: holds data variables {list(node.data_vars)} beside its levels; "
                "an image node keeps its pixels in scale0..scaleN only"
            )
        opened = [child.to_dataset(inherit=True) for _, child in levels]
        attrs = group_attrs(node.attrs, where)
        datasets = [_own_coordinates(ds, top, path, attrs, where) for ds in opened]
        return ImageInput(
            node=path,
            attrs=attrs,
            levels=[
                level_array(ds, f"{where}/{c.name}")
                for ds, (_, c) in zip(datasets, levels, strict=True)
            ],
            paths=[ds.attrs.get(PATH_ATTR) for ds in datasets],
            chosen=_chosen(opened[0]),
        )
    if node.data_vars:
        alone = node.to_dataset(inherit=True)
        attrs = group_attrs(alone.attrs, where)
        ds = _own_coordinates(alone, top, path, attrs, where)
        return ImageInput(
            path, attrs, [level_array(ds, where)], [ds.attrs.get(PATH_ATTR)], chosen=_chosen(alone)
        )
    return None


def _single_image(obj: xr.DataArray | xr.Dataset) -> ImageInput:
    chosen = _chosen(obj)
    if isinstance(obj, xr.Dataset):
        obj = _own_coordinates(obj, None, "", group_attrs(obj.attrs, _where("")), _where(""))
    array, attrs = as_image_dataarray(obj, _where(""))
    path = obj.attrs.get(PATH_ATTR) if isinstance(obj, xr.Dataset) else None
    return ImageInput("", attrs, [array], [path], chosen=chosen)


def _chosen(obj: xr.Dataset | xr.DataArray) -> str | None:
    """The system ``coordinate_system=`` chose at open, if any."""
    chosen = obj.attrs.get(SYSTEM_ATTR)
    return chosen if isinstance(chosen, str) else None


# ---- planning ---------------------------------------------------------------------------
class Planner:
    """Turns the input into a :class:`Plan`, checking everything on the way."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.plan = Plan(options.version)
        self.unused_encoding = set(options.encoding)
        #: The tree being written (its 0.6 graph maps coordinate_system= levels back).
        self.top: xr.DataTree | None = None

    def image(self, image: ImageInput) -> None:
        """Plan one image: its pyramid (if asked for), its arrays and its attributes."""
        where = _where(image.node)
        refuse_lossy_06(image.attrs, self.options.version, where, image.chosen)
        source, stored = source_of(image.attrs, where)
        label = image.label or is_label_source(source)
        levels = restore_level_coordinates(image.levels, image.paths, stored, image.node)
        paths = image.paths
        ms_type = ms_metadata = None
        if self.options.scale_factors is not None:
            types = axis_types(levels[0], axes_by_name(stored))
            if label:
                check_label(levels[0], where)
            try:
                levels, ms_type = pyramid(
                    levels[0],
                    self.options.scale_factors,
                    self.options.method,
                    types,
                    label,
                    views=True,
                )
            except OmeZarrError as err:
                raise OmeZarrError(f"{where}: {err}") from None
            ms_metadata = method_metadata(ms_type, self.options.scale_factors)
            paths = [None] * len(levels)
        attrs = image_attributes(
            levels,
            image.attrs,
            self.options.version,
            paths=paths,
            label=label,
            type=ms_type,
            metadata=ms_metadata,
            where=where,
        )
        self.check(attrs, image.node)
        types = axis_types(levels[0], axes_by_name(stored))
        for i, (level, path) in enumerate(zip(levels, level_paths(paths), strict=True)):
            full = _join(image.node, path)
            asked = self.level_encoding(image.node, i, variable_name(level.name))
            self.plan.arrays.append(array_plan(level, full, types, self.options, where, asked))
        self.plan.groups[image.node] = attrs
        self.copy_stored(attrs, image.node, lambda: source_group(image.levels, image.paths))

    def copy_stored(self, attrs: Mapping[str, Any], node: str, find_source: Any) -> None:
        """Plan copies of the fields and parameter arrays a written 0.6 document names by
        path, from the store the input was opened from (``find_source()``)."""
        ome = attrs.get("ome")
        if self.options.version != "0.6" or not isinstance(ome, Mapping):
            return
        wanted = [p for p in stored_paths(ome) if _join(node, p) not in self.plan.groups]
        if not wanted:
            return
        where = _where(node)
        group = find_source()
        if group is None:
            raise OmeZarrError(
                f"{where}: the transforms name stored data (fields or parameters) at "
                f"{', '.join(map(repr, wanted))}, kept beside the image in the store it was "
                "opened from; that source is not known here (the pixels are in memory or "
                "computed, not read lazily from a store): write the object as opened, or "
                "remove those transforms from obj.ome.group_attrs['ome']"
            )
        for path in wanted:
            for copied in stored_copies(group, path, where):
                full = _join(node, copied.path)
                if copied.array is None:
                    self.plan.groups[full] = jsonable(dict(copied.attrs))
                else:
                    self.plan.arrays.append(array_plan(copied.array, full, {}, self.options, where))

    def level_encoding(self, node: str, index: int, variable: str) -> dict[str, Any]:
        """The caller's ``encoding=`` for one level: the image's entry, then the level's."""
        out: dict[str, Any] = {}
        for key in ((node, variable), (_join(node, f"scale{index}"), variable)):
            if key in self.options.encoding:
                self.unused_encoding.discard(key)
                out.update(self.options.encoding[key])
        return out

    def group(self, node: xr.DataTree, path: str) -> None:
        """Plan a group that is not an image: its OME blocks converted, listings refreshed."""
        stored = group_attrs(node.attrs, _where(path))
        refuse_lossy_06(stored, self.options.version, _where(path))
        source = split_source(stored, _where(path))
        if not source.is_ome:
            self.plan.groups[path] = jsonable(stored)
            return
        blocks = convert_blocks(source.blocks, source.version, self.options.version)
        _refresh_listings(blocks, node)
        _complete_plate(blocks, node)
        attrs = jsonable(group_attributes(self.options.version, blocks, source.other))
        self.check(attrs, path)
        self.plan.groups[path] = attrs
        self.copy_stored(attrs, path, lambda: tree_source_group(node))

    def tree(self, node: xr.DataTree, path: str = "", label: bool = False) -> None:
        """Plan ``node`` and everything below it."""
        if not path:
            self.top = node
        image = _image_from_node(node, path, self.top)
        skip: set[str] = set()
        if image is not None:
            image.label = label
            self.image(image)
            skip = {str(c.name) for _, c in _level_children(node)}
        elif node.name == "labels" and not group_attrs(node.attrs) and _is_image_parent(node):
            self.plan.groups[path] = group_attributes(
                self.options.version, {"labels": _image_children(node)}
            )
        else:
            self.group(node, path)
        is_labels = image is None and node.name == "labels" and _is_image_parent(node)
        for name, child in node.children.items():
            if str(name) not in skip:
                self.tree(child, _join(path, str(name)), label=is_labels)

    def check(self, attrs: Mapping[str, Any], node: str) -> None:
        """Refuse to write metadata that the reader (and the spec's schema) would refuse."""
        try:
            parse_node(attrs, _where(node), validate=True)
        except OmeZarrError as err:
            raise OmeZarrError(f"would write invalid metadata: {err}") from None


def _is_image_parent(node: xr.DataTree) -> bool:
    parent = node.parent
    if parent is None:
        return False
    if _level_children(parent) or parent.data_vars:
        return True
    return split_source(group_attrs(parent.attrs)).multiscales is not None


def _image_children(node: xr.DataTree) -> list[str]:
    return [
        str(name)
        for name, child in node.children.items()
        if _level_children(child) or child.has_data
    ]


def _complete_plate(blocks: dict[str, Any], node: xr.DataTree) -> None:
    """Fill in what the strict plate schema wants and the source lacks, keeping every value
    it has: the plate's ``name`` (the group's name), each acquisition's ``name`` (its id)
    and ``maximumfieldcount`` (the most fields of that acquisition in one well)."""
    plate = blocks.get("plate")
    if not isinstance(plate, dict):
        return
    plate.setdefault("name", str(node.name) if node.name and node.parent else "plate")
    acquisitions = plate.get("acquisitions")
    if not isinstance(acquisitions, list):
        return
    counts: dict[Any, int] = {}
    for well in plate.get("wells") or ():
        path = well.get("path") if isinstance(well, dict) else None
        if not isinstance(path, str):
            continue
        try:
            well_attrs = node[path].attrs
        except KeyError:
            continue
        well_block = split_source(group_attrs(well_attrs)).blocks.get("well")
        images = well_block.get("images") if isinstance(well_block, dict) else None
        per_acquisition: dict[Any, int] = {}
        for image in images if isinstance(images, list) else ():
            if isinstance(image, dict):
                key = image.get("acquisition")
                per_acquisition[key] = per_acquisition.get(key, 0) + 1
        for key, count in per_acquisition.items():
            counts[key] = max(counts.get(key, 0), count)
    single = len(acquisitions) == 1
    for acquisition in acquisitions:
        if not isinstance(acquisition, dict):
            continue
        ident = acquisition.get("id")
        acquisition.setdefault("name", str(ident))
        count = counts.get(ident) or (max(counts.values(), default=0) if single else 0)
        if count > 0:
            acquisition.setdefault("maximumfieldcount", count)


def _refresh_listings(blocks: dict[str, Any], node: xr.DataTree) -> None:
    """Drop listed labels, wells, fields and series that are not in the tree any more."""
    children = {str(n) for n in node.children}
    if isinstance(blocks.get("labels"), list):
        present = _image_children(node)
        listed = [n for n in blocks["labels"] if n in present]
        blocks["labels"] = listed + [n for n in present if n not in listed]
    if isinstance(blocks.get("well"), dict):
        blocks["well"]["images"] = present_entries(blocks["well"].get("images"), "path", children)
    if isinstance(blocks.get("plate"), dict):
        below = {_relative(n.path, node.path) for n in node.subtree}
        blocks["plate"]["wells"] = present_entries(blocks["plate"].get("wells"), "path", below)
    if isinstance(blocks.get("series"), list) and node.parent is not None:
        siblings = {str(n) for n in node.parent.children}
        blocks["series"] = [s for s in blocks["series"] if s in siblings]


def _relative(path: str, base: str) -> str:
    return path[len(base) :].strip("/") if path.startswith(base) else path.strip("/")


def make_plan(obj: Any, options: Options, label: bool = False) -> Plan:
    """Check the input and decide every group and array to write (``label``: the input is
    a label image).

    The plan's dask arrays may be views of the input's numpy pixels: write it before the
    caller gets control back.
    """
    check_layout_settings(options)
    planner = Planner(options)
    if isinstance(obj, xr.DataTree):
        planner.tree(obj, label=label)
    elif isinstance(obj, xr.DataArray | xr.Dataset):
        image = _single_image(obj)
        image.label = image.label or label
        planner.image(image)
    else:
        raise OmeZarrError(
            f"to_ome_zarr takes a DataArray, Dataset or DataTree, got {type(obj).__name__}"
        )
    if not planner.plan.arrays:
        raise OmeZarrError("nothing to write: the input holds no image")
    check_setting_axes(options, planner.plan)
    if planner.unused_encoding:
        missing = sorted(planner.unused_encoding)
        named = ", ".join(f"variable {v!r} of node {'/' + n!r}" for n, v in missing)
        raise OmeZarrError(
            f"encoding names {named}, which the input does not hold (keys are "
            + (
                "node paths, then variable names)"
                if isinstance(obj, xr.DataTree)
                else "variable names)"
            )
        )
    check_scenes(planner.plan)
    return planner.plan


def check_scenes(plan: Plan) -> None:
    """Refuse a scene whose transforms name a coordinate system its image does not have
    (``validate`` reports such a store, rule ``v06-scene-reference``)."""
    for node, attrs in plan.groups.items():
        scene = attrs.get("ome", {}).get("scene") if isinstance(attrs.get("ome"), dict) else None
        if not isinstance(scene, Mapping):
            continue

        def systems_of(path: str, node: str = node) -> list[str] | None:
            document = plan.groups.get(_join(node, path), {}).get("ome")
            if not isinstance(document, Mapping):
                return None
            return [
                cs.get("name")
                for ms in document.get("multiscales") or ()
                for cs in ms.get("coordinateSystems") or ()
            ]

        for key, path, name, names in dangling_scene_references(scene, systems_of):
            raise OmeZarrError.at(
                f"names the coordinate system {name!r} of the image {path!r}, which has "
                f"{', '.join(map(repr, names))}: a scene transform must join two systems",
                node="/" + node,
                key=key,
            )


# ---- writing ------------------------------------------------------------------------------
def _settings_given(**settings: Any) -> list[str]:
    """The keywords of :func:`to_ome_zarr` among ``settings`` that the caller set, in order:
    a value other than the keyword's default (an empty ``encoding`` is none). Appends and
    regions refuse them: the store decides."""
    defaults = {k: p.default for k, p in inspect.signature(to_ome_zarr).parameters.items()}
    return [k for k, v in settings.items() if _differs(k, v, defaults[k])]


def _differs(key: str, value: Any, default: Any) -> bool:
    if key == "encoding" or isinstance(default, bool):
        return bool(value) != bool(default)
    if isinstance(default, str):  # AUTO
        return not (isinstance(value, str) and value == default)
    return value is not None


def to_ome_zarr(
    obj: Any,
    store: Any,
    *,
    mode: str | None = None,
    group: str | None = None,
    version: str | float | None = None,
    scale_factors: Sequence[int | Mapping[str, int]] | None = None,
    method: str | None = None,
    chunks: Any = None,
    shards: Any = None,
    compressors: Any = AUTO,
    encoding: Mapping[Any, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    consolidated: bool = False,
    chunks_per_shard: int | Mapping[str, int] | None = None,
    dims: Sequence[str] | None = None,
    scale: Any = None,
    translation: Any = None,
    units: Any = None,
    channels: Any = None,
    name: str | None = None,
    compressor: Any = None,
    append_dim: str | None = None,
    region: Mapping[str, Any] | str | None = None,
    compute: bool = True,
    safe_chunks: bool = True,
) -> Any:
    """Write an image, a pyramid or a whole hierarchy as OME-Zarr.

    Parameters
    ----------
    obj
        A DataArray or one-variable Dataset (one level), or a DataTree: an image with levels
        ``scale0..N`` or a hierarchy (labels, plates, bioformats2raw collections) as
        ``xr.open_datatree(..., engine="ome-zarr")`` returns it. Or a bare numpy, dask or
        zarr array, described by ``dims``, ``scale``, ``translation``, ``units``,
        ``channels`` and ``name`` as :func:`xarray_ome_zarr.image` takes them.
    store
        A local path, an ``.ozx`` file (RFC-9 zip; local or at a URL), an fsspec URL
        (``s3://...``, any writable fsspec filesystem), a zarr store or a zarr group.
    mode
        As in xarray's ``to_zarr``: ``"w-"`` (default) creates, and refuses a store (or,
        with ``group``, a node) that exists; ``"w"`` replaces it (``overwrite=True`` means
        ``"w"``); ``"a"`` adds a node (``group``) into an existing store, creating the store
        if there is none; ``"r+"`` changes the pixels of existing arrays only.
    group
        Where in the store the object goes (``"labels/nuclei"``, ``"B/3/0"``); default
        the root. In a new store the groups above it are plain zarr groups. In an existing
        OME-Zarr store, the node is checked against its place (a label image against its
        image) and the listing that names it (the ``labels`` group's list, a well's
        ``images``, a plate's ``wells``, ``rows`` and ``columns``) is updated after the
        node is complete.
    version
        ``"0.5"`` (zarr v3, default for a new store), ``"0.4"`` (zarr v2) or ``"0.6"``
        (zarr v3, RFC-5 coordinate systems and transformations: those of a 0.6 input are
        kept, scenes stay scenes, displacement and coordinate fields are copied from the
        input's store); a float (``0.4``) is taken as the string. 0.5 stays the default
        while peers do not read 0.6 by default. A 0.6 input whose systems, transforms or
        scene 0.4/0.5 cannot hold is refused there, naming what would be lost. An ``.ozx``
        needs 0.5 or later. Writing into an existing store takes the store's version
        (another one is an error).
    scale_factors
        Build a pyramid from the first level: one entry per new level, relative to the
        level before it (an int for every space axis, or a dict by dimension), as in
        multiscale-spatial-image (ngff-zarr and ome-zarr-py count from level 0 instead).
    method
        ``"mean"``, ``"nearest"``, ``"mode"`` or ``"gaussian"``; default ``mode`` for
        integer label images, ``mean`` otherwise.
    chunks, shards
        Chunk and shard shapes (int, tuple or dict by dimension); default: the variables'
        encoding, else chunks of 1 along t/c and up to 64-256 along z/y/x. Sizes given by
        axis (a dict or a tuple) are written as asked on every level, even where a level is
        shorter (zarr allows it; an image started with one time point keeps its t-chunks as
        it grows); one int for every axis is a cap, clipped to each level. Shards need 0.5;
        a shard holds whole chunks, so a shard smaller than the chunk, or not a multiple of
        it, is an error. A dict naming an axis that no image of the write has is an error.
    compressors
        As zarr 3 takes them: a codec or a sequence of codecs of the target's zarr format
        (``zarr.codecs`` for 0.5, ``numcodecs`` for 0.4), ``None`` for no compression, or
        a short name: ``"lz4"`` (Blosc LZ4 with bit shuffling), ``"blosc-zstd"``,
        ``"zstd"``, ``"gzip"``. Default ``"auto"``: the source's codecs when it is stored
        in the same zarr format, else Blosc LZ4 with bit shuffling, level 5 (chosen by
        measurement: see the benchmarks page).
    encoding
        xarray-style settings by variable, overriding the keywords: for a DataArray or
        Dataset ``{"image": {"chunks": ..., "shards": ..., "compressors": ...,
        "filters": ..., "fill_value": ...}}``; for a DataTree by node path first
        (``{"/labels/nuclei": {"nuclei": {...}}}``: a path naming an image sets all its
        levels, one naming a level, such as ``"/scale0"``, that level).
    storage_options
        For fsspec URLs (``endpoint_url``, ``key``, ``secret``... for S3).
    overwrite
        Replace an existing store (``mode="w"``); without it an existing store is an error.
    progress
        Show a progress bar while the pixels are written: dask's ``ProgressBar``, or
        dask.distributed's progress bar when a ``Client`` is the current scheduler.
    consolidated
        Also write zarr consolidated metadata, after everything else (0.5: in the root
        ``zarr.json``; 0.4: ``.zmetadata``), so readers open the hierarchy in one request.
    chunks_per_shard
        Instead of ``shards``: how many chunks a shard holds along each axis (an int for
        every axis, or a dict by dimension, 1 along the others); one int is clipped to each
        level, a dict holds as asked.
    dims, scale, translation, units, channels, name
        For a bare array only: see :func:`xarray_ome_zarr.image`.
    compressor
        Deprecated (use ``compressors``; it warns, and goes in the next release): a codec
        or sequence of codecs, ``()`` for none, ``None`` for the default.
    append_dim
        Append ``obj`` to the image already in ``store`` (at ``group``) along this axis, as
        xarray's ``to_zarr(append_dim=...)`` does (it implies ``mode="a"``): ``t``, ``c``, a
        space axis the pyramid does not shrink, or one it shrinks where the stored and the
        appended lengths are whole multiples of the pyramid's blocks along it. Every level
        grows: the appended part is downsampled with the store's own method (its
        multiscale ``type``; ``method=`` only where the store does not say, and a method
        that contradicts it is an error), and written with the store's version, chunks,
        shards and codecs (settings for those are refused). Appended coordinates must
        continue the stored spacing; without a coordinate (or for a bare array, whose dims
        default to the image's) the positions continue the stored scale. Appending
        channels adds ``omero`` channels named by the ``c`` coordinate; nothing else in
        the metadata changes. Consolidated metadata the store has is refreshed. The new
        chunks are written first, then the arrays' shapes (level 0 last), then the
        metadata: a reader at any moment, or after a crash, sees the image before the
        append or with all of it (readers trim levels an append has grown before level 0,
        with a warning, rule ``uneven-levels``). Label images are appended separately,
        with ``group="labels/<name>"``. Where nothing is there yet, ``obj`` is written as
        the first part, with every setting given (as xarray's ``to_zarr`` does), so one
        call serves a whole acquisition loop; later appends refuse settings (``chunks``,
        ``scale_factors``...) that the store already decides. See
        ``docs/recipes/streaming.md``.
    region
        Write ``obj`` (a DataArray or Dataset: a part of level 0) into an existing image,
        as xarray's ``to_zarr(region=...)`` does (implies mode ``"r+"``): a dict by
        dimension of slices (or ``"auto"``; dimensions left out are written whole), or
        ``"auto"`` to place it by its coordinates, which must lie on the store's pixel
        grid. Every lower level is updated where the part changes it, reading neighbouring
        pixels back where the part does not cover whole pyramid blocks, so the store ends
        as the pyramid of the finished image (``to_multiscale`` of level 0) exactly.
        Version, method, chunks and codecs are the store's: passing them is an error. Only
        pixels are written (the metadata stays the store's); the part is read into memory,
        so pass tiles rather than whole images.
        Regions may be written at once by several processes or a dask.distributed cluster:
        what covers whole chunks (shards) and whole pyramid blocks is written without a
        lock; the rest waits for a file lock on local stores. On other stores (object
        stores) see ``safe_chunks``.
    compute
        ``False``: create every group, array and all the metadata now and return a dask
        ``Delayed`` that writes the pixels (every level) when computed. Until then the store
        is a valid image of fill values (the template for ``region=`` writes).
    safe_chunks
        For ``region=`` on stores that cannot be locked (object stores, memory): ``True``
        (default) refuses a region that does not cover whole chunks (shards) of level 0,
        since regions written at once would overwrite each other's pixels, and leaves the
        lower levels that straddle regions to :func:`xarray_ome_zarr.build_pyramid` (the
        image is marked incomplete meanwhile: a warning on open). ``False`` writes every
        level now: pass it when no other writer writes at the same time.

    Returns
    -------
    dask.delayed.Delayed or None
        With ``compute=False``, the pending pixel writes; else ``None``.

    Raises
    ------
    OmeZarrError
        For a version other than 0.4/0.5/0.6 (or 0.4 for an ``.ozx``), a 0.6 input written
        as 0.4/0.5 that would lose coordinate systems, transforms or a scene, a level opened
        with ``coordinate_system=`` that cannot be mapped back, axes the spec forbids,
        uneven coordinates, non-integer labels, a node that cannot be placed, an existing
        store, codecs of the other zarr format, ``encoding`` naming what the input does not
        hold, or a memory store that the workers of a dask.distributed cluster cannot reach.

    Notes
    -----
    Checked and planned before the store is touched; arrays first, OME metadata last. Local
    directories and ``.ozx`` files are staged and moved into place (so overwriting the input's
    own store works); other stores lose their old content, metadata first, before the new
    one is written. Each dask task writes whole chunks or shards, so a dask.distributed
    cluster writes the same bytes (see ``docs/recipes/distributed.md``).

    Examples
    --------
    >>> import numpy as np, xarray as xr, xarray_ome_zarr as xoz
    >>> pixels = np.zeros((2, 16, 256, 256), dtype="uint16")             # c, z, y, x
    >>> xoz.to_ome_zarr(pixels, "new.ome.zarr", scale={"z": 1.0, "y": 0.2, "x": 0.2},
    ...                 units="micrometer", channels=["DAPI", "GFP"],
    ...                 scale_factors=[2, 2])                              # doctest: +SKIP
    >>> dt = xr.open_datatree("new.ome.zarr", engine="ome-zarr")         # doctest: +SKIP
    >>> xoz.to_ome_zarr(dt, "v04.ome.zarr", version="0.4", compressors="zstd",
    ...                 chunks={"z": 8, "y": 128, "x": 128})              # doctest: +SKIP
    """
    if append_dim is not None:  # the store decides the layout: docs/recipes/streaming.md
        mode = check_append_mode(mode, overwrite, append_dim)
        if appends(obj, store, append_dim, node_path(group), storage_options):
            given = _settings_given(
                scale_factors=scale_factors, chunks=chunks, shards=shards, scale=scale,
                chunks_per_shard=chunks_per_shard, encoding=encoding, units=units,
                compressor=compressor, translation=translation, channels=channels, name=name,
                region=region, compute=compute, compressors=compressors,
            )  # fmt: skip
            append_to(obj, store, append_dim=append_dim, group=group, method=method,
                      consolidated=consolidated, storage_options=storage_options,
                      progress=progress, dims=dims, version=_version_text(version),
                      refused=given)  # fmt: skip
            return None
    if compressor is not None:
        warnings.warn(
            "to_ome_zarr(compressor=...) is deprecated: use compressors=, as zarr 3 names it "
            "(compressors=None writes no compression)",
            FutureWarning,
            stacklevel=2,
        )
        if not (isinstance(compressors, str) and compressors == AUTO):
            raise OmeZarrError("pass compressors= or the deprecated compressor=, not both")
        is_empty = isinstance(compressor, Sequence) and not isinstance(compressor, str)
        compressors = None if is_empty and not compressor else compressor
    if region is not None:
        if mode not in (None, "r+", "a"):
            raise OmeZarrError.at(
                f"region= writes into an existing image (mode 'r+'), not with mode={mode!r}",
                store=store_name(store, storage_options),
                key="mode",
            )
        from .regions import write_region

        refused = _settings_given(
            version=version, scale_factors=scale_factors, method=method, chunks=chunks,
            shards=shards, compressors=compressors, encoding=encoding, overwrite=overwrite,
            chunks_per_shard=chunks_per_shard, compute=compute, consolidated=consolidated,
        )  # fmt: skip
        if refused:
            raise OmeZarrError.at(
                f"region= writes into an existing image with its own settings; "
                f"{', '.join(k + '=' for k in refused)} cannot apply",
                store=store_name(store, storage_options),
                key="region",
            )
        obj = _as_image_input(obj, dims, scale, translation, units, channels, name)
        write_region(
            obj,
            store,
            region,
            group=group,
            safe_chunks=safe_chunks,
            storage_options=dict(storage_options or {}),
        )
        return None
    mode = resolve_mode(mode, overwrite)
    path = node_path(group)
    bare = not isinstance(obj, xr.DataArray | xr.Dataset | xr.DataTree)
    obj = _as_image_input(obj, dims, scale, translation, units, channels, name)
    if method is not None and scale_factors is None:
        raise OmeZarrError(f"method={method!r} needs scale_factors: it builds the pyramid")
    asked = None if version is None else check_version(_version_text(version))
    name_of_store = store_name(store, storage_options)
    if mode == "r+":
        raise OmeZarrError.at(
            "mode='r+' changes the pixels of existing arrays only: pass region= to say where; "
            "to replace the store pass mode='w'",
            store=name_of_store,
            key="mode",
        )
    if path and is_zip_path(store):
        raise OmeZarrError.at(
            "an .ozx file holds one hierarchy from its root: write the whole tree, without group=",
            store=name_of_store,
            key="group",
        )

    def options_for(version: str) -> Options:
        by_variable = encoding_by_variable(encoding, isinstance(obj, xr.DataTree))
        return Options(
            version,
            scale_factors,
            method,
            chunks,
            shards,
            compressors,
            chunks_per_shard=chunks_per_shard,
            encoding=by_variable,
        )

    existing = look_at(store, path, storage_options) if path or mode == "a" else None
    if existing is not None and existing.exists:
        if not path:
            raise OmeZarrError.at(
                "exists; mode='a' adds a node to it: pass group= (a label image "
                "'labels/<name>', a well '<row>/<column>' or a field '<row>/<column>/<field>'); "
                "appending along an axis needs append_dim=",
                store=name_of_store,
                key="mode",
            )
        if not compute:
            raise OmeZarrError.at(
                "compute=False writes the template of a new store; a node added into an "
                "existing store is written whole (leave compute= out)",
                store=name_of_store,
                node=path,
                key="compute",
            )
        _add_node(
            obj,
            path,
            mode,
            existing,
            options_for(version_for(asked, existing, path)),
            store=store,
            storage_options=storage_options,
            progress=progress,
            consolidated=consolidated,
            adopt_geometry=bare and scale is None and translation is None,
        )
        return
    version = asked or "0.5"
    compressors_for(compressors, zarr_format_of(version), version)  # refuse bad names early
    options = options_for(version)
    target = make_target(
        store, overwrite=mode == "w", storage_options=storage_options, version=options.version
    )
    if not compute:
        from .regions import check_template_target

        check_template_target(target)
    try:
        plan = make_plan(obj, options)
    except OmeZarrError as err:
        raise err.in_store(target.name) from None
    if not compute:
        from .regions import write_template

        return write_template(target, placed(plan, path), consolidated=consolidated)
    write_to(target, placed(plan, path), progress=progress, consolidated=consolidated)
    return None


def _add_node(
    obj: Any,
    path: str,
    mode: str,
    existing: ExistingStore,
    options: Options,
    *,
    store: Any,
    storage_options: Mapping[str, Any] | None,
    progress: bool,
    consolidated: bool,
    adopt_geometry: bool,
) -> None:
    """Write ``obj`` as the node ``path`` of an existing store, then the listings naming it."""
    compressors_for(options.compressors, options.zarr_format, options.version)
    addition = open_addition(store, path, mode, existing, options.version, storage_options)
    try:
        if addition.kind == "label":
            obj = label_input(obj, addition, options.scale_factors, options.method, adopt_geometry)
            options = dataclasses.replace(options, scale_factors=None, method=None)
        elif addition.kind == "well" and not _is_well(obj):
            raise OmeZarrError(
                f"{addition.where()}: a well goes here (<row>/<column> of a plate): pass a "
                "DataTree whose root has the well metadata and whose children are its fields "
                "(to add one field, write it to <row>/<column>/<field>)"
            )
        try:
            plan = make_plan(obj, options, label=addition.kind == "label")
        except OmeZarrError as err:
            raise _below(err, path) from None
        plan_listings(addition, obj)
        target = node_target(addition, overwrite=mode == "w")
        try:
            write_to(target, plan, progress=progress, consolidated=False)
        except BaseException:
            remove_created_parents(addition)
            raise
        finish_addition(addition, consolidated)
    except OmeZarrError as err:
        if err.store is not None or str(err).startswith("store "):
            raise
        raise err.in_store(addition.name) from None
    finally:
        addition.finish()


def _below(err: OmeZarrError, path: str) -> OmeZarrError:
    """An error about a node of the written object, named by its path in the store."""
    text = str(err).replace("node '/", f"node '/{path}/").replace(f"'/{path}/'", f"'/{path}'")
    node = _join(path, err.node or "")
    return OmeZarrError(text, node=node, key=err.key, rule=err.rule)


def _is_well(obj: Any) -> bool:
    if not isinstance(obj, xr.DataTree):
        return False
    try:
        return "well" in split_source(group_attrs(obj.attrs)).blocks
    except OmeZarrError:
        return False


def placed(plan: Plan, path: str) -> Plan:
    """``plan`` moved to ``path`` in a new store, under plain groups (no OME claim)."""
    if not path:
        return plan
    parts = path.split("/")
    groups: dict[str, dict[str, Any]] = {"/".join(parts[:i]): {} for i in range(len(parts))}
    groups.update({_join(path, k): v for k, v in plan.groups.items()})
    arrays = [dataclasses.replace(a, path=_join(path, a.path)) for a in plan.arrays]
    return Plan(plan.version, groups, arrays)


def _version_text(version: Any) -> Any:
    """``0.4`` (a float, as users type it) as ``"0.4"``; anything else as it is."""
    return str(version) if isinstance(version, float) else version


_IMAGE_KEYWORDS = ("dims", "scale", "translation", "units", "channels", "name")


def _as_image_input(obj: Any, *described: Any) -> Any:
    """An xarray object as it is; a bare array as :func:`~xarray_ome_zarr.image` builds it."""
    keywords = dict(zip(_IMAGE_KEYWORDS, described, strict=True))
    given = [k for k, v in keywords.items() if v is not None]
    if isinstance(obj, xr.DataArray | xr.Dataset | xr.DataTree):
        if given:
            raise OmeZarrError(
                f"{', '.join(g + '=' for g in given)} describe a bare array; a "
                f"{type(obj).__name__} says where it is with its coordinates (build them with "
                "xoz.image(da.data, ...), or assign_coords)"
            )
        return obj
    if not hasattr(obj, "shape") or not hasattr(obj, "dtype"):
        raise OmeZarrError(
            "to_ome_zarr takes a DataArray, Dataset, DataTree or an array (numpy, dask, zarr), "
            f"got {type(obj).__name__}"
        )
    from .builder import image

    return image(obj, **keywords)


__all__ = ["to_ome_zarr"]
