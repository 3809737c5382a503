"""Lazy coordinates through the engine: what is opened, written back, and sent to workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from xarray.indexes import PandasIndex

import xarray_ome_zarr as xoz
from xarray_ome_zarr.coordinate_index import PixelCentreIndex, materialized

from ..conftest import logging_store
from ..servers import cluster_client

#: Stored numbers that a float round trip through coordinate values would change.
AWKWARD_SCALE = [0.1 + 0.2, 0.325]  # 0.30000000000000004
AWKWARD_TRANSLATION = [0.1 + 0.7, -1.1]  # 0.7999999999999999


def awkward_image(path: Path, shape=(6, 7)) -> np.ndarray:
    """A 0.5 y/x image whose scale and translation have 17 significant digits."""
    data = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    root = zarr.open_group(path, mode="w", zarr_format=3)
    arr = root.create_array(
        "0", shape=shape, dtype="uint16", chunks=(4, 4), dimension_names=["y", "x"]
    )
    arr[...] = data
    root.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": [
                    {"name": "y", "type": "space", "unit": "micrometer"},
                    {"name": "x", "type": "space", "unit": "micrometer"},
                ],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [
                            {"type": "scale", "scale": AWKWARD_SCALE},
                            {"type": "translation", "translation": AWKWARD_TRANSLATION},
                        ],
                    }
                ],
            }
        ],
    }
    return data


def stored_geometry(path: Path) -> tuple[list[float], list[float]]:
    ms = json.loads((path / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    transforms = ms["datasets"][0]["coordinateTransformations"]
    return transforms[0]["scale"], transforms[1]["translation"]


def test_space_coordinates_are_lazy_and_equal_to_materialised(hand_image) -> None:
    path, _, _ = hand_image
    lazy = xr.open_dataset(path, engine="ome-zarr")
    eager = xr.open_dataset(path, engine="ome-zarr", lazy_coordinates=False)
    for dim in ("z", "y", "x"):
        assert isinstance(lazy.xindexes[dim], PixelCentreIndex)
        assert type(eager.xindexes[dim]) is PandasIndex
        np.testing.assert_array_equal(lazy[dim].values, eager[dim].values)
        assert lazy[dim].attrs == eager[dim].attrs
    assert type(lazy.xindexes["c"]) is PandasIndex  # channel names stay a pandas index
    xr.testing.assert_identical(materialized(lazy), eager)


def test_datatree_lazy_coordinates_false(hand_image) -> None:
    path, _, _ = hand_image
    tree = xr.open_datatree(path, engine="ome-zarr", lazy_coordinates=False)
    lazy = xr.open_datatree(path, engine="ome-zarr")
    for name in ("scale0", "scale1"):
        assert type(tree[name].xindexes["x"]) is PandasIndex
        assert isinstance(lazy[name].xindexes["x"], PixelCentreIndex)
        np.testing.assert_array_equal(tree[name]["x"].values, lazy[name]["x"].values)


def test_stored_numbers_survive_a_round_trip_exactly(tmp_path: Path) -> None:
    source = tmp_path / "in.ome.zarr"
    awkward_image(source)
    ds = xr.open_dataset(source, engine="ome-zarr")
    assert ds.ome.scale == dict(zip("yx", AWKWARD_SCALE, strict=True))
    assert ds.ome.translation == dict(zip("yx", AWKWARD_TRANSLATION, strict=True))
    out = tmp_path / "out.ome.zarr"
    xoz.to_ome_zarr(ds, out)
    assert stored_geometry(out) == (AWKWARD_SCALE, AWKWARD_TRANSLATION)
    # materialised coordinates that still agree with the stored geometry (to 1e-6 pixel)
    # write the stored numbers exactly too (issue 12)
    eager = xr.open_dataset(source, engine="ome-zarr", lazy_coordinates=False)
    xoz.to_ome_zarr(eager, tmp_path / "eager.ome.zarr")
    assert stored_geometry(tmp_path / "eager.ome.zarr") == (AWKWARD_SCALE, AWKWARD_TRANSLATION)


def test_a_crop_writes_its_own_geometry(tmp_path: Path) -> None:
    source = tmp_path / "in.ome.zarr"
    data = awkward_image(source)
    ds = xr.open_dataset(source, engine="ome-zarr")
    crop = ds.sel(y=slice(1.0, 2.0)).isel(x=slice(2, None, 2))
    assert isinstance(crop.xindexes["y"], PixelCentreIndex)
    xoz.to_ome_zarr(crop, tmp_path / "crop.ome.zarr")
    back = xr.open_dataset(tmp_path / "crop.ome.zarr", engine="ome-zarr")
    np.testing.assert_allclose(back.y.values, crop.y.values, rtol=1e-12)
    np.testing.assert_allclose(back.x.values, crop.x.values, rtol=1e-12)
    np.testing.assert_array_equal(back.image.values, data[crop_rows(ds.y.values), 2::2])


def crop_rows(values: np.ndarray) -> np.ndarray:
    return (values >= 1.0) & (values <= 2.0)


def test_to_spatial_image_materialises(hand_image) -> None:
    path, _, _ = hand_image
    image = xoz.to_spatial_image(xr.open_dataset(path, engine="ome-zarr"))
    for dim in ("z", "y", "x"):
        assert type(image.xindexes[dim]) is PandasIndex


def test_selection_on_every_level_matches_materialised(hand_image) -> None:
    path, _, _ = hand_image
    lazy = xr.open_datatree(path, engine="ome-zarr")
    eager = xr.open_datatree(path, engine="ome-zarr", lazy_coordinates=False)
    for name in ("scale0", "scale1"):
        got = lazy[name].to_dataset().sel(y=slice(-2.0, 1.0), x=slice(2.0, None))
        want = eager[name].to_dataset().sel(y=slice(-2.0, 1.0), x=slice(2.0, None))
        xr.testing.assert_identical(materialized(got.load()), want.load())
    a, b = xr.align(lazy["scale0"]["cells"], lazy["scale1"]["cells"], join="inner")
    c, d = xr.align(eager["scale0"]["cells"], eager["scale1"]["cells"], join="inner")
    np.testing.assert_array_equal(a.x.values, c.x.values)
    np.testing.assert_array_equal(b.values, d.values)


@pytest.fixture(scope="module")
def worker_client():
    """A client of a cluster with one worker process, started once for the module."""
    pytest.importorskip("distributed")
    with cluster_client(n_workers=1, threads_per_worker=1) as client:
        yield client


def test_distributed_workers_get_lazy_coordinates(hand_image, worker_client) -> None:
    client = worker_client
    path, data, _ = hand_image
    ds = xr.open_dataset(path, engine="ome-zarr", chunks={})
    total = client.compute(ds.cells.sum()).result()
    assert int(total) == int(data.sum(dtype=np.uint64))

    def crop(d: xr.Dataset) -> tuple[str, list[float]]:
        part = d.sel(x=slice(2.0, 3.0))
        return type(part.xindexes["x"]).__name__, part.x.values.tolist()

    name, values = client.submit(crop, ds).result()
    assert name == "PixelCentreIndex"
    assert values == ds.sel(x=slice(2.0, 3.0)).x.values.tolist()


MOSAIC = 10**9


def metadata_only_mosaic(path: Path) -> Path:
    """A 10^9 x 10^9 uint16 image: a root zarr.json and one array zarr.json, no chunks."""
    (path / "0").mkdir(parents=True)
    axes = [{"name": d, "type": "space", "unit": "micrometer"} for d in ("y", "x")]
    scale = [{"type": "scale", "scale": [1.0, 1.0]}]
    multiscale = {"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}
    attrs = {"ome": {"version": "0.5", "multiscales": [multiscale]}}
    group = {"zarr_format": 3, "node_type": "group", "attributes": attrs}
    (path / "zarr.json").write_text(json.dumps(group))
    array = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": [MOSAIC, MOSAIC],
        "data_type": "uint16",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1024, 1024]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "dimension_names": ["y", "x"],
    }
    (path / "0" / "zarr.json").write_text(json.dumps(array))
    return path


def test_mosaic_opens_in_bounded_time_and_memory(tmp_path: Path) -> None:
    small = tmp_path / "small.ome.zarr"
    awkward_image(small)
    path = metadata_only_mosaic(tmp_path / "mosaic.ome.zarr")
    code = textwrap.dedent(
        f"""
        import time, psutil, xarray as xr
        import xarray_ome_zarr
        repr(xr.open_dataset({str(small)!r}, engine="ome-zarr"))  # first-use imports
        process = psutil.Process()
        before = process.memory_info().rss
        start = time.perf_counter()
        ds = xr.open_dataset({str(path)!r}, engine="ome-zarr")
        repr(ds)
        print(time.perf_counter() - start, (process.memory_info().rss - before) / 2**20)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seconds, growth = map(float, done.stdout.split())
    assert seconds < 1.0
    assert growth < 200


