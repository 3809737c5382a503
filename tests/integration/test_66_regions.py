"""Templates (``compute=False``), region writes (``region=``) and ``build_pyramid``.

Whatever order regions are written in, by one process, several processes at once or a
dask.distributed cluster, every level of the store ends equal to ``to_multiscale`` of the
finished image. Real stores on disk (and a zarr memory store standing in for an object
store, which cannot be locked), real processes.
"""

from __future__ import annotations

import multiprocessing
import time
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr
from dask.delayed import Delayed

import xarray_ome_zarr as xoz
from xarray_ome_zarr import OmeZarrError, OmeZarrWarning
from xarray_ome_zarr.locks import LOCK_NAME, lock_path

from ..servers import cluster_client

pytestmark = pytest.mark.timeout(180)

SHAPE = (2, 60, 52)  # c, y, x
SCALE = {"y": 0.5, "x": 0.25}
TRANSLATION = {"y": 10.0, "x": -3.0}
FACTORS = [2, 2]
#: (version, layout keywords): chunks of 16; for 0.5 chunks of 8 in shards of 32.
LAYOUTS = {
    "0.4": {"chunks": {"c": 1, "y": 16, "x": 16}},
    "0.5-sharded": {"chunks": {"c": 1, "y": 8, "x": 8}, "shards": {"y": 32, "x": 32}},
    "0.6": {"chunks": {"c": 1, "y": 16, "x": 16}},
}


def whole(method: str = "mean", seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    if method == "mode":
        pixels = rng.integers(0, 5, SHAPE).astype("uint8")
    else:
        pixels = rng.integers(0, 4000, SHAPE).astype("uint16")
    return xoz.image(pixels, dims=("c", "y", "x"), scale=SCALE, translation=TRANSLATION)


def template_of(image: xr.DataArray) -> xr.DataArray:
    lazy = da.zeros(image.shape, dtype=image.dtype, chunks=(1, 32, 32))
    return image.copy(data=lazy)


def write_template(image, path, method="mean", layout="0.5-sharded", **kwargs):
    version = layout.split("-")[0]
    delayed = xoz.to_ome_zarr(
        template_of(image),
        path,
        version=version,
        scale_factors=FACTORS,
        method=method,
        compute=False,
        **LAYOUTS[layout],
        **kwargs,
    )
    return delayed


def tiles(ny: int, nx: int) -> list[tuple[slice, slice]]:
    return [
        (slice(y, min(y + ny, SHAPE[1])), slice(x, min(x + nx, SHAPE[2])))
        for y in range(0, SHAPE[1], ny)
        for x in range(0, SHAPE[2], nx)
    ]


def assert_pyramid_of(path, image: xr.DataArray, method: str) -> None:
    want = xoz.to_multiscale(image, FACTORS, method=method)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OmeZarrWarning)  # no incomplete-pyramid warning
        got = xr.open_datatree(path, engine="ome-zarr")
    for k in range(len(FACTORS) + 1):
        level = f"scale{k}"
        np.testing.assert_array_equal(
            got[level]["image"].values, want[level]["image"].values, err_msg=level
        )
        for dim in ("y", "x"):
            np.testing.assert_allclose(got[level][dim].values, want[level][dim].values)


def write_tiles(path, image, parts, **kwargs) -> None:
    for ys, xs in parts:
        xoz.to_ome_zarr(image.isel(y=ys, x=xs), path, region="auto", **kwargs)


# ---- one writer ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "layout"),
    [("mean", "0.4"), ("mean", "0.5-sharded"), ("nearest", "0.6"), ("mode", "0.4")]
    + [("gaussian", "0.5-sharded")],
)
def test_regions_in_any_order_give_the_pyramid_of_the_whole(tmp_path, method, layout):
    image = whole(method)
    path = tmp_path / "t.ome.zarr"
    write_template(image, path, method, layout)
    parts = tiles(20, 13)  # blocks and chunks straddle tiles
    order = np.random.default_rng(2).permutation(len(parts))
    write_tiles(path, image, [parts[i] for i in order])
    assert_pyramid_of(path, image, method)
    assert xoz.validate(path, strict=True) == []


def test_the_template_is_an_image_of_fill_values_and_compute_false_returns_a_delayed(tmp_path):
    image = whole()
    path = tmp_path / "t.ome.zarr"
    delayed = write_template(image, path)
    assert isinstance(delayed, Delayed)
    tree = xr.open_datatree(path, engine="ome-zarr")
    assert [tree[f"scale{k}"]["image"].shape for k in range(3)] == [
        (2, 60, 52),
        (2, 30, 26),
        (2, 15, 13),
    ]
    assert not tree["scale2"]["image"].values.any()
    assert xoz.validate(path, strict=True) == []
    assert tree.ome.group_attrs["ome"]["multiscales"][0]["type"] == "mean"
    # computing the Delayed writes the template's pixels (here zeros) at every level
    real = xoz.to_ome_zarr(image, tmp_path / "r.ome.zarr", scale_factors=FACTORS, compute=False)
    dask.compute(real)
    assert_pyramid_of(tmp_path / "r.ome.zarr", image, "mean")
    delayed.compute()


