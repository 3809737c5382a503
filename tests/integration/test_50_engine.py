"""The ``ome-zarr`` engine: registration, guessing, laziness, indexing and errors."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import xarray as xr
import zarr

import xarray_ome_zarr as xoz
from xarray_ome_zarr.backend import OmeZarrBackendEntrypoint

from ..conftest import CHANNELS, SCALE, TRANSLATION, logging_store, write_hand_image


def test_engine_resolves_to_this_package():
    engine = xr.backends.list_engines()["ome-zarr"]
    assert isinstance(engine, OmeZarrBackendEntrypoint)
    assert type(engine).__module__ == "xarray_ome_zarr.backend"
    assert engine.supports_groups is True
    assert "level" in engine.open_dataset_parameters
    assert "mask_and_scale" not in engine.open_dataset_parameters
    assert engine.description and engine.url


def test_guess_can_open(hand_image, tmp_path):
    path, _, _ = hand_image
    engine = OmeZarrBackendEntrypoint()
    assert engine.guess_can_open(path)
    assert engine.guess_can_open(str(path))
    plain = tmp_path / "plain.zarr"
    xr.Dataset({"a": ("x", np.arange(3))}).to_zarr(plain, consolidated=False)
    assert not engine.guess_can_open(plain)
    assert not engine.guess_can_open(tmp_path / "missing")
    broken = tmp_path / "broken.zarr"
    broken.mkdir()
    (broken / "zarr.json").write_text("{not json")
    for weird in (broken, 42, b"bytes", None, "https://example.invalid/x.zarr"):
        assert engine.guess_can_open(weird) is False
    # A plain zarr store still opens with xarray's own engine when no engine is named.
    assert "a" in xr.open_dataset(plain, consolidated=False).data_vars


def test_open_dataset_geometry_and_metadata(hand_image):
    path, data, version = hand_image
    ds = xr.open_dataset(path, engine="ome-zarr")
    assert list(ds.data_vars) == ["cells"]
    da = ds["cells"]
    assert da.dims == ("c", "z", "y", "x")
    assert da.dtype == np.uint16
    np.testing.assert_array_equal(da.values, data)
    for i, dim in enumerate("zyx", start=1):
        expected = TRANSLATION[i] + SCALE[i] * np.arange(data.shape[i])
        np.testing.assert_allclose(ds[dim].values, expected)
        assert ds[dim].dtype == np.float64
        assert ds[dim].attrs["units"] == "micrometer"
        assert ds[dim].attrs["scale"] == SCALE[i]
    assert list(ds["c"].values) == CHANNELS
    attrs = ds.ome.group_attrs
    omero = attrs["ome"]["omero"] if version == "0.5" else attrs["omero"]
    assert [c["label"] for c in omero["channels"]] == CHANNELS
    assert ds.attrs["ome_dataset_path"] == "0"
    enc = da.encoding
    assert enc["chunks"] == (1, 2, 5, 4)
    assert enc["preferred_chunks"] == {"c": 1, "z": 2, "y": 5, "x": 4}
    assert enc["zarr_format"] == (3 if version == "0.5" else 2)


@pytest.mark.parametrize("level", [1, -1, "1", "scale1"])
def test_open_dataset_lower_level(hand_image, level):
    path, data, _ = hand_image
    ds = xr.open_dataset(path, engine="ome-zarr", level=level)
    np.testing.assert_array_equal(ds["cells"].values, data[:, :, ::2, ::2])
    # Pixel-centre rule: scale doubles, translation moves by half a level-0 pixel.
    np.testing.assert_allclose(ds["y"].values[:2], [TRANSLATION[2] + 0.25, TRANSLATION[2] + 1.25])
    assert ds.attrs["ome_dataset_path"] == "1"


def test_chunks_follow_storage(hand_image):
    path, data, _ = hand_image
    ds = xr.open_dataset(path, engine="ome-zarr", chunks={})
    assert ds["cells"].chunks[1][:2] == (2, 2)
    assert ds["cells"].data.chunksize == (1, 2, 5, 4)
    np.testing.assert_array_equal(ds["cells"].compute().values, data)


def test_open_datatree_layout(hand_image):
    path, data, _ = hand_image
    dt = xr.open_datatree(path, engine="ome-zarr")
    assert set(dt.children) == {"scale0", "scale1"}
    assert not dt.dataset.coords and not dt.dataset.data_vars
    assert dt["scale1"]["cells"].shape == (2, 5, 7, 6)
    np.testing.assert_array_equal(dt["scale0"]["cells"].values, data)
    assert dt["scale0"]["x"].values[0] == TRANSLATION[3]


def test_opening_reads_no_chunk(hand_image):
    path, _, _ = hand_image
    store, recorder = logging_store(zarr.storage.LocalStore(path, read_only=True))
    ds = xr.open_dataset(store, engine="ome-zarr", level=0)
    xr.open_datatree(store, engine="ome-zarr")
    xr.open_dataset(store, engine="ome-zarr", chunks={})
    assert recorder.keys, "the recorder saw no request at all"
    assert recorder.chunk_keys == []
    # A small slice reads only the chunks it touches: one channel, one z chunk, one y/x chunk.
    part = ds["cells"].isel(c=0, z=slice(0, 2), y=slice(0, 5), x=slice(0, 4)).values
    assert part.shape == (2, 5, 4)
    assert len(recorder.chunk_keys) == 1


INDEXERS = {
    "int": {"c": 1},
    "negative int": {"z": -1},
    "strided slice": {"y": slice(1, None, 3)},
    "out-of-bounds slice": {"x": slice(5, 100)},
    "negative step": {"x": slice(None, None, -2)},
    "outer arrays": {"y": [0, 4, 12], "x": [10, 0]},
    "boolean": {"z": np.array([True, False, True, False, True])},
    "vectorized": {
        "y": xr.DataArray([0, 3, 12], dims="p"),
        "x": xr.DataArray([10, 2, 0], dims="p"),
    },
}


@pytest.mark.parametrize("name", list(INDEXERS))
@pytest.mark.parametrize("chunks", [None, {}])
def test_indexing_matches_numpy(hand_image, name, chunks):
    path, data, _ = hand_image
    lazy = xr.open_dataset(path, engine="ome-zarr", chunks=chunks)["cells"]
    eager = xr.DataArray(data, dims=lazy.dims)
    expected = eager.isel(INDEXERS[name])
    got = lazy.isel(INDEXERS[name])
    np.testing.assert_array_equal(got.values, expected.values)
    assert got.dims == expected.dims


def test_transpose_and_pickle(hand_image):
    path, data, _ = hand_image
    da = xr.open_dataset(path, engine="ome-zarr")["cells"]
    np.testing.assert_array_equal(da.transpose("x", "y", "z", "c").values, data.transpose())
    restored = pickle.loads(pickle.dumps(da))
    np.testing.assert_array_equal(restored.values, data)


def test_public_open_functions(hand_image):
    path, data, _ = hand_image
    np.testing.assert_array_equal(xoz.open_ome_dataset(path)["cells"].values, data)
    assert set(xoz.open_ome_datatree(path).children) == {"scale0", "scale1"}


@pytest.mark.parametrize("level", [2, -3, 1.5, "7", "scale9", True])
def test_bad_level(hand_image, level):
    path, _, _ = hand_image
    with pytest.raises(xoz.OmeZarrError, match="level"):
        xr.open_dataset(path, engine="ome-zarr", level=level)


def test_missing_things_raise_ome_zarr_error(hand_image, tmp_path):
    path, _, _ = hand_image
    with pytest.raises(xoz.OmeZarrError, match="no group 'nope'"):
        xr.open_dataset(path, engine="ome-zarr", group="nope")
    with pytest.raises(xoz.OmeZarrError, match="no such file"):
        xr.open_dataset(tmp_path / "absent.ome.zarr", engine="ome-zarr")
    plain = tmp_path / "plain.zarr"
    xr.Dataset({"a": ("x", np.arange(3))}).to_zarr(plain, consolidated=False)
    for opener in (xr.open_dataset, xr.open_datatree):
        with pytest.raises(xoz.OmeZarrError, match="plain.zarr"):
            opener(plain, engine="ome-zarr")
    with pytest.raises(xoz.OmeZarrError, match="is an array"):
        xr.open_dataset(path, engine="ome-zarr", group="0")


def test_missing_dataset_array_names_key(tmp_path):
    path = tmp_path / "img.ome.zarr"
    write_hand_image(path, "0.5")
    root = zarr.open_group(path, mode="a")
    del root["1"]
    with pytest.raises(xoz.OmeZarrError, match=r"datasets/1/path.*'1' names no array"):
        xr.open_dataset(path, engine="ome-zarr", level=1)
    with pytest.raises(xoz.OmeZarrError, match="names no array"):
        xr.open_datatree(path, engine="ome-zarr")


def test_dimension_names_must_match_axes(tmp_path):
    path = tmp_path / "img.ome.zarr"
    write_hand_image(path, "0.5")
    meta_file = path / "0" / "zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["dimension_names"] = ["c", "z", "x", "y"]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(xoz.OmeZarrError, match="dimension_names"):
        xr.open_dataset(path, engine="ome-zarr")
