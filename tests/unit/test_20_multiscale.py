"""Downsampling kernels and pyramid geometry, checked against plain numpy (and scipy)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from xarray_ome_zarr import OmeZarrError
from xarray_ome_zarr.chunking import aligned_chunks, default_chunks, grown_chunks
from xarray_ome_zarr.multiscale import (
    default_method,
    derived_encoding,
    downsample,
    downsample_level,
    gaussian_sigma,
    gaussian_weights,
    level_factors,
    mode_kernel,
)

SPACE3 = {"c": "channel", "z": "space", "y": "space", "x": "space"}


def kept(x: np.ndarray, factors) -> np.ndarray:
    """What is left after the leading remainder of each axis is dropped."""
    return x[tuple(slice(n % f, None) for n, f in zip(x.shape, factors, strict=True))]


def blocks_of(x: np.ndarray, factors) -> np.ndarray:
    """Blocks as the last axis: shape (n0 // f0, n1 // f1, f0 * f1)."""
    x = kept(x, factors)
    (n0, n1), (f0, f1) = x.shape, factors
    return (
        x.reshape(n0 // f0, f0, n1 // f1, f1).transpose(0, 2, 1, 3).reshape(n0 // f0, n1 // f1, -1)
    )


def dask_of(x: np.ndarray, chunks=(4, 5)) -> da.Array:
    return da.from_array(x, chunks=chunks)


# ---- methods against numpy -------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(12, 20), (13, 23), (7, 5)])
@pytest.mark.parametrize("factors", [(2, 2), (3, 2), (1, 4)])
def test_mean_is_the_block_mean(shape, factors):
    x = np.random.default_rng(0).random(shape)
    out = downsample(dask_of(x), factors, "mean").compute()
    np.testing.assert_allclose(out, blocks_of(x, factors).mean(axis=-1), rtol=1e-12)


def test_mean_of_integers_is_rounded_not_truncated():
    x = np.array([[0, 1, 0, 1], [0, 1, 1, 1]], dtype=np.uint8)
    out = downsample(dask_of(x), (2, 2), "mean").compute()
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 1]])  # means 0.5 -> 0 (to even), 0.75 -> 1
    big = np.full((2, 2), 65535, dtype=np.uint16)
    assert downsample(dask_of(big), (2, 2), "mean").compute()[0, 0] == 65535


