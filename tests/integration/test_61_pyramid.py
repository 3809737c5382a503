"""Pyramids: to_multiscale against multiscale-spatial-image, and written by to_ome_zarr."""

from __future__ import annotations

import copy
import threading

import dask.array as da
import numpy as np
import pytest
import spatial_image as si
import xarray as xr

import xarray_ome_zarr as xoz
from xarray_ome_zarr import OmeZarrError

from ..fixtures.conformance import validate_schema

msi = pytest.importorskip("multiscale_spatial_image")

SCALE = {"z": 2.0, "y": 0.5, "x": 0.25}
TRANSLATION = {"z": 1.0, "y": -3.0, "x": 1.5}


def spatial(shape=(2, 8, 16, 24), dtype="float64", name="cells") -> xr.DataArray:
    """A c/z/y/x spatial-image with units, channel names and a translation."""
    rng = np.random.default_rng(7)
    data = (rng.random(shape) * 4000).astype(dtype)
    return si.to_spatial_image(
        data,
        dims=("c", "z", "y", "x"),
        scale=SCALE,
        translation=TRANSLATION,
        axis_units={d: "micrometer" for d in "zyx"},
        c_coords=["DAPI", "GFP"][: shape[0]],
        name=name,
    )


def assert_same_geometry(ours: xr.DataTree, theirs: xr.DataTree, name: str = "cells") -> None:
    assert sorted(ours.children) == sorted(theirs.children)
    for level in theirs.children:
        expected, actual = theirs[level][name], ours[level][name]
        assert actual.dims == expected.dims and actual.shape == expected.shape, level
        np.testing.assert_array_equal(actual["c"].values, expected["c"].values)
        for dim in "zyx":
            np.testing.assert_allclose(actual[dim].values, expected[dim].values, rtol=1e-12)


# ---- against multiscale-spatial-image ---------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "factors"),
    [
        ((2, 8, 16, 24), [2, 4]),
        ((2, 8, 17, 23), [2, 2]),
        ((1, 9, 31, 15), [{"z": 1, "y": 2, "x": 3}, {"y": 3, "x": 2}]),
        ((2, 5, 13, 11), [3]),
    ],
    ids=["2-4", "odd", "per-dim", "odd-3"],
)
def test_same_levels_as_multiscale_spatial_image(shape, factors):
    image = spatial(shape)
    ours = xoz.to_multiscale(image, factors)
    theirs = msi.to_multiscale(image, factors)
    assert_same_geometry(ours, theirs)
    for level in theirs.children:  # block means of the same blocks
        np.testing.assert_allclose(
            ours[level]["cells"].values, theirs[level]["cells"].values, rtol=1e-12
        )


def test_factors_are_relative_to_the_previous_level_as_in_msi():
    ours = xoz.to_multiscale(spatial(), [2, 4])
    assert ours["scale1"]["cells"].shape == (2, 4, 8, 12)
    assert ours["scale2"]["cells"].shape == (2, 1, 2, 3)  # 2 * 4 = 8 times smaller than scale0
    assert ours["scale2"]["x"].attrs["scale"] == pytest.approx(8 * SCALE["x"])


def test_to_multiscale_builds_the_in_memory_model():
    image = spatial()
    before = copy.deepcopy((image.attrs, {k: v.attrs for k, v in image.coords.items()}))
    tree = xoz.to_multiscale(image, [2], method="nearest")
    assert before == (image.attrs, {k: v.attrs for k, v in image.coords.items()})
    assert validate_schema(tree.ome.group_attrs, "0.5", "strict_image") == []
    multiscale = tree.ome.group_attrs["ome"]["multiscales"][0]
    assert multiscale["type"] == "nearest" and multiscale["name"] == "cells"
    assert [d["path"] for d in multiscale["datasets"]] == ["0", "1"]
    assert multiscale["datasets"][1]["coordinateTransformations"] == [
        {"type": "scale", "scale": [1.0, 4.0, 1.0, 0.5]},
        {"type": "translation", "translation": [0.0, 2.0, -2.75, 1.625]},
    ]
    assert tree.ome.group_attrs["ome"]["omero"]["channels"][1]["label"] == "GFP"
    for i in range(2):
        level = tree[f"scale{i}"]
        assert level.attrs == {"ome_dataset_path": str(i)}
        assert isinstance(level["cells"].data, da.Array)
    assert tree["scale1"]["z"].attrs["scale"] == 4.0


def test_to_multiscale_chunks():
    tree = xoz.to_multiscale(spatial(), [2], chunks={"c": 1, "z": 2, "y": 4, "x": 4})
    assert tree["scale0"]["cells"].data.chunksize == (1, 2, 4, 4)
    assert tree["scale1"]["cells"].data.chunksize == (1, 2, 4, 4)


