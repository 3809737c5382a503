"""Writing parts of a stored image: templates, regions, and rebuilding a pyramid.

- :func:`write_template` (``to_ome_zarr(..., compute=False)``): every group, array and all
  the metadata now, pixels later, from the dask ``Delayed`` it returns; until then the store
  is a valid image of fill values.
- :func:`write_region` (``to_ome_zarr(part, store, region=...)``): a box of level 0 and the
  boxes of every lower level that depend on it (:mod:`.pyramid_update`), with the version,
  method, chunks and codecs of the store.
- :func:`build_pyramid`: every level below the stale ones rebuilt from the level above.

Concurrency: a level whose box covers whole chunks (shards) and needs no pixel outside the
region is written without a lock; so are several such regions at once. The rest (partial
chunks, blocks that straddle regions, gaussian halos) is written under a file lock
(:mod:`.locks`) on local stores, so regions written at once by several processes or a
dask.distributed cluster give the pyramid of the finished image. Elsewhere (object stores)
a region whose level 0 is not whole chunks needs ``safe_chunks=False`` (the caller promises
that no other writer shares its chunks), and the lower levels that need a lock are left to
:func:`build_pyramid`, the image marked meanwhile (:mod:`.pyramid_state`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import dask
import dask.array as da
import numpy as np
import xarray as xr
import zarr

from ._compat import block_slices, cpu_count
from .chunking import grown_chunks
from .consolidated import kept_consolidated
from .errors import OmeZarrError
from .hierarchy import first_multiscale
from .layout import as_image_dataarray
from .locks import file_lock, lock_path
from .multiscale import METHODS
from .ngff.model import Multiscale, NodeMeta
from .ngff.parse import parse_node
from .pyramid_state import clear_stale, mark_stale, stale_from
from .pyramid_update import (
    Box,
    Step,
    affected,
    as_slices,
    downsample_box,
    is_empty,
    self_contained,
    source,
    steps_for,
    update_levels,
    whole_units,
)
from .store import OpenedStore, is_zip_path, open_root, store_name
from .targets import ChunkWriter, LocalTarget, OzxTarget, Plan, StoreTarget, Target, writing
from .transforms import level_geometry

#: Relative tolerance, in pixels, of coordinates matched against the store's grid.
GRID_TOLERANCE = 1e-6


# ---- templates ----------------------------------------------------------------------------
def check_template_target(target: Target) -> None:
    """Refuse a target that cannot be written later, piece by piece (an ``.ozx`` file)."""
    if isinstance(target, OzxTarget):
        raise OmeZarrError.at(
            "compute=False cannot write an .ozx file (it is zipped once, when complete); "
            "write a directory, then convert it",
            store=target.name,
            key="compute",
        )


def write_template(target: Target, plan: Plan, *, consolidated: bool = False) -> Any:
    """Create every group and array of ``plan`` and write all its metadata now; return a
    dask ``Delayed`` that writes the pixels (every level) into the finished store."""
    from .ngff.emit import zarr_format_of
    from .targets import write_plan

    check_template_target(target)
    with writing(target, zarr_format_of(plan.version)) as root:
        write_plan(plan, root, consolidated=consolidated, compute=False)
    root = _committed_root(target)
    writers = [ChunkWriter(cast(zarr.Array, root[a.path])) for a in plan.arrays]
    stored = da.store([a.data for a in plan.arrays], cast(Any, writers), lock=False, compute=False)
    # dask returns the stored arrays (blocks of nothing) or a Delayed, by version: one Delayed
    arrays = list(stored) if isinstance(stored, list | tuple) else [stored]
    return dask.delayed(_written, pure=False)(*arrays)


def _written(*_: Any) -> None:
    """The end of a template's pixel writes."""


def _committed_root(target: Target) -> zarr.Group:
    """The root group of a target after its commit."""
    if isinstance(target, LocalTarget):
        return zarr.open_group(zarr.storage.LocalStore(target.path), mode="r+")
    if isinstance(target, StoreTarget):
        return zarr.open_group(target.store, path=target.path or None, mode="r+")
    raise OmeZarrError.at(f"compute=False cannot write to a {type(target).__name__}")


