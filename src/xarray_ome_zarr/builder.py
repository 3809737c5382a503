"""From a bare array to an image of the model in one call: :func:`image`.

numpy, dask and zarr arrays (a zarr array is wrapped in dask, so nothing is read) get dims,
pixel-centre coordinates in physical units, channel names and a name; the result is what
``xr.open_dataset(..., engine="ome-zarr")`` would give for the same image, so
``to_ome_zarr`` writes it as is. Imports no reader and no writer.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from .errors import OmeZarrError
from .layout import SCALE_ATTR, TYPE_ATTR, UNITS_ATTR
from .ngff.emit import axis_name_hint, normalize_unit
from .ngff.model import TYPE_BY_NAME
from .transforms import coordinate_values

__all__ = ["default_dims", "image"]

#: Dims by rank when none are given: OME-Zarr's order (t, c, z, y, x).
_DIMS_BY_RANK = {
    2: ("y", "x"),
    3: ("z", "y", "x"),
    4: ("c", "z", "y", "x"),
    5: ("t", "c", "z", "y", "x"),
}
#: ... and when the last axis holds 3 or 4 values (RGB, RGBA): the channel axis last.
_RGB_DIMS_BY_RANK = {3: ("y", "x", "c"), 4: ("z", "y", "x", "c"), 5: ("t", "z", "y", "x", "c")}
_RGB_NAMES = {3: ["R", "G", "B"], 4: ["R", "G", "B", "A"]}
_RGB_COLORS = ["FF0000", "00FF00", "0000FF", "FFFFFF"]
#: OME-Zarr's axis order: time, then channel or custom, then space.
_ORDER = {"time": 0, "space": 2}


def default_dims(shape: Sequence[int]) -> tuple[str, ...]:
    """The dims :func:`image` gives an array of this shape when none are given.

    2: ``(y, x)``; 3: ``(z, y, x)``; 4: ``(c, z, y, x)``; 5: ``(t, c, z, y, x)``. When the
    last axis holds 3 or 4 values (an RGB or RGBA picture, as image files load) it is the
    channel axis: ``(y, x, c)``, ``(z, y, x, c)``, ``(t, z, y, x, c)``.

    Raises
    ------
    OmeZarrError
        For fewer than 2 or more than 5 axes (OME-Zarr images have 2 to 5).
    """
    rank = len(shape)
    if rank not in _DIMS_BY_RANK:
        raise OmeZarrError(
            f"an array of shape {tuple(shape)} has {rank} axes; OME-Zarr images have 2 to 5 "
            "(pass dims=... for the axes you have, e.g. dims=('c', 'y', 'x'))"
        )
    if rank in _RGB_DIMS_BY_RANK and shape[-1] in _RGB_NAMES:
        return _RGB_DIMS_BY_RANK[rank]
    return _DIMS_BY_RANK[rank]


def _lazy(data: Any) -> Any:
    """numpy and dask arrays as they are; a zarr array wrapped in dask, chunked as stored."""
    import zarr

    if isinstance(data, zarr.Array):
        import dask.array as da

        return da.from_array(data, chunks=data.shards or data.chunks, lock=False)
    if isinstance(data, np.ndarray) or hasattr(data, "__dask_graph__"):
        return data
    if hasattr(data, "shape") and hasattr(data, "dtype") and hasattr(data, "__array__"):
        return data
    return np.asarray(data)


def _per_dim(value: Any, dims: Sequence[str], what: str) -> dict[str, Any]:
    """A keyword given as a dict by dim, one value for every space axis, or one per dim."""
    spaces = [d for d in dims if TYPE_BY_NAME.get(d) == "space"]
    if value is None:
        return {}
    if isinstance(value, Mapping):
        unknown = [str(k) for k in value if k not in dims]
        if unknown:
            raise OmeZarrError(
                f"{what}={dict(value)!r} names {unknown}, not dims of the image {list(dims)}"
                f"{axis_name_hint(unknown)}"
            )
        return {str(k): v for k, v in value.items()}
    if isinstance(value, str | int | float | np.number):
        return dict.fromkeys(spaces, value)
    if isinstance(value, Sequence) and len(value) == len(dims):
        return {d: v for d, v in zip(dims, value, strict=True) if v is not None}
    if isinstance(value, Sequence) and len(value) == len(spaces):
        return dict(zip(spaces, value, strict=True))
    raise OmeZarrError(
        f"{what}={value!r}: give a dict by dim ({what}={{'y': ..., 'x': ...}}), one value for "
        f"every space axis, or one value per dim of {list(dims)}"
    )


def _number(value: Any, what: str, dim: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise OmeZarrError(f"{what}[{dim!r}] must be a number, got {value!r}")
    number = float(value)
    if not np.isfinite(number) or (what == "scale" and number <= 0):
        raise OmeZarrError(
            f"{what}[{dim!r}] must be a finite{' positive' * (what == 'scale')} "
            f"number, got {value!r}"
        )
    return number


def _check_dims(dims: Sequence[Hashable], shape: Sequence[int]) -> tuple[str, ...]:
    names = tuple(str(d) for d in dims)
    if len(names) != len(shape):
        raise OmeZarrError(f"dims {names} do not fit an array of shape {tuple(shape)}")
    if len(set(names)) != len(names):
        raise OmeZarrError(f"dims {names} repeat a name")
    hint = axis_name_hint(names)
    if hint:
        raise OmeZarrError(f"dims {names}{hint}")
    other = [n for n in names if n not in TYPE_BY_NAME]
    if other:
        raise OmeZarrError(
            f"dims {names}: {other} are not axes xoz.image knows (t, c, z, y, x); for an axis "
            "of another type (an angle, a wavelength), build the DataArray yourself with a "
            "coordinate whose attrs give its axis_type (and scale), as opened images have, "
            "and write it with to_ome_zarr"
        )
    return names


def _channel_names(
    channels: Any, size: int, default: list[str] | None
) -> tuple[list[str] | None, list[str | None]]:
    """(names, colours) of the channels: a list of names, or a dict name -> hex colour."""
    if channels is None:
        return default, [None] * size
    colours: list[str | None]
    if isinstance(channels, Mapping):
        names = [str(k) for k in channels]
        colours = [None if v is None else str(v).lstrip("#").upper() for v in channels.values()]
    elif isinstance(channels, str) or not isinstance(channels, Sequence):
        raise OmeZarrError(f"channels={channels!r}: give a list of names, or a dict name -> colour")
    else:
        names, colours = [str(c) for c in channels], [None] * len(channels)
    if len(names) != size:
        raise OmeZarrError(f"channels= names {len(names)} channels {names}; the c axis has {size}")
    bad = [c for c in colours if c is not None and not (len(c) == 6 and _is_hex(c))]
    if bad:
        raise OmeZarrError(f"channel colours are 6 hex digits such as 'FF00FF', got {bad}")
    return names, colours


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


def _omero(names: list[str], colours: list[str | None], dtype: np.dtype) -> dict[str, Any]:
    """An ``omero`` block naming the channels, in the given colours, windowed to the dtype."""
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        low, high = float(info.min), float(info.max)
    else:
        low, high = 0.0, 1.0
    channels = []
    for name, colour in zip(names, colours, strict=True):
        channels.append(
            {
                "label": name,
                "color": colour or "FFFFFF",
                "active": True,
                "window": {"start": low, "end": high, "min": low, "max": high},
            }
        )
    return {"channels": channels, "rdefs": {"model": "color"}}


def image(
    data: Any,
    dims: Sequence[Hashable] | None = None,
    *,
    scale: Mapping[str, float] | Sequence[float] | float | None = None,
    translation: Mapping[str, float] | Sequence[float] | float | None = None,
    units: Mapping[str, str] | str | None = None,
    channels: Sequence[str] | Mapping[str, str | None] | None = None,
    name: str | None = None,
) -> xr.DataArray:
    """An image of the model from a bare array, in one call.

    Parameters
    ----------
    data
        A numpy array, a dask array, a ``zarr.Array`` (wrapped lazily in dask, chunked as
        stored: nothing is read), or anything ``numpy.asarray`` takes. An ``xr.DataArray``
        gives its pixels and (without ``dims=``) its dims.
    dims
        The axis names, from ``t``, ``c``, ``z``, ``y``, ``x``; default from the rank:
        ``(y, x)``, ``(z, y, x)``, ``(c, z, y, x)``, ``(t, c, z, y, x)``, and the channel
        last when the last axis holds 3 or 4 values (RGB or RGBA: ``(y, x, c)``...). Axes
        are put in OME-Zarr's order (time, channel, space) with a lazy transpose, so a
        trailing channel axis moves before ``z``/``y``/``x``.
    scale, translation
        Pixel spacing and the centre of the first pixel, in ``units``: a dict by dim
        (``{"z": 2.0, "y": 0.5, "x": 0.5}``), one number for every space axis, or one
        value per dim. Default: scale 1, translation 0.
    units
        UDUNITS-2 names (``"micrometer"``; ``"um"`` and ``"µm"`` are understood): one for
        every space axis, or a dict by dim (``{"t": "second", "x": "micrometer", ...}``).
    channels
        Names of the channels (the ``c`` coordinate), or a dict name -> colour as six hex
        digits (``{"DAPI": "0000FF", "GFP": "00FF00"}``), written as the ``omero`` block that
        viewers and :meth:`~xarray_ome_zarr.accessor.OmeAccessor.render` use. An RGB(A)
        array gets ``R``, ``G``, ``B`` (``A``) in red, green and blue.
    name
        The DataArray's name, which becomes the multiscale's name (default ``"image"``).

    Returns
    -------
    xarray.DataArray
        Dims in OME-Zarr order, pixel-centre coordinates (``translation + scale * index``,
        with ``units``, ``axis_type`` and ``scale`` attrs) for space and time axes, the
        channel names as the ``c`` coordinate; ready for ``xoz.to_ome_zarr``.

    Raises
    ------
    OmeZarrError
        For a rank other than 2 to 5 without ``dims``, axis names OME-Zarr does not know
        (``Y``, ``row``: the message says how to rename them), other names than t, c, z,
        y, x (a custom axis is built as a DataArray with an ``axis_type`` coordinate
        attribute), a keyword naming a dim the
        image does not have, or a non-positive scale.

    Examples
    --------
    >>> import numpy as np, xarray_ome_zarr as xoz
    >>> img = xoz.image(np.zeros((16, 128, 128), "uint16"), scale={"z": 1.0, "y": 0.25, "x": 0.25},
    ...                 units="micrometer")
    >>> img.dims, float(img.x[1])
    (('z', 'y', 'x'), 0.25)
    >>> rgb = xoz.image(np.zeros((32, 32, 3), "uint8"))   # a picture: channels R, G, B
    >>> rgb.dims, rgb.c.values.tolist()
    (('c', 'y', 'x'), ['R', 'G', 'B'])
    """
    if isinstance(data, xr.DataArray):
        dims = tuple(data.dims) if dims is None else dims
        name = data.name if name is None and isinstance(data.name, str) else name
        data = data.data
    pixels = _lazy(data)
    shape = tuple(int(n) for n in pixels.shape)
    names = default_dims(shape) if dims is None else _check_dims(dims, shape)
    rgb = _RGB_NAMES.get(shape[-1]) if dims is None and names[-1] == "c" else None
    order = sorted(range(len(names)), key=lambda i: _ORDER.get(TYPE_BY_NAME[names[i]], 1))
    if order != list(range(len(names))):
        pixels = pixels.transpose(order)
        names, shape = tuple(names[i] for i in order), tuple(shape[i] for i in order)
    sizes = dict(zip(names, shape, strict=True))
    scales = {d: _number(v, "scale", d) for d, v in _per_dim(scale, names, "scale").items()}
    shifts = {
        d: _number(v, "translation", d)
        for d, v in _per_dim(translation, names, "translation").items()
    }
    unit_of = {d: normalize_unit(str(u)) for d, u in _per_dim(units, names, "units").items()}
    for what, given in (("scale", scales), ("translation", shifts), ("units", unit_of)):
        channel = [d for d in given if TYPE_BY_NAME[d] == "channel"]
        if channel:
            raise OmeZarrError(
                f"{what} for the channel axis {channel[0]!r}: channels have no "
                "position; name them with channels="
            )
    coords: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    for dim in names:
        kind = TYPE_BY_NAME[dim]
        if kind == "channel":
            labels, colours = _channel_names(channels, sizes[dim], rgb)
            if labels is None:
                continue
            if rgb is not None and channels is None:
                colours = _RGB_COLORS[: sizes[dim]]  # type: ignore[assignment]
            coords[dim] = xr.Variable(dim, np.asarray(labels, dtype=str), {TYPE_ATTR: kind})
            if any(c is not None for c in colours):
                attrs["omero"] = _omero(labels, colours, pixels.dtype)
            continue
        s, t = scales.get(dim, 1.0), shifts.get(dim, 0.0)
        coord_attrs: dict[str, Any] = {TYPE_ATTR: kind, SCALE_ATTR: s}
        if unit_of.get(dim):
            coord_attrs[UNITS_ATTR] = unit_of[dim]
        coords[dim] = xr.Variable(dim, coordinate_values(sizes[dim], s, t), coord_attrs)
    return xr.DataArray(pixels, dims=names, coords=coords, name=name or "image", attrs=attrs)
