"""Chunk shapes: zarr chunk defaults, and dask blocks made of whole chunks or shards.

Used by the writer (the blocks each task writes) and by the pyramid builder (the blocks it
downsamples). Numpy pixels can be wrapped as dask blocks without a copy (:func:`chunked`
with ``views``) for a computation that ends before the caller gets them back.
"""

from __future__ import annotations

import itertools
import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ._compat import block_slices, in_memory_numpy

#: Largest chunk the default chunking makes, in bytes.
MAX_CHUNK_BYTES = 4 * 2**20
#: About the size of the dask blocks the writer and the pyramid builder make, in bytes.
DASK_CHUNK_BYTES = 32 * 2**20


def aligned_chunks(chunks: tuple[tuple[int, ...], ...], units: Sequence[int]) -> tuple:
    """Chunks along each axis that are multiples of ``units`` (the last may be shorter)."""
    out = []
    for sizes, unit in zip(chunks, units, strict=True):
        total = sum(sizes)
        if all(s % unit == 0 for s in sizes[:-1]):
            out.append(sizes)
            continue
        step = max(unit, (max(sizes) // unit) * unit)
        full, rest = divmod(total, step)
        out.append((step,) * full + ((rest,) if rest else ()))
    return tuple(out)


def default_chunks(
    dims: Sequence[str], shape: Sequence[int], types: Mapping[str, Any], itemsize: int
) -> tuple[int, ...]:
    """Chunks of a few MiB at most: 1 along time, channel and custom axes; 256 along the
    space axes of a 2-D image; 64 along z of a 3-D one with y and x at 128 (2 MiB of uint16:
    fewer, larger chunks write faster, docs/benchmarks.md), widened up to 256 when z is
    thin."""
    spaces = [d for d in dims if types.get(d) == "space"]
    sizes = dict(zip(dims, shape, strict=True))
    chunk = {d: 1 for d in dims}
    if len(spaces) == 2:
        chunk.update({d: 256 for d in spaces})
    elif spaces:
        first, rest = spaces[0], spaces[1:]
        depth = min(sizes[first], 64)
        side = min(256, int(math.sqrt(64 * 128 * 128 / max(depth, 1))))
        chunk.update({first: depth, **{d: side for d in rest}})
    out = [max(1, min(chunk[d], sizes[d])) for d in dims]
    while math.prod(out) * itemsize > MAX_CHUNK_BYTES and max(out) > 1:
        i = out.index(max(out))
        out[i] = max(1, out[i] // 2)
    return tuple(out)


def grown_chunks(
    shape: Sequence[int], unit: Sequence[int], itemsize: int, budget: int = DASK_CHUNK_BYTES
) -> tuple[int, ...]:
    """Dask chunks made of whole ``unit`` blocks (zarr chunks or shards), grown along the
    last axes first up to about ``budget`` bytes: fewer, larger tasks for zarr to write."""
    sizes = [max(1, min(u, n)) for u, n in zip(unit, shape, strict=True)]
    for i in reversed(range(len(sizes))):
        room = budget // max(1, math.prod(sizes) * itemsize)
        if room < 2:
            break
        sizes[i] = min(shape[i], sizes[i] * min(room, -(-shape[i] // sizes[i])))
    return tuple(sizes)


def numpy_pixels(level: xr.DataArray) -> np.ndarray | None:
    """The level's pixels when they are a numpy array in memory, else ``None``."""
    return in_memory_numpy(level.variable)  # not .data: it loads lazily opened arrays


def view_blocks(x: np.ndarray, chunks: Sequence[int]) -> da.Array:
    """A dask array over views of ``x``: no copy and no hash of the pixels (which
    ``dask.array.from_array`` makes). Only for a computation that ends before ``x`` changes."""
    normal = da.core.normalize_chunks(tuple(chunks), x.shape, dtype=x.dtype)
    name = f"numpy-views-{uuid.uuid4().hex}"
    keys = itertools.product([name], *(range(len(c)) for c in normal))
    graph = {key: x[s] for key, s in zip(keys, block_slices(normal), strict=True)}
    return da.Array(graph, name, normal, meta=np.empty((0,) * x.ndim, dtype=x.dtype))


def chunked(level: xr.DataArray, chunks: Mapping[str, int], views: bool = False) -> xr.DataArray:
    """``level`` as dask blocks of ``chunks``; with ``views``, numpy pixels are not copied
    (see :func:`view_blocks`), for a write that ends before the caller gets them back."""
    pixels = numpy_pixels(level) if views else None
    if pixels is None:
        return level.chunk(chunks)
    sizes = tuple(chunks.get(str(d), n) for d, n in zip(level.dims, level.shape, strict=True))
    return level.copy(deep=False, data=view_blocks(pixels, sizes))