def test_label_images_default_to_mode():
    rng = np.random.default_rng(1)
    labels = xr.DataArray(
        rng.choice([0, 7, 9, 1000], size=(21, 33)).astype(np.uint32),
        dims=("y", "x"),
        name="nuclei",
        attrs={"image-label": {"colors": [{"label-value": 7, "rgba": [255, 0, 0, 255]}]}},
    )
    tree = xoz.to_multiscale(labels, [2, 2])
    assert tree.ome.group_attrs["ome"]["multiscales"][0]["type"] == "mode"
    assert tree.ome.group_attrs["ome"]["image-label"]["colors"][0]["label-value"] == 7
    for level in ("scale1", "scale2"):
        assert set(np.unique(tree[level]["nuclei"].values)) <= {0, 7, 9, 1000}


@pytest.mark.parametrize(
    ("factors", "message"),
    [([{"c": 2}], "only space axes"), ([32], "leaves no pixel"), ([2, 8], "leaves no pixel")],
)
def test_bad_factors_are_refused(factors, message):
    with pytest.raises(OmeZarrError, match=message):
        xoz.to_multiscale(spatial(), factors)


# ---- written by to_ome_zarr ------------------------------------------------------------------
@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("method", ["mean", "nearest", "mode", "gaussian"])
def test_written_pyramid_equals_to_multiscale(tmp_path, version, method):
    image = spatial((2, 6, 19, 26), dtype="uint16")
    path = tmp_path / "p.ome.zarr"
    xoz.to_ome_zarr(image, path, version=version, scale_factors=[2, 2], method=method)
    back = xr.open_datatree(path, engine="ome-zarr")
    expected = xoz.to_multiscale(image, [2, 2], method=method)
    assert_same_geometry(back, expected)
    for level in expected.children:
        np.testing.assert_array_equal(back[level]["cells"].values, expected[level]["cells"].values)
    document = back.ome.group_attrs["ome"] if version == "0.5" else back.ome.group_attrs
    assert document["multiscales"][0]["type"] == method
    assert document["multiscales"][0]["metadata"]["args"] == {"scale_factors": [2, 2]}


def test_pyramid_of_a_tree_is_rebuilt_from_its_first_level(tmp_path):
    tree = xoz.to_multiscale(spatial(), [2, 2, 2])
    xoz.to_ome_zarr(tree, tmp_path / "p.ome.zarr", scale_factors=[{"y": 2, "x": 4}])
    back = xr.open_datatree(tmp_path / "p.ome.zarr", engine="ome-zarr")
    assert sorted(back.children) == ["scale0", "scale1"]
    assert back["scale1"]["cells"].shape == (2, 8, 8, 6)
    assert back["scale1"]["x"].attrs["scale"] == pytest.approx(4 * SCALE["x"])


def test_a_large_image_streams_each_block_once(tmp_path):
    """The input is read block by block, once, even though two levels are made from it."""
    reads = []
    lock = threading.Lock()

    def reader(block, block_info=None):
        if block_info is not None:
            with lock:
                reads.append(tuple(block_info[None]["chunk-location"]))
        return np.full(block.shape, len(reads) % 7, dtype=np.uint8)

    source = da.zeros((1, 256, 384), chunks=(1, 64, 128), dtype=np.uint8).map_blocks(
        reader, dtype=np.uint8
    )
    image = xr.DataArray(source, dims=("c", "y", "x"), name="big")
    reads.clear()
    xoz.to_ome_zarr(image, tmp_path / "big.ome.zarr", scale_factors=[2, 2], chunks=64)
    assert sorted(reads) == sorted(set(reads)) and len(reads) == 4 * 3
    back = xr.open_datatree(tmp_path / "big.ome.zarr", engine="ome-zarr")
    assert back["scale2"]["big"].shape == (1, 64, 96)


def test_label_pyramid_in_a_hierarchy_uses_mode(tmp_path):
    image = spatial((1, 4, 16, 16), dtype="uint16")
    labels = xr.DataArray(
        np.random.default_rng(2).choice([0, 3, 5], size=(4, 16, 16)).astype(np.int32),
        dims=("z", "y", "x"),
        coords={d: image[d] for d in "zyx"},
        name="cells",
    )
    tree = xoz.to_multiscale(image, [2])
    tree["labels/cells/scale0"] = xr.DataTree(labels.to_dataset())  # no labels metadata at all
    xoz.to_ome_zarr(tree, tmp_path / "l.ome.zarr", scale_factors=[2])
    back = xr.open_datatree(tmp_path / "l.ome.zarr", engine="ome-zarr")
    label_doc = back["labels/cells"].ome.group_attrs["ome"]
    assert label_doc["multiscales"][0]["type"] == "mode"
    assert "image-label" in label_doc
    assert back["labels"].ome.group_attrs["ome"]["labels"] == ["cells"]
    assert set(np.unique(back["labels/cells/scale1"]["cells"].values)) <= {0, 3, 5}
