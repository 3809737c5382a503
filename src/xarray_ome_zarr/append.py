"""Append along an axis of a stored OME-Zarr image, with every pyramid level kept up to date.

``to_ome_zarr(obj, store, append_dim="t")`` lands here. The store decides everything but the
pixels: version, chunks, shards, codecs, fill value, the pyramid's factors (its levels'
scales) and its downsampling method (the multiscale's ``type``). The appended pixels of each
lower level are the appended pixels of level 0 downsampled the way the whole image would
be, so appending one slab at a time gives the same store as writing it all at once.

The order of the writes keeps every moment readable:

1. the new chunks of every level, beyond the arrays' stored shapes (invisible to readers);
2. the arrays' shapes, the lowest level first and level 0 last; in between, readers trim
   the lower levels to level 0's length (:mod:`.level_lengths`, rule ``uneven-levels``),
   so they see the image as it was before this append (along a space axis the pyramid
   shrinks no trimming is drawn: there the lower levels briefly reach further than level
   0, their new pixels complete);
3. the OME metadata, where it changes (new ``omero`` channels), then consolidated metadata.

A process killed at any point leaves a store that opens as before the append, or with the
whole append in it (metadata other than the shapes may lag: new channels without names);
the next append starts from the length that opens.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import dask.array as da
import numpy as np
import xarray as xr
import zarr

from ._compat import array_with_shape
from .chunking import grown_chunks
from .consolidated import consolidate, has_consolidated
from .errors import OmeZarrError
from .hierarchy import Node
from .layout import display_range
from .level_lengths import whole_factor
from .multiscale import METHODS, downsample, downsample_numpy
from .ngff.emit import channel_entry
from .ngff.model import Multiscale, NodeMeta
from .ngff.parse import parse_node
from .reader import NodeReader
from .store import is_zip_path, open_store, store_name
from .targets import ChunkWriter, compute_writes
from .transforms import level_geometry

__all__ = ["APPEND_VERSIONS", "append_to", "appends", "check_append_mode"]

#: The OME-Zarr versions this module appends to.
APPEND_VERSIONS = ("0.4", "0.5")

#: Called with the name of each step as it ends (``"chunks"``, ``"shape:<level>"``,
#: ``"metadata"``, ``"consolidated"``): tests pause or kill a writer between steps.
step_hook: Callable[[str], None] | None = None

#: How far (in pixels of the axis) an appended coordinate may be from where it belongs.
COORDINATE_TOLERANCE = 1e-6


def _step(name: str) -> None:
    if step_hook is not None:
        step_hook(name)


@dataclass
class StoredImage:
    """The image appended to, as the store has it."""

    store: str
    node: str
    group: zarr.Group
    meta: NodeMeta
    multiscale: Multiscale
    arrays: list[zarr.Array]
    #: the levels' lengths as readers see them (an interrupted append's excess trimmed)
    shapes: list[tuple[int, ...]]
    scales: list[np.ndarray]
    translations: list[np.ndarray]

    @property
    def dims(self) -> tuple[str, ...]:
        """The axis names, in the stored order."""
        return tuple(a.name for a in self.multiscale.axes)

    def error(self, message: str, key: str | None = None) -> OmeZarrError:
        """An error naming this store and node."""
        return OmeZarrError.at(message, store=self.store, node=self.node or "/", key=key)

    def axis_type(self, dim: str) -> str | None:
        """The stored type of an axis (``space``, ``time``, ``channel`` or ``None``)."""
        axis = self.multiscale.axes[self.dims.index(dim)]
        return axis.type


# ---- the store ------------------------------------------------------------------------------
def _open_group(store: Any, node: str, storage_options: Mapping[str, Any] | None) -> tuple:
    """(the root group opened for writing, the store's name, how to close it)."""
    if is_zip_path(store):
        raise OmeZarrError.at(
            "an .ozx file is written whole, so it cannot grow; append to a directory or an "
            "object store, then convert",
            store=str(store),
            key="append_dim",
        )
    if isinstance(store, zarr.Group):
        base, prefix = store.store, store.path
        name = store_name(store)
        close: Callable[[], None] = lambda: None  # noqa: E731
    else:
        base, name, close = open_store(store, storage_options=storage_options, read_only=False)
        prefix = ""
    try:
        root = zarr.open_group(base, path=prefix or None, mode="r+", use_consolidated=False)
    except Exception as err:
        close()
        raise OmeZarrError.at(
            f"no image to append to ({type(err).__name__}: {err}); write the first part "
            "without append_dim",
            store=name,
            key="append_dim",
        ) from err
    return root, name, close


def _stored_image(root: zarr.Group, node: str, name: str) -> StoredImage:
    """The image at ``node``, walked as the reader walks it (shapes trimmed as it trims)."""
    # the schemas are not checked again on every append of a loop (what is written is)
    reader = NodeReader(name, validate=False)
    try:
        group = root[node] if node else root
    except KeyError:
        raise OmeZarrError.at(
            "no such group to append to", store=name, node=node, key="group"
        ) from None
    if not isinstance(group, zarr.Group):
        raise OmeZarrError.at("is an array, not an image group", store=name, node=node)
    walked: Node | None = reader.walker.walk(group, node)
    meta = walked.meta if walked is not None else None
    if walked is None or meta is None or not meta.is_image:
        raise OmeZarrError.at(
            "is not a multiscale image: nothing to append to", store=name, node=node
        )
    if meta.version not in APPEND_VERSIONS:
        raise OmeZarrError.at(
            f"is OME-Zarr {meta.version}; appending is built for "
            f"{' and '.join(APPEND_VERSIONS)} stores only (convert it, or rewrite it whole)",
            store=name,
            node=node,
            key="version",
        )
    multiscale = meta.multiscales[0]
    geometry = [level_geometry(multiscale, i) for i in range(len(multiscale.levels))]
    return StoredImage(
        store=name,
        node=node,
        group=group,
        meta=meta,
        multiscale=multiscale,
        arrays=list(walked.levels),
        shapes=[tuple(s) for s in walked.shapes],
        scales=[s for s, _ in geometry],
        translations=[t for _, t in geometry],
    )


# ---- the appended part ----------------------------------------------------------------------
def _as_dataarray(obj: Any, image: StoredImage, dims: Sequence[str] | None) -> xr.DataArray:
    """The appended pixels as a DataArray in the stored axis order."""
    if isinstance(obj, xr.DataTree):
        node = obj.children.get("scale0", obj)
        obj = node.to_dataset(inherit=True)
    if isinstance(obj, xr.Dataset):
        if len(obj.data_vars) != 1:
            raise image.error(
                f"appends one image; the Dataset holds {list(obj.data_vars)}", key="append_dim"
            )
        obj = next(iter(obj.data_vars.values()))
    if not isinstance(obj, xr.DataArray):
        if not hasattr(obj, "shape") or not hasattr(obj, "dtype"):
            raise image.error(
                f"cannot append a {type(obj).__name__}: pass a DataArray, Dataset or array"
            )
        names = tuple(dims) if dims is not None else image.dims
        if len(names) != len(obj.shape):
            raise image.error(
                f"an array of {len(obj.shape)} dimensions cannot be appended to an image with "
                f"axes {list(image.dims)}; pass dims= to name them"
            )
        obj = xr.DataArray(obj, dims=names)
    if set(map(str, obj.dims)) != set(image.dims) or obj.ndim != len(image.dims):
        raise image.error(
            f"the appended array has dims {list(map(str, obj.dims))}, the image has axes "
            f"{list(image.dims)}",
            key="multiscales/0/axes",
        )
    return obj if tuple(map(str, obj.dims)) == image.dims else obj.transpose(*image.dims)


def _check_dtype(array: xr.DataArray, image: StoredImage) -> xr.DataArray:
    stored = np.dtype(image.arrays[0].dtype)
    if array.dtype == stored:
        return array
    if not np.can_cast(array.dtype, stored, casting="safe"):
        raise image.error(
            f"the appended pixels are {array.dtype}, the image is {stored}; cast them with "
            f".astype({str(stored)!r}) if that is what you mean",
            key="multiscales/0/datasets/0/path",
        )
    return array.astype(stored)


def _check_positions(array: xr.DataArray, image: StoredImage, axis: int, start: int) -> None:
    """The coordinate of one axis (if the caller gives one) where the store puts it."""
    dim = image.dims[axis]
    coord = _coordinate(array, dim)
    if coord is None or image.axis_type(dim) == "channel" or coord.ndim != 1:
        return
    scale, translation = float(image.scales[0][axis]), float(image.translations[0][axis])
    values = np.asarray(coord.values, dtype=np.float64)
    expected = translation + scale * (start + np.arange(values.size, dtype=np.float64))
    tolerance = COORDINATE_TOLERANCE * abs(scale) + 1e-12 * np.abs(expected)
    if not np.all(np.abs(values - expected) <= tolerance):
        key = f"multiscales/0/axes/{axis}"
        if start == 0:
            raise image.error(
                f"the appended {dim!r} coordinate {_few(values)} differs from the image's "
                f"{_few(expected)}: the other axes must match the store",
                key=key,
            )
        raise image.error(
            f"the appended {dim!r} coordinate {_few(values)} does not continue the image's "
            f"(scale {scale:g}, translation {translation:g}, {start} pixels stored): expected "
            f"{_few(expected)}. Appended positions continue the stored spacing; drop the "
            f"coordinate to take them from the store (a one-pixel axis keeps the scale it was "
            "written with: give its coordinate a 'scale' attribute when writing it)",
            key=key,
        )


def _coordinate(array: xr.DataArray, dim: str) -> xr.DataArray | None:
    """The coordinate of ``dim``, or ``None`` (``coords.get`` would make an index)."""
    return array.coords[dim] if dim in array.coords else None  # noqa: SIM401


def _few(values: np.ndarray) -> str:
    shown = ", ".join(f"{v:g}" for v in values[:4])
    return f"[{shown}{', ...' if values.size > 4 else ''}]"


# ---- the pyramid ----------------------------------------------------------------------------
def _factors(image: StoredImage) -> list[tuple[int, ...]]:
    """Each lower level's factors relative to the level above, from the stored scales."""
    out = []
    for k in range(1, len(image.arrays)):
        ratios = np.abs(image.scales[k] / image.scales[k - 1])
        factors = [whole_factor(float(r)) for r in ratios]
        bad = [d for d, f in zip(image.dims, factors, strict=True) if f is None]
        if bad:
            raise image.error(
                f"level {k}'s scale is not a whole multiple of level {k - 1}'s along {bad}: "
                "its pixels cannot be made from the appended ones",
                key=f"multiscales/0/datasets/{k}/coordinateTransformations",
            )
        out.append(tuple(cast(int, f) for f in factors))
    return out


def _method(image: StoredImage, asked: str | None) -> str | None:
    """The store's downsampling method, or the caller's where the store does not say."""
    if len(image.arrays) == 1:
        if asked is not None:
            raise image.error(
                f"method={asked!r}: the image has one level, nothing to downsample",
                key="method",
            )
        return None
    stored = image.multiscale.type
    if stored in METHODS:
        if asked is not None and asked != stored:
            raise image.error(
                f"method={asked!r} contradicts the store's pyramid, made by {stored!r}; "
                "appended levels must be made the same way (leave method= out)",
                key="multiscales/0/type",
            )
        return stored
    if asked is None:
        raise image.error(
            f"the store's pyramid is of type {stored!r}, which does not say how to make the "
            f"appended part of its levels; pass method= (one of {', '.join(METHODS)})",
            key="multiscales/0/type",
        )
    if asked not in METHODS:
        raise image.error(f"unknown method {asked!r}; choose from {METHODS}", key="method")
    return asked


def _check_pyramid(
    image: StoredImage, steps: list[tuple[int, ...]], axis: int, length: int, method: str | None
) -> None:
    """Refuse an append whose lower levels could not be exactly what writing at once gives."""
    dim = image.dims[axis]
    for k, step in enumerate(steps, start=1):
        above, here = image.shapes[k - 1], image.shapes[k]
        odd = [
            d
            for i, (d, f) in enumerate(zip(image.dims, step, strict=True))
            if i != axis and here[i] != above[i] // f
        ]
        if odd:
            raise image.error(
                f"level {k} has shape {here}, not level {k - 1}'s {above} divided by the "
                f"factors {step} (rounded down) along {odd}: the store's pyramid was made "
                "another way, and appending could not make its levels exactly",
                key=f"multiscales/0/datasets/{k}/path",
            )
    total = math.prod(step[axis] for step in steps)
    if total == 1:
        return
    stored = image.shapes[0][axis]
    if method == "gaussian":
        raise image.error(
            f"appending along {dim!r}, which the pyramid downsamples: a Gaussian pyramid's "
            "lower levels near the seam depend on pixels on both sides of it, so they cannot "
            "be made from the appended part alone",
            key="append_dim",
        )
    if stored % total or length % total:
        raise image.error(
            f"appending {length} pixels along {dim!r} to {stored}: the pyramid downsamples "
            f"{dim!r} by {total} down to its last level, so the stored and the appended "
            f"lengths must both be multiples of {total} for every level to get whole blocks "
            f"(append {total} pixels at a time, or a multiple of it)",
            key="append_dim",
        )
    for k in range(1, len(image.arrays)):
        factor = math.prod(step[axis] for step in steps[:k])
        if image.shapes[k][axis] != stored // factor:
            raise image.error(
                f"level {k} has {image.shapes[k][axis]} pixels along {dim!r}, not "
                f"{stored // factor}: the stored pyramid does not end where level 0 does",
                key=f"multiscales/0/datasets/{k}/path",
            )


def _unit(array: zarr.Array) -> tuple[int, ...]:
    """The array's write unit: its shards, else its chunks."""
    return tuple(getattr(array, "shards", None) or array.chunks)


def _region_chunks(offset: int, length: int, unit: int) -> tuple[int, ...]:
    """Dask chunks of ``length`` pixels written from ``offset`` that end on the ``unit``
    grid, so no two blocks share a chunk or shard."""
    out = []
    position, end = offset, offset + length
    while position < end:
        stop = min(end, (position // unit + 1) * unit)
        out.append(stop - position)
        position = stop
    return tuple(out)


def _aligned(slab: da.Array, array: zarr.Array, axis: int, offset: int) -> da.Array:
    """``slab`` rechunked into blocks of whole write units of ``array`` (written at
    ``offset`` along ``axis``)."""
    unit = _unit(array)
    grown = grown_chunks(slab.shape, unit, slab.dtype.itemsize)
    chunks: list[Any] = list(grown)
    chunks[axis] = _region_chunks(offset, slab.shape[axis], unit[axis])
    return slab.rechunk(tuple(chunks))


# ---- metadata ---------------------------------------------------------------------------
def _channel_names(array: xr.DataArray, image: StoredImage, axis: int) -> list[str] | None:
    coord = _coordinate(array, image.dims[axis])
    if coord is None:
        return None
    return [str(v) for v in np.asarray(coord.values).ravel()]


def _extended_omero(
    image: StoredImage, array: xr.DataArray, axis: int, start: int
) -> dict[str, Any] | None:
    """The group attributes with ``omero`` naming the appended channels (``None``: none
    to change)."""
    attrs: dict[str, Any] = dict(image.group.attrs.asdict())
    document = attrs["ome"] if isinstance(attrs.get("ome"), dict) else attrs
    omero = document.get("omero")
    if not isinstance(omero, dict) or not isinstance(omero.get("channels"), list):
        return None
    channels = omero["channels"]
    names = _channel_names(array, image, axis)
    count = array.shape[axis]
    if names is None:
        names = [f"channel {start + i}" for i in range(count)]
    known = {c.get("label") for c in channels if isinstance(c, dict)}
    repeated = [n for n in names if n in known] + [n for n in names if names.count(n) > 1]
    if repeated:
        raise image.error(
            f"the appended channels {names} repeat names the image has or gives twice: "
            f"{sorted(set(repeated))}; channel names are unique",
            key="omero/channels",
        )
    window = display_range(np.dtype(image.arrays[0].dtype))
    out = copy.deepcopy(attrs)
    target = out["ome"] if isinstance(out.get("ome"), dict) else out
    target["omero"]["channels"] = channels + [
        channel_entry(n, len(channels) + i, window) for i, n in enumerate(names)
    ]
    try:
        parse_node(out, f"store {image.store!r}, node {'/' + image.node!r}", validate=True)
    except OmeZarrError as err:
        raise image.error(f"would write invalid metadata: {err}", key="omero") from None
    return out


def check_append_mode(mode: str | None, overwrite: bool, append_dim: str) -> str:
    """``"a"``, the mode ``append_dim`` implies; another mode (or ``overwrite``) is an error."""
    if mode not in (None, "a") or overwrite:
        asked = f"mode={mode!r}" if mode not in (None, "a") else "overwrite=True"
        raise OmeZarrError.at(
            f"append_dim={append_dim!r} appends (mode='a'), which contradicts {asked}",
            key="mode",
        )
    return "a"


def appends(
    obj: Any,
    store: Any,
    append_dim: str,
    group: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> bool:
    """Whether ``to_ome_zarr(append_dim=...)`` appends (there is a group to append to), or
    writes ``obj`` as the first part (nothing there yet, as xarray's ``to_zarr`` does)."""
    node = (group or "").strip("/")
    try:
        if isinstance(store, zarr.Group):
            base, prefix = store.store, store.path
        else:
            if is_zip_path(store):
                return True  # refused by append_to with the reason
            base, _, close = open_store(store, storage_options=storage_options)
            close()
            prefix = ""
        path = "/".join(p for p in (prefix.strip("/"), node) if p)
        zarr.open_group(base, path=path or None, mode="r", use_consolidated=False)
    except (OmeZarrError, FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        _check_first_part(obj, append_dim)
        return False
    return True


def _check_first_part(obj: Any, append_dim: str) -> None:
    dims: Sequence[Any] = ()
    if isinstance(obj, xr.DataArray | xr.Dataset):
        dims = list(obj.dims)
    elif isinstance(obj, xr.DataTree):
        dims = list(dict.fromkeys(d for n in obj.subtree for d in n.dims))
    if dims and append_dim not in dims:
        raise OmeZarrError.at(
            f"append_dim={append_dim!r} is not a dimension of the first part {list(dims)}",
            key="append_dim",
        )


# ---- the append -------------------------------------------------------------------------
def append_to(
    obj: Any,
    store: Any,
    *,
    append_dim: str,
    group: str | None = None,
    method: str | None = None,
    consolidated: bool | None = None,
    storage_options: Mapping[str, Any] | None = None,
    progress: bool = False,
    dims: Sequence[str] | None = None,
    version: str | None = None,
    refused: Sequence[str] = (),
) -> None:
    """Append ``obj`` to the image at ``store``/``group`` along ``append_dim``.

    See :func:`xarray_ome_zarr.to_ome_zarr` (``append_dim=``) for what is checked and the
    order of the writes. ``refused`` names the other settings the caller gave: any is an
    error (the store decides them).
    """
    node = (group or "").strip("/")
    if refused:
        raise OmeZarrError.at(
            f"append_dim={append_dim!r} appends to the image in the store, which decides the "
            f"layout, codecs and geometry: {', '.join(k + '=' for k in refused)} cannot apply",
            store=str(store),
            node=node,
            key="append_dim",
        )
    root, name, close = _open_group(store, node, storage_options)
    try:
        image = _stored_image(root, node, name)
        if version is not None and version != image.meta.version:
            raise image.error(
                f"version={version!r}: the image is OME-Zarr {image.meta.version}, and an "
                "append keeps it",
                key="version",
            )
        refresh = bool(consolidated) or has_consolidated(root)  # before: see kept_consolidated
        _append(obj, image, append_dim, method, progress, dims)
        if refresh:
            consolidate(root)
            _step("consolidated")
    finally:
        close()


def _append(
    obj: Any,
    image: StoredImage,
    append_dim: str,
    method: str | None,
    progress: bool,
    dims: Sequence[str] | None,
) -> None:
    if append_dim not in image.dims:
        raise image.error(
            f"append_dim={append_dim!r} is not an axis of the image {list(image.dims)}",
            key="append_dim",
        )
    axis = image.dims.index(append_dim)
    array = _check_dtype(_as_dataarray(obj, image, dims), image)
    start = image.shapes[0][axis]
    wrong = [
        (d, n, m)
        for i, (d, n, m) in enumerate(zip(image.dims, array.shape, image.shapes[0], strict=True))
        if i != axis and n != m
    ]
    if wrong:
        raise image.error(
            "the appended array must match the image along the other axes: "
            + ", ".join(f"{d} has {n} pixels, the image {m}" for d, n, m in wrong),
            key="multiscales/0/datasets/0/path",
        )
    length = array.shape[axis]
    if length == 0:
        return
    for i in range(len(image.dims)):
        _check_positions(array, image, i, start if i == axis else 0)
    _check_channel_names(array, image, axis)
    is_channel = image.axis_type(append_dim) == "channel"
    attrs = _extended_omero(image, array, axis, start) if is_channel else None
    steps = _factors(image)
    used = _method(image, method)
    _check_pyramid(image, steps, axis, length, used)

    # the appended part of every level, written beyond the stored shapes
    new_shapes = [list(shape) for shape in image.shapes]  # each grows by its part
    if isinstance(array.data, da.Array) or progress:  # dask computes (and shows progress)
        data = array.data if isinstance(array.data, da.Array) else da.from_array(array.values)
        _write_lazily(data, image, steps, used, axis, new_shapes, progress)
    else:
        _write_in_memory(np.asarray(array.values), image, steps, used, axis, new_shapes)
    _step("chunks")
    for k in reversed(range(len(image.arrays))):
        image.arrays[k].resize(tuple(new_shapes[k]))
        _step(f"shape:{k}")
    if attrs is not None:
        image.group.attrs.put(attrs)
    _step("metadata")


def _target(image: StoredImage, k: int, shape: Sequence[int]) -> zarr.Array:
    """Level ``k``'s array, writable up to ``shape`` while its stored shape stays."""
    target = array_with_shape(image.arrays[k], shape)
    if target is None:  # pragma: no cover - this zarr cannot write beyond the shape
        image.arrays[k].resize(tuple(shape))
        return image.arrays[k]
    return target


def _region(shape: Sequence[int], axis: int, offset: int) -> tuple[slice, ...]:
    return tuple(slice(offset, n) if i == axis else slice(0, n) for i, n in enumerate(shape))


def _write_in_memory(
    pixels: np.ndarray,
    image: StoredImage,
    steps: list[tuple[int, ...]],
    method: str | None,
    axis: int,
    new_shapes: list[list[int]],
) -> None:
    """Numpy pixels: each level's part made in memory and written by zarr."""
    slab = pixels
    for k in range(len(image.arrays)):
        if k:
            assert method is not None
            slab = downsample_numpy(slab, steps[k - 1], method)
        new_shapes[k][axis] = image.shapes[k][axis] + slab.shape[axis]
        writer = ChunkWriter(_target(image, k, new_shapes[k]))  # skips zarr's empty-chunk scan
        writer[_region(new_shapes[k], axis, image.shapes[k][axis])] = slab


def _write_lazily(
    data: da.Array,
    image: StoredImage,
    steps: list[tuple[int, ...]],
    method: str | None,
    axis: int,
    new_shapes: list[list[int]],
    progress: bool,
) -> None:
    """Dask pixels: every level's part computed and written by dask, block by block (whole
    chunks or shards each), out of core."""
    slabs = [data]
    for step in steps:
        assert method is not None
        slabs.append(downsample(slabs[-1], step, method))
    sources, targets, regions = [], [], []
    for k, slab in enumerate(slabs):
        offset = image.shapes[k][axis]
        new_shapes[k][axis] = offset + slab.shape[axis]
        sources.append(_aligned(slab, image.arrays[k], axis, offset))
        targets.append(ChunkWriter(_target(image, k, new_shapes[k])))
        regions.append(_region(new_shapes[k], axis, offset))
    stored = da.store(sources, cast(Any, targets), regions=regions, lock=False, compute=False)
    compute_writes(list(stored) if isinstance(stored, Sequence) else [stored], progress)


def _check_channel_names(array: xr.DataArray, image: StoredImage, axis: int) -> None:
    """Channel names given along a channel axis that is not appended must be the stored ones."""
    for i, dim in enumerate(image.dims):
        if i == axis or image.axis_type(dim) != "channel":
            continue
        names = _channel_names(array, image, i)
        stored = image.meta.omero.labels if image.meta.omero is not None else None
        if names is not None and stored is not None and list(stored) != names:
            raise image.error(
                f"the appended channels are {names}, the image's {list(stored)}",
                key="omero/channels",
            )
