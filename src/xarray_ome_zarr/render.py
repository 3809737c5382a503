"""Look at an image: an RGB composite of its channels, the way viewers show it.

:func:`render` turns one plane of a level into a lazy ``(y, x, rgb)`` uint8 DataArray: each
active channel of the ``omero`` block is scaled from its window (``start`` .. ``end``) to
0 .. 1, tinted with its colour and added, as OMERO, napari and vizarr blend. Without
``omero`` (or for a channel it does not describe) the channel is grey (white when it is the
only one) and its window is the rendered plane's range. :func:`show` plots it the right way
up (y down, as viewers do); :func:`write_png` writes it as a PNG file with zlib alone.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .errors import OmeZarrError
from .layout import TYPE_ATTR, image_level, ome_document, tree_attrs
from .node_attrs import group_attrs

__all__ = ["Channel", "render", "show", "write_png"]

#: Axes that a plane keeps; every other one is selected or projected.
_PLANE_TYPES = ("space",)
_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Channel:
    """How one channel is drawn: colour (0-255 RGB), window, and whether it is shown."""

    label: str | None
    color: tuple[int, int, int] = _WHITE
    start: float | None = None
    end: float | None = None
    active: bool = True


# ---- the omero block --------------------------------------------------------------------
def _omero(attrs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    _, document = ome_document(attrs)
    omero = document.get("omero") if isinstance(document, Mapping) else None
    if omero is None:
        omero = attrs.get("omero")
    return omero if isinstance(omero, Mapping) else None


def _color(value: Any) -> tuple[int, int, int] | None:
    if not isinstance(value, str):
        return None
    text = value.strip().lstrip("#")
    if len(text) not in (6, 8):
        return None
    try:
        return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if np.isfinite(value) else None


def channel_settings(omero: Mapping[str, Any] | None) -> list[Channel]:
    """The channels of an ``omero`` block as :class:`Channel`; malformed entries are left
    to the defaults (grey, the plane's range, shown)."""
    entries = omero.get("channels") if omero else None
    out = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, Mapping):
            out.append(Channel(None))
            continue
        found = entry.get("window")
        window: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        label = entry.get("label")
        out.append(
            Channel(
                label=str(label) if label is not None else None,
                color=_color(entry.get("color")) or _WHITE,
                start=_number(window.get("start")),
                end=_number(window.get("end")),
                active=entry.get("active") is not False,
            )
        )
    return out


# ---- from the object to one plane --------------------------------------------------------
def _array_and_attrs(
    obj: xr.DataArray | xr.Dataset | xr.DataTree, level: int | str
) -> tuple[xr.DataArray, Mapping[str, Any]]:
    if isinstance(obj, xr.DataTree):
        return image_level(obj, level).array, group_attrs(tree_attrs(obj))
    return image_level(obj).array, group_attrs(obj.attrs)


def _axis_type(array: xr.DataArray, dim: Hashable) -> str | None:
    from .layout import TYPE_BY_NAME

    if dim in array.coords and isinstance(array.coords[dim].attrs.get(TYPE_ATTR), str):
        return array.coords[dim].attrs[TYPE_ATTR]
    return TYPE_BY_NAME.get(str(dim))


def _select(array: xr.DataArray, selection: Mapping[str, Any]) -> xr.DataArray:
    """``.sel(..., method="nearest")`` in coordinate units; channels by name, exactly."""
    for dim, value in selection.items():
        if dim not in array.dims:
            raise OmeZarrError(
                f"render({dim}=...): the image has no axis {dim!r}; its axes are "
                f"{[str(d) for d in array.dims]}"
            )
        has_numbers = dim in array.coords and array.coords[dim].dtype.kind in "iuf"
        if _axis_type(array, dim) == "channel" or not has_numbers:
            wanted = value
            if _axis_type(array, dim) == "channel" and isinstance(value, str | int):
                wanted = [value]  # keep the channel axis: its name finds its colour and window
            try:
                by = array.sel if dim in array.coords else array.isel
                array = by({dim: wanted})
            except (KeyError, IndexError):
                known = array.coords[dim].values.tolist() if dim in array.coords else None
                have = f"; it has {known}" if known is not None else f" of {array.sizes[dim]}"
                raise OmeZarrError(f"render({dim}={value!r}): no such {dim}{have}") from None
        else:
            array = array.sel({dim: value}, method="nearest")
        if dim in array.dims and _axis_type(array, dim) != "channel":
            raise OmeZarrError(f"render({dim}=...): give one position, not {value!r}")
    return array


def _plane(array: xr.DataArray, project: Sequence[str]) -> xr.DataArray:
    """Project the axes asked for; the middle z plane, the first of the other extra axes."""
    for name in project:
        if name not in array.dims:
            raise OmeZarrError(
                f"render(project={name!r}): the image has no axis {name!r} left to project; "
                f"its axes are {[str(d) for d in array.dims]}"
            )
        array = array.max(name)
    space = [d for d in array.dims if _axis_type(array, d) in _PLANE_TYPES]
    for dim in list(array.dims):
        kind = _axis_type(array, dim)
        if kind == "channel" or dim in space[-2:]:
            continue
        index = array.sizes[dim] // 2 if kind == "space" else 0
        array = array.isel({dim: index})
    channel = [d for d in array.dims if _axis_type(array, d) == "channel"]
    plane = [d for d in array.dims if d not in channel]
    if len(plane) != 2:
        raise OmeZarrError(f"render: cannot find the two plane axes among {list(array.dims)}")
    return array.transpose(*channel, *plane)