@pytest.mark.parametrize("factors", [(2, 2), (3, 3), (4, 2)])
def test_nearest_takes_the_pixel_at_each_block_centre(factors):
    x = np.arange(13 * 17).reshape(13, 17)
    out = downsample(dask_of(x), factors, "nearest").compute()
    expected = kept(x, factors)[tuple(slice((f - 1) // 2, None, f) for f in factors)]
    np.testing.assert_array_equal(out, expected)


def test_mode_is_the_most_frequent_value_and_the_smallest_of_a_tie():
    x = np.array([[5, 5, 1, 2], [5, 7, 2, 1]], dtype=np.int32)
    np.testing.assert_array_equal(mode_kernel(x, (2, 2)), [[5, 1]])
    np.testing.assert_array_equal(mode_kernel(np.array([[3, 9]]), (1, 2)), [[3]])


def test_mode_never_invents_a_label():
    rng = np.random.default_rng(42)
    for trial in range(40):
        shape = tuple(rng.integers(2, 19, size=2))
        factors = tuple(int(f) for f in rng.integers(1, 4, size=2))
        if any(n < f for n, f in zip(shape, factors, strict=True)):
            continue
        labels = rng.choice([0, 3, 17, 400, 2**31 - 1], size=shape).astype(np.int64)
        out = downsample(dask_of(labels, (3, 4)), factors, "mode").compute()
        blocks = blocks_of(labels, factors)
        for index in np.ndindex(out.shape):
            values, counts = np.unique(blocks[index], return_counts=True)
            assert out[index] == values[counts.argmax()], (trial, index)


def test_gaussian_matches_scipy_then_block_centres():
    ndimage = pytest.importorskip("scipy.ndimage")
    x = np.random.default_rng(3).random((23, 30)) * 1000
    for factors in [(2, 2), (3, 2), (4, 4), (1, 3)]:
        sigma = [gaussian_sigma(f) for f in factors]
        smooth = ndimage.gaussian_filter(x, sigma, mode="nearest", truncate=4.0)
        centres = kept(smooth, factors)
        for axis, f in enumerate(factors):
            n = centres.shape[axis] // f
            lo = np.take(centres, np.arange(n) * f + (f - 1) // 2, axis=axis)
            hi = np.take(centres, np.arange(n) * f + f // 2, axis=axis)
            centres = (lo + hi) / 2
        out = downsample(dask_of(x, (7, 9)), factors, "gaussian").compute()
        np.testing.assert_allclose(out, centres, rtol=1e-10, err_msg=str(factors))


def test_gaussian_sigma_and_kernel():
    assert gaussian_sigma(1) == 0
    assert gaussian_sigma(2) == pytest.approx(np.sqrt(3) / 2.3548200450309493)
    weights = gaussian_weights(1.0)
    assert weights.sum() == pytest.approx(1.0) and len(weights) == 9


def test_gaussian_on_integers_stays_in_range():
    x = np.zeros((16, 16), dtype=np.uint8)
    x[::2] = 255
    out = downsample(dask_of(x), (2, 2), "gaussian").compute()
    assert out.dtype == np.uint8 and 0 < out.min() <= out.max() < 255


@pytest.mark.parametrize("method", ["mean", "nearest", "mode", "gaussian"])
def test_downsampling_is_lazy(method):
    calls = []

    def count(block):
        if block.size:  # dask probes with empty blocks to learn the output type
            calls.append(block.shape)
        return block

    source = da.ones((40, 40), chunks=10, dtype=np.uint16).map_blocks(count)
    calls.clear()
    out = downsample(source, (2, 2), method)
    assert isinstance(out, da.Array) and calls == []
    assert out.shape == (20, 20)
    assert out.compute().shape == (20, 20)


def test_unknown_method():
    with pytest.raises(OmeZarrError, match="unknown downsampling method"):
        downsample(dask_of(np.ones((4, 4))), (2, 2), "bicubic")


# ---- factors, chunks, geometry --------------------------------------------------------------
def test_int_factors_apply_to_space_axes_only():
    dims = ("c", "z", "y", "x")
    assert level_factors([2, 4], dims, SPACE3) == [(1, 2, 2, 2), (1, 4, 4, 4)]
    assert level_factors([{"y": 2, "x": 3}], dims, SPACE3) == [(1, 1, 2, 3)]


@pytest.mark.parametrize(
    ("factors", "message"),
    [
        ([{"c": 2}], "only space axes"),
        ([{"q": 2}], "no dimension"),
        ([0], "ints >= 1"),
        ([True], "ints >= 1"),
        ([2.0], "ints >= 1"),
        (2, "a list"),
        ({"x": 2}, "a list"),
    ],
)
def test_bad_factors(factors, message):
    with pytest.raises(OmeZarrError, match=message):
        level_factors(factors, ("c", "z", "y", "x"), SPACE3)


def test_default_method_and_chunks():
    assert default_method(np.dtype("uint32"), label=True) == "mode"
    assert default_method(np.dtype("float32"), label=True) == "mean"
    assert default_method(np.dtype("uint16"), label=False) == "mean"
    types = {"t": "time", **SPACE3}
    assert default_chunks("tczyx", (5, 3, 100, 2000, 2000), types, 2) == (1, 1, 64, 128, 128)
    assert default_chunks("tczyx", (5, 3, 4, 2000, 2000), types, 2) == (1, 1, 4, 256, 256)
    assert default_chunks("cyx", (3, 2000, 100), types, 8) == (1, 256, 100)
    assert default_chunks("yx", (3, 2), types, 1) == (3, 2)
    huge = default_chunks("zyx", (64, 256, 256), types, 64)
    assert np.prod(huge) * 64 <= 4 * 2**20


def test_grown_chunks_are_whole_units_up_to_the_budget():
    assert grown_chunks((3, 100, 100), (1, 16, 16), 1) == (3, 100, 100)  # small: one block
    grown = grown_chunks((10, 4096, 4096), (1, 256, 256), 2, budget=8 * 2**20)
    assert grown == (1, 1024, 4096)  # 8 MiB of uint16
    assert grown_chunks((5, 7), (8, 8), 8, budget=1) == (5, 7)


def test_aligned_chunks():
    assert aligned_chunks(((4, 4, 2),), (2,)) == ((4, 4, 2),)
    assert aligned_chunks(((3, 3, 3, 1),), (2,)) == ((2, 2, 2, 2, 2),)
    assert aligned_chunks(((10, 10),), (4,)) == ((8, 8, 4),)


def test_downsampled_coordinates_follow_the_pixel_centre_rule():
    # 7 pixels, factor 2: the first is left out, then blocks (1,2), (3,4), (5,6)
    level = xr.DataArray(
        da.zeros((7, 4), chunks=3),
        dims=("y", "x"),
        coords={
            "y": ("y", 10.0 + 0.5 * np.arange(7), {"units": "micrometer"}),
            "x": ("x", np.arange(4.0)),
        },
    )
    out = downsample_level(level, (2, 1), "mean", {"y": "space", "x": "space"})
    np.testing.assert_allclose(out["y"].values, [10.75, 11.75, 12.75])
    assert out["y"].attrs == {"units": "micrometer", "axis_type": "space", "scale": 1.0}
    np.testing.assert_array_equal(out["x"].values, level["x"].values)
    assert "scale" not in level["y"].attrs  # the input is not touched


def test_derived_levels_keep_the_base_layout():
    """Chunks and shards as they are, larger than the level too: a level that grows later
    (appends grow every level) keeps its base's layout."""
    encoding = {"chunks": (16, 64, 64), "shards": (32, 128, 128), "preferred_chunks": {"t": 16}}
    assert derived_encoding(encoding) == {"chunks": (16, 64, 64), "shards": (32, 128, 128)}