def test_mosaic_reads_only_what_a_selection_touches(tmp_path: Path) -> None:
    path = metadata_only_mosaic(tmp_path / "mosaic.ome.zarr")
    store, recorder = logging_store(zarr.storage.LocalStore(path))
    ds = xr.open_dataset(store, engine="ome-zarr")
    assert ds.image.shape == (MOSAIC, MOSAIC)
    corner = ds.isel(y=slice(0, 10), x=slice(0, 10))
    assert corner.image.values.sum() == 0
    assert recorder.chunk_keys == ["0/c/0/0"]
    assert corner.y.values.tolist() == [float(i) for i in range(10)]
    far = ds.sel(y=4.5e8, x=slice(1e8, 1e8 + 3))
    assert far.image.values.tolist() == [0, 0, 0, 0]


def test_mosaic_with_chunks_stays_a_bounded_graph(tmp_path: Path) -> None:
    from xarray_ome_zarr.ngff.limits import MAX_DASK_BLOCKS

    path = metadata_only_mosaic(tmp_path / "mosaic.ome.zarr")
    with pytest.warns(xoz.OmeZarrWarning, match="chunks=\\{\\} gives dask blocks"):
        ds = xr.open_dataset(path, engine="ome-zarr", chunks={})
    blocks = ds.image.data.numblocks
    assert blocks[0] * blocks[1] <= MAX_DASK_BLOCKS
    assert all(c % 1024 == 0 for c in ds.image.encoding["preferred_chunks"].values())
    corner = ds.isel(y=slice(0, 10), x=slice(0, 10)).image
    assert corner.values.tolist() == [[0] * 10] * 10