def _channels_of(plane: xr.DataArray, settings: list[Channel]) -> list[tuple[Any, Channel]]:
    """(index along the channel axis, how to draw it) for every channel of the plane."""
    channel = plane.dims[0] if plane.ndim == 3 else None
    if channel is None:
        return [(None, settings[0] if len(settings) == 1 else Channel(None))]
    size = plane.sizes[channel]
    labels = [str(v) for v in plane.coords[channel].values] if channel in plane.coords else None
    by_label = {s.label: s for s in settings if s.label is not None}
    out = []
    for i in range(size):
        found = by_label.get(labels[i]) if labels else None
        if found is None and i < len(settings) and (labels is None or len(settings) == size):
            found = settings[i]
        grey = Channel(labels[i] if labels else None, _WHITE if size == 1 else (128, 128, 128))
        out.append((i, found or grey))
    return out


def render(
    obj: xr.DataArray | xr.Dataset | xr.DataTree,
    *,
    project: str | Sequence[str] | None = None,
    level: int | str = -1,
    **selection: Any,
) -> xr.DataArray:
    """An RGB composite of one plane of an image, lazy, as viewers show it.

    Parameters
    ----------
    obj
        A level Dataset (as ``xr.open_dataset(..., engine="ome-zarr")`` gives it), a
        DataArray whose attrs hold the ``omero`` block (``xoz.image`` makes such), or an
        image DataTree (then ``level`` picks the level).
    project
        An axis (``"z"``) or axes to max-project instead of selecting a plane.
    level
        For a DataTree: which level (default the smallest, ``-1``).
    **selection
        Positions of the other axes in coordinate units, as ``.sel(..., method="nearest")``
        takes them (``z=8.5, t=0``); channels by name (``c="GFP"`` or ``c=["DAPI", "GFP"]``).
        Unselected, z is the middle plane and t (and any other axis) the first.

    Returns
    -------
    xarray.DataArray
        dims ``(y, x, rgb)``, ``rgb`` of size 3, dtype uint8, with the y and x coordinates;
        dask-backed, so nothing is read until it is computed or plotted.

    Raises
    ------
    OmeZarrError
        For a keyword naming no axis, a channel name the image does not have, or an image
        without two plane axes.

    Examples
    --------
    >>> ds = xr.open_dataset("cells.ome.zarr", engine="ome-zarr", level=0)   # doctest: +SKIP
    >>> rgb = ds.ome.render(z=8.5)                      # the plane nearest z = 8.5 µm
    ... # doctest: +SKIP
    >>> ds.ome.render(project="z", c="GFP").values.shape  # doctest: +SKIP
    (128, 128, 3)
    """
    array, attrs = _array_and_attrs(obj, level)
    if array.chunks is None:
        array = array.chunk()
    settings = channel_settings(_omero(attrs))
    projected = [project] if isinstance(project, str) else list(project or [])
    array = _select(array, selection)
    plane = _plane(array, projected).astype(np.float64)
    y, x = plane.dims[-2:]
    first = plane.isel({d: 0 for d in plane.dims[:-2]}, drop=True)
    composite = xr.zeros_like(first) * xr.DataArray(np.zeros(3), dims="rgb")  # black
    for index, channel in _channels_of(plane, settings):
        if not channel.active:
            continue
        values = plane if index is None else plane.isel({plane.dims[0]: index}, drop=True)
        start = values.min() if channel.start is None else channel.start
        end = values.max() if channel.end is None else channel.end
        span = end - start
        span = span.where(span > 0, 1.0) if isinstance(span, xr.DataArray) else span or 1.0
        scaled = ((values - start) / span).clip(0.0, 1.0)
        tint = xr.DataArray(np.asarray(channel.color, dtype=np.float64), dims="rgb")
        composite = composite + scaled * tint
    rgb = composite.clip(0.0, 255.0).round().astype(np.uint8).transpose(y, x, "rgb")
    kept = {d: plane.coords[d] for d in (y, x) if d in plane.coords}
    return rgb.drop_vars([c for c in rgb.coords if c not in kept]).rename("rgb")


def show(
    obj: xr.DataArray | xr.Dataset | xr.DataTree,
    *,
    ax: Any = None,
    project: str | Sequence[str] | None = None,
    level: int | str = -1,
    **selection: Any,
) -> Any:
    """Plot :func:`render` with matplotlib, y down (as viewers show images), axes in units.

    Returns the matplotlib ``AxesImage``. Takes the keywords of :func:`render`, and ``ax``.

    Examples
    --------
    >>> ds.ome.show(z=8.5)                                  # doctest: +SKIP
    """
    rgb = render(obj, project=project, level=level, **selection)
    return rgb.plot.imshow(rgb="rgb", yincrease=False, ax=ax)


# ---- PNG ------------------------------------------------------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png_bytes(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of a ``(height, width, 3)`` uint8 array (row 0 at the top)."""
    pixels = np.ascontiguousarray(rgb, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise OmeZarrError(f"a PNG needs (height, width, 3) pixels, got shape {pixels.shape}")
    height, width, _ = pixels.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, -1)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)),
            _png_chunk(b"IEND", b""),
        ]
    )


def write_png(rgb: xr.DataArray | np.ndarray, path: str | Path) -> Path:
    """Write a rendered ``(y, x, rgb)`` image as a PNG file, row 0 (the smallest y) on top."""
    path = Path(path)
    path.write_bytes(png_bytes(np.asarray(rgb)))
    return path
