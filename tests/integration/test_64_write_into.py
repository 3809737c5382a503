"""Writing into an existing store: ``mode=``/``group=`` as xarray's ``to_zarr`` has them, label
images, fields and wells added to an existing store, ``xoz.write_metadata``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

import xarray_ome_zarr as xoz
from xarray_ome_zarr import OmeZarrError

VERSIONS = ["0.4", "0.5"]


def small_image(seed: int = 0, shape: tuple[int, ...] = (2, 4, 16, 12)) -> xr.DataArray:
    data = np.random.default_rng(seed).integers(0, 1000, shape, dtype="uint16")
    return xoz.image(
        data,
        dims=("c", "z", "y", "x"),
        scale={"z": 2.0, "y": 0.5, "x": 0.5},
        translation={"z": 1.0, "y": -3.0, "x": 4.0},
        units="micrometer",
        channels=["DAPI", "GFP"],
    )


def tree_listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


# ---- mode= and group= ------------------------------------------------------------------------
def test_mode_w_minus_is_the_default_and_refuses_an_existing_store(tmp_path):
    xoz.to_ome_zarr(small_image(), tmp_path / "a.zarr")
    with pytest.raises(OmeZarrError, match="already exists"):
        xoz.to_ome_zarr(small_image(1), tmp_path / "a.zarr", mode="w-")


def test_mode_w_replaces_like_overwrite(tmp_path):
    xoz.to_ome_zarr(small_image(), tmp_path / "a.zarr")
    xoz.to_ome_zarr(small_image(1), tmp_path / "a.zarr", mode="w")
    got = xr.open_dataset(tmp_path / "a.zarr", engine="ome-zarr")
    np.testing.assert_array_equal(got["image"].values, small_image(1).values)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "x"}, "mode must be one of"),
        ({"mode": "a", "overwrite": True}, "contradicts mode='a'"),
        ({"mode": "w-", "overwrite": True}, "contradicts mode='w-'"),
        ({"group": "../up"}, "not a path inside the store"),
        ({"group": 3}, "group must be a path"),
    ],
)
def test_bad_mode_or_group_is_refused_before_anything_is_written(tmp_path, kwargs, match):
    with pytest.raises(OmeZarrError, match=match):
        xoz.to_ome_zarr(small_image(), tmp_path / "a.zarr", **kwargs)
    assert not (tmp_path / "a.zarr").exists()


def test_mode_r_plus_without_region_is_refused(tmp_path):
    xoz.to_ome_zarr(small_image(), tmp_path / "a.zarr")
    before = tree_listing(tmp_path / "a.zarr")
    with pytest.raises(OmeZarrError, match="region"):
        xoz.to_ome_zarr(small_image(1), tmp_path / "a.zarr", mode="r+")
    assert tree_listing(tmp_path / "a.zarr") == before


def test_mode_a_on_an_existing_image_without_group_is_refused(tmp_path):
    xoz.to_ome_zarr(small_image(), tmp_path / "a.zarr")
    before = tree_listing(tmp_path / "a.zarr")
    with pytest.raises(OmeZarrError, match="group=") as info:
        xoz.to_ome_zarr(small_image(1), tmp_path / "a.zarr", mode="a")
    assert "append_dim" in str(info.value)
    assert tree_listing(tmp_path / "a.zarr") == before


def test_mode_a_creates_a_store_that_is_not_there(tmp_path):
    xoz.to_ome_zarr(small_image(), tmp_path / "a.zarr", mode="a")
    assert xoz.validate(tmp_path / "a.zarr", strict=True) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_group_in_a_new_store_puts_the_image_there_under_plain_groups(tmp_path, version):
    path = tmp_path / "a.zarr"
    xoz.to_ome_zarr(small_image(), path, group="experiment/run1", version=version)
    got = xr.open_dataset(path, engine="ome-zarr", group="experiment/run1")
    np.testing.assert_array_equal(got["image"].values, small_image().values)
    np.testing.assert_array_equal(got["y"].values, small_image()["y"].values)
    for parent in ("", "experiment"):  # plain zarr groups, no OME claim
        group = zarr.open_group(path / parent, mode="r")
        assert group.metadata.zarr_format == (2 if version == "0.4" else 3)
        assert dict(group.attrs) == {}
    assert xoz.validate(path / "experiment" / "run1", strict=True) == []


# ---- a label image added to an existing image ------------------------------------------------
def image_store(path: Path, version: str, **kwargs) -> Path:
    xoz.to_ome_zarr(small_image(), path, version=version, scale_factors=[2], **kwargs)
    return path


def nuclei(shape: tuple[int, ...] = (4, 16, 12), dtype: str = "uint32") -> np.ndarray:
    data = np.zeros(shape, dtype=dtype)
    data[:, 2:9, 3:7] = 1
    data[:, 10:14, 6:11] = 2
    return data


def labels_listing(path: Path, version: str) -> list[str]:
    name = "zarr.json" if version == "0.5" else ".zattrs"
    attrs = json.loads((path / "labels" / name).read_text())
    attrs = attrs.get("attributes", attrs)
    return (attrs["ome"] if version == "0.5" else attrs)["labels"]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_label_image_is_added_with_the_image_levels_and_coordinates(tmp_path, version):
    path = image_store(tmp_path / "img.zarr", version)
    xoz.to_ome_zarr(nuclei(), path, group="labels/nuclei", mode="a")
    xoz.to_ome_zarr(nuclei() * 2, path, group="labels/cells", mode="a")
    assert labels_listing(path, version) == ["nuclei", "cells"]
    tree = xr.open_datatree(path, engine="ome-zarr")
    image = tree["scale1"].to_dataset()
    label = tree["labels/nuclei"]
    assert sorted(label.children) == ["scale0", "scale1"]
    np.testing.assert_array_equal(label["scale0"]["image"].values, nuclei())
    for level in ("scale0", "scale1"):  # the image's coordinates, level by level
        for dim in ("z", "y", "x"):
            np.testing.assert_allclose(label[level][dim].values, tree[level][dim].values)
    assert set(np.unique(label["scale1"]["image"].values)) <= {0, 1, 2}  # mode: no new ids
    assert label["scale1"]["image"].shape == image["image"].shape[1:]
    assert xoz.validate(path, strict=True) == []


def test_added_labels_are_seen_by_ome_zarr_py(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    path = image_store(tmp_path / "img.zarr", "0.4")
    xoz.to_ome_zarr(nuclei(), path, group="labels/nuclei", mode="a")
    nodes = list(Reader(parse_url(str(path)))())
    found = [n for n in nodes if "/labels/nuclei" in str(n.zarr)]
    assert found, [str(n.zarr) for n in nodes]
    np.testing.assert_array_equal(np.asarray(found[0].data[0]), nuclei())


@pytest.mark.parametrize(
    ("label", "match"),
    [
        (nuclei(dtype="float32"), "integers"),
        (nuclei(shape=(4, 16, 10)), "pixels along 'x'"),
        (nuclei()[0], "axes"),
    ],
    ids=["float", "shape", "axes"],
)
def test_a_label_that_does_not_fit_its_image_is_refused_and_nothing_is_written(
    tmp_path, label, match
):
    path = image_store(tmp_path / "img.zarr", "0.5")
    before = tree_listing(path)
    with pytest.raises(OmeZarrError, match=match) as info:
        xoz.to_ome_zarr(label, path, group="labels/nuclei", mode="a")
    assert "labels/nuclei" in str(info.value) and "img.zarr" in str(info.value)
    assert tree_listing(path) == before


def test_a_label_with_other_coordinates_is_refused(tmp_path):
    path = image_store(tmp_path / "img.zarr", "0.5")
    label = xoz.image(
        nuclei(),
        dims=("z", "y", "x"),
        scale={"z": 2.0, "y": 0.5, "x": 0.25},
        translation={"z": 1.0, "y": -3.0, "x": 4.0},
    )
    with pytest.raises(OmeZarrError, match="coordinates along 'x'"):
        xoz.to_ome_zarr(label, path, group="labels/nuclei", mode="a")


def test_an_existing_label_needs_mode_w_to_be_replaced(tmp_path):
    path = image_store(tmp_path / "img.zarr", "0.5")
    xoz.to_ome_zarr(nuclei(), path, group="labels/nuclei", mode="a")
    with pytest.raises(OmeZarrError, match="mode='w' replaces"):
        xoz.to_ome_zarr(nuclei() * 3, path, group="labels/nuclei", mode="a")
    xoz.to_ome_zarr(nuclei() * 3, path, group="labels/nuclei", mode="w")
    got = xr.open_dataset(path, engine="ome-zarr", group="labels/nuclei")
    np.testing.assert_array_equal(got["image"].values, nuclei() * 3)
    assert labels_listing(path, "0.5") == ["nuclei"]
    np.testing.assert_array_equal(  # the image itself untouched
        xr.open_dataset(path, engine="ome-zarr")["image"].values, small_image().values
    )


def test_a_failing_label_write_leaves_the_store_as_it_was(tmp_path):
    import dask.array as da

    path = image_store(tmp_path / "img.zarr", "0.4")
    before = tree_listing(path)

    def broken(block):
        raise RuntimeError("disk on fire")

    pixels = da.from_array(nuclei(), chunks=(2, 16, 12)).map_blocks(broken, dtype="uint32")
    label = xr.DataArray(pixels, dims=("z", "y", "x"))
    with pytest.raises(RuntimeError, match="disk on fire"):
        xoz.to_ome_zarr(label, path, group="labels/nuclei", mode="a")
    assert tree_listing(path) == before
    assert not (path / "labels").exists()


@pytest.mark.parametrize("version", VERSIONS)
def test_consolidated_metadata_is_refreshed_after_adding_a_label(tmp_path, version):
    path = image_store(tmp_path / "img.zarr", version, consolidated=True)
    xoz.to_ome_zarr(nuclei(), path, group="labels/nuclei", mode="a")
    root = zarr.open_group(path, mode="r", use_consolidated=True)
    assert "nuclei" in root["labels"]  # answered from the consolidated listing
    assert "nuclei" in dict(root["labels"].attrs).get("ome", dict(root["labels"].attrs))["labels"]


def test_labels_only_go_under_an_image(tmp_path):
    path = tmp_path / "plain.zarr"
    xoz.to_ome_zarr(small_image(), path, group="a/img")
    with pytest.raises(OmeZarrError, match="not one"):
        xoz.to_ome_zarr(nuclei(), path, group="a/labels/nuclei", mode="a")
    with pytest.raises(OmeZarrError, match="inside the image"):
        xoz.to_ome_zarr(nuclei(), path, group="a/img/extra", mode="a")
    with pytest.raises(OmeZarrError, match="holds OME-Zarr 0.5"):
        xoz.to_ome_zarr(nuclei(), path, group="a/img/labels/x", mode="a", version="0.4")


# ---- a field into a well, a well into a plate ------------------------------------------------
@pytest.fixture(scope="module", params=VERSIONS)
def plate_source(request, tmp_path_factory):
    from ..fixtures.stores import ome_zarr_py_plate

    return ome_zarr_py_plate(tmp_path_factory.mktemp("plate"), request.param)


def copied(source, tmp_path) -> Path:
    import shutil

    target = tmp_path / "plate.zarr"
    shutil.copytree(source.path, target)
    return target


def ome_block(path: Path, node: str, key: str) -> dict:
    group = zarr.open_group(path / node, mode="r")
    attrs = dict(group.attrs)
    return attrs.get("ome", attrs)[key]


def field_image(seed: int) -> xr.DataArray:
    data = np.random.default_rng(seed).integers(0, 1000, (2, 33, 41), dtype="uint16")
    return xoz.image(data, dims=("c", "y", "x"), scale={"y": 0.65, "x": 0.65}, units="micrometer")


def test_a_field_is_added_to_a_well_and_the_field_counts_follow(plate_source, tmp_path):
    path = copied(plate_source, tmp_path)
    xoz.to_ome_zarr(field_image(1), path, group="A/1/2", mode="a", scale_factors=[2])
    images = ome_block(path, "A/1", "well")["images"]
    assert [i["path"] for i in images] == ["0", "1", "2"]
    assert images[-1]["acquisition"] == 0
    plate = ome_block(path, "", "plate")
    assert plate["field_count"] == 3
    assert plate["acquisitions"][0]["maximumfieldcount"] == 3
    tree = xr.open_datatree(path, engine="ome-zarr")
    np.testing.assert_array_equal(tree["A/1/2/scale0"]["image"].values, field_image(1).values)
    assert [p for p in xoz.validate(path) if p.severity == "error"] == []
    assert xoz.validate(path / "A" / "1" / "2", strict=True) == []  # ome-zarr-py's fields lack
    # the strict schema's multiscale metadata; the one we wrote has it


def test_a_well_is_added_to_a_plate_with_its_row_and_column(plate_source, tmp_path):
    path = copied(plate_source, tmp_path)
    well = xr.open_datatree(path, engine="ome-zarr")["A/1"].copy()
    xoz.to_ome_zarr(well, path, group="C/3", mode="a")
    plate = ome_block(path, "", "plate")
    assert [r["name"] for r in plate["rows"]] == ["A", "B", "C"]
    assert [c["name"] for c in plate["columns"]] == ["1", "2", "3"]
    assert plate["wells"][-1] == {"path": "C/3", "rowIndex": 2, "columnIndex": 2}
    tree = xr.open_datatree(path, engine="ome-zarr")
    copy, original = (tree[f"{w}/1/scale0"].to_dataset() for w in ("C/3", "A/1"))
    assert list(copy.data_vars) == list(original.data_vars)
    for name in original.data_vars:
        np.testing.assert_array_equal(copy[name].values, original[name].values)
    assert [p for p in xoz.validate(path) if p.severity == "error"] == []


def test_a_well_must_be_a_well_tree(plate_source, tmp_path):
    path = copied(plate_source, tmp_path)
    with pytest.raises(OmeZarrError, match="a well goes here"):
        xoz.to_ome_zarr(field_image(1), path, group="C/3", mode="a")
    with pytest.raises(OmeZarrError, match="inside the plate"):
        xoz.to_ome_zarr(field_image(1), path, group="C", mode="a")
    assert not (path / "C").exists()


@pytest.mark.parametrize("version", VERSIONS)
def test_peers_validate_and_read_an_image_with_an_added_label(tmp_path, version):
    from .test_72_truthful import _peers_accept

    path = image_store(tmp_path / "img.zarr", version)
    xoz.to_ome_zarr(nuclei(), path, group="labels/nuclei", mode="a")
    _peers_accept(path)
    _peers_accept(path / "labels" / "nuclei")


# ---- write_metadata --------------------------------------------------------------------------
def chunk_files(path: Path) -> dict[str, float]:
    """Every file that is not a metadata document, with its modification time."""
    names = ("zarr.json", ".zattrs", ".zgroup", ".zarray", ".zmetadata")
    return {
        str(p.relative_to(path)): p.stat().st_mtime_ns
        for p in path.rglob("*")
        if p.is_file() and p.name not in names
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_write_metadata_changes_names_colours_units_and_name_not_pixels(tmp_path, version):
    path = image_store(tmp_path / "img.zarr", version)
    chunks = chunk_files(path)
    ds = xr.open_dataset(path, engine="ome-zarr", level=1)
    ds = ds.assign_coords(c=["nuclei", "membrane"]).rename({"image": "cells"})
    ds["x"].attrs["units"] = "nanometer"
    attrs = ds.ome.group_attrs.get("ome", ds.ome.group_attrs)
    attrs["omero"]["channels"][1]["color"] = "FF00FF"
    xoz.write_metadata(ds, path)
    assert chunk_files(path) == chunks  # not a pixel touched
    tree = xr.open_datatree(path, engine="ome-zarr")
    for level in ("scale0", "scale1"):
        assert list(tree[level].data_vars) == ["cells"]
        assert list(tree[level]["c"].values) == ["nuclei", "membrane"]
        assert tree[level]["x"].attrs["units"] == "nanometer"
        np.testing.assert_array_equal(tree[level]["y"].values, image_tree_y(level))
    omero = tree.ome.group_attrs.get("ome", tree.ome.group_attrs)["omero"]
    assert [c["label"] for c in omero["channels"]] == ["nuclei", "membrane"]
    assert omero["channels"][1]["color"] == "FF00FF"
    assert omero["channels"][0]["color"] == attrs["omero"]["channels"][0]["color"]
    assert xoz.validate(path, strict=True) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_write_metadata_keeps_consolidated_metadata_current(tmp_path, version):
    path = image_store(tmp_path / "img.zarr", version, consolidated=True)
    ds = xr.open_dataset(path, engine="ome-zarr")
    ds = ds.assign_coords(c=["nuclei", "membrane"])
    xoz.write_metadata(ds, path)  # rewrites the root group's own attributes
    root = zarr.open_group(path, mode="r", use_consolidated=True)
    assert root.metadata.consolidated_metadata is not None or version == "0.4"
    attrs = dict(root.attrs)
    omero = attrs.get("ome", attrs)["omero"]
    assert [c["label"] for c in omero["channels"]] == ["nuclei", "membrane"]
    tree = xr.open_datatree(path, engine="ome-zarr", consolidated=True)
    assert list(tree["scale0"]["c"].values) == ["nuclei", "membrane"]


def image_tree_y(level: str) -> np.ndarray:
    tree = xoz.to_multiscale(small_image(), [2])
    return tree[level]["y"].values


def test_write_metadata_refuses_other_geometry_or_shape_and_writes_nothing(tmp_path):
    path = image_store(tmp_path / "img.zarr", "0.5")
    before = {p: (path / p).read_bytes() for p in tree_listing(path)}
    ds = xr.open_dataset(path, engine="ome-zarr")
    moved = ds.assign_coords(x=ds["x"].values + 1.0)
    with pytest.raises(OmeZarrError, match="does not move pixels") as info:
        xoz.write_metadata(moved, path)
    assert "img.zarr" in str(info.value) and info.value.key == "multiscales/0/datasets/0"
    with pytest.raises(OmeZarrError, match="shape"):
        xoz.write_metadata(ds.isel(x=slice(0, 4)), path)
    with pytest.raises(OmeZarrError, match="no such store"):
        xoz.write_metadata(ds, tmp_path / "nothing.zarr")
    assert {p: (path / p).read_bytes() for p in tree_listing(path)} == before


def test_write_metadata_of_a_label_image_in_a_tree(tmp_path):
    path = image_store(tmp_path / "img.zarr", "0.4")
    xoz.to_ome_zarr(nuclei(), path, group="labels/nuclei", mode="a")
    chunks = chunk_files(path)
    tree = xr.open_datatree(path, engine="ome-zarr")
    tree["labels/nuclei"].ome.group_attrs["image-label"]["colors"] = [
        {"label-value": 1, "rgba": [255, 0, 0, 255]}
    ]
    xoz.write_metadata(tree, path)
    assert chunk_files(path) == chunks
    again = xr.open_datatree(path, engine="ome-zarr")
    assert again["labels/nuclei"].ome.group_attrs["image-label"]["colors"][0]["rgba"] == [
        255,
        0,
        0,
        255,
    ]
    assert xoz.validate(path, strict=True) == []


# ---- xarray's own writers ----------------------------------------------------------------------
def test_what_xarrays_to_zarr_writes_turns_back_into_the_same_ome_zarr(tmp_path):
    path = image_store(tmp_path / "img.zarr", "0.5")
    ds = xr.open_dataset(path, engine="ome-zarr", level=1)
    ds.to_zarr(tmp_path / "plain.zarr", mode="w")
    xoz.to_ome_zarr(xr.open_zarr(tmp_path / "plain.zarr"), tmp_path / "back.zarr")
    assert xoz.validate(tmp_path / "back.zarr", strict=True) == []
    back = xr.open_dataset(tmp_path / "back.zarr", engine="ome-zarr")
    np.testing.assert_array_equal(back["image"].values, ds["image"].values)
    assert back.ome.scale == ds.ome.scale and back.ome.translation == ds.ome.translation
    assert back.ome.group_attrs["ome"]["omero"] == ds.ome.group_attrs["ome"]["omero"]


def test_a_label_is_added_through_a_zarr_store_object_and_a_failure_leaves_nothing(tmp_path):
    import dask.array as da

    path = image_store(tmp_path / "img.zarr", "0.5")
    before = tree_listing(path)

    def broken(block):
        raise RuntimeError("network gone")

    pixels = da.from_array(nuclei(), chunks=(2, 16, 12)).map_blocks(broken, dtype="uint32")
    store = zarr.storage.LocalStore(path)
    with pytest.raises(RuntimeError, match="network gone"):
        xoz.to_ome_zarr(
            xr.DataArray(pixels, dims=("z", "y", "x")), store, group="labels/a", mode="a"
        )
    assert tree_listing(path) == before
    xoz.to_ome_zarr(nuclei(), store, group="labels/nuclei", mode="a")
    assert labels_listing(path, "0.5") == ["nuclei"]
    assert xoz.validate(path, strict=True) == []


def test_peers_validate_a_plate_grown_by_a_field_and_a_well(plate_source, tmp_path):
    yaozarrs = pytest.importorskip("yaozarrs")
    ome_zarr_models = pytest.importorskip("ome_zarr_models")
    path = copied(plate_source, tmp_path)
    xoz.to_ome_zarr(field_image(2), path, group="B/2/1", mode="a", scale_factors=[2])
    xoz.to_ome_zarr(xr.open_datatree(path, engine="ome-zarr")["A/2"], path, group="B/3", mode="a")
    yaozarrs.validate_zarr_store(str(path))
    ome_zarr_models.open_ome_zarr(zarr.open_group(path, mode="r"))


def test_a_label_tree_with_another_number_of_levels_is_refused(tmp_path):
    path = image_store(tmp_path / "img.zarr", "0.4")
    label = xoz.to_multiscale(xr.DataArray(nuclei(), dims=("z", "y", "x")), [2, 2])
    with pytest.raises(OmeZarrError, match="as many levels as its image"):
        xoz.to_ome_zarr(label, path, group="labels/nuclei", mode="a")
    assert not (path / "labels").exists()


def test_group_is_refused_for_an_ozx_file(tmp_path):
    xoz.to_ome_zarr(small_image(), tmp_path / "a.ozx")
    before = (tmp_path / "a.ozx").read_bytes()
    with pytest.raises(OmeZarrError, match="one hierarchy from its root"):
        xoz.to_ome_zarr(nuclei(), tmp_path / "a.ozx", group="labels/nuclei", mode="a")
    assert (tmp_path / "a.ozx").read_bytes() == before


def test_a_label_is_added_to_a_field_of_a_peer_plate(plate_source, tmp_path):
    path = copied(plate_source, tmp_path)
    cells = np.zeros((33, 41), dtype="uint16")  # ome-zarr-py's odd-sized fields, 2 levels
    cells[3:9, 4:20] = 5
    xoz.to_ome_zarr(cells, path, group="A/1/0/labels/cells", mode="a")
    tree = xr.open_datatree(path, engine="ome-zarr")
    label, image = tree["A/1/0/labels/cells"], tree["A/1/0"]
    for level in ("scale0", "scale1"):
        for dim in ("y", "x"):
            np.testing.assert_allclose(label[level][dim].values, image[level][dim].values)
    np.testing.assert_array_equal(label["scale0"]["image"].values, cells)
    assert [p for p in xoz.validate(path) if p.severity == "error"] == []