# ---- the stored image ---------------------------------------------------------------------
@dataclass
class StoredImage:
    """An image in a store opened for writing: its levels and how they are made."""

    opened: OpenedStore
    node: str
    meta: NodeMeta
    multiscale: Multiscale
    arrays: list[zarr.Array]
    scales: list[np.ndarray]
    translations: list[np.ndarray]
    method: str | None
    steps: list[Step]

    @property
    def name(self) -> str:
        """The store, for messages."""
        return self.opened.name

    @property
    def dims(self) -> tuple[str, ...]:
        """The axis names, in the stored order."""
        return self.multiscale.axis_names

    @property
    def group(self) -> zarr.Group:
        """The image's zarr group."""
        return self.opened.group

    def error(self, message: str, key: str | None = None) -> OmeZarrError:
        """An error naming the store and the image's node."""
        return OmeZarrError.at(message, store=self.name, node="/" + self.node, key=key)

    def units(self, k: int) -> tuple[int, ...]:
        """The write unit of level ``k``: its shard, else its chunk."""
        array = self.arrays[k]
        shards = getattr(array, "shards", None)
        return tuple(shards or array.chunks)


def open_image(
    store: Any,
    *,
    group: str | None = None,
    storage_options: dict[str, Any] | None = None,
    writable: bool = True,
) -> StoredImage:
    """The image at ``store``/``group`` with its levels' arrays and geometry.

    Raises
    ------
    OmeZarrError
        When there is no image there, or its levels are not a pyramid this package can
        keep up to date (an unknown method, levels that are no whole-factor downsampling).
    """
    opened = open_root(
        store,
        group=group,
        storage_options=storage_options,
        mode="r+" if writable else "r",
        consolidated=False,
    )
    try:
        return _stored_image(opened, (group or "").strip("/"))
    except BaseException:
        opened.close()
        raise


def _stored_image(opened: OpenedStore, node: str) -> StoredImage:
    where = f"store {opened.name!r}, node {'/' + node!r}: "
    meta = parse_node(opened.group.attrs.asdict(), where.removesuffix(": "), validate=False)
    if not meta.is_image:
        raise OmeZarrError.at(
            "is not a multiscale image: region writes need the image group (pass group=)",
            store=opened.name,
            node="/" + node,
        )
    multiscale = first_multiscale(meta, where)
    arrays = []
    for i, level in enumerate(multiscale.levels):
        try:
            arrays.append(cast(zarr.Array, opened.group[level.path]))
        except KeyError:
            raise OmeZarrError.at(
                f"names no array {level.path!r}",
                store=opened.name,
                node="/" + node,
                key=f"multiscales/0/datasets/{i}/path",
            ) from None
    geometry = [level_geometry(multiscale, i) for i in range(len(arrays))]
    scales = [g[0] for g in geometry]
    translations = [g[1] for g in geometry]
    image = StoredImage(opened, node, meta, multiscale, arrays, scales, translations, None, [])
    if len(arrays) > 1:
        image.method = _stored_method(image)
        factors = [_factors(image, k) for k in range(1, len(arrays))]
        image.steps = steps_for([a.shape for a in arrays], factors, image.method, where)
        for k, step in enumerate(image.steps, start=1):
            _check_translation(image, k, step)
    return image


def _stored_method(image: StoredImage) -> str:
    method = image.multiscale.type
    if method not in METHODS:
        raise image.error(
            f"its levels were made with {method!r}, which this package cannot reproduce "
            f"(known: {', '.join(METHODS)}): the lower levels of a region cannot be kept "
            "exact; rewrite the image with scale_factors= and method=",
            key="multiscales/0/type",
        )
    return str(method)


