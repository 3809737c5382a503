"""The xarray side of the model, in one place: how an OME-Zarr image looks inside xarray.

:mod:`.ngff` says what the metadata documents mean; this module says how they are laid out
in xarray objects, both ways (as rioxarray's conventions read and write theirs): for the
reader that builds them, the writer and ``to_multiscale`` that turn them back into OME
attributes, the ``.ome`` accessor, the adapters and the command:

- the attribute names: a coordinate's ``axis_type``, ``scale`` and ``units``; a level
  Dataset's ``ome_dataset_path``;
- level naming: an image node's children ``scale0`` .. ``scaleN``;
- the data-variable rule: a level holds one data variable, named after the multiscale's
  ``name``, else ``image``;
- axis types: the coordinate's ``axis_type``, else the stored axis, else the name;
- the geometry of a level read off its coordinates (:class:`ImageLevel`,
  :class:`AxisGeometry`), with the scale of a length-1 axis inferred from the level above;
- the stored axes of an image's group attributes, and the attributes an image's group
  gets from its levels (:func:`image_attributes`: ``multiscales`` regenerated from the
  coordinates, every other block kept).

Light on import (xarray, numpy and the format layer): the accessor registers through it at
import time.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from .coordinate_index import exact_geometry
from .errors import OmeZarrError
from .ngff.emit import (
    OME_KEYS,
    SourceDocument,
    check_axes,
    convert_blocks,
    dataset_json,
    group_attributes,
    multiscale_json,
    normalize_unit,
    omero_for_channels,
    split_source,
    stored_multiscale,
)
from .ngff.emit_v06 import stored_multiscale_06
from .ngff.model import TYPE_BY_NAME, Axis, Multiscale
from .ngff.parse import split_attributes
from .node_attrs import GROUP_ATTRS, OWN_KEYS, PATH_ATTR, group_attrs
from .transforms import block_factor, level_geometry, scale_translation, tidy

#: Coordinate attribute holding the axis type.
TYPE_ATTR = "axis_type"
#: Coordinate attribute holding the scale (what a length-1 axis's values cannot tell).
SCALE_ATTR = "scale"
#: Coordinate attribute holding the unit (the CF and spatial-image name).
UNITS_ATTR = "units"
#: Name of the data variable when the multiscale has no usable name.
DEFAULT_NAME = "image"
#: Axis types whose coordinates are positions.
SPATIAL_TYPES = ("space", "time")
#: The children of an image node that are its levels: ``scale0``, ``scale1``...
LEVEL_NAME = re.compile(r"scale(\d+)")

__all__ = [
    "DEFAULT_NAME",
    "GROUP_ATTRS",
    "LEVEL_NAME",
    "PATH_ATTR",
    "SCALE_ATTR",
    "SPATIAL_TYPES",
    "TYPE_ATTR",
    "TYPE_BY_NAME",
    "UNITS_ATTR",
    "AxisGeometry",
    "ImageLevel",
    "image_level",
    "level_names",
    "single_array",
    "stored_axes",
    "variable_name",
]


# ---- names ------------------------------------------------------------------------------
def variable_name(name: Any) -> str:
    """The data variable's name: ``name`` (the multiscale's) when usable, else ``image``."""
    return name if isinstance(name, str) and name and "/" not in name else DEFAULT_NAME


def level_number(name: Any) -> int | None:
    """``N`` for a level name ``scaleN``, else ``None``."""
    match = LEVEL_NAME.fullmatch(str(name))
    return int(match.group(1)) if match else None


def level_names(tree: xr.DataTree) -> list[str]:
    """The ``scaleN`` children of an image node, highest resolution first."""
    found = [name for name in tree.children if level_number(name) is not None]
    return sorted(found, key=lambda name: int(name[5:]))


def level_name(tree: xr.DataTree, level: int | str, where: str) -> str:
    """Resolve ``level`` (int, negative int or ``"scaleN"``) to a child name of ``tree``."""
    names = level_names(tree)
    if isinstance(level, str) and level in names:
        return level
    is_int = isinstance(level, int | np.integer) and not isinstance(level, bool)
    if is_int and -len(names) <= int(level) < len(names):
        return names[int(level)]
    raise OmeZarrError(
        f"{where}: no level {level!r}; the image has {len(names)} levels {names} "
        "(an int, negative ints count from the lowest resolution, or a name)"
    )


def tree_where(tree: xr.DataTree) -> str:
    """Name a DataTree node for messages."""
    return f"DataTree node {tree.path!r}"


def array_where(array: xr.DataArray) -> str:
    """Name a DataArray for messages."""
    return f"DataArray {array.name!r}"


# ---- the data variable ------------------------------------------------------------------
def single_array(ds: xr.Dataset, where: str) -> xr.DataArray:
    """The one data variable of a level Dataset."""
    names = list(ds.data_vars)
    if len(names) != 1:
        raise OmeZarrError(
            f"{where}: an image level holds exactly one data variable, this one has {len(names)} "
            f"{names}; select one with ds[name]"
        )
    return ds[names[0]]


# ---- axes -------------------------------------------------------------------------------
def coordinate(array: xr.DataArray | xr.Dataset, dim: Hashable) -> xr.DataArray | None:
    """The coordinate named ``dim``, or ``None`` (not xarray's stand-in range)."""
    # not coords.get(dim): for a dim without a coordinate it returns a made-up range
    return array.coords[dim] if dim in array.coords else None  # noqa: SIM401


def axis_type(
    name: str, attrs: Mapping[str, Any], stored: Mapping[str, Axis] | None = None
) -> str | None:
    """An axis type: the coordinate's ``axis_type`` (``attrs``), else the stored axis's
    (``None`` for a stored custom axis), else the one its name implies."""
    declared = attrs.get(TYPE_ATTR)
    if isinstance(declared, str) and declared:
        return declared
    if stored is not None and name in stored:
        return stored[name].type
    return TYPE_BY_NAME.get(name)


def axis_types(
    obj: xr.DataArray | xr.Dataset, stored: Mapping[str, Axis] | None = None
) -> dict[str, str | None]:
    """The type of every dimension of ``obj`` (``None`` for custom axes)."""
    out = {}
    for dim in obj.dims:
        coord = coordinate(obj, dim)
        out[str(dim)] = axis_type(str(dim), coord.attrs if coord is not None else {}, stored)
    return out


def axis_unit(coord: xr.DataArray | None, stored: Axis | None = None) -> str | None:
    """An axis unit as OME-Zarr spells it: the coordinate's ``units``, else the stored one."""
    unit = normalize_unit(coord.attrs.get(UNITS_ATTR)) if coord is not None else None
    if unit is None and stored is not None and isinstance(stored.unit, str):
        unit = normalize_unit(stored.unit)
    return unit


def attr_scale(coord: xr.DataArray | None) -> float | None:
    """The scale a coordinate declares in its ``scale`` attribute (a non-zero number)."""
    value = None if coord is None else coord.attrs.get(SCALE_ATTR)
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        return float(value) if value != 0 else None
    return None


def ome_document(attrs: Mapping[Any, Any]) -> tuple[str | None, Mapping[str, Any]]:
    """(version, OME document) of a node's attrs, 0.5 (``ome``) or earlier, leniently:
    malformed attributes give ``(None, attrs)`` (see :func:`.ngff.parse.split_attributes`)."""
    try:
        return split_attributes(attrs)
    except OmeZarrError:
        return None, attrs


def stored_axes(attrs: Mapping[Any, Any]) -> dict[str, Axis]:
    """The ``axes`` of the first multiscale in OME attributes (0.5 or older), by name.

    Lenient: anything malformed gives no hint rather than an error. Axes stored as names
    (0.3) take the type their name implies.
    """
    _, document = ome_document(attrs)
    multiscales = document.get("multiscales")
    if not (isinstance(multiscales, list) and multiscales and isinstance(multiscales[0], Mapping)):
        return {}
    axes = multiscales[0].get("axes")
    out: dict[str, Axis] = {}
    for axis in axes if isinstance(axes, list) else ():
        if isinstance(axis, str):
            out[axis] = Axis(axis, TYPE_BY_NAME.get(axis))
        elif isinstance(axis, Mapping) and isinstance(axis.get("name"), str):
            kind, unit = axis.get("type"), axis.get("unit")
            out[axis["name"]] = Axis(
                axis["name"],
                kind if isinstance(kind, str) else None,
                unit if isinstance(unit, str) else None,
                {k: v for k, v in axis.items() if k not in ("name", "type", "unit")},
            )
    return out


# ---- geometry read off coordinates --------------------------------------------------------
def axes_by_name(multiscale: Multiscale | None) -> dict[str, Axis]:
    """The axes of a parsed multiscale by name (none without one)."""
    return {a.name: a for a in multiscale.axes} if multiscale is not None else {}


def coordinate_geometry(
    array: xr.DataArray, name: str, kind: str | None, fallback: float | None = None
) -> tuple[float, float] | None:
    """(scale, translation) read off the coordinate of a non-channel axis; ``None`` where
    there is no numeric one. A lazy coordinate (:mod:`.coordinate_index`) gives the numbers it
    was built from, exactly; a materialised one is read off its values, a length-1 axis
    taking its ``scale`` attribute, else ``fallback``, else 1.

    Raises
    ------
    OmeZarrError
        For coordinates that are not numbers on a space or time axis, datetimes, or uneven
        spacing (the message names the axis).
    """
    if kind != "channel":
        exact = exact_geometry(coordinate(array, name))
        if exact is not None:  # a lazy index: the numbers it was built from, exactly
            return exact
    values = positions(array, name, kind)
    if values is None:
        return None
    declared = attr_scale(coordinate(array, name))
    return scale_translation(values, fallback if declared is None else declared, name=name)


def positions(array: xr.DataArray, name: str, kind: str | None) -> np.ndarray | None:
    """The coordinate values of a non-channel axis as float64; ``None`` where there are none.

    Raises
    ------
    OmeZarrError
        For a space or time axis (or a datetime coordinate) whose values are not numbers.
    """
    coord = coordinate(array, name)
    if kind == "channel" or coord is None or coord.dims != (name,):
        return None
    if coord.dtype.kind in "iuf":
        return np.asarray(coord.values, dtype=np.float64)
    if kind in SPATIAL_TYPES or coord.dtype.kind in "mM":
        raise OmeZarrError(
            f"axis {name!r}: the coordinate is {coord.dtype}; OME-Zarr describes positions "
            "by a numeric scale and translation (use numbers in a unit)"
        )
    return None


def one_pixel_scale(position: float, scale: float, translation: float, size: int) -> float:
    """The scale of a length-1 axis at ``position``, from the level above it.

    The pixel-centre rule run backwards (:func:`.transforms.block_factor`) gives the factor
    that merged the ``size`` pixels (``scale``, ``translation``) of the level above into one;
    without a whole factor the one pixel covers the whole level above.
    """
    factor = block_factor((position - translation) / scale, size)
    if factor >= 1 and factor == round(factor):
        return factor * scale
    return scale * size


@dataclass(frozen=True)
class AxisGeometry:
    """One axis as OME-Zarr describes it.

    ``positional`` axes have a physical scale and translation: space and time axes, and
    custom axes with a numeric coordinate. The others (channel axes, custom axes without
    a coordinate) have scale 1 and translation 0.
    """

    name: str
    type: str | None = None
    unit: str | None = None
    scale: float = 1.0
    translation: float = 0.0
    positional: bool = False

    def as_ome(self) -> dict[str, str]:
        """The OME ``axes`` entry: name, and type and unit where known."""
        entry = {"name": self.name, "type": self.type, "unit": self.unit}
        return {k: v for k, v in entry.items() if v is not None}


@dataclass(frozen=True)
class ImageLevel:
    """The pixels of one image level, with what is known about its axes besides coordinates.

    ``stored`` maps axis names to the stored OME axes (a hint for types and units that have
    no coordinate to carry them); ``fallback_scales`` gives the scale of length-1 axes whose
    coordinate has no ``scale`` attribute; ``where`` names the object in messages;
    ``dataset`` is the level's Dataset, when it came from one.
    """

    array: xr.DataArray
    where: str
    stored: Mapping[str, Axis] = field(default_factory=dict)
    fallback_scales: Mapping[Hashable, float] = field(default_factory=dict)
    dataset: xr.Dataset | None = None

    def geometry(self) -> list[AxisGeometry]:
        """Every axis of the array, in order."""
        return [self.axis(dim) for dim in self.array.dims]

    def axis(self, dim: Hashable) -> AxisGeometry:
        """One axis: type and unit from coordinate attrs, stored axes or name; geometry."""
        name = str(dim)
        coord = coordinate(self.array, name)
        kind = axis_type(name, coord.attrs if coord is not None else {}, self.stored)
        unit = axis_unit(coord, self.stored.get(name))
        try:
            geometry = coordinate_geometry(self.array, name, kind, self.fallback_scales.get(name))
        except OmeZarrError as err:
            raise OmeZarrError(f"{self.where}: {err}") from None
        if geometry is None:
            return AxisGeometry(name, kind, unit, positional=kind in SPATIAL_TYPES)
        scale, translation = geometry
        if exact_geometry(coord) == geometry:  # read exactly off a lazy index
            return AxisGeometry(name, kind, unit, scale, translation, positional=True)
        # the values the writer stores: no float noise from reading coordinates
        return AxisGeometry(
            name, kind, unit, tidy(scale), tidy(translation, scale), positional=True
        )


# ---- from objects to levels -------------------------------------------------------------
def tree_attrs(tree: xr.DataTree) -> Mapping[Any, Any]:
    """The attrs of an image node; for a level node, its parent's (where the OME block is)."""
    if stored_axes(group_attrs(tree.attrs)) or tree.parent is None:
        return tree.attrs
    return tree.parent.attrs


def tree_levels(tree: xr.DataTree, upto: int | None = None) -> list[ImageLevel]:
    """The levels of an image node (all, or up to index ``upto``), length-1 scales inferred."""
    where = tree_where(tree)
    stored = stored_axes(group_attrs(tree.attrs, where))
    names = level_names(tree)
    levels: list[ImageLevel] = []
    for name in names if upto is None else names[: upto + 1]:
        dataset = tree[name].to_dataset()
        array = single_array(dataset, f"{where}, level {name!r}")
        fallback = inferred_scales(levels[-1], array) if levels else {}
        levels.append(ImageLevel(array, f"{where}, level {name!r}", stored, fallback, dataset))
    return levels


def inferred_scales(above: ImageLevel, array: xr.DataArray) -> dict[Hashable, float]:
    """Scales of the length-1 axes of ``array`` without a ``scale`` attribute, from the
    level above (:func:`one_pixel_scale`)."""
    upper = {a.name: a for a in above.geometry()}
    out: dict[Hashable, float] = {}
    for dim in array.dims:
        coord = coordinate(array, dim)
        if array.sizes[dim] != 1 or coord is None or attr_scale(coord) is not None:
            continue
        axis = upper.get(str(dim))
        if axis is None or not axis.positional or dim not in above.array.coords:
            continue
        if coord.dtype.kind not in "iuf":
            continue
        position = float(coord.values[0])
        size = above.array.sizes[dim]
        out[dim] = one_pixel_scale(position, axis.scale, axis.translation, size)
    return out


def image_level(obj: xr.DataArray | xr.Dataset | xr.DataTree, level: int | str = 0) -> ImageLevel:
    """The level an object stands for: a DataArray or level Dataset itself, a tree's ``level``.

    A DataTree node with ``scaleN`` children is an image; one without them but with a data
    variable is a level (``dt["scale1"]``).
    """
    if isinstance(obj, xr.DataArray):
        return ImageLevel(obj, array_where(obj))
    if isinstance(obj, xr.Dataset):
        path = obj.attrs.get(PATH_ATTR)
        where = f"Dataset at level path {path!r}" if path else "Dataset"
        stored = stored_axes(group_attrs(obj.attrs, where))
        return ImageLevel(single_array(obj, where), where, stored, dataset=obj)
    if isinstance(obj, xr.DataTree):
        where = tree_where(obj)
        if not level_names(obj):
            if level not in (0, -1, "scale0"):
                raise OmeZarrError(f"{where}: a single level has no level {level!r}")
            dataset = obj.to_dataset()
            if not dataset.data_vars:
                raise OmeZarrError(f"{where}: not an image: no scale0..N children, no data")
            stored = stored_axes(group_attrs(tree_attrs(obj), where))
            return ImageLevel(single_array(dataset, where), where, stored, dataset=dataset)
        index = level_names(obj).index(level_name(obj, level, where))
        return tree_levels(obj, upto=index)[index]
    raise OmeZarrError(
        f"expected an xarray DataArray, Dataset or DataTree, got {type(obj).__name__}"
    )


# ---- group attributes -------------------------------------------------------------------
def split_dataarray_attrs(
    attrs: Mapping[Any, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(group attrs, array attrs) of a DataArray.

    With ``attrs["ome_group_attrs"]``, the group attributes are it and the top-level OME
    blocks, the other attrs the array's; without it, all its attrs are group attributes
    when any is an OME block (the spelling from before the nested key), else none is.
    """
    if GROUP_ATTRS in attrs:
        group = {k: v for k, v in attrs.items() if k == GROUP_ATTRS or k in DATAARRAY_GROUP_KEYS}
        rest = {k: v for k, v in attrs.items() if k not in group and str(k) not in OWN_KEYS}
        return group_attrs(group, "DataArray"), rest
    if any(k in attrs for k in DATAARRAY_GROUP_KEYS):
        return group_attrs(attrs, "DataArray"), {}
    return {}, dict(attrs)


#: Top-level keys that make a DataArray's attrs group attributes (OME blocks).
DATAARRAY_GROUP_KEYS = ("ome", "multiscales", *OME_KEYS)


def source_of(
    attrs: Mapping[str, Any], where: str = ""
) -> tuple[SourceDocument, Multiscale | None]:
    """The stored document of an image's group attributes and its (lenient) multiscale."""
    source = split_source(attrs, where)
    return source, stored_multiscale(source)


def is_label_source(source: SourceDocument) -> bool:
    """Whether the stored attributes say the image is a label image."""
    return "image-label" in source.blocks


def as_image_dataarray(
    image: xr.DataArray | xr.Dataset, where: str = "Dataset"
) -> tuple[xr.DataArray, dict[str, Any]]:
    """(the image's DataArray, the group attributes that come with it)."""
    if isinstance(image, xr.Dataset):
        return single_array(image, where), group_attrs(image.attrs, where)
    if not isinstance(image, xr.DataArray):
        raise OmeZarrError(f"expected a DataArray or Dataset, got {type(image).__name__}")
    stored, array_attrs = split_dataarray_attrs(image.attrs)
    if not stored:
        return image, stored
    array = image.copy(deep=False)
    array.attrs = array_attrs  # the group's attributes are not the array's
    return array, stored


# ---- writing the convention: an image's group attributes from its levels ----------------
def _stored_geometry(
    stored: Multiscale | None, path: str | None, index: int
) -> dict[str, tuple[float, float]]:
    """(scale, translation) by axis name of the stored level with this path (else index)."""
    if stored is None:
        return {}
    paths = [lv.path for lv in stored.levels]
    i = paths.index(path) if path in paths else index
    if not 0 <= i < len(paths):
        return {}
    try:
        scale, translation = level_geometry(stored, i)
    except OmeZarrError:
        return {}
    pairs = zip(stored.axes, scale, translation, strict=True)
    return {a.name: (float(s), float(t)) for a, s, t in pairs}


#: How far, in pixels, coordinates may lie from the stored geometry and still be written
#: with the stored numbers exactly: far below any real shift, far above float noise.
STORED_TOLERANCE_PIXELS = 1e-6


def written_geometry(
    geometry: tuple[float, float],
    values: np.ndarray | None,
    stored: tuple[float, float] | None,
    size: int,
) -> tuple[float, float]:
    """The (scale, translation) to write for an axis read as ``geometry``.

    Where the coordinate still follows the stored scale (its steps) or starts at the stored
    translation, to :data:`STORED_TOLERANCE_PIXELS` of the pixel size (not of the
    translation's magnitude), the stored number is written exactly: an untouched image
    keeps its numbers, a crop keeps its scale. Otherwise the coordinate's number: as it is
    for a lazy index (``values`` is ``None``: the numbers it was built from), without float
    noise (:func:`.transforms.tidy`) where read off materialised ``values``.
    """
    scale, translation = geometry
    start = translation if values is None else float(values[0])
    exact_scale = exact_translation = False
    if stored is not None and stored[0] != 0 and np.isfinite(stored).all():
        stored_scale, stored_translation = stored
        tolerance = STORED_TOLERANCE_PIXELS * abs(stored_scale)
        if values is not None and values.size > 1:
            steps = stored_scale * np.arange(values.size, dtype=np.float64)
            scale_fits = np.max(np.abs(values - values[0] - steps)) <= tolerance
        else:
            scale_fits = abs(scale - stored_scale) * max(size - 1, 1) <= tolerance
        if scale_fits:
            scale, exact_scale = stored_scale, True
        if abs(start - stored_translation) <= tolerance:
            translation, exact_translation = stored_translation, True
    if values is not None:
        scale = scale if exact_scale else tidy(scale)
        translation = translation if exact_translation else tidy(translation, scale)
    return scale, translation


def axis_geometry(
    level: xr.DataArray,
    dim: str,
    kind: str | None,
    stored: Mapping[str, tuple[float, float]],
    previous: tuple[float, float, int] | None,
) -> tuple[float, float]:
    """(scale, translation) of one axis of one level, as written.

    Read off the coordinate, the stored numbers where the coordinate still agrees with them
    (:func:`written_geometry`). Without a coordinate, the stored geometry (see
    :func:`restore_coordinates`), else scale 1 and translation 0. A length-1 axis without a
    ``scale`` attribute takes the stored scale, else the one inferred from ``previous``, the
    (scale, translation, size) of the level before.
    """
    geometry = coordinate_geometry(level, dim, kind)
    if geometry is None:
        return stored.get(dim, (1.0, 0.0))
    if level.sizes[dim] == 1 and attr_scale(coordinate(level, dim)) is None:
        fallback = stored.get(dim, (None, 0))[0]
        if not fallback and previous is not None:
            fallback = one_pixel_scale(geometry[1], *previous)
        geometry = (fallback or geometry[0], geometry[1])
    lazy = exact_geometry(coordinate(level, dim)) == geometry  # numbers of a lazy index
    values = None if lazy else positions(level, dim, kind)
    return written_geometry(geometry, values, stored.get(dim), level.sizes[dim])


def restore_coordinates(
    level: xr.DataArray,
    types: Mapping[str, Any],
    stored: Mapping[str, tuple[float, float]],
    node: str,
) -> xr.DataArray:
    """``level`` with the stored geometry as coordinates of the axes whose coordinate was
    dropped (``ds.drop_vars("z")``), so that selections and pyramids keep it.

    Raises
    ------
    OmeZarrError
        When such an axis no longer has its stored length (its ``original_shape``
        encoding): the stored geometry would be wrong and nothing tells the right one.
    """
    original = level.encoding.get("original_shape")
    if not isinstance(original, tuple | list) or len(original) != level.ndim:
        original = None
    restored = {}
    for j, dim in enumerate(str(d) for d in level.dims):
        if dim in level.coords or types.get(dim) == "channel" or dim not in stored:
            continue
        size = level.sizes[dim]
        if original is not None and int(original[j]) != size:
            raise OmeZarrError.at(
                f"axis {dim!r} has no coordinate and {size} pixels instead of the stored "
                f"level's {int(original[j])}: its stored geometry no longer applies and "
                f"nothing tells the right one; keep the {dim!r} coordinate when selecting",
                node=node,
            )
        scale, translation = stored[dim]
        attrs = {TYPE_ATTR: types[dim]} if types.get(dim) else {}
        values = translation + scale * np.arange(size, dtype=np.float64)
        restored[dim] = xr.Variable(dim, values, {**attrs, SCALE_ATTR: scale})
    return level.assign_coords(restored) if restored else level


def restore_level_coordinates(
    levels: Sequence[xr.DataArray],
    paths: Sequence[str | None],
    stored: Multiscale | None,
    node: str,
) -> list[xr.DataArray]:
    """Every level with its dropped coordinates restored (:func:`restore_coordinates`)."""
    types = axis_types(levels[0], axes_by_name(stored))
    return [
        restore_coordinates(level, types, _stored_geometry(stored, path, i), node)
        for i, (level, path) in enumerate(zip(levels, paths, strict=True))
    ]


def _check_levels(levels: Sequence[xr.DataArray], where: str) -> tuple[str, ...]:
    dims = tuple(str(d) for d in levels[0].dims)
    previous = levels[0].shape
    for i, level in enumerate(levels):
        if tuple(level.dims) != dims:
            raise OmeZarrError(f"{where}: level {i} has dims {level.dims}, level 0 has {dims}")
        if any(b > a for a, b in zip(previous, level.shape, strict=True)):
            raise OmeZarrError(
                f"{where}: level {i} has shape {level.shape}, larger than the level before it "
                f"{previous}; levels go from highest to lowest resolution"
            )
        previous = level.shape
        if level.dtype.kind not in "biufc":
            raise OmeZarrError(f"{where}: level {i} has dtype {level.dtype}, not numeric")
    return dims


def _axes(level: xr.DataArray, types: Mapping[str, Any], stored: Multiscale | None) -> list[Axis]:
    by_name = {a.name: a for a in stored.axes} if stored is not None else {}
    axes = []
    for dim in (str(d) for d in level.dims):
        kept = by_name.get(dim)
        unit = axis_unit(coordinate(level, dim), kept)
        extra = dict(kept.extra) if kept is not None else {}
        axes.append(Axis(dim, types.get(dim), unit, extra))
    return axes


def level_paths(paths: Sequence[str | None]) -> list[str]:
    """Dataset paths: the recorded ones when they are all there and distinct, else 0..N."""
    cleaned = [p.strip("/") if isinstance(p, str) else None for p in paths]
    if all(cleaned) and len(set(cleaned)) == len(cleaned):
        return [str(p) for p in cleaned]
    return [str(i) for i in range(len(paths))]


def _channel_block(blocks: dict[str, Any], level: xr.DataArray, types: Mapping[str, Any]) -> None:
    """Make ``omero`` name the channels of the channel coordinate, when there is one."""
    channel = next((d for d in level.dims if types.get(str(d)) == "channel"), None)
    if channel is None or channel not in level.coords:
        return
    coord = level.coords[channel]
    if coord.ndim != 1 or coord.dtype.kind not in "UO":
        return
    labels = [str(v) for v in coord.values]
    blocks["omero"] = omero_for_channels(blocks.get("omero"), labels, display_range(level.dtype))


def display_range(dtype: np.dtype) -> tuple[float, float]:
    """The ``window`` of a new omero channel: the integer range, else 0 to 1."""
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return 0.0, 1.0


def _multiscale_name(stored: Multiscale | None, name: str) -> str:
    if stored is not None and stored.name is not None and variable_name(stored.name) == name:
        return stored.name
    return name


def image_attributes(
    levels: Sequence[xr.Dataset | xr.DataArray],
    attrs: Mapping[str, Any],
    version: str,
    *,
    paths: Sequence[str | None] | None = None,
    label: bool = False,
    type: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    where: str = "node '/'",
) -> dict[str, Any]:
    """The group attributes of an image: ``multiscales`` from the levels, the rest kept.

    Parameters
    ----------
    levels
        The levels, highest resolution first (Datasets with one variable, or DataArrays).
    attrs
        The image group's attributes as stored (any version), or ``{}``.
    version
        ``"0.4"``, ``"0.5"`` or ``"0.6"``.
    paths
        The dataset paths; default: each level's ``ome_dataset_path``, else ``0..N``.
    label
        Whether the image is a label image (gets an ``image-label`` block if it has none).
    type, metadata
        The multiscale's downsampling method and its description, when known.
    where
        Names the node in messages.

    Raises
    ------
    OmeZarrError
        For axes OME-Zarr cannot store, uneven coordinates, or levels out of order.
    """
    arrays = [level_array(lv, where) for lv in levels]
    if paths is None:
        paths = [lv.attrs.get(PATH_ATTR) if isinstance(lv, xr.Dataset) else None for lv in levels]
    dims = _check_levels(arrays, where)
    source, stored = source_of(attrs, where)
    types = axis_types(arrays[0], axes_by_name(stored))
    axes = _axes(arrays[0], types, stored)
    check_axes(axes, where)
    written = level_paths(paths)
    datasets = []
    previous: list[tuple[float, float, int] | None] = [None] * len(dims)
    for i, (level, path) in enumerate(zip(arrays, written, strict=True)):
        stored_geometry = _stored_geometry(stored, path, i)
        scale, translation = [], []
        for j, dim in enumerate(dims):
            try:
                s, t = axis_geometry(level, dim, types[dim], stored_geometry, previous[j])
            except OmeZarrError as err:
                raise OmeZarrError(f"{where}, level {i}: {err}") from None
            previous[j] = (s, t, level.sizes[dim])
            scale.append(s)
            translation.append(t)
        datasets.append(dataset_json(path, scale, translation))
    name = _multiscale_name(stored, variable_name(arrays[0].name))
    type = type if type is not None else (stored.type if stored else None)
    metadata = metadata if metadata is not None else (stored.metadata if stored else None)
    multiscale = multiscale_json(
        version,
        axes,
        datasets,
        name=name,
        type=type if type is not None else _unknown_type(len(arrays)),
        metadata=metadata if metadata is not None else _unknown_metadata(len(arrays)),
        extra=stored.extra if stored else None,
        stored=stored_multiscale_06(source.version, source.multiscales),
        where=where,
    )
    blocks = convert_blocks(source.blocks, source.version, version)
    _channel_block(blocks, arrays[0], types)
    if label:
        check_label(arrays[0], where)
        block = blocks.setdefault("image-label", {"version": "0.4"} if version == "0.4" else {})
        if isinstance(block, dict) and not block.get("colors"):
            # the strict schema wants at least one colour: the background, transparent
            block["colors"] = [dict(BACKGROUND_COLOUR)]
    out: dict[str, Any] = jsonable(group_attributes(version, blocks, source.other, multiscale))
    return out


#: The ``image-label`` colour written where the source has none (the strict schemas want one).
BACKGROUND_COLOUR = {"label-value": 0, "rgba": [0, 0, 0, 0]}


def _unknown_type(levels: int) -> str:
    """The multiscale ``type`` (a SHOULD of the spec) when nothing says how levels were made."""
    return "none" if levels == 1 else "unknown"


def _unknown_metadata(levels: int) -> dict[str, Any]:
    """The multiscale ``metadata`` (a SHOULD of the spec) when the source has none."""
    if levels == 1:
        return {"description": "one resolution level: nothing was downsampled"}
    return {"description": "the source did not record how its lower levels were made"}


def level_array(level: xr.Dataset | xr.DataArray, where: str) -> xr.DataArray:
    return level if isinstance(level, xr.DataArray) else single_array(level, where)


def check_label(level: xr.DataArray, where: str) -> None:
    if level.dtype.kind not in "iu":
        raise OmeZarrError(
            f"{where}: a label image must hold integers, got dtype {level.dtype} "
            "(cast it with .astype first)"
        )


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into JSON types (a deep copy)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return copy.deepcopy(value)
