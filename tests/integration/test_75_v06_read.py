"""Reading OME-Zarr 0.6 into xarray: coordinates by system name, ``coordinate_system=``,
scenes as trees, the graph on ``.ome`` and ``xoz.transform_points`` (issue 14, step 3)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import xarray as xr
import zarr

import xarray_ome_zarr as xoz
from xarray_ome_zarr.errors import OmeZarrError

from ..conftest import write_hand_image
from ..fixtures.v06 import (
    AXES,
    field_transform,
    image_document,
    system,
    write_field,
    write_image,
    write_image_with_other_systems,
    write_scene,
)
from ..servers import http_server


@pytest.fixture
def image(tmp_path):
    return write_image_with_other_systems(tmp_path / "image.ome.zarr")


def test_coordinates_in_the_datasets_output_system_found_by_name(image):
    path, pixels = image
    ds = xr.open_dataset(path, engine="ome-zarr")
    assert ds["img"].dims == ("z", "y", "x")
    np.testing.assert_array_equal(ds["img"].values, pixels)
    # "physical" is listed second: its micrometres, not "world"'s millimetres
    np.testing.assert_allclose(ds["z"].values, 1.0 + 2.0 * np.arange(4))
    np.testing.assert_allclose(ds["y"].values, 10.0 + 0.5 * np.arange(8))
    np.testing.assert_allclose(ds["x"].values, -3.0 + 0.25 * np.arange(6))
    assert ds["x"].attrs["units"] == "micrometer"
    # RFC-4 orientation (any other axis key) kept verbatim in the coordinate's attrs
    assert ds["z"].attrs["orientation"] == AXES[0]["orientation"]
    level1 = xr.open_dataset(path, engine="ome-zarr", level=1)
    np.testing.assert_allclose(level1["y"].values, 10.25 + 1.0 * np.arange(4))
    assert ds.ome.scale == {"z": 2.0, "y": 0.5, "x": 0.25}


def test_the_graph_on_the_accessor_verbatim(image):
    path, _ = image
    ds = xr.open_dataset(path, engine="ome-zarr")
    doc = zarr.open_group(path, mode="r").attrs["ome"]["multiscales"][0]
    assert ds.ome.coordinate_systems == {cs["name"]: cs["axes"] for cs in doc["coordinateSystems"]}
    assert ds.ome.coordinate_transformations == doc["coordinateTransformations"]
    assert ds.ome.transforms[0]["scale"] == [2.0, 0.5, 0.25]  # still this level's own
    np.testing.assert_allclose(
        ds.ome.affine("world"),
        [[0.001, 0, 0, 5], [0, 0.001, 0, 0], [0, 0, 0.001, 0], [0, 0, 0, 1]],
    )
    tree = xr.open_datatree(path, engine="ome-zarr")
    assert tree.ome.coordinate_systems == ds.ome.coordinate_systems
    assert tree["scale1"].ome.coordinate_transformations == doc["coordinateTransformations"]


def test_coordinate_system_scale_and_translation(image):
    path, pixels = image
    ds = xr.open_dataset(path, engine="ome-zarr", coordinate_system="world", level=1)
    np.testing.assert_allclose(ds["z"].values, 5.0 + 0.001 * (1.0 + 2.0 * np.arange(4)))
    np.testing.assert_allclose(ds["y"].values, 0.001 * (10.25 + np.arange(4)))
    assert ds["y"].attrs["units"] == "millimeter"
    assert ds.attrs["ome_coordinate_system"] == "world"
    np.testing.assert_array_equal(ds["img"].values, pixels[:, ::2, ::2])
    # the same as mapping the pixel centres with transform_points
    centres = np.stack(np.meshgrid(ds.z, ds.y, ds.x, indexing="ij"), -1).reshape(-1, 3)
    own = xr.open_dataset(path, engine="ome-zarr", level=1)
    physical = np.stack(np.meshgrid(own.z, own.y, own.x, indexing="ij"), -1).reshape(-1, 3)
    np.testing.assert_allclose(
        xoz.transform_points(path, physical, source="physical", target="world"), centres
    )


def test_coordinate_system_map_axis_orders_dims_by_the_system(image):
    path, pixels = image
    ds = xr.open_dataset(path, engine="ome-zarr", coordinate_system="swapped")
    assert ds["img"].dims == ("z", "x", "y")
    np.testing.assert_array_equal(ds["img"].values, pixels.transpose(0, 2, 1))
    np.testing.assert_allclose(ds["y"].values, 10.0 + 0.5 * np.arange(8))
    assert ds["img"].encoding["preferred_chunks"] == {"z": 4, "y": 8, "x": 6}


def test_coordinate_system_map_axis_selects_like_numpy(image):
    # xarray's own lazy transpose of a backend array fails on all-scalar selections
    # (xarray 2026.9: IndexError from LazilyVectorizedIndexedArray), so the reordering is ours
    path, pixels = image
    ds = xr.open_dataset(path, engine="ome-zarr", coordinate_system="swapped")
    expected = pixels.transpose(0, 2, 1)
    assert ds["img"].isel(z=1, x=4, y=2).item() == expected[1, 4, 2]
    assert ds["img"].sel(z=3.0, x=-2.0, y=11.0).item() == expected[1, 4, 2]
    np.testing.assert_array_equal(ds["img"][1, [0, 5], 2:4].values, expected[1, [0, 5], 2:4])
    np.testing.assert_array_equal(
        ds["img"].isel(z=xr.Variable("p", [0, 3]), y=xr.Variable("p", [1, 2])).values,
        expected[[0, 3], :, [1, 2]],
    )
    chunked = xr.open_dataset(path, engine="ome-zarr", coordinate_system="swapped", chunks={})
    np.testing.assert_array_equal(chunked["img"].isel(z=1, x=4, y=2).values, expected[1, 4, 2])


def test_coordinate_system_not_axis_aligned_names_transform_points(image):
    path, _ = image
    with pytest.raises(OmeZarrError, match="transform_points") as err:
        xr.open_dataset(path, engine="ome-zarr", coordinate_system="rotated")
    assert str(path) in str(err.value)
    # transform_points does what the coordinates cannot
    got = xoz.transform_points(path, [[0, 1, 0]], source="physical", target="rotated")
    np.testing.assert_allclose(got, [[0, 0.6, 0.8]])


def test_unknown_coordinate_system(image, tmp_path):
    path, _ = image
    with pytest.raises(OmeZarrError, match="no coordinate system 'nowhere'.*physical"):
        xr.open_dataset(path, engine="ome-zarr", coordinate_system="nowhere")
    old = tmp_path / "old.ome.zarr"
    write_hand_image(old, "0.5")
    with pytest.raises(OmeZarrError, match="coordinate_system='world'"):
        xr.open_datatree(old, engine="ome-zarr", coordinate_system="world")


@pytest.fixture
def scene(tmp_path):
    path = tmp_path / "scene.ome.zarr"
    write_scene(path, {"a": (0.0, 0.0, 0.0), "b": (0.0, 100.0, 0.0)})
    return path


def test_a_scene_opens_as_a_tree_of_its_images(scene):
    tree = xr.open_datatree(scene, engine="ome-zarr")
    assert set(tree.children) == {"a", "b"}
    assert "scene" in tree.ome.group_attrs["ome"]
    assert set(tree["a"].children) == {"scale0", "scale1"}
    xr.testing.assert_identical(
        tree["b/scale0"].to_dataset(), tree["a/scale0"].to_dataset().rename(a="b")
    )
    placed = xr.open_datatree(scene, engine="ome-zarr", coordinate_system="scene")
    np.testing.assert_allclose(placed["b/scale0"]["y"].values, tree["b/scale0"]["y"].values + 100)
    np.testing.assert_allclose(placed["a/scale0"]["y"].values, tree["a/scale0"]["y"].values)


def test_open_datatree_names_the_images_that_lack_the_system(scene):
    # an image of the scene that no transform joins to "scene"
    write_image(scene / "c", image_document(name="c"))
    root = zarr.open_group(scene, mode="r+")
    ome = copy.deepcopy(root.attrs["ome"])
    ome["scene"]["coordinateSystems"].append({"name": "elsewhere", "axes": copy.deepcopy(AXES)})
    ome["scene"]["coordinateTransformations"].append(
        {
            "type": "identity",
            "input": {"path": "c", "name": "physical"},
            "output": {"name": "elsewhere"},
        }
    )
    root.attrs["ome"] = ome
    with pytest.raises(OmeZarrError, match=r"'scene' is reachable from the image\(s\) '/c'") as err:
        xr.open_datatree(scene, engine="ome-zarr", coordinate_system="scene")
    assert "'/a'" not in str(err.value)


def test_open_dataset_names_the_image_that_lacks_the_system(scene):
    with pytest.raises(OmeZarrError, match=r"'nowhere' is reachable from the image\(s\) '/a'"):
        xr.open_dataset(scene, engine="ome-zarr", group="a", coordinate_system="nowhere")


def test_transform_points_between_two_images_of_a_scene(scene):
    a_to_b = dict(
        source={"path": "a", "name": "physical"}, target={"path": "b", "name": "physical"}
    )
    points = np.array([[1.0, 110.0, 3.0], [0.0, 0.0, 0.0]])
    expected = points - [0, 100, 0]
    np.testing.assert_allclose(xoz.transform_points(scene, points, **a_to_b), expected)
    tree = xr.open_datatree(scene, engine="ome-zarr")
    np.testing.assert_allclose(xoz.transform_points(tree, points, **a_to_b), expected)
    store = zarr.storage.LocalStore(scene, read_only=True)
    np.testing.assert_allclose(xoz.transform_points(store, points, **a_to_b), expected)
    # pixel indices of one image's level to the other's pixels
    got = xoz.transform_points(scene, [[0, 0, 0]], source={"path": "a/s1"}, target={"path": "b/s0"})
    np.testing.assert_allclose(got, [[0, (10.25 - 100 - 10) / 0.5, 0.5]])
    with pytest.raises(OmeZarrError, match="no coordinate system array 'a/s9'"):
        xoz.transform_points(tree, points, source="scene", target={"path": "a/s9"})


def test_transform_points_of_a_level_and_errors(image):
    path, _ = image
    ds = xr.open_dataset(path, engine="ome-zarr", level=1)
    got = xoz.transform_points(ds, [[0, 0, 0]], source={"path": "s1"}, target="physical")
    np.testing.assert_allclose(got, [[1.0, 10.25, -2.875]])
    with pytest.raises(OmeZarrError, match="no coordinate system 'nope'"):
        xoz.transform_points(ds, [[0, 0, 0]], source="nope", target="physical")
    with pytest.raises(OmeZarrError, match="3-dimensional"):
        xoz.transform_points(ds, [[0, 0]], source="physical", target="world")
    old = xr.Dataset(attrs={"ome": {"version": "0.5"}})
    with pytest.raises(OmeZarrError, match="0.6"):
        xoz.transform_points(old, [[0, 0, 0]], source="a", target="b")


def test_displacement_field_is_read_only_when_mapping(tmp_path):
    path = tmp_path / "image.ome.zarr"
    doc = image_document(extra_systems=[system("warped")], extra_transforms=[field_transform()])
    write_image(path, doc)
    write_field(path / "fields" / "d")  # +7 along y everywhere
    ds = xr.open_dataset(path, engine="ome-zarr")  # the field is not touched
    with pytest.raises(OmeZarrError, match="transform_points"):
        xr.open_dataset(path, engine="ome-zarr", coordinate_system="warped")
    with pytest.raises(OmeZarrError, match="not affine"):
        ds.ome.affine("warped")
    got = xoz.transform_points(
        path, [[1.0, 2.0, 3.0], [100.0, 0, 0]], source="physical", target="warped"
    )
    np.testing.assert_allclose(got[0], [1.0, 9.0, 3.0])
    assert np.isnan(got[1]).all()
    with pytest.raises(OmeZarrError, match="no chain"):  # a field has no inverse
        xoz.transform_points(path, [[1.0, 2.0, 3.0]], source="warped", target="physical")


def test_opening_06_costs_no_more_round_trips_than_05(tmp_path):
    write_image(tmp_path / "v06.zarr", image_document(levels=3))
    write_hand_image(tmp_path / "v05.zarr", "0.5")
    with http_server(tmp_path) as served:
        served.delay = 0.1  # rounds split at half the delay: 25 ms was within the noise under load
        counts = {}
        for name in ("v05", "v06"):
            served.clear()
            xr.open_dataset(f"{served.url}/{name}.zarr", engine="ome-zarr")
            rounds = len(served.rounds())
            served.clear()
            xr.open_datatree(f"{served.url}/{name}.zarr", engine="ome-zarr")
            counts[name] = (rounds, len(served.rounds()), len(served.requests))
    assert counts["v06"][0] <= counts["v05"][0], counts
    assert counts["v06"][1] <= counts["v05"][1], counts


def test_writing_06_as_05_refuses_what_would_be_lost(image, tmp_path):
    path, _ = image
    tree = xr.open_datatree(path, engine="ome-zarr")
    with pytest.raises(
        OmeZarrError, match=r"would lose: .*'world'.*transform\(s\) between systems"
    ):
        xoz.to_ome_zarr(tree, tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()  # nothing half-written
    chosen = xr.open_dataset(path, engine="ome-zarr", coordinate_system="world")
    with pytest.raises(OmeZarrError, match="coordinate_system="):
        xoz.to_ome_zarr(chosen, tmp_path / "out2.zarr")


def test_a_06_image_with_one_system_writes_as_05(tmp_path):
    doc = image_document()
    ms = doc["multiscales"][0]
    ms["coordinateSystems"] = [cs for cs in ms["coordinateSystems"] if cs["name"] == "physical"]
    del ms["coordinateTransformations"]
    write_image(tmp_path / "in.zarr", doc)
    tree = xr.open_datatree(tmp_path / "in.zarr", engine="ome-zarr")
    xoz.to_ome_zarr(tree, tmp_path / "out.zarr")
    assert xoz.validate(tmp_path / "out.zarr", strict=False) == []
    back = xr.open_datatree(tmp_path / "out.zarr", engine="ome-zarr")
    for level in ("scale0", "scale1"):
        for dim in ("z", "y", "x"):
            np.testing.assert_allclose(back[level][dim].values, tree[level][dim].values)


def test_scene_tree_as_05_is_refused(scene, tmp_path):
    tree = xr.open_datatree(scene, engine="ome-zarr")
    with pytest.raises(OmeZarrError, match="would lose"):
        xoz.to_ome_zarr(tree, tmp_path / "out.zarr")