def _factors(image: StoredImage, k: int) -> tuple[int, ...]:
    ratio = image.scales[k] / image.scales[k - 1]
    factors = np.rint(ratio)
    if np.any(factors < 1) or not np.allclose(ratio, factors, rtol=GRID_TOLERANCE, atol=0):
        raise image.error(
            f"level {k}'s scale is not a whole multiple of level {k - 1}'s "
            f"({ratio.tolist()}): the levels are no block downsampling",
            key=f"multiscales/0/datasets/{k}/coordinateTransformations",
        )
    return tuple(int(f) for f in factors)


def _check_translation(image: StoredImage, k: int, step: Step) -> None:
    """Refuse a level whose pixels are not where this package's blocks put them."""
    s, t = image.scales[k - 1], image.translations[k - 1]
    expected = t + (np.array(step.offsets) + (np.array(step.factors) - 1) / 2) * s
    if not np.allclose(image.translations[k], expected, rtol=0, atol=GRID_TOLERANCE * abs(s)):
        raise image.error(
            f"level {k}'s translation {image.translations[k].tolist()} does not put its pixels "
            f"at the centres of blocks of level {k - 1} ({expected.tolist()}): its pixels "
            "cannot be recomputed exactly",
            key=f"multiscales/0/datasets/{k}/coordinateTransformations",
        )


# ---- the region -----------------------------------------------------------------------------
def resolve_region(region: Any, part: xr.DataArray, image: StoredImage) -> Box:
    """The box of level 0 that ``part`` goes to: ``region`` (``"auto"``, or a dict by
    dimension of slices or ``"auto"``), with the part's coordinates checked against the
    store's grid.

    Raises
    ------
    OmeZarrError
        For dims the store lacks, slices of the wrong size or outside the image, steps,
        and coordinates that are off the store's grid or elsewhere than the slice says.
    """
    dims, shape = image.dims, image.arrays[0].shape
    if isinstance(region, str):
        if region != "auto":
            raise image.error(f"region must be a dict or 'auto', got {region!r}", key="region")
        region = {d: "auto" for d in dims}
    if not isinstance(region, Mapping):
        raise image.error(
            f"region must be a dict by dimension or 'auto', got {type(region).__name__}",
            key="region",
        )
    unknown = [str(k) for k in region if k not in dims]
    if unknown:
        raise image.error(f"region names dims the image lacks: {unknown} (dims {list(dims)})")
    box = []
    for dim, n in zip(dims, shape, strict=True):
        size = part.sizes[dim]
        asked = region.get(dim, slice(None))
        if isinstance(asked, str) and asked == "auto":
            start = _auto_start(part, dim, image, size, n)
        elif isinstance(asked, slice):
            if asked.step not in (None, 1):
                raise image.error(f"region[{dim!r}] = {asked}: steps cannot be written")
            start = _bound(asked.start, 0, n)
            stop = _bound(asked.stop, n, n)
            if start < 0 or stop > n:
                raise image.error(
                    f"region[{dim!r}] = {asked} lies outside the image (0:{n} along {dim!r})"
                )
            if stop - start != size:
                raise image.error(
                    f"region[{dim!r}] = {asked} holds {max(0, stop - start)} pixels of the "
                    f"stored {n}, the data {size}"
                )
        else:
            raise image.error(
                f"region[{dim!r}] must be a slice or 'auto', got {asked!r}", key="region"
            )
        if start < 0 or start + size > n:
            raise image.error(
                f"region along {dim!r} ({start}:{start + size}) lies outside the image (0:{n})"
            )
        _check_coordinates(part, dim, image, start)
        box.append((start, start + size))
    return tuple(box)


def _bound(value: int | None, default: int, n: int) -> int:
    """A slice bound as an index (negative ones count from the end, as in Python)."""
    if value is None:
        return default
    return int(value) + n if value < 0 else int(value)


def _channel_names(image: StoredImage) -> tuple[str, ...] | None:
    omero = image.meta.omero
    return omero.labels if omero is not None else None


def _is_channel(image: StoredImage, dim: str) -> bool:
    axis = image.multiscale.axes[image.dims.index(dim)]
    return axis.type == "channel"


