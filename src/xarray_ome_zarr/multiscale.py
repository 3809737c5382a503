"""Image pyramids: downsampling kernels, the pyramid's geometry and ``to_multiscale``.

Lazy with dask, so large images stream through. The writer builds its pyramids here
(:func:`pyramid`); what the levels look like in xarray and the OME attributes that describe
them come from :mod:`.layout`, the chunk shapes from :mod:`.chunking`.

A level downsampled by ``f`` along an axis has ``n // f`` pixels. When ``f`` does not divide
``n``, the first ``n % f`` pixels are left out, as multiscale-spatial-image's block averaging
(xarray ``coarsen(boundary="trim", side="right")``) does, so both give the same levels. The
pixel centres follow the pixel-centre rule from the first pixel kept, at ``t``: scale
``f * s``, translation ``t + (f - 1) / 2 * s``. ``scale_factors`` mean what
multiscale-spatial-image means by them: each entry is relative to the level before it
(``[2, 2]`` gives levels 2x and 4x smaller than the first).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ._version import __version__
from .chunking import aligned_chunks, chunked, default_chunks, grown_chunks
from .coordinate_index import exact_geometry, pixel_centre_coordinates
from .errors import OmeZarrError
from .layout import (
    PATH_ATTR,
    SCALE_ATTR,
    TYPE_ATTR,
    as_image_dataarray,
    axes_by_name,
    axis_types,
    coordinate_geometry,
    image_attributes,
    is_label_source,
    source_of,
    variable_name,
)
from .node_attrs import node_attrs
from .transforms import coordinate_values, downsampled

#: Downsampling methods, by name.
METHODS = ("mean", "nearest", "mode", "gaussian")
#: Gaussian kernels are cut at this many standard deviations (as scipy.ndimage does).
TRUNCATE = 4.0
#: About how many bytes of integer sums the block mean works on at a time (cache-sized).
MEAN_SLAB_BYTES = 2**20

FactorsLike = Sequence[int | Mapping[str, int]]


# ---- factors -----------------------------------------------------------------------------
def level_factors(
    scale_factors: FactorsLike, dims: Sequence[str], types: Mapping[str, Any]
) -> list[tuple[int, ...]]:
    """Per-dimension factors of each new level, relative to the level before it.

    An int applies to every space axis; a dict names space axes. Time, channel and custom
    axes are never downsampled.
    """
    if isinstance(scale_factors, int | Mapping) or not isinstance(scale_factors, Sequence):
        raise OmeZarrError(
            f"scale_factors must be a list of ints or of dicts by dimension, got {scale_factors!r}"
        )
    out = []
    for i, factor in enumerate(scale_factors):
        if isinstance(factor, Mapping):
            unknown = [k for k in factor if k not in dims]
            if unknown:
                raise OmeZarrError(f"scale_factors[{i}]: no dimension {unknown} in {list(dims)}")
            per_dim = {str(k): _factor(v, i) for k, v in factor.items()}
        else:
            f = _factor(factor, i)
            per_dim = {d: f for d in dims if types.get(d) == "space"}
        bad = [d for d, f in per_dim.items() if f != 1 and types.get(d) != "space"]
        if bad:
            raise OmeZarrError(
                f"scale_factors[{i}]: only space axes are downsampled, not {bad} "
                f"(types {[types.get(d) or 'custom' for d in bad]})"
            )
        out.append(tuple(per_dim.get(d, 1) for d in dims))
    return out


def _factor(value: Any, index: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise OmeZarrError(f"scale_factors[{index}]: factors are ints >= 1, got {value!r}")
    return int(value)


# ---- numpy kernels, one block at a time (block shapes are multiples of the factors) -------
def _blocked(x: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """View ``x`` as (n0, f0, n1, f1, ...): each pixel block along the odd axes."""
    shape = [s for n, f in zip(x.shape, factors, strict=True) for s in (n // f, f)]
    return x.reshape(shape)


def _factor_axes(ndim: int) -> tuple[int, ...]:
    return tuple(range(1, 2 * ndim, 2))


def cast_like(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast computed values back to ``dtype``: integers rounded and clipped to their range."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return values >= 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype, copy=False)


def _accumulator(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.complex128) if np.dtype(dtype).kind == "c" else np.dtype(np.float64)


def sum_dtype(dtype: np.dtype, n: int) -> np.dtype:
    """The integer type that holds the exact sum of ``n`` pixels of ``dtype`` (plus ``n``)."""
    dtype = np.dtype(dtype)
    span = 2 ** (8 * dtype.itemsize) * (n + 1)
    if dtype.kind in "ub" and dtype.itemsize <= 2 and span <= 2**32:
        return np.dtype(np.uint32)
    if dtype.kind == "i" and dtype.itemsize <= 2 and span <= 2**31:
        return np.dtype(np.int32)
    return np.dtype(np.int64)


def block_sums(x: np.ndarray, factors: Sequence[int], wide: np.dtype) -> np.ndarray:
    """Exact sums of the blocks of ``x`` in ``wide``, from strided slices one axis at a time.

    The first sum widens in the ufunc (no widened copy of ``x``); outer axes go first, so the
    strided last axis is summed when the data is smallest.
    """
    total = x
    for axis, f in enumerate(factors):
        if f == 1:
            continue
        index = [slice(None)] * x.ndim
        parts = []
        for offset in range(f):
            index[axis] = slice(offset, None, f)
            parts.append(total[tuple(index)])
        out = np.add(parts[0], parts[1], dtype=wide)
        for part in parts[2:]:
            out += part
        total = out
    return total


def rounded_mean(total: np.ndarray, n: int, out: np.ndarray) -> None:
    """Write ``total / n`` into ``out`` as :func:`cast_like` would (half to even, clipped).

    When ``n`` is a power of two, integer shifts give the same result as float64 division,
    :func:`numpy.rint` and clipping (the quotient is exact; a mean is always in range).
    """
    if out.dtype.kind in "iu" and n & (n - 1) == 0:
        k = n.bit_length() - 1
        rounded = total >> k
        rounded &= 1  # odd quotient: a tie rounds up, to the even one
        rounded += n // 2 - 1
        rounded += total
        rounded >>= k
        out[...] = rounded
    else:
        out[...] = cast_like(total / n, out.dtype)


def mean_slabs(
    shape: Sequence[int], factors: Sequence[int], itemsize: int, budget: int = MEAN_SLAB_BYTES
) -> Iterator[tuple[tuple[slice, ...], tuple[slice, ...]]]:
    """(input, output) slices of slabs of whole blocks of about ``budget`` bytes of sums.

    Slabs are cut along the outermost axis whose rows of blocks fit the budget, one block
    along the axes before it.
    """
    ndim = len(shape)
    out_shape = [n // f for n, f in zip(shape, factors, strict=True)]

    def row_bytes(axis: int) -> int:
        return math.prod(factors[: axis + 1]) * math.prod(shape[axis + 1 :]) * itemsize

    axis = next((a for a in range(ndim) if row_bytes(a) <= budget), ndim - 1)
    rows = max(1, budget // row_bytes(axis))
    leading = [range(n) for n in out_shape[:axis]]
    for *lead, start in itertools.product(*leading, range(0, out_shape[axis], rows)):
        stops = [i + 1 for i in lead] + [min(start + rows, out_shape[axis])]
        out = tuple(map(slice, [*lead, start], stops))
        out += tuple(slice(0, n) for n in out_shape[axis + 1 :])
        yield tuple(slice(s.start * f, s.stop * f) for s, f in zip(out, factors, strict=True)), out


def mean_kernel(x: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """Mean of each block (trailing pixels that make no whole block are left out).

    Integer pixels are summed exactly (:func:`block_sums`) slab by slab, so the sums stay in
    the CPU cache, and rounded half to even (:func:`rounded_mean`); other dtypes take
    numpy's mean.
    """
    if x.dtype.kind not in "iub" or x.dtype.itemsize > 4:
        blocks = _blocked(x, factors)
        mean = blocks.mean(axis=_factor_axes(x.ndim), dtype=_accumulator(x.dtype))
        return cast_like(mean, x.dtype)
    factors = tuple(int(f) for f in factors)
    n = math.prod(factors)
    out = np.empty(tuple(s // f for s, f in zip(x.shape, factors, strict=True)), x.dtype)
    if n == 1 or out.size == 0:
        out[...] = x[tuple(slice(0, m) for m in out.shape)]
        return out
    wide = sum_dtype(x.dtype, n)
    for source, target in mean_slabs(x.shape, factors, wide.itemsize):
        rounded_mean(block_sums(x[source], factors, wide), n, out[target])
    return out


def nearest_kernel(x: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """The pixel of each block nearest its centre (the lower one of a tie)."""
    return x[tuple(slice((f - 1) // 2, None, f) for f in factors)]


def centre_kernel(x: np.ndarray, factors: Sequence[int], dtype: np.dtype) -> np.ndarray:
    """Linear interpolation at each block's centre: the mean of its one or two central pixels."""
    blocks = _blocked(x, factors)
    centre = tuple(s for f in factors for s in (slice(None), slice((f - 1) // 2, f // 2 + 1)))
    return cast_like(blocks[centre].mean(axis=_factor_axes(x.ndim)), dtype)


def mode_kernel(x: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """The most frequent value of each block (the smallest of a tie): never a new value."""
    ndim = x.ndim
    blocks = _blocked(x, factors)
    order = tuple(range(0, 2 * ndim, 2)) + _factor_axes(ndim)
    counts = (n // f for n, f in zip(x.shape, factors, strict=True))
    flat = blocks.transpose(order).reshape(*counts, -1)
    values = np.sort(flat, axis=-1)
    size = values.shape[-1]
    starts = np.ones(values.shape, dtype=bool)
    starts[..., 1:] = values[..., 1:] != values[..., :-1]
    index = np.arange(size)
    run_start = np.maximum.accumulate(np.where(starts, index, 0), axis=-1)
    best = np.argmax(index - run_start, axis=-1)
    return np.take_along_axis(values, best[..., None], axis=-1)[..., 0]


def gaussian_sigma(factor: int) -> float:
    """Standard deviation, in pixels, of the anti-aliasing kernel for a factor.

    The kernel's full width at half maximum grows the pixel from 1 to ``factor``:
    ``sigma = sqrt(f**2 - 1) / (2 * sqrt(2 * ln 2))``.
    """
    return math.sqrt(factor**2 - 1) / (2 * math.sqrt(2 * math.log(2)))


def gaussian_weights(sigma: float) -> np.ndarray:
    """A normalised 1-D Gaussian kernel cut at :data:`TRUNCATE` standard deviations."""
    radius = int(TRUNCATE * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (x / sigma) ** 2)
    return weights / weights.sum()


def smooth_kernel(x: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
    """Separable Gaussian smoothing with edge pixels repeated beyond the border."""
    y = x.astype(_accumulator(x.dtype))
    for axis, sigma in enumerate(sigmas):
        if sigma <= 0:
            continue
        weights = gaussian_weights(sigma)
        radius = len(weights) // 2
        pad = [(0, 0)] * y.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(y, pad, mode="edge")
        out = np.zeros_like(y)
        n = y.shape[axis]
        for i, w in enumerate(weights):
            out += w * np.take(padded, np.arange(i, i + n), axis=axis)
        y = out
    return y


# ---- dask ---------------------------------------------------------------------------------
def _smooth(arr: da.Array, factors: Sequence[int]) -> da.Array:
    sigmas = [gaussian_sigma(f) for f in factors]
    radii = [len(gaussian_weights(s)) // 2 if s > 0 else 0 for s in sigmas]
    # An axis whose blocks are thinner than the kernel is smoothed in one block.
    whole = {i: -1 for i, r in enumerate(radii) if r and r >= min(arr.chunks[i])}
    if whole:
        arr = arr.rechunk(whole)
    depth = {i: (0 if i in whole or r >= arr.shape[i] else r) for i, r in enumerate(radii)}
    return arr.map_overlap(
        smooth_kernel,
        depth=depth,
        boundary="nearest",
        dtype=_accumulator(arr.dtype),
        sigmas=sigmas,
    )


def kept(shape: Sequence[int], factors: Sequence[int]) -> tuple[slice, ...]:
    """The pixels a downsampling keeps: the first ``n % f`` along each axis are left out."""
    return tuple(slice(n % f, None) for n, f in zip(shape, factors, strict=True))


def downsample_numpy(x: np.ndarray, factors: Sequence[int], method: str) -> np.ndarray:
    """``x`` downsampled as :func:`downsample` does, in memory (the same pixels)."""
    factors = tuple(int(f) for f in factors)
    if method == "gaussian":
        return np.asarray(downsample(da.from_array(x, chunks=x.shape), factors, method))
    kernels = {"mean": mean_kernel, "nearest": nearest_kernel, "mode": mode_kernel}
    if method not in kernels:
        raise OmeZarrError(f"unknown downsampling method {method!r}; choose from {METHODS}")
    return np.ascontiguousarray(kernels[method](x[kept(x.shape, factors)], factors))


def downsample(arr: da.Array, factors: Sequence[int], method: str) -> da.Array:
    """``arr`` downsampled by ``factors`` (one per axis) with ``method``, lazily."""
    if method not in METHODS:
        raise OmeZarrError(f"unknown downsampling method {method!r}; choose from {METHODS}")
    factors = tuple(int(f) for f in factors)
    dtype = arr.dtype
    if method == "gaussian":
        arr = _smooth(arr, factors)
    arr = arr[kept(arr.shape, factors)]
    arr = arr.rechunk(aligned_chunks(arr.chunks, factors))
    out_chunks = tuple(
        tuple(c // f for c in sizes) for sizes, f in zip(arr.chunks, factors, strict=True)
    )
    if method == "mean":
        return arr.map_blocks(mean_kernel, factors, chunks=out_chunks, dtype=dtype)  # type: ignore[arg-type]
    if method == "nearest":
        return arr.map_blocks(nearest_kernel, factors, chunks=out_chunks, dtype=dtype)  # type: ignore[arg-type]
    if method == "mode":
        return arr.map_blocks(mode_kernel, factors, chunks=out_chunks, dtype=dtype)  # type: ignore[arg-type]
    return arr.map_blocks(centre_kernel, factors, dtype, chunks=out_chunks, dtype=dtype)  # type: ignore[arg-type]


def default_method(dtype: np.dtype, label: bool) -> str:
    """``mode`` for integer label images, ``mean`` otherwise."""
    return "mode" if label and np.dtype(dtype).kind in "iu" else "mean"


# ---- pyramid ------------------------------------------------------------------------------
def downsample_level(
    level: xr.DataArray, factors: Sequence[int], method: str, types: Mapping[str, Any]
) -> xr.DataArray:
    """The next level: data downsampled, coordinates moved to the new pixel centres."""
    dims = [str(d) for d in level.dims]
    shape = tuple(n // f for n, f in zip(level.shape, factors, strict=True))
    data = downsample(level.data, factors, method)
    coords: dict[str, Any] = {}
    lazy: list[xr.Coordinates] = []  # lazy coordinates stay lazy
    for dim, n, f in zip(dims, shape, factors, strict=True):
        coord = level.coords.get(dim)
        is_lazy = coord is not None and exact_geometry(coord) is not None
        if f == 1:
            if is_lazy and coord is not None:
                lazy.append(xr.Coordinates.from_xindex(level.xindexes[dim]))
                lazy[-1][dim].attrs = dict(coord.attrs)
            elif coord is not None:
                coords[dim] = coord.variable.copy(deep=False)
            continue
        step, first = coordinate_geometry(level, dim, types.get(dim)) or (1.0, 0.0)
        scale, translation = downsampled(step, first + (level.sizes[dim] % f) * step, f)
        attrs = copy.deepcopy(dict(coord.attrs)) if coord is not None else {}
        attrs.setdefault(TYPE_ATTR, types.get(dim))
        attrs[SCALE_ATTR] = scale
        if is_lazy:
            lazy.append(pixel_centre_coordinates(n, scale, translation, dim, attrs))
        else:
            coords[dim] = xr.Variable(dim, coordinate_values(n, scale, translation), attrs=attrs)
    for name, coord in level.coords.items():
        kept_dims = {d for d, f in zip(dims, factors, strict=True) if f == 1}
        if name not in coords and name not in dims and set(coord.dims) <= kept_dims:
            coords[str(name)] = coord.variable.copy(deep=False)
    out = xr.DataArray(data, dims=dims, coords=coords, name=level.name, attrs=dict(level.attrs))
    for one in lazy:
        out = out.assign_coords(one)
    return out


def with_pixel_coordinates(image: xr.DataArray, types: Mapping[Any, Any]) -> xr.DataArray:
    """``image`` with a pixel-index coordinate on each space or time axis that has none."""
    missing = {
        d: xr.Variable(d, np.arange(n, dtype=np.float64), attrs={TYPE_ATTR: types[d]})
        for d, n in image.sizes.items()
        if types.get(d) in ("space", "time") and d not in image.coords
    }
    return image.assign_coords(missing) if missing else image


def check_shapes(shape: Sequence[int], dims: Sequence[str], steps: Sequence[Sequence[int]]) -> None:
    """Refuse factors that would leave an axis with no pixel."""
    current = list(shape)
    for i, step in enumerate(steps):
        current = [n // f for n, f in zip(current, step, strict=True)]
        empty = [d for d, n in zip(dims, current, strict=True) if n < 1]
        if empty:
            raise OmeZarrError(
                f"scale_factors[{i}] leaves no pixel along {empty} of an image of shape "
                f"{tuple(shape)} {tuple(dims)}"
            )


def pyramid(
    image: xr.DataArray,
    scale_factors: FactorsLike,
    method: str | None,
    types: Mapping[str, Any],
    label: bool,
    chunks: Any = None,
    *,
    views: bool = False,
) -> tuple[list[xr.DataArray], str]:
    """Every level of the pyramid of ``image`` (itself first) and the method used.

    ``views`` (for the writer, which computes before it returns): numpy pixels are wrapped
    as dask blocks without the copy and hash of ``DataArray.chunk``.
    """
    dims = [str(d) for d in image.dims]
    steps = level_factors(scale_factors, dims, types)
    check_shapes(image.shape, dims, steps)
    method = method or default_method(image.dtype, label)
    if method not in METHODS:
        raise OmeZarrError(f"unknown downsampling method {method!r}; choose from {METHODS}")
    base = with_pixel_coordinates(image, types)
    if chunks is not None:
        base = base.chunk(chunks)
    elif base.chunks is None:
        unit = default_chunks(dims, base.shape, types, base.dtype.itemsize)
        grown = grown_chunks(base.shape, unit, base.dtype.itemsize)
        base = chunked(base, dict(zip(dims, grown, strict=True)), views)
    target = {d: max(c) for d, c in zip(dims, base.chunks, strict=True)}  # type: ignore[arg-type]
    levels = [base]
    for step in steps:
        level = downsample_level(levels[-1], step, method, types)
        level = level.chunk(chunks if chunks is not None else _clipped(target, level))
        level.encoding = derived_encoding(base.encoding)
        levels.append(level)
    return levels, method


def _clipped(target: Mapping[str, int], level: xr.DataArray) -> dict[str, int]:
    return {d: min(c, level.sizes[d]) for d, c in target.items()}


def derived_encoding(encoding: Mapping[str, Any]) -> dict[str, Any]:
    """The zarr encoding of a level made from one with ``encoding``: the same codecs and
    layout (chunks and shards as they are: zarr allows them larger than the level, and a
    level that grows later, by appends, keeps its base's layout)."""
    return {k: v for k, v in encoding.items() if k != "preferred_chunks"}


def to_multiscale(
    image: xr.DataArray | xr.Dataset,
    scale_factors: FactorsLike,
    method: str | None = None,
    chunks: Any = None,
) -> xr.DataTree:
    """Build an image pyramid: a DataTree with levels ``scale0`` .. ``scaleN``.

    Parameters
    ----------
    image
        A DataArray (or one-variable Dataset) with pixel-centre coordinates.
    scale_factors
        One entry per new level, relative to the level before it (as in
        multiscale-spatial-image): an int for every space axis, or a dict by dimension.
    method
        ``"mean"`` (default), ``"nearest"``, ``"mode"`` (default for integer label images:
        no new label value) or ``"gaussian"``.
    chunks
        Dask chunks of every level (as for ``DataArray.chunk``); default: the input's.

    Returns
    -------
    xarray.DataTree
        The image in the in-memory model: its ``attrs["ome_group_attrs"]`` are OME 0.5 group
        attributes describing the levels, each level a Dataset with one variable and its own
        coordinates.

    Raises
    ------
    OmeZarrError
        For bad factors, a factor on a non-space axis, or axes OME-Zarr cannot store.

    Examples
    --------
    >>> import numpy as np, xarray_ome_zarr as xoz
    >>> image = xoz.image(np.zeros((16, 256, 256), "uint16"), scale={"z": 1, "y": .2, "x": .2})
    >>> tree = xoz.to_multiscale(image, [2, 2])        # 2x, then 4x smaller than scale0
    >>> [tree[f"scale{i}"]["image"].shape for i in range(3)]
    [(16, 256, 256), (8, 128, 128), (4, 64, 64)]
    >>> xoz.to_multiscale(image, [{"y": 2, "x": 2}], method="nearest")  # doctest: +SKIP
    """
    array, group_attrs = as_image_dataarray(image)
    source, stored = source_of(group_attrs)
    types = axis_types(array, axes_by_name(stored))
    label = is_label_source(source)
    levels, used = pyramid(array, scale_factors, method, types, label, chunks)
    name = variable_name(array.name)
    datasets = [
        lv.rename(name).to_dataset(promote_attrs=False).assign_attrs({PATH_ATTR: str(i)})
        for i, lv in enumerate(levels)
    ]
    attrs = image_attributes(
        datasets, group_attrs, "0.5", type=used, metadata=method_metadata(used, scale_factors)
    )
    tree = {"/": xr.Dataset(attrs=node_attrs(attrs))}
    tree.update({f"/scale{i}": ds for i, ds in enumerate(datasets)})
    return xr.DataTree.from_dict(tree)


def method_metadata(method: str, scale_factors: Any) -> dict[str, Any]:
    """The multiscale's ``metadata`` block for a pyramid this package built."""
    described = {
        "mean": "block mean",
        "nearest": "the pixel nearest each block's centre",
        "mode": "the most frequent value of each block (smallest of a tie)",
        "gaussian": "Gaussian anti-aliasing, then linear interpolation at block centres",
    }[method]
    return {
        "description": f"Downsampled by {described}; factors relative to the previous level",
        "method": "xarray_ome_zarr.multiscale.downsample",
        "version": __version__,
        "args": {"scale_factors": _jsonable_factors(scale_factors)},
    }


def _jsonable_factors(scale_factors: Any) -> Any:
    return [
        {str(k): int(v) for k, v in f.items()} if isinstance(f, Mapping) else int(f)
        for f in scale_factors
    ]
