"""Writing OME-Zarr 0.6 and converting to and from it (issue 14, "Write and convert").

Coordinates are the truth for the datasets' transforms; every other coordinate system and
transformation is written back verbatim; a crop keeps them valid; ``coordinate_system=``
objects are mapped back; fields are copied; scenes stay scenes; 0.4/0.5 convert both ways
where nothing is lost.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import xarray as xr
import zarr

import xarray_ome_zarr as xoz
from xarray_ome_zarr.errors import OmeZarrError

from ..fixtures.stores import hand_image_global_transform
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


def ome(path, node: str = "") -> dict:
    return json.loads((path / node / "zarr.json").read_text())["attributes"]["ome"]


@pytest.fixture
def image(tmp_path):
    return write_image_with_other_systems(tmp_path / "image.ome.zarr")


# ---- images ------------------------------------------------------------------------------
def test_round_trip_keeps_every_system_and_transform(image, tmp_path):
    path, pixels = image
    tree = xr.open_datatree(path, engine="ome-zarr")
    xoz.to_ome_zarr(tree, tmp_path / "a.zarr", version="0.6")
    assert xoz.validate(tmp_path / "a.zarr", strict=True) == []
    stored, written = ome(path)["multiscales"][0], ome(tmp_path / "a.zarr")
    assert written["version"] == "0.6"
    ms = written["multiscales"][0]
    assert ms["coordinateSystems"] == stored["coordinateSystems"]  # order and names kept
    assert ms["coordinateTransformations"] == stored["coordinateTransformations"]
    assert ms["datasets"] == stored["datasets"]
    back = xr.open_datatree(tmp_path / "a.zarr", engine="ome-zarr")
    for level in ("scale0", "scale1"):
        xr.testing.assert_identical(back[level].to_dataset(), tree[level].to_dataset())
    # ours -> ours: the OME metadata byte for byte
    xoz.to_ome_zarr(back, tmp_path / "b.zarr", version="0.6")
    assert (tmp_path / "a.zarr" / "zarr.json").read_bytes() == (
        tmp_path / "b.zarr" / "zarr.json"
    ).read_bytes()
    got = xoz.transform_points(tmp_path / "a.zarr", [[1, 2, 3]], source="physical", target="world")
    np.testing.assert_allclose(got, [[5.001, 0.002, 0.003]])


def test_a_new_image_at_06(tmp_path):
    pixels = np.arange(2 * 8 * 6, dtype="uint8").reshape(2, 8, 6)
    xoz.to_ome_zarr(
        pixels,
        tmp_path / "new.zarr",
        version="0.6",
        dims=("c", "y", "x"),
        scale={"y": 0.5, "x": 0.25},
        translation={"y": 1.0},
        units="micrometer",
        channels=["a", "b"],
        scale_factors=[2],
    )
    assert xoz.validate(tmp_path / "new.zarr", strict=True) == []
    doc = ome(tmp_path / "new.zarr")
    ms = doc["multiscales"][0]
    assert doc["version"] == "0.6"
    assert [cs["name"] for cs in ms["coordinateSystems"]] == ["intrinsic"]
    assert [a["name"] for a in ms["coordinateSystems"][0]["axes"]] == ["c", "y", "x"]
    first = ms["datasets"][0]["coordinateTransformations"][0]
    assert first["input"] == {"path": "0"} and first["output"] == {"name": "intrinsic"}
    assert first["type"] == "sequence"
    assert first["transformations"][0] == {"type": "scale", "scale": [1.0, 0.5, 0.25]}
    assert "coordinateTransformations" not in ms
    assert doc["omero"]["channels"][1]["label"] == "b"
    ds = xr.open_dataset(tmp_path / "new.zarr", engine="ome-zarr", level=1)
    np.testing.assert_allclose(ds["y"].values, 1.25 + 1.0 * np.arange(4))
    assert list(ds["c"].values) == ["a", "b"]


def test_a_crop_keeps_the_transforms_valid(image, tmp_path):
    """Transforms start from the image's own system, so a crop changes the datasets'
    translation only: a pixel maps to the same place in every other system."""
    path, pixels = image
    ds = xr.open_dataset(path, engine="ome-zarr")
    crop = ds.isel(z=slice(1, 3), y=slice(2, 7), x=slice(3, None))
    xoz.to_ome_zarr(crop, tmp_path / "crop.zarr", version="0.6")
    assert xoz.validate(tmp_path / "crop.zarr", strict=True) == []
    ms = ome(tmp_path / "crop.zarr")["multiscales"][0]
    assert (
        ms["coordinateTransformations"] == ome(path)["multiscales"][0]["coordinateTransformations"]
    )
    back = xr.open_dataset(tmp_path / "crop.zarr", engine="ome-zarr")
    np.testing.assert_array_equal(back["img"].values, pixels[1:3, 2:7, 3:])
    index = np.array([[0, 0, 0], [1, 4, 2]])
    for target in ("world", "swapped", "rotated"):
        cropped = xoz.transform_points(
            tmp_path / "crop.zarr", index, source={"path": "s0"}, target=target
        )
        whole = xoz.transform_points(path, index + [1, 2, 3], source={"path": "s0"}, target=target)
        np.testing.assert_allclose(cropped, whole)
    # a point in the image's own system maps as before
    point = [[back.z.values[1], back.y.values[0], back.x.values[2]]]
    np.testing.assert_allclose(
        xoz.transform_points(tmp_path / "crop.zarr", point, source="physical", target="world"),
        xoz.transform_points(path, point, source="physical", target="world"),
    )


def test_dropping_an_axis_that_transforms_start_from_is_refused(image, tmp_path):
    path, _ = image
    ds = xr.open_dataset(path, engine="ome-zarr").isel(z=0)
    with pytest.raises(OmeZarrError, match=r"axes of the coordinate system 'physical' changed"):
        xoz.to_ome_zarr(ds, tmp_path / "flat.zarr", version="0.6")
    assert not (tmp_path / "flat.zarr").exists()


# ---- coordinate_system= ------------------------------------------------------------------
@pytest.mark.parametrize("system", ["world", "swapped"])
def test_coordinate_system_writes_back_in_the_image_s_own_system(image, tmp_path, system):
    path, pixels = image
    chosen = xr.open_dataset(path, engine="ome-zarr", coordinate_system=system)
    xoz.to_ome_zarr(chosen, tmp_path / "c.zarr", version="0.6")
    plain = xr.open_dataset(path, engine="ome-zarr")
    xoz.to_ome_zarr(plain, tmp_path / "p.zarr", version="0.6")
    assert ome(tmp_path / "c.zarr") == ome(tmp_path / "p.zarr")
    back = xr.open_dataset(tmp_path / "c.zarr", engine="ome-zarr")
    assert back["img"].dims == ("z", "y", "x")
    np.testing.assert_array_equal(back["img"].values, pixels)
    assert "ome_coordinate_system" not in back.attrs
    # a crop in the chosen system maps back to the same crop
    xoz.to_ome_zarr(chosen.isel(y=slice(2, 5), x=slice(1, 4)), tmp_path / "cc.zarr", version="0.6")
    xoz.to_ome_zarr(plain.isel(y=slice(2, 5), x=slice(1, 4)), tmp_path / "pc.zarr", version="0.6")
    assert ome(tmp_path / "cc.zarr") == ome(tmp_path / "pc.zarr")


def test_coordinate_system_tree_writes_back(image, tmp_path):
    path, _ = image
    tree = xr.open_datatree(path, engine="ome-zarr", coordinate_system="world")
    xoz.to_ome_zarr(tree, tmp_path / "c.zarr", version="0.6")
    assert (
        ome(tmp_path / "c.zarr")["multiscales"][0]["datasets"]
        == (ome(path)["multiscales"][0]["datasets"])
    )


def test_coordinate_system_of_a_scene_cannot_map_back_without_the_scene(tmp_path):
    write_scene(tmp_path / "scene.zarr", {"a": (0.0, 0.0, 0.0)})
    ds = xr.open_datatree(tmp_path / "scene.zarr", engine="ome-zarr", coordinate_system="scene")
    level = ds["a/scale0"].to_dataset()
    level.attrs = {**ds["a"].attrs, **level.attrs}  # the image's document, not the scene's
    with pytest.raises(OmeZarrError, match="coordinate_system='scene'.*cannot be mapped back"):
        xoz.to_ome_zarr(level, tmp_path / "out.zarr", version="0.6")
    # the whole tree holds the scene: written back as it was
    xoz.to_ome_zarr(ds, tmp_path / "tree.zarr", version="0.6")
    assert (
        ome(tmp_path / "tree.zarr", "a")["multiscales"][0]["datasets"]
        == (ome(tmp_path / "scene.zarr", "a")["multiscales"][0]["datasets"])
    )


# ---- fields ------------------------------------------------------------------------------
@pytest.mark.parametrize("chunks", [None, {}])
def test_a_displacement_field_is_copied(tmp_path, chunks):
    path = tmp_path / "image.ome.zarr"
    doc = image_document(extra_systems=[system("warped")], extra_transforms=[field_transform()])
    write_image(path, doc)
    write_field(path / "fields" / "d")
    ds = xr.open_dataset(path, engine="ome-zarr", chunks=chunks)
    xoz.to_ome_zarr(ds.isel(x=slice(1, None)), tmp_path / "out.zarr", version="0.6")
    assert xoz.validate(tmp_path / "out.zarr", strict=True) == []
    assert ome(tmp_path / "out.zarr", "fields/d") == ome(path, "fields/d")
    got = xoz.transform_points(
        tmp_path / "out.zarr", [[1.0, 2.0, 3.0]], source="physical", target="warped"
    )
    np.testing.assert_allclose(got, [[1.0, 9.0, 3.0]])


def test_a_field_without_a_source_is_refused(tmp_path):
    path = tmp_path / "image.ome.zarr"
    doc = image_document(
        extra_systems=[system("warped")], extra_transforms=[field_transform(interpolation=None)]
    )
    write_image(path, doc)
    write_field(path / "fields" / "d")
    ds = xr.open_dataset(path, engine="ome-zarr").load()  # pixels in memory: no source
    with pytest.raises(OmeZarrError, match="'fields/d'.*source"):
        xoz.to_ome_zarr(ds, tmp_path / "out.zarr", version="0.6")
    assert not (tmp_path / "out.zarr").exists()


# ---- scenes and hierarchies --------------------------------------------------------------
def test_a_scene_writes_back_as_a_scene(tmp_path):
    write_scene(tmp_path / "scene.zarr", {"a": (0.0, 0.0, 0.0), "b": (0.0, 100.0, 0.0)})
    root = zarr.open_group(tmp_path / "scene.zarr", mode="r+")
    doc = root.attrs.asdict()["ome"]
    doc["scene"]["coordinateSystems"].append({"name": "warped", "axes": copy.deepcopy(AXES)})
    doc["scene"]["coordinateTransformations"].append(
        {
            "type": "displacements",
            "path": "fields/d",
            "interpolation": "nearest",
            "input": {"path": "b", "name": "physical"},
            "output": {"name": "warped"},
        }
    )
    root.attrs["ome"] = doc
    write_field(tmp_path / "scene.zarr" / "fields" / "d")
    tree = xr.open_datatree(tmp_path / "scene.zarr", engine="ome-zarr")
    xoz.to_ome_zarr(tree, tmp_path / "out.zarr", version="0.6")
    assert xoz.validate(tmp_path / "out.zarr", strict=True) == []
    assert ome(tmp_path / "out.zarr") == ome(tmp_path / "scene.zarr")
    assert ome(tmp_path / "out.zarr", "fields/d") == ome(tmp_path / "scene.zarr", "fields/d")
    warped = {"path": "b", "name": "physical"}
    np.testing.assert_allclose(
        xoz.transform_points(tmp_path / "out.zarr", [[1, 2, 3]], source=warped, target="warped"),
        [[1, 9, 3]],
    )
    source = {"path": "a", "name": "physical"}
    target = {"path": "b", "name": "physical"}
    np.testing.assert_allclose(
        xoz.transform_points(tmp_path / "out.zarr", [[1, 2, 3]], source=source, target=target),
        xoz.transform_points(tmp_path / "scene.zarr", [[1, 2, 3]], source=source, target=target),
    )


def test_a_06dev_scene_is_written_in_the_06_spelling(tmp_path):
    write_scene(tmp_path / "scene.zarr", {"a": (0.0, 0.0, 0.0)})
    root = zarr.open_group(tmp_path / "scene.zarr", mode="r+")
    attrs = root.attrs.asdict()
    attrs["ome"]["version"] = "0.6.dev4"
    for t in attrs["ome"]["scene"]["coordinateTransformations"]:
        t["output"] = t["output"]["name"]
    root.attrs["ome"] = attrs["ome"]
    tree = xr.open_datatree(tmp_path / "scene.zarr", engine="ome-zarr")
    xoz.to_ome_zarr(tree, tmp_path / "out.zarr", version="0.6")
    written = ome(tmp_path / "out.zarr")
    assert written["version"] == "0.6"
    assert written["scene"]["coordinateTransformations"][0]["output"] == {"name": "scene"}
    assert xoz.validate(tmp_path / "out.zarr", strict=True) == []


def test_a_scene_naming_a_system_its_image_lacks_is_refused(tmp_path):
    """Validation reports such a scene (rule v06-scene-reference); the writer never makes one."""
    write_scene(tmp_path / "scene.zarr", {"a": (0.0, 0.0, 0.0), "b": (0.0, 100.0, 0.0)})
    tree = xr.open_datatree(tmp_path / "scene.zarr", engine="ome-zarr")
    scene = tree.ome.group_attrs["ome"]["scene"]
    scene["coordinateTransformations"][1]["input"]["name"] = "gone"
    with pytest.raises(OmeZarrError, match=r"(?s)scene/coordinateTransformations/1/input.*'gone'"):
        xoz.to_ome_zarr(tree, tmp_path / "out.zarr", version="0.6")
    assert not (tmp_path / "out.zarr").exists()


def test_labels_at_06(tmp_path):
    from xarray_ome_zarr.cli import demo_tree

    xoz.to_ome_zarr(demo_tree((2, 4, 16, 16)), tmp_path / "demo.zarr", version="0.6")
    assert xoz.validate(tmp_path / "demo.zarr", strict=True) == []
    assert ome(tmp_path / "demo.zarr", "labels") == {"version": "0.6", "labels": ["nuclei"]}
    label = ome(tmp_path / "demo.zarr", "labels/nuclei")
    assert label["version"] == "0.6" and "image-label" in label
    tree = xr.open_datatree(tmp_path / "demo.zarr", engine="ome-zarr")
    assert "nuclei" in tree["labels"].children


def test_plate_at_06(tmp_path):
    field = xoz.image(np.arange(32, dtype="uint16").reshape(2, 4, 4), dims=("c", "y", "x"))
    tree = xr.DataTree.from_dict({"A/1/0": field.to_dataset(name="image")})
    tree.attrs = {
        "ome": {
            "version": "0.5",
            "plate": {
                "rows": [{"name": "A"}],
                "columns": [{"name": "1"}],
                "wells": [{"path": "A/1", "rowIndex": 0, "columnIndex": 0}],
                "acquisitions": [{"id": 0}],
            },
        }
    }
    tree["A/1"].attrs = {"ome": {"version": "0.5", "well": {"images": [{"path": "0"}]}}}
    xoz.to_ome_zarr(tree, tmp_path / "plate.zarr", version="0.6")
    assert xoz.validate(tmp_path / "plate.zarr", strict=True) == []
    assert ome(tmp_path / "plate.zarr")["version"] == "0.6"
    assert ome(tmp_path / "plate.zarr")["plate"]["wells"] == tree.attrs["ome"]["plate"]["wells"]
    assert ome(tmp_path / "plate.zarr", "A/1") == {
        "version": "0.6",
        "well": {"images": [{"path": "0"}]},
    }
    back = xr.open_datatree(tmp_path / "plate.zarr", engine="ome-zarr")
    np.testing.assert_array_equal(back["A/1/0/scale0"]["image"].values, field.values)


def test_bioformats2raw_at_06(tmp_path):
    from ..fixtures.stores import hand_bf2raw

    spec = hand_bf2raw(tmp_path, "0.5")
    tree = xr.open_datatree(spec.path, engine="ome-zarr")
    xoz.to_ome_zarr(tree, tmp_path / "bf.zarr", version="0.6")
    assert xoz.validate(tmp_path / "bf.zarr", strict=True) == []
    assert ome(tmp_path / "bf.zarr") == {"version": "0.6", "bioformats2raw.layout": 3}
    assert ome(tmp_path / "bf.zarr", "OME")["series"] == ["0", "1"]


# ---- conversions -------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_0405_to_06_folds_the_multiscale_wide_transforms(tmp_path, version):
    spec = hand_image_global_transform(tmp_path, version)
    tree = xr.open_datatree(spec.path, engine="ome-zarr")
    xoz.to_ome_zarr(tree, tmp_path / "out.zarr", version="0.6")
    assert xoz.validate(tmp_path / "out.zarr", strict=True) == []
    ms = ome(tmp_path / "out.zarr")["multiscales"][0]
    assert "coordinateTransformations" not in ms
    first = ms["datasets"][0]["coordinateTransformations"][0]["transformations"]
    # S_ms * S_ds and S_ms * t_ds + t_ms with S_ds = 1, t_ds = 0
    assert first == [
        {"type": "scale", "scale": [2.0, 0.5, 0.25]},
        {"type": "translation", "translation": [10.0, -4.0, 1.5]},
    ]
    back = xr.open_datatree(tmp_path / "out.zarr", engine="ome-zarr")
    for level in ("scale0", "scale1", "scale2"):
        for dim in ("z", "y", "x"):
            np.testing.assert_allclose(back[level][dim].values, tree[level][dim].values)
    # and back to the version it came from, with the same coordinates
    xoz.to_ome_zarr(back, tmp_path / "again.zarr", version=version)
    again = xr.open_datatree(tmp_path / "again.zarr", engine="ome-zarr")
    for dim in ("z", "y", "x"):
        np.testing.assert_allclose(again["scale2"][dim].values, tree["scale2"][dim].values)


def test_06_to_04_where_nothing_is_lost(tmp_path):
    xoz.to_ome_zarr(np.zeros((4, 6), "uint8"), tmp_path / "a.zarr", version="0.6", dims=("y", "x"))
    tree = xr.open_datatree(tmp_path / "a.zarr", engine="ome-zarr")
    xoz.to_ome_zarr(tree, tmp_path / "b.zarr", version="0.4")
    assert xoz.validate(tmp_path / "b.zarr", strict=True) == []


def test_06_to_05_names_each_thing_lost(image, tmp_path):
    path, _ = image
    tree = xr.open_datatree(path, engine="ome-zarr")
    with pytest.raises(OmeZarrError) as err:
        xoz.to_ome_zarr(tree, tmp_path / "out.zarr", version="0.4")
    for lost in ("'world'", "'swapped'", "'rotated'", "3 transform(s)"):
        assert lost in str(err.value)


def test_cli_convert_to_06(image, tmp_path, capsys):
    from xarray_ome_zarr.cli import main

    path, pixels = image
    dst = tmp_path / "cli.zarr"
    assert main(["convert", str(path), str(dst), "--version", "0.6"]) == 0
    assert "OME-Zarr 0.6" in capsys.readouterr().out
    assert (
        ome(dst)["multiscales"][0]["coordinateTransformations"]
        == (ome(path)["multiscales"][0]["coordinateTransformations"])
    )
    np.testing.assert_array_equal(xr.open_dataset(dst, engine="ome-zarr")["img"].values, pixels)


# ---- peers ---------------------------------------------------------------------------------
def test_ngff_zarr_reads_what_we_write_with_the_same_geometry(image, tmp_path):
    nz = pytest.importorskip("ngff_zarr")
    path, pixels = image
    tree = xr.open_datatree(path, engine="ome-zarr")
    xoz.to_ome_zarr(tree, tmp_path / "a.zarr", version="0.6")
    multiscales = nz.from_ngff_zarr(str(tmp_path / "a.zarr"), validate=True)
    for i, level in enumerate(("scale0", "scale1")):
        got = multiscales.images[i]
        np.testing.assert_array_equal(np.asarray(got.data), tree[level]["img"].values)
        for dim in ("z", "y", "x"):
            assert got.scale[dim] == tree[level].ome.scale[dim]
            assert got.translation[dim] == tree[level].ome.translation[dim]


def test_an_ngff_zarr_06_image_rewrites_to_the_same_metadata(tmp_path):
    nz = pytest.importorskip("ngff_zarr")
    pixels = np.arange(4 * 8 * 8, dtype="uint8").reshape(4, 8, 8)
    image = nz.to_ngff_image(
        pixels,
        dims=["z", "y", "x"],
        scale={"z": 2.0, "y": 0.5, "x": 0.5},
        translation={"z": 1.0, "y": 0.0, "x": 3.0},
    )
    nz.to_ngff_zarr(
        str(tmp_path / "nz.zarr"), nz.to_multiscales(image, scale_factors=[2]), version="0.6"
    )
    tree = xr.open_datatree(tmp_path / "nz.zarr", engine="ome-zarr")
    xoz.to_ome_zarr(tree, tmp_path / "ours.zarr", version="0.6")
    assert ome(tmp_path / "ours.zarr") == ome(tmp_path / "nz.zarr")
    assert xoz.validate(tmp_path / "ours.zarr", strict=True) == []


@pytest.mark.parametrize("version", ["0.6", "0.6rc0"])
def test_a_label_added_into_a_06_store_is_written_as_06(tmp_path, version):
    doc = image_document()
    doc["version"] = version
    write_image(tmp_path / "image.zarr", doc)
    ds = xr.open_dataset(tmp_path / "image.zarr", engine="ome-zarr")
    seg = xr.zeros_like(ds["img"]).astype("uint8").rename("seg").to_dataset()
    xoz.to_ome_zarr(seg, tmp_path / "image.zarr", group="labels/seg", mode="a")
    assert ome(tmp_path / "image.zarr", "labels") == {"version": "0.6", "labels": ["seg"]}
    assert ome(tmp_path / "image.zarr", "labels/seg")["version"] == "0.6"
    assert xoz.validate(tmp_path / "image.zarr") == []
    tree = xr.open_datatree(tmp_path / "image.zarr", engine="ome-zarr")
    assert tree["labels/seg/scale0"]["seg"].shape == ds["img"].shape