def _auto_start(part: xr.DataArray, dim: str, image: StoredImage, size: int, n: int) -> int:
    """Where along ``dim`` the part's coordinate puts it (the whole axis without one)."""
    if dim not in part.coords:
        if size == n:
            return 0
        raise image.error(
            f"region='auto' needs a coordinate along {dim!r} to place {size} of the stored "
            f"{n} pixels; give one, or a slice in region="
        )
    values = part.coords[dim].values
    if _is_channel(image, dim) or values.dtype.kind in "OUS":
        names = _channel_names(image)
        first = str(values[0]) if size else ""
        if names is None or first not in names:
            raise image.error(
                f"region='auto': channel {first!r} is not among the stored channels {names}"
            )
        return names.index(first)
    s, t = float(image.scales[0][image.dims.index(dim)]), image.translations[0]
    index = (float(values[0]) - float(t[image.dims.index(dim)])) / s
    start = round(index)
    if abs(index - start) > GRID_TOLERANCE * max(1.0, abs(index)):
        raise image.error(
            f"region='auto': the coordinate {dim!r} starts at {float(values[0])!r}, between "
            f"the store's pixels (scale {s}, translation {float(t[image.dims.index(dim)])})"
        )
    return int(start)


def _check_coordinates(part: xr.DataArray, dim: str, image: StoredImage, start: int) -> None:
    """Refuse a part whose coordinate along ``dim`` is not the store's at ``start``."""
    if dim not in part.coords:
        return
    values = part.coords[dim].values
    size = values.shape[0] if values.ndim else 1
    if _is_channel(image, dim) or values.dtype.kind in "OUS":
        names = _channel_names(image)
        if names is not None and list(map(str, values)) != list(names[start : start + size]):
            raise image.error(
                f"the channels {list(map(str, values))} are not the stored channels "
                f"{list(names[start : start + size])} at {start}:{start + size}"
            )
        return
    i = image.dims.index(dim)
    s, t = float(image.scales[0][i]), float(image.translations[0][i])
    expected = t + s * np.arange(start, start + size, dtype=np.float64)
    got = np.asarray(values, dtype=np.float64)
    tolerance = GRID_TOLERANCE * abs(s) + 1e-12 * np.abs(expected)
    if got.shape != expected.shape or np.any(np.abs(got - expected) > tolerance):
        raise image.error(
            f"the coordinate {dim!r} ({_describe(got)}) does not match the store's grid at "
            f"{start}:{start + size} ({_describe(expected)}; scale {s}, translation {t})"
        )


def _describe(values: np.ndarray) -> str:
    if values.size <= 4:
        return f"{values.tolist()}"
    return f"{values[0]!r} ... {values[-1]!r}, step {values[1] - values[0]!r}"


def region_part(obj: Any, image: StoredImage) -> xr.DataArray:
    """The caller's part as a DataArray in the store's dimension order."""
    if not isinstance(obj, xr.DataArray | xr.Dataset):
        raise image.error(
            f"region writes take a DataArray or Dataset, got {type(obj).__name__} "
            "(wrap an array with xoz.image or xr.DataArray(..., dims=...))"
        )
    part, _ = as_image_dataarray(obj)
    if set(part.dims) != set(image.dims):
        raise image.error(
            f"the data's dims {list(map(str, part.dims))} are not the image's {list(image.dims)}"
        )
    return part.transpose(*image.dims)


def _pixels(part: xr.DataArray, image: StoredImage) -> np.ndarray:
    dtype = image.arrays[0].dtype
    values = np.asarray(part.values)
    if values.dtype != dtype:
        if not np.can_cast(values.dtype, dtype, casting="same_kind") or (
            values.dtype.kind in "iu" and dtype.kind in "iu" and not _fits(values, dtype)
        ):
            raise image.error(
                f"the data's dtype {values.dtype} cannot be written into the stored {dtype} "
                "without loss; cast it first"
            )
        values = values.astype(dtype)
    return values