def test_region_dicts_and_auto_along_some_dims(tmp_path):
    image = whole()
    path = tmp_path / "t.ome.zarr"
    write_template(image, path)
    for ys in (slice(0, 31), slice(31, 60)):
        part = image.isel(y=ys).drop_vars(["y", "x"])
        xoz.to_ome_zarr(part, path, region={"y": ys})
    assert_pyramid_of(path, image, "mean")
    other = whole(seed=5)
    part = other.isel(c=[1], y=slice(7, 19))
    xoz.to_ome_zarr(part, path, region={"c": slice(1, 2), "y": "auto", "x": "auto"})
    expected = image.copy(data=image.values.copy())
    expected[1:2, 7:19] = part.values
    assert_pyramid_of(path, expected, "mean")


def test_coordinates_off_the_store_grid_are_refused(tmp_path):
    image = whole()
    path = tmp_path / "t.ome.zarr"
    write_template(image, path)
    part = image.isel(y=slice(4, 12), x=slice(0, 8))
    shifted = part.assign_coords(y=part.y.values + 0.1)
    with pytest.raises(OmeZarrError, match="between the store's pixels"):
        xoz.to_ome_zarr(shifted, path, region="auto")
    with pytest.raises(OmeZarrError, match="does not match the store's grid"):
        xoz.to_ome_zarr(part, path, region={"y": slice(0, 8), "x": slice(0, 8)})
    x = part.x.values
    rescaled = part.assign_coords(x=x[0] + (x - x[0]) * 2)  # starts on the grid
    with pytest.raises(OmeZarrError, match="does not match the store's grid"):
        xoz.to_ome_zarr(rescaled, path, region="auto")
    with pytest.raises(OmeZarrError, match="outside the image"):
        xoz.to_ome_zarr(image.isel(y=slice(0, 8)), path, region={"y": slice(55, 63)})
    with pytest.raises(OmeZarrError, match="needs a coordinate along 'y'"):
        xoz.to_ome_zarr(part.drop_vars("y"), path, region="auto")
    with pytest.raises(OmeZarrError, match="scale_factors=, chunks= cannot apply"):
        xoz.to_ome_zarr(part, path, region="auto", scale_factors=[2], chunks=8)
    with pytest.raises(OmeZarrError, match="written once, whole"):
        xoz.to_ome_zarr(part, tmp_path / "t.ozx", region="auto")
    assert not xr.open_dataset(path, engine="ome-zarr")["image"].values.any()  # nothing written


def test_peers_read_a_store_filled_by_regions(tmp_path):
    ngff_zarr = pytest.importorskip("ngff_zarr")
    image = whole()
    path = tmp_path / "t.ome.zarr"
    write_template(image, path, layout="0.4")
    write_tiles(path, image, tiles(32, 32))
    want = xoz.to_multiscale(image, FACTORS)
    multiscales = ngff_zarr.from_ngff_zarr(str(path), validate=True)
    for k, level in enumerate(multiscales.images):
        np.testing.assert_array_equal(np.asarray(level.data), want[f"scale{k}"]["image"].values)


# ---- stores that cannot be locked ---------------------------------------------------------------
def test_object_stores_refuse_unaligned_regions_and_mark_what_build_pyramid_completes():
    image = whole()
    store = zarr.storage.MemoryStore()
    write_template(image, store, consolidated=True)
    unaligned = image.isel(y=slice(4, 20), x=slice(0, 32))
    with pytest.raises(OmeZarrError, match="safe_chunks=False"):
        xoz.to_ome_zarr(unaligned, store, region="auto")
    # aligned with level 0's shards (32): levels below straddle nothing at level 1 (16 of 16)
    # but level 2 (8 of a 16-pixel chunk) is left to build_pyramid
    write_tiles(store, image, tiles(32, 32))
    with pytest.warns(OmeZarrWarning, match="pyramid-incomplete"):
        xr.open_datatree(store, engine="ome-zarr")
    consolidated = zarr.open_group(store, mode="r", use_consolidated=True)
    assert consolidated.metadata.consolidated_metadata is not None
    assert consolidated.attrs["xarray_ome_zarr"] == {"stale_from_level": 1}
    problems = xoz.validate(store)
    assert [p.rule for p in problems] == ["pyramid-incomplete"]
    assert problems[0].severity == "warning"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OmeZarrWarning)
        got = xr.open_datatree(store, engine="ome-zarr")
    np.testing.assert_array_equal(got["scale0"]["image"].values, image.values)
    xoz.build_pyramid(store)
    assert_pyramid_of(store, image, "mean")
    consolidated = zarr.open_group(store, mode="r", use_consolidated=True)
    assert "xarray_ome_zarr" not in consolidated.attrs
    # written one at a time, with safe_chunks=False, unaligned regions need no final call
    other = zarr.storage.MemoryStore()
    write_template(image, other)
    write_tiles(other, image, tiles(20, 13), safe_chunks=False)
    assert_pyramid_of(other, image, "mean")


