"""The ``.ome`` accessor on DataArray, Dataset and DataTree: OME geometry read off coordinates.

Registered when ``xarray_ome_zarr`` is imported. Registration is cheap; the writer is
imported only inside ``OmeAccessor.to_zarr``.

The coordinates are the truth: scale and translation are computed from them on every call,
so they are right after crops, ``isel``/``sel`` and resampling. A length-1 axis keeps its
scale in the coordinate's ``scale`` attribute (the reader sets it); in an image tree whose
coordinates lack it (trees made by multiscale-spatial-image), it is inferred from the level
above by the pixel-centre rule.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from .errors import OmeZarrError
from .ngff.emit import normalize_unit
from .transforms import block_factor, scale_translation, tidy

#: Coordinate attribute holding the axis type (as set by the reader).
TYPE_ATTR = "axis_type"
#: Coordinate attribute holding the scale of a length-1 axis (as set by the reader).
SCALE_ATTR = "scale"
#: Coordinate attribute holding the unit (the CF and spatial-image name).
UNITS_ATTR = "units"
#: Axis types whose coordinates are positions.
SPATIAL_TYPES = ("space", "time")
#: The axis type implied by a well-known axis name (as in ``ngff.model.TYPE_BY_NAME``).
TYPE_BY_NAME = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}

_LEVEL_NAME = re.compile(r"scale(\d+)")


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

    ``stored`` maps axis names to the stored OME ``axes`` entries (a hint for types and units
    that have no coordinate to carry them); ``fallback_scales`` gives the scale of length-1
    axes whose coordinate has no ``scale`` attribute; ``where`` names the object in messages;
    ``dataset`` is the level's Dataset, when it came from one.
    """

    array: xr.DataArray
    where: str
    stored: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    fallback_scales: Mapping[Hashable, float] = field(default_factory=dict)
    dataset: xr.Dataset | None = None

    def geometry(self) -> list[AxisGeometry]:
        """Every axis of the array, in order."""
        return [self.axis(dim) for dim in self.array.dims]

    def axis(self, dim: Hashable) -> AxisGeometry:
        """One axis: type and unit from coordinate attrs, stored axes or name; geometry."""
        name = str(dim)
        stored = self.stored.get(name, {})
        kind, unit = axis_type(self.array, name, stored), axis_unit(self.array, name, stored)
        values = self._positions(name, kind)
        if values is None:
            return AxisGeometry(name, kind, unit, positional=kind in SPATIAL_TYPES)
        fallback = _attr_scale(self.array[name])
        if fallback is None:
            fallback = self.fallback_scales.get(name)
        try:
            scale, translation = scale_translation(values, fallback, name=name)
        except OmeZarrError as err:
            raise OmeZarrError(f"{self.where}: {err}") from None
        # the values the writer stores: no float noise from reading coordinates
        return AxisGeometry(
            name, kind, unit, tidy(scale), tidy(translation, scale), positional=True
        )

    def _positions(self, name: str, kind: str | None) -> np.ndarray | None:
        """The coordinate values of a non-channel axis; ``None`` where there are none."""
        coord = coordinate(self.array, name)
        if kind == "channel" or coord is None or coord.dims != (name,):
            return None
        if coord.dtype.kind in "iuf":
            return np.asarray(coord.values, dtype=np.float64)
        if kind in SPATIAL_TYPES or coord.dtype.kind in "mM":
            raise OmeZarrError(
                f"{self.where}: axis {name!r}: the coordinate is {coord.dtype}; OME-Zarr "
                "describes positions by a numeric scale and translation (use numbers in a unit)"
            )
        return None


# ---- axis attributes --------------------------------------------------------------------
def axis_type(array: xr.DataArray, dim: str, stored: Mapping[str, Any]) -> str | None:
    """An axis type: the coordinate's ``axis_type``, else the stored axis's, else its name."""
    coord = coordinate(array, dim)
    if coord is not None and isinstance(coord.attrs.get(TYPE_ATTR), str):
        return coord.attrs[TYPE_ATTR]
    if isinstance(stored.get("type"), str):
        return stored["type"]
    return TYPE_BY_NAME.get(dim)


def axis_unit(array: xr.DataArray, dim: str, stored: Mapping[str, Any]) -> str | None:
    """An axis unit as OME-Zarr spells it: the coordinate's ``units``, else the stored one."""
    coord = coordinate(array, dim)
    unit = normalize_unit(coord.attrs.get(UNITS_ATTR)) if coord is not None else None
    if unit is None and isinstance(stored.get("unit"), str):
        unit = normalize_unit(stored["unit"])
    return unit


def coordinate(array: xr.DataArray, dim: str) -> xr.DataArray | None:
    """The coordinate named ``dim``, or ``None`` (not xarray's stand-in range)."""
    # not coords.get(dim): for a dim without a coordinate it returns a made-up range
    return array.coords[dim] if dim in array.coords else None  # noqa: SIM401