def _fits(values: np.ndarray, dtype: np.dtype) -> bool:
    info = np.iinfo(dtype)
    return values.size == 0 or (values.min() >= info.min and values.max() <= info.max)


# ---- writing a region ------------------------------------------------------------------------
@dataclass
class RegionPlan:
    """The box of each level a region changes, and how many levels lead without a lock."""

    boxes: list[Box]
    free: int


def plan_region(image: StoredImage, box: Box) -> RegionPlan:
    """The boxes of every level, and how many leading levels can be written while other
    regions are written: whole chunks (shards), made from this region's pixels alone."""
    boxes = [box]
    for step in image.steps:
        boxes.append(affected(step, boxes[-1]))
    free = 0
    if whole_units(box, image.arrays[0].shape, image.units(0)):
        free = 1
        for k, step in enumerate(image.steps, start=1):
            if is_empty(boxes[k]):
                free = k + 1
                continue
            if not self_contained(step, boxes[k - 1]):
                break
            if not whole_units(boxes[k], image.arrays[k].shape, image.units(k)):
                break
            free = k + 1
    return RegionPlan(boxes, free)


def write_region(
    obj: Any,
    store: Any,
    region: Any,
    *,
    group: str | None = None,
    safe_chunks: bool = True,
    storage_options: dict[str, Any] | None = None,
) -> None:
    """Write ``obj`` into a box of level 0 of the stored image and update every lower level.

    See :func:`xarray_ome_zarr.to_ome_zarr` (``region=``, ``safe_chunks=``).
    """
    if is_zip_path(store):
        raise OmeZarrError.at(
            "an .ozx file is written once, whole: region= cannot change it in place (write "
            "the regions into a directory, then convert it)",
            store=store_name(store, storage_options),
            key="region",
        )
    image = open_image(store, group=group, storage_options=storage_options)
    try:
        part = region_part(obj, image)
        box = resolve_region(region, part, image)
        pixels = _pixels(part, image)
        _write_region(image, box, pixels, safe_chunks)
    finally:
        image.opened.close()


def _write_region(image: StoredImage, box: Box, pixels: np.ndarray, safe_chunks: bool) -> None:
    plan = plan_region(image, box)
    levels = len(image.arrays)
    lock = lock_path(image.group.store, image.group.path)
    if plan.free < levels and lock is None and safe_chunks:
        if plan.free == 0:
            raise image.error(
                f"the region {_box_text(box, image.dims)} does not cover whole chunks "
                f"{dict(zip(image.dims, image.units(0), strict=True))} of level 0, and this "
                "store cannot be locked (not a local directory): regions written at once "
                "would overwrite each other's pixels. Align the region with the chunks, or "
                "pass safe_chunks=False if no other writer shares its chunks",
                key="region",
            )
        _marked(image, lambda: mark_stale(image.group, plan.free), plan.free)
        levels = plan.free
    if plan.free == 0:
        _under(lock, lambda: _write_levels(image, plan, pixels, 0, levels))
        return
    stop = plan.free if lock is not None else levels
    last = _write_levels(image, plan, pixels, 0, stop)
    if lock is not None and plan.free < levels:
        _under(lock, lambda: _write_levels(image, plan, last, plan.free, levels))


def _marked(image: StoredImage, change: Any, level: int | None = None) -> None:
    """Change the incomplete-pyramid mark, and the store's consolidated metadata with it
    (else readers that use it would not see the mark); nothing when nothing changes."""
    known = stale_from(image.group.attrs.asdict())
    if known == level or (level is not None and known is not None and known <= level):
        return
    path = image.group.path.strip("/")
    node = image.node.strip("/")
    root_path = path[: len(path) - len(node)].strip("/") if node else path
    root = zarr.open_group(image.group.store, path=root_path or None, mode="r+")
    with kept_consolidated(root):  # else readers that use it would not see the mark
        change()


def _under(lock: Path | None, write: Any) -> None:
    with file_lock(lock) if lock is not None else contextlib.nullcontext():
        write()


