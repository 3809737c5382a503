"""spatial-image and multiscale-spatial-image: their objects from ours.

Our image trees already have multiscale-spatial-image's layout (``scale0..N`` children, one
data variable each, no coordinates at the root), so its ``.msi`` accessor and its
``to_multiscale`` output need no conversion; a single level becomes a spatial-image with
``to_spatial_image``. Optional packages are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import xarray as xr

from .errors import OmeZarrError
from .layout import TYPE_BY_NAME, AxisGeometry, ImageLevel, image_level, variable_name

#: The axis type spatial-image gives each of the axis names it knows: the names OME-Zarr
#: implies types for, with the same types.
SPATIAL_IMAGE_TYPES = TYPE_BY_NAME


def to_spatial_image(
    obj: xr.DataArray | xr.Dataset | xr.DataTree, level: int | str = 0
) -> xr.DataArray:
    """A level of an image as a spatial-image DataArray.

    Built by ``spatial_image.to_spatial_image`` from the level's scale, translation,
    units, channel names, time coordinate and name, so its dims, coordinates (with their
    ``long_name`` and ``units`` attrs) and name are exactly what spatial-image makes. The
    pixels are the level's own, lazy if they were: nothing is read.

    Parameters
    ----------
    obj
        An image DataTree node, a level node, a level Dataset or a DataArray.
    level
        For an image node: which level (int, negative counts from the lowest resolution,
        or ``"scaleN"``).

    Raises
    ------
    OmeZarrError
        When an axis is one spatial-image cannot hold (names other than t, c, z, y, x, or a
        known name with another type, e.g. ``x`` of type time), when spatial-image has no
        layout for the axes in their order, or when coordinates are not evenly spaced.

    Examples
    --------
    >>> import xarray as xr, xarray_ome_zarr as xoz
    >>> dt = xr.open_datatree("cells.ome.zarr", engine="ome-zarr")    # doctest: +SKIP
    >>> si = xoz.to_spatial_image(dt, level=-1)                       # doctest: +SKIP
    >>> si.dims, si.name                                               # doctest: +SKIP
    (('c', 'z', 'y', 'x'), 'image')
    """
    from spatial_image import to_spatial_image as build

    image = image_level(obj, level)
    axes = image.geometry()
    check_spatial_image_axes(axes, image.where)
    array = image.array
    placeholder = np.broadcast_to(np.zeros((), dtype=array.dtype), array.shape)
    built = build(placeholder, **spatial_image_kwargs(image, axes))
    # spatial-image built dims, coordinates and name; the pixels are the level's own variable
    # (a shallow copy keeps lazy data lazy and shares no cache with the input).
    result = built.copy(deep=False, data=array.variable.copy(deep=False))
    result.encoding = dict(array.encoding)
    return result


def check_spatial_image_axes(axes: list[AxisGeometry], where: str) -> None:
    """Refuse axes that spatial-image cannot hold, naming the offending axis."""
    from spatial_image import SpatialImageDataClasses

    for axis in axes:
        expected = SPATIAL_IMAGE_TYPES.get(axis.name)
        if expected is None:
            raise OmeZarrError(
                f"{where}: axis {axis.name!r} cannot be held by a spatial-image, which knows "
                f"only the axes t, c, z, y, x; rename it (e.g. obj.rename({{{axis.name!r}: "
                "...}})) or keep the OME-Zarr tree"
            )
        if axis.type is not None and axis.type != expected:
            raise OmeZarrError(
                f"{where}: axis {axis.name!r} has type {axis.type!r}, but spatial-image "
                f"takes {axis.name!r} to be {expected}"
            )
    dims = tuple(axis.name for axis in axes)
    if dims not in SpatialImageDataClasses:
        orders = ", ".join("".join(key) for key in SpatialImageDataClasses)
        raise OmeZarrError(
            f"{where}: spatial-image has no layout for the axes {dims} in this order; "
            f"transpose to one of: {orders}"
        )


def spatial_image_kwargs(image: ImageLevel, axes: list[AxisGeometry]) -> dict[str, Any]:
    """Arguments of ``spatial_image.to_spatial_image`` describing ``image``."""
    array = image.array
    kwargs: dict[str, Any] = {
        "dims": tuple(axis.name for axis in axes),
        "scale": {a.name: a.scale for a in axes if a.type == "space"},
        "translation": {a.name: a.translation for a in axes if a.type == "space"},
        "name": variable_name(array.name),
        "axis_units": {a.name: a.unit for a in axes if a.unit} or None,
        "axis_names": _long_names(array) or None,
    }
    for dim in ("t", "c"):
        if dim in array.dims and dim in array.coords:
            kwargs[f"{dim}_coords"] = array[dim].values
    return kwargs


def _long_names(array: xr.DataArray) -> dict[Hashable, str]:
    """The coordinates' ``long_name`` attrs, which spatial-image keeps (e.g. anatomical)."""
    out: dict[Hashable, str] = {}
    for dim in array.dims:
        long_name = array.coords[dim].attrs.get("long_name") if dim in array.coords else None
        if isinstance(long_name, str) and long_name:
            out[dim] = long_name
    return out