def _attr_scale(coord: xr.DataArray) -> float | None:
    value = coord.attrs.get(SCALE_ATTR)
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        return float(value) if value != 0 else None
    return None


def stored_axes(attrs: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The ``axes`` of the first multiscale in OME attributes (0.5 or older), by name.

    Lenient: anything malformed gives no hint rather than an error.
    """
    document = attrs.get("ome", attrs)
    multiscales = document.get("multiscales") if isinstance(document, Mapping) else None
    if not (isinstance(multiscales, list) and multiscales and isinstance(multiscales[0], Mapping)):
        return {}
    axes = multiscales[0].get("axes")
    out: dict[str, Mapping[str, Any]] = {}
    for axis in axes if isinstance(axes, list) else ():
        if isinstance(axis, str):
            out[axis] = {"name": axis}
        elif isinstance(axis, Mapping) and isinstance(axis.get("name"), str):
            out[axis["name"]] = axis
    return out


# ---- from objects to levels -------------------------------------------------------------
def single_array(ds: xr.Dataset, where: str) -> xr.DataArray:
    """The one data variable of a level Dataset."""
    names = list(ds.data_vars)
    if len(names) != 1:
        raise OmeZarrError(
            f"{where}: an image level holds one data variable, this one has {len(names)} "
            f"{names}; select one with ds[name]"
        )
    return ds[names[0]]


def level_names(tree: xr.DataTree) -> list[str]:
    """The ``scaleN`` children of an image node, highest resolution first."""
    found = [name for name in tree.children if _LEVEL_NAME.fullmatch(name)]
    return sorted(found, key=lambda name: int(name[5:]))


def level_name(tree: xr.DataTree, level: int | str, where: str) -> str:
    """Resolve ``level`` (int, negative int or ``"scaleN"``) to a child name of ``tree``."""
    names = level_names(tree)
    if isinstance(level, str) and level in names:
        return level
    is_int = isinstance(level, int | np.integer) and not isinstance(level, bool)
    if is_int and -len(names) <= level < len(names):
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


def tree_attrs(tree: xr.DataTree) -> Mapping[str, Any]:
    """The attrs of an image node; for a level node, its parent's (where the OME block is)."""
    if stored_axes(tree.attrs) or tree.parent is None:
        return tree.attrs
    return tree.parent.attrs


def tree_levels(tree: xr.DataTree, upto: int | None = None) -> list[ImageLevel]:
    """The levels of an image node (all, or up to index ``upto``), length-1 scales inferred."""
    where = tree_where(tree)
    stored = stored_axes(tree.attrs)
    names = level_names(tree)
    levels: list[ImageLevel] = []
    for name in names if upto is None else names[: upto + 1]:
        dataset = tree[name].to_dataset()
        array = single_array(dataset, f"{where}, level {name!r}")
        fallback = _inferred_scales(levels[-1], array) if levels else {}
        levels.append(ImageLevel(array, f"{where}, level {name!r}", stored, fallback, dataset))
    return levels


def _inferred_scales(above: ImageLevel, array: xr.DataArray) -> dict[Hashable, float]:
    """Scales of length-1 axes from the level above, by the pixel-centre rule run backwards."""
    upper = {a.name: a for a in above.geometry()}
    out: dict[Hashable, float] = {}
    for dim in array.dims:
        if array.sizes[dim] != 1 or dim not in array.coords:
            continue
        if _attr_scale(array[dim]) is not None:
            continue
        axis = upper.get(str(dim))
        if axis is None or not axis.positional or dim not in above.array.coords:
            continue
        if array[dim].dtype.kind not in "iuf":
            continue
        position = float(array[dim].values[0])
        factor = block_factor((position - axis.translation) / axis.scale, above.array.sizes[dim])
        out[dim] = axis.scale * factor if factor > 0 else axis.scale
    return out


def image_level(obj: xr.DataArray | xr.Dataset | xr.DataTree, level: int | str = 0) -> ImageLevel:
    """The level an object stands for: a DataArray or level Dataset itself, a tree's ``level``.

    A DataTree node with ``scaleN`` children is an image; one without them but with a data
    variable is a level (``dt["scale1"]``).
    """
    if isinstance(obj, xr.DataArray):
        return ImageLevel(obj, array_where(obj))
    if isinstance(obj, xr.Dataset):
        path = obj.attrs.get("ome_dataset_path")
        where = f"Dataset at level path {path!r}" if path else "Dataset"
        return ImageLevel(single_array(obj, where), where, stored_axes(obj.attrs), dataset=obj)
    if isinstance(obj, xr.DataTree):
        where = tree_where(obj)
        if not level_names(obj):
            if level not in (0, -1, "scale0"):
                raise OmeZarrError(f"{where}: a single level has no level {level!r}")
            dataset = obj.to_dataset()
            if not dataset.data_vars:
                raise OmeZarrError(f"{where}: not an image: no scale0..N children, no data")
            return ImageLevel(
                single_array(dataset, where), where, stored_axes(tree_attrs(obj)), dataset=dataset
            )
        index = level_names(obj).index(level_name(obj, level, where))
        return tree_levels(obj, upto=index)[index]
    raise OmeZarrError(
        f"expected an xarray DataArray, Dataset or DataTree, got {type(obj).__name__}"
    )


# ---- the accessors ------------------------------------------------------------------------
class OmeAccessor:
    """OME-Zarr geometry of an image level, computed from its coordinates.

    The dicts are keyed by the positional dims, in order: space and time axes, and custom
    axes with a numeric coordinate. Channel axes (and custom axes without a coordinate)
    have scale 1 and translation 0 in OME-Zarr and appear only in ``axes`` and
    ``transforms``. These are the values ``xarray_ome_zarr.to_ome_zarr`` writes.
    """

    def __init__(self, obj: xr.DataArray | xr.Dataset) -> None:
        self._obj = obj

    def _level(self) -> ImageLevel:
        return image_level(self._obj)

    def _positional(self) -> list[AxisGeometry]:
        return [axis for axis in self._level().geometry() if axis.positional]

    @property
    def scale(self) -> dict[str, float]:
        """Pixel spacing per positional dim."""
        return {axis.name: axis.scale for axis in self._positional()}

    @property
    def translation(self) -> dict[str, float]:
        """Centre of the first pixel per positional dim."""
        return {axis.name: axis.translation for axis in self._positional()}

    @property
    def units(self) -> dict[str, str | None]:
        """Unit per positional dim, as OME-Zarr spells it (``None`` where none is given)."""
        return {axis.name: axis.unit for axis in self._positional()}

    @property
    def axes(self) -> list[dict[str, str]]:
        """The OME ``axes`` list: ``{"name", "type", "unit"}`` per dim, in order."""
        return [axis.as_ome() for axis in self._level().geometry()]

    @property
    def transforms(self) -> list[dict[str, Any]]:
        """The OME ``coordinateTransformations``: a scale, then a translation, over all axes."""
        geometry = self._level().geometry()
        return [
            {"type": "scale", "scale": [axis.scale for axis in geometry]},
            {"type": "translation", "translation": [axis.translation for axis in geometry]},
        ]

    def to_zarr(self, store: Any, **kwargs: Any) -> None:
        """Write as OME-Zarr: ``xoz.to_ome_zarr(obj, store, **kwargs)``."""
        from .writer import to_ome_zarr

        to_ome_zarr(self._obj, store, **kwargs)


class OmeTreeAccessor(OmeAccessor):
    """The ``.ome`` accessor of a DataTree image node.

    Properties describe ``scale0``; ``level(i)`` and ``levels`` give the others.
    On a level node (``dt["scale1"]``) they describe that level.
    """

    def __init__(self, obj: xr.DataTree) -> None:
        self._obj = obj

    def _level(self) -> ImageLevel:
        return image_level(self._obj, 0)

    def level(self, level: int | str) -> OmeLevelView:
        """The OME view of one level: ``dt.ome.level(1).scale``, ``dt.ome.level(-1)``."""
        found = image_level(self._obj, level)
        return OmeLevelView(self._level_dataset(found), found)

    @property
    def levels(self) -> list[OmeLevelView]:
        """One OME view per level, highest resolution first."""
        if not level_names(self._obj):
            return [self.level(0)]
        return [OmeLevelView(self._level_dataset(lv), lv) for lv in tree_levels(self._obj)]

    def _level_dataset(self, level: ImageLevel) -> xr.Dataset:
        """The level as ``xr.open_dataset(level=...)`` gives it: image attrs included."""
        image_attrs = self._obj.attrs if level_names(self._obj) else tree_attrs(self._obj)
        ds = level.dataset if level.dataset is not None else level.array.to_dataset()
        return ds.assign_attrs({**image_attrs, **ds.attrs})


class OmeLevelView(OmeAccessor):
    """The OME view of one level of an image tree; ``to_zarr`` writes that level alone."""

    def __init__(self, dataset: xr.Dataset, level: ImageLevel) -> None:
        self._obj = dataset
        self._image_level = level

    def _level(self) -> ImageLevel:
        return self._image_level

    @property
    def dataset(self) -> xr.Dataset:
        """The level's Dataset with the image's attrs, as ``xr.open_dataset`` gives it."""
        return self._obj


xr.register_dataarray_accessor("ome")(OmeAccessor)
xr.register_dataset_accessor("ome")(OmeAccessor)
xr.register_datatree_accessor("ome")(OmeTreeAccessor)