# ---- several writers at once --------------------------------------------------------------------
def _write_tiles_in_process(args) -> None:
    path, method, parts = args
    write_tiles(path, whole(method), parts)


@pytest.fixture(scope="module")
def pool():
    context = multiprocessing.get_context("forkserver")  # no threads forked; one import
    context.set_forkserver_preload(["xarray_ome_zarr.regions", "xarray_ome_zarr.writer"])
    with context.Pool(2) as pool:
        yield pool


def _hold_lock(args) -> tuple[float, float]:
    from xarray_ome_zarr.locks import file_lock

    path, seconds = args
    with file_lock(Path(path)):
        start = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process
        time.sleep(seconds)
        return start, time.monotonic()


def test_the_store_lock_excludes_other_processes(tmp_path, pool):
    store = zarr.storage.LocalStore(tmp_path / "t.ome.zarr")
    path = lock_path(store, "labels/cells")
    assert path == tmp_path / "t.ome.zarr" / "labels" / "cells" / LOCK_NAME
    assert lock_path(zarr.storage.MemoryStore()) is None
    first, second = sorted(pool.map(_hold_lock, [(str(path), 0.3)] * 2, chunksize=1))
    assert first[1] <= second[0]


@pytest.mark.parametrize(("size", "method"), [((32, 32), "mean"), ((20, 13), "gaussian")])
def test_regions_from_two_processes_at_once(tmp_path, pool, size, method):
    """Aligned tiles (no lock needed but for the coarsest level) and unaligned ones (partial
    chunks and straddling blocks, serialised by the store's lock)."""
    image = whole(method)
    path = tmp_path / "t.ome.zarr"
    write_template(image, path, method)
    parts = tiles(*size)
    jobs = [(str(path), method, parts[i::2]) for i in range(2)]
    pool.map(_write_tiles_in_process, jobs)
    assert_pyramid_of(path, image, method)


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed")
    # worker processes: unaligned tiles meet at the store's file lock
    with cluster_client(n_workers=2, threads_per_worker=2) as client:
        yield client


def _write_one_tile(path: str, ys: slice, xs: slice) -> None:
    xoz.to_ome_zarr(whole().isel(y=ys, x=xs), path, region="auto")


def test_regions_from_a_dask_distributed_cluster(tmp_path, client):
    image = whole()
    path = tmp_path / "t.ome.zarr"
    write_template(image, path, layout="0.4")
    futures = [client.submit(_write_one_tile, str(path), ys, xs) for ys, xs in tiles(20, 16)]
    client.gather(futures)
    assert_pyramid_of(path, image, "mean")


def test_a_template_computed_on_the_cluster(tmp_path, client):
    image = whole()
    path = Path(tmp_path) / "t.ome.zarr"
    delayed = xoz.to_ome_zarr(
        image.chunk({"y": 32, "x": 32}), path, scale_factors=FACTORS, compute=False, chunks=16
    )
    client.compute(delayed).result()
    assert_pyramid_of(path, image, "mean")


def test_a_region_of_a_label_image_named_by_group(tmp_path):
    image = whole("mode")
    path = tmp_path / "t.ome.zarr"
    labels = xoz.to_multiscale(template_of(image), FACTORS, method="mode")
    xoz.to_ome_zarr(labels, path, group="labels/cells")
    write_tiles(path, image, tiles(24, 24), group="labels/cells")
    want = xoz.to_multiscale(image, FACTORS, method="mode")
    got = xr.open_datatree(path, engine="ome-zarr", group="labels/cells")
    for k in range(3):
        np.testing.assert_array_equal(
            got[f"scale{k}"]["image"].values, want[f"scale{k}"]["image"].values
        )
    with pytest.raises(OmeZarrError, match="mode='w'"):
        xoz.to_ome_zarr(image, path, region="auto", mode="w")
