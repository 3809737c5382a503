"""The writer's fast paths give what the plain ones give.

- the integer block mean (slabs of exact sums, integer rounding) against a float64 reshape
  mean rounded half to even;
- numpy pixels wrapped as views (no copy, no hash) by the writer only, never by
  ``to_multiscale``, and never loading a lazily opened array;
- :class:`ChunkWriter` skipping zarr's all-fill check only when no chunk can be all fill:
  the same bytes (and the same missing chunks) as zarr's own check.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xarray_ome_zarr as xoz
from xarray_ome_zarr.chunking import chunked, numpy_pixels, view_blocks
from xarray_ome_zarr.multiscale import (
    block_sums,
    mean_kernel,
    mean_slabs,
    pyramid,
    rounded_mean,
    sum_dtype,
)
from xarray_ome_zarr.targets import ChunkWriter
from xarray_ome_zarr.writer import Options, make_plan

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INTEGERS = [np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32]
SPACE3 = {"c": "channel", "z": "space", "y": "space", "x": "space"}


def files(root) -> dict[str, bytes]:
    """Every file below ``root`` by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# ---- the block mean -------------------------------------------------------------------------
def reference_mean(x: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """Block means the plain way: trailing pixels left out, float64 mean, half to even."""
    x = x[tuple(slice(0, n - n % f) for n, f in zip(x.shape, factors, strict=True))]
    shape = [s for n, f in zip(x.shape, factors, strict=True) for s in (n // f, f)]
    mean = x.astype(np.float64).reshape(shape).mean(axis=tuple(range(1, 2 * x.ndim, 2)))
    if x.dtype.kind == "b":
        return mean >= 0.5
    info = np.iinfo(x.dtype)
    return np.clip(np.rint(mean), info.min, info.max).astype(x.dtype)


def random_pixels(rng: np.random.Generator, dtype: Any, shape: tuple[int, ...], span: int):
    """Pixels over the whole range of ``dtype``, or over ``span`` values (many ties)."""
    if np.dtype(dtype).kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    info = np.iinfo(dtype)
    low, high = (info.min, info.max) if span == 0 else (info.max - span, info.max)
    return rng.integers(low, high, shape, dtype=dtype, endpoint=True)


@st.composite
def mean_cases(draw: st.DrawFn) -> tuple[np.ndarray, tuple[int, ...]]:
    """An integer block (1 to 4 axes, odd sizes too) and factors from 1 to 4."""
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 13), min_size=ndim, max_size=ndim)))
    factors = tuple(draw(st.integers(1, min(4, n))) for n in shape)
    dtype = draw(st.sampled_from(INTEGERS))
    span = draw(st.sampled_from([0, 1, 3]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return random_pixels(rng, dtype, shape, span), factors


@SETTINGS
@given(mean_cases())
def test_the_integer_mean_is_the_rounded_float_mean(case):
    x, factors = case
    out = mean_kernel(x, factors)
    expected = reference_mean(x, factors)
    assert out.dtype == x.dtype and out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", INTEGERS)
@pytest.mark.parametrize("factors", [(1, 2, 2, 2), (1, 3, 2, 4), (1, 4, 4, 4), (1, 1, 1, 1)])
def test_the_integer_mean_of_a_large_block(dtype, factors):
    """Blocks larger than a slab, of strided views too (dask blocks can be views)."""
    rng = np.random.default_rng(3)
    x = random_pixels(rng, dtype, (2, 26, 130, 260), 0)[:, 1:, 2:, 3:]
    np.testing.assert_array_equal(mean_kernel(x, factors), reference_mean(x, factors))


def test_ties_round_to_even_and_negative_sums_round_too():
    x = np.array([[-3, -2, 1, 2, 5, 6, -1, 0]], dtype=np.int8)
    np.testing.assert_array_equal(mean_kernel(x, (1, 2)), [[-2, 2, 6, 0]])  # -2.5, 1.5, 5.5, -0.5
    x = np.array([[0, 1, 1, 1, 0, 0, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(mean_kernel(x, (1, 4)), [[True, True]])  # 0.75 and 0.5
    full = np.full((4, 4), 65535, dtype=np.uint16)
    assert mean_kernel(full, (4, 4))[0, 0] == 65535
    lowest = np.full((2, 2), -(2**31), dtype=np.int32)
    assert mean_kernel(lowest, (2, 2))[0, 0] == -(2**31)


def test_sums_are_wide_enough():
    assert sum_dtype(np.dtype(np.uint16), 64) == np.uint32
    assert sum_dtype(np.dtype(np.int16), 64) == np.int32
    assert sum_dtype(np.dtype(np.uint16), 2**16) == np.int64  # 65535 * 65536 + n: too big
    assert sum_dtype(np.dtype(np.int32), 8) == np.int64
    x = np.full((2**8, 2**8), 65535, dtype=np.uint16)
    total = block_sums(x, (2**8, 2**8), sum_dtype(x.dtype, 2**16))
    assert total[0, 0] == 65535 * 2**16


@pytest.mark.parametrize("budget", [1, 100, 10_000, 2**30])
@pytest.mark.parametrize("shape", [(3, 10, 14), (1, 1, 8), (9, 4, 6)])
def test_slabs_cover_every_output_pixel_once(budget, shape):
    factors = (1, 2, 2)
    out_shape = tuple(n // f for n, f in zip(shape, factors, strict=True))
    count = np.zeros(out_shape, dtype=int)
    for source, target in mean_slabs(shape, factors, 4, budget):
        count[target] += 1
        sizes = [s.stop - s.start for s in source]
        assert sizes == [(t.stop - t.start) * f for t, f in zip(target, factors, strict=True)]
    np.testing.assert_array_equal(count, 1)


def test_rounded_mean_of_other_counts_goes_through_floats():
    total = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9], dtype=np.uint32)
    out = np.empty(total.shape, dtype=np.uint16)
    rounded_mean(total, 6, out)
    np.testing.assert_array_equal(out, np.rint(total / 6).astype(np.uint16))


# ---- numpy pixels as views ------------------------------------------------------------------
def image(shape=(2, 8, 64, 48), dtype=np.uint16) -> xr.DataArray:
    data = np.random.default_rng(0).integers(0, 1000, shape, dtype=dtype)
    return xr.DataArray(data, dims=("c", "z", "y", "x"), name="img")


def blocks_of(array: da.Array) -> list[np.ndarray]:
    return [array.blocks[i].compute() for i in np.ndindex(*array.numblocks)]


def test_view_blocks_are_views_with_unique_names():
    x = np.arange(7 * 10).reshape(7, 10)
    a, b = view_blocks(x, (3, 4)), view_blocks(x, (3, 4))
    assert a.name != b.name and a.chunks == ((3, 3, 1), (4, 4, 2))
    graph = dict(a.__dask_graph__())
    assert all(np.shares_memory(v, x) for v in graph.values())
    np.testing.assert_array_equal(a.compute(), x)
    assert a.dtype == x.dtype and isinstance(a._meta, np.ndarray)


def test_only_the_writer_wraps_numpy_pixels_as_views():
    level = image()
    kwargs = {"scale_factors": [2], "method": None, "types": SPACE3, "label": False}
    viewed, _ = pyramid(level, views=True, **kwargs)
    copied, _ = pyramid(level, **kwargs)
    pixels = level.values
    assert all(np.shares_memory(v, pixels) for v in viewed[0].data.dask.values())
    assert not any(np.shares_memory(b, pixels) for b in blocks_of(copied[0].data))
    tree = xoz.to_multiscale(level, [2])
    assert not any(np.shares_memory(b, pixels) for b in blocks_of(tree["scale0"]["img"].data))
    for a, b in zip(viewed, copied, strict=True):
        xr.testing.assert_identical(a.compute(), b.compute())


def test_the_plan_views_numpy_levels_of_a_tree():
    levels = [image(), image((2, 8, 32, 24))]
    tree = xr.DataTree.from_dict({f"scale{i}": lv.to_dataset() for i, lv in enumerate(levels)})
    tree.attrs = xoz.to_multiscale(levels[0], [2]).attrs
    plan = make_plan(tree, Options("0.5"))
    for array, level in zip(plan.arrays, levels, strict=True):
        values = dict(array.data.__dask_graph__()).values()
        assert all(np.shares_memory(v, level.values) for v in values)


def test_chunked_copies_unless_asked_and_never_loads_a_lazy_array(tmp_path):
    level = image()
    assert numpy_pixels(level) is level.values
    copied = chunked(level, {"z": 4})
    assert copied.chunks == ((2,), (4, 4), (64,), (48,))
    assert not np.shares_memory(copied.data.blocks[0, 0].compute(), level.values)
    level.to_dataset().to_zarr(tmp_path / "lazy.zarr", zarr_format=3, consolidated=False)
    lazy = xr.open_dataset(tmp_path / "lazy.zarr", engine="zarr", chunks=None, consolidated=False)
    lazy = lazy["img"]
    assert numpy_pixels(lazy) is None
    assert not lazy.variable._in_memory
    wrapped = chunked(lazy, {"z": 4}, views=True)
    assert not lazy.variable._in_memory and wrapped.chunks[1] == (4, 4)
    xr.testing.assert_identical(wrapped.compute(), level.to_dataset()["img"])


def test_a_numpy_write_equals_a_dask_write(tmp_path):
    level = image((2, 8, 130, 90)).assign_coords(z=np.arange(8) * 2.0)
    xoz.to_ome_zarr(level, tmp_path / "numpy.ome.zarr", scale_factors=[2, 2])
    xoz.to_ome_zarr(level.chunk({"z": 3}), tmp_path / "dask.ome.zarr", scale_factors=[2, 2])
    assert files(tmp_path / "numpy.ome.zarr") == files(tmp_path / "dask.ome.zarr")


# ---- ChunkWriter ----------------------------------------------------------------------------
def write_both(
    tmp_path, data: np.ndarray, blocks: tuple[int, ...], fmt: int = 3, **create: Any
) -> tuple[dict[str, bytes], dict[str, bytes], ChunkWriter]:
    """The files zarr writes itself (it checks every chunk), and through a ChunkWriter
    (blocks of whole chunks or shards, as the writer's dask blocks are)."""
    arrays = [
        zarr.open_group(tmp_path / name, mode="w", zarr_format=fmt).create_array(
            "a", shape=data.shape, dtype=data.dtype, **create
        )
        for name in ("zarr", "writer")
    ]
    arrays[0][...] = data
    writer = ChunkWriter(arrays[1].with_config({"write_empty_chunks": True}))
    da.store(da.from_array(data, chunks=blocks), writer, lock=False)
    return files(tmp_path / "zarr"), files(tmp_path / "writer"), writer


LAYOUTS = [
    {"chunks": (4, 8, 8)},
    {"chunks": (4, 8, 8), "shards": (4, 16, 16)},
    {"chunks": (3, 5, 7)},
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fill", [0, 7])
def test_a_mostly_empty_label_image_keeps_its_missing_chunks(tmp_path, layout, fill):
    data = np.full((8, 32, 32), fill, dtype=np.uint16)
    data[1, 2:4, 3:5] = 9
    data[5, 20, 30] = 3
    unit = layout.get("shards", layout["chunks"])
    blocks = tuple(2 * u for u in unit)
    plain, written, _ = write_both(tmp_path, data, blocks, fill_value=fill, **layout)
    assert written == plain
    assert 1 < len([k for k in plain if "/c/" in k]) < 8


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fmt", [2, 3])
def test_an_image_without_empty_chunks_writes_every_chunk(tmp_path, layout, fmt):
    if fmt == 2 and "shards" in layout:
        pytest.skip("no shards in zarr v2")
    data = np.random.default_rng(0).integers(1, 5000, (8, 32, 32), dtype=np.uint16)
    data[0, 0, 1] = 0  # not the first pixel of a chunk: cannot make a chunk empty
    unit = layout.get("shards", layout["chunks"])
    plain, written, writer = write_both(tmp_path, data, unit, fmt=fmt, **layout)
    assert written == plain
    chunks = layout["chunks"]
    key = tuple(slice(0, n) for n in data.shape)
    assert writer.no_empty_chunk(key, data)
    expected = math.prod(-(-n // c) for n, c in zip(data.shape, unit, strict=True))
    assert len([k for k in plain if k.split("/")[-1] not in ("zarr.json", ".zarray")]) >= expected
    data[0, 0, 0] = 0
    assert not writer.no_empty_chunk(key, data)
    assert writer.chunks == chunks


def test_nan_fill_values_count_as_fill(tmp_path):
    data = np.random.default_rng(1).random((8, 32, 32)).astype(np.float32)
    data[4:, 16:, :8] = np.nan  # one whole chunk of fill
    plain, written, writer = write_both(
        tmp_path, data, (8, 32, 32), chunks=(4, 16, 8), fill_value=np.nan
    )
    assert written == plain and len([k for k in plain if "/c/" in k]) == 15
    key = tuple(slice(0, n) for n in data.shape)
    assert not writer.no_empty_chunk(key, data)
    data[...] = 1.0
    assert writer.no_empty_chunk(key, data)
    data[0, 0, 0] = 0.0
    assert writer.no_empty_chunk(key, data)  # NaN is the fill value, not zero


def test_blocks_off_the_chunk_grid_are_checked_by_zarr(tmp_path):
    root = zarr.open_group(tmp_path / "g", mode="w")
    array = root.create_array("a", shape=(8, 8), dtype="u2", chunks=(4, 4))
    writer = ChunkWriter(array)
    ones = np.ones((4, 4), dtype="u2")
    assert writer.no_empty_chunk((slice(4, 8), slice(0, 4)), ones)
    assert not writer.no_empty_chunk((slice(2, 6), slice(0, 4)), ones)
    assert not writer.no_empty_chunk((slice(0, 4, 2), slice(0, 4)), ones)
    assert not writer.no_empty_chunk(Ellipsis, ones)
    writer[2:6, 0:4] = ones
    np.testing.assert_array_equal(array[2:6, 0:4], ones)


def test_a_chunk_writer_pickles_and_writes_after(tmp_path):
    root = zarr.open_group(tmp_path / "g", mode="w")
    array = root.create_array("a", shape=(8, 8), dtype="u2", chunks=(4, 4))
    clone = pickle.loads(pickle.dumps(ChunkWriter(array)))
    clone[0:4, 0:8] = np.full((4, 8), 5, dtype="u2")
    np.testing.assert_array_equal(array[...], np.repeat([5, 0], 4)[:, None] * np.ones(8))
    assert sorted(files(tmp_path / "g" / "a")) == ["c/0/0", "c/0/1", "zarr.json"]