def _write_levels(
    image: StoredImage, plan: RegionPlan, pixels: np.ndarray | None, first: int, stop: int
) -> np.ndarray | None:
    """Write levels ``first`` to ``stop - 1`` of the region: level 0 from ``pixels``, the
    others from the level above (``pixels``: its box of level ``first - 1``, where known,
    else read back). Returns the pixels of the last level written."""
    if first == 0 and stop > 0:
        assert pixels is not None
        image.arrays[0][as_slices(plan.boxes[0])] = pixels
        first = 1
    arrays = image.arrays[:stop]
    if first >= len(arrays):
        return pixels
    _, last = update_levels(arrays, image.steps, plan.boxes[first - 1], first, pixels)
    return last


def _box_text(box: Box, dims: Sequence[str]) -> str:
    return "{" + ", ".join(f"{d!r}: {a}:{b}" for d, (a, b) in zip(dims, box, strict=True)) + "}"


# ---- rebuilding the pyramid ------------------------------------------------------------------
def build_pyramid(
    store: Any,
    *,
    group: str | None = None,
    storage_options: dict[str, Any] | None = None,
    from_level: int | None = None,
) -> None:
    """Rebuild the lower levels of a stored image from the levels above them.

    After regions were written at once (several processes, a dask.distributed cluster, an
    object store), the coarse levels that no single region covered are stale and the image
    says so (a warning on open, rule ``pyramid-incomplete``). This rebuilds them, each from
    the level above, with the store's method, chunk by chunk (memory stays bounded), then
    removes the marker. Call it once, after every region is written.

    Parameters
    ----------
    store
        The store (path, URL, zarr store or group), as ``to_ome_zarr`` takes it.
    group
        The image inside the store (``"labels/nuclei"``); default its root.
    storage_options
        fsspec options for URLs.
    from_level
        The first level to rebuild; default the first stale one (1 when the image is not
        marked: the whole pyramid from level 0).

    Raises
    ------
    OmeZarrError
        When there is no image, or its levels are not a pyramid of a method this package
        knows (see ``to_ome_zarr``'s ``region=``).

    Examples
    --------
    >>> import xarray_ome_zarr as xoz
    >>> xoz.build_pyramid("scan.ome.zarr")        # doctest: +SKIP
    """
    image = open_image(store, group=group, storage_options=storage_options)
    try:
        first = from_level or stale_from(image.group.attrs.asdict()) or 1
        if not first >= 1:
            raise image.error(f"from_level must be 1 or more, got {from_level!r}")
        lock = lock_path(image.group.store, image.group.path)
        with file_lock(lock) if lock is not None else contextlib.nullcontext():
            for k in range(first, len(image.arrays)):
                _rebuild_level(image, k)
            _marked(image, lambda: clear_stale(image.group))
    finally:
        image.opened.close()


def _rebuild_level(image: StoredImage, k: int) -> None:
    """Level ``k`` recomputed from level ``k - 1``, in blocks of whole write units."""
    array = image.arrays[k]
    blocks = grown_chunks(array.shape, image.units(k), array.dtype.itemsize)
    step = image.steps[k - 1]
    above = image.arrays[k - 1]

    def rebuild(slices: tuple[slice, ...]) -> None:
        box = tuple((s.start, s.stop) for s in slices)
        read = source(step, box)
        array[slices] = downsample_box(step, box, np.asarray(above[as_slices(read)]), read)

    chunks = tuple(_split(n, b) for n, b in zip(array.shape, blocks, strict=True))
    with ThreadPoolExecutor(cpu_count()) as pool:
        list(pool.map(rebuild, block_slices(chunks)))


def _split(n: int, size: int) -> tuple[int, ...]:
    full, rest = divmod(n, size)
    return (size,) * full + ((rest,) if rest else ())


__all__ = [
    "RegionPlan",
    "StoredImage",
    "build_pyramid",
    "check_template_target",
    "open_image",
    "plan_region",
    "resolve_region",
    "write_region",
    "write_template",
]
