"""Nothing silently lost (issue 12): consolidated listings, geometry without coordinate
values, exact stored numbers, refused settings, xarray's keywords and ``to_zarr``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr

import xarray_ome_zarr as xoz

from ..conftest import pixels, write_hand_image
from ..fixtures.stores import angle_store

#: The decoding keywords ``xr.open_dataset`` forwards to a backend.
CF_KEYWORDS = {
    "decode_times": True,
    "mask_and_scale": True,
    "decode_coords": "all",
    "use_cftime": False,
    "decode_timedelta": True,
    "concat_characters": True,
    "decode_cf": True,
}


# ---- xarray's contract -----------------------------------------------------------------------
@pytest.fixture
def hand_store(tmp_path):
    path = tmp_path / "hand.ome.zarr"
    write_hand_image(path, "0.5")
    return path


@pytest.mark.parametrize("keyword", sorted(CF_KEYWORDS))
@pytest.mark.parametrize("value", ["on", False])
def test_cf_keywords_are_accepted_and_change_nothing(hand_store, keyword, value):
    value = CF_KEYWORDS[keyword] if value == "on" else value
    plain = xr.open_dataset(hand_store, engine="ome-zarr")
    ds = xr.open_dataset(hand_store, engine="ome-zarr", **{keyword: value})
    xr.testing.assert_identical(ds, plain)
    assert ds["cells"].dtype == np.uint16
    tree = xr.open_datatree(hand_store, engine="ome-zarr", **{keyword: value})
    xr.testing.assert_identical(tree, xr.open_datatree(hand_store, engine="ome-zarr"))


def test_drop_variables_drops_coordinates(hand_store):
    ds = xr.open_dataset(hand_store, engine="ome-zarr", drop_variables=["z", "c"])
    assert "z" not in ds.coords and "c" not in ds.coords
    assert set(ds.coords) == {"y", "x"}
    assert ds["cells"].dims == ("c", "z", "y", "x")
    ds = xr.open_dataset(hand_store, engine="ome-zarr", drop_variables="x")
    assert "x" not in ds.coords
    tree = xr.open_datatree(hand_store, engine="ome-zarr", drop_variables=["y"])
    assert all("y" not in tree[level].coords for level in ("scale0", "scale1"))
    # the data variable too, as before
    assert not xr.open_dataset(hand_store, engine="ome-zarr", drop_variables="cells").data_vars


# ---- xarray's own writers make no OME claim ----------------------------------------------------
#: The group attributes that claim a group is OME-Zarr.
OME_CLAIMS = (
    "ome",
    "multiscales",
    "plate",
    "well",
    "labels",
    "image-label",
    "bioformats2raw.layout",
)


@pytest.fixture(scope="module", params=["0.4", "0.5"])
def labelled_store(request, tmp_path_factory):
    """A hand-written 2-level image of ``version`` with a label image."""
    path = tmp_path_factory.mktemp("labelled") / "img.ome.zarr"
    write_hand_image(path, request.param, pixels((2, 4, 12, 10)))
    nuclei = np.zeros((4, 12, 10), "uint32")
    nuclei[:, 2:9, 3:7] = 1
    xoz.to_ome_zarr(nuclei, path, group="labels/nuclei", mode="a", version=request.param)
    return path, request.param


def claims(path) -> dict[str, list[str]]:
    """The OME keys in each group's attributes of the zarr store at ``path``."""
    root = zarr.open_group(path, mode="r")
    groups = [("/", root)]
    groups += [(f"/{n}", m) for n, m in root.members(max_depth=None) if isinstance(m, zarr.Group)]
    found = {name: sorted(k for k in g.attrs.asdict() if k in OME_CLAIMS) for name, g in groups}
    return {name: keys for name, keys in found.items() if keys}


def write_with_xarray(ds, dt, version, zarr_format, tmp_path):
    """``ds.to_zarr`` and ``dt.to_zarr`` into ``ds.zarr`` and ``dt.zarr``; into the other zarr
    format than the source's without the stored codecs (xarray's own rule, not ours)."""
    if zarr_format != (3 if version == "0.5" else 2):
        ds = ds.drop_encoding()
        dt = dt.map_over_datasets(lambda d: d.drop_encoding())
    ds.to_zarr(tmp_path / "ds.zarr", zarr_format=zarr_format, consolidated=False)
    dt.to_zarr(tmp_path / "dt.zarr", zarr_format=zarr_format, consolidated=False)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_xarrays_to_zarr_of_an_opened_object_makes_no_ome_claim(
    labelled_store, zarr_format, tmp_path
):
    path, version = labelled_store
    ds = xr.open_dataset(path, engine="ome-zarr", level=0)
    dt = xr.open_datatree(path, engine="ome-zarr")
    write_with_xarray(ds, dt, version, zarr_format, tmp_path)
    for written in ("ds.zarr", "dt.zarr"):
        assert claims(tmp_path / written) == {}
        with pytest.raises(xoz.OmeZarrError, match="not a multiscale image") as err:
            xr.open_dataset(tmp_path / written, engine="ome-zarr")
        for hint in ("xarray's own to_zarr", "engine='zarr'", "xoz.to_ome_zarr"):
            assert hint in str(err.value)
    with pytest.raises(xoz.OmeZarrError, match="no OME-Zarr metadata.*xarray's own to_zarr"):
        xr.open_datatree(tmp_path / "dt.zarr", engine="ome-zarr")


def _document(group_attrs):
    """The OME document of group attributes, 0.5 (``ome``) or earlier."""
    return group_attrs.get("ome", group_attrs)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_what_xarrays_to_zarr_wrote_turns_back_into_the_same_ome_zarr(
    labelled_store, zarr_format, tmp_path
):
    path, version = labelled_store
    ds = xr.open_dataset(path, engine="ome-zarr", level=0)
    dt = xr.open_datatree(path, engine="ome-zarr")
    write_with_xarray(ds, dt, version, zarr_format, tmp_path)

    xoz.to_ome_zarr(xr.open_zarr(tmp_path / "ds.zarr"), tmp_path / "ds.ome.zarr", version=version)
    assert xoz.validate(tmp_path / "ds.ome.zarr", strict=True) == []
    back = xr.open_dataset(tmp_path / "ds.ome.zarr", engine="ome-zarr")
    xr.testing.assert_equal(back["cells"], ds["cells"])
    assert back.ome.scale == ds.ome.scale and back.ome.translation == ds.ome.translation
    assert back.ome.units == ds.ome.units and back.ome.axes == ds.ome.axes
    assert list(back["c"].values) == list(ds["c"].values)
    before, after = _document(ds.ome.group_attrs), _document(back.ome.group_attrs)
    assert after["omero"] == before["omero"] and after["x-custom"] == before["x-custom"]

    tree = xr.open_datatree(tmp_path / "dt.zarr", engine="zarr")
    xoz.to_ome_zarr(tree, tmp_path / "dt.ome.zarr", version=version)
    assert xoz.validate(tmp_path / "dt.ome.zarr", strict=True) == []
    again = xr.open_datatree(tmp_path / "dt.ome.zarr", engine="ome-zarr")
    for image in ("/", "/labels/nuclei"):
        for i, (a, b) in enumerate(zip(again[image].ome.levels, dt[image].ome.levels, strict=True)):
            assert (a.scale, a.translation, a.units) == (b.scale, b.translation, b.units), i
            xr.testing.assert_equal(a.dataset.drop_attrs(), b.dataset.drop_attrs())
    before, after = _document(dt.ome.group_attrs), _document(again.ome.group_attrs)
    assert after["omero"] == before["omero"] and after["x-custom"] == before["x-custom"]
    labels = _document(again["labels/nuclei"].ome.group_attrs)["image-label"]
    assert (
        labels["colors"] == _document(dt["labels/nuclei"].ome.group_attrs)["image-label"]["colors"]
    )
    assert _document(again["labels"].ome.group_attrs)["labels"] == ["nuclei"]


def test_group_attrs_is_the_dict_the_attrs_keep_and_edits_are_written(hand_store, tmp_path):
    ds = xr.open_dataset(hand_store, engine="ome-zarr")
    assert ds.ome.group_attrs is ds.attrs["ome_group_attrs"]
    assert set(ds.attrs) == {"ome_group_attrs", "ome_dataset_path"}
    assert set(ds.ome.group_attrs) == set(zarr.open_group(hand_store, mode="r").attrs.asdict())
    ds.ome.group_attrs["ome"]["omero"]["channels"][0]["color"] = "FF00FF"
    ds.attrs["experiment"] = "x"  # a user's attr: a group attribute too
    xoz.write_metadata(ds, hand_store)
    back = xr.open_dataset(hand_store, engine="ome-zarr")
    assert back.ome.group_attrs["ome"]["omero"]["channels"][0]["color"] == "FF00FF"
    assert back.ome.group_attrs["experiment"] == "x"
    dt = xr.open_datatree(hand_store, engine="ome-zarr")
    assert dt.ome.group_attrs is dt.attrs["ome_group_attrs"]


@pytest.mark.parametrize("spelling", ["top level", "nested"])
def test_group_attributes_spelled_either_way_are_written(hand_store, tmp_path, spelling):
    opened = xr.open_dataset(hand_store, engine="ome-zarr")
    stored = opened.attrs["ome_group_attrs"]
    attrs = dict(stored) if spelling == "top level" else {"ome_group_attrs": stored}
    hand_built = xr.Dataset({"cells": opened["cells"]}, attrs={**attrs, "experiment": "x"})
    xoz.to_ome_zarr(hand_built, tmp_path / "out.ome.zarr")
    assert xoz.validate(tmp_path / "out.ome.zarr", strict=True) == []
    written = zarr.open_group(tmp_path / "out.ome.zarr", mode="r").attrs.asdict()
    assert written["ome"]["omero"] == stored["ome"]["omero"] and written["experiment"] == "x"
    assert "ome_group_attrs" not in written


def test_a_key_in_both_places_with_other_values_is_an_error(hand_store, tmp_path):
    ds = xr.open_dataset(hand_store, engine="ome-zarr")
    ds.attrs["ome"] = {"version": "0.5", "omero": {"channels": []}}
    with pytest.raises(xoz.OmeZarrError, match="'ome' is both in attrs"):
        xoz.to_ome_zarr(ds, tmp_path / "out.ome.zarr")
    assert not (tmp_path / "out.ome.zarr").exists()
    ds.attrs["ome"] = ds.attrs["ome_group_attrs"]["ome"]  # the same value: no conflict
    xoz.to_ome_zarr(ds, tmp_path / "out.ome.zarr")


# ---- settings are never ignored --------------------------------------------------------------
def small_image() -> xr.DataArray:
    data = np.arange(2 * 4 * 32 * 32, dtype=np.uint16).reshape(2, 4, 32, 32)
    return xr.DataArray(data, dims=("c", "z", "y", "x"), name="cells")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunks": {"y": 16}, "shards": {"y": 8}}, "smaller than the chunk"),
        ({"chunks": 16, "shards": 2}, "smaller than the chunk"),
        ({"chunks": {"y": 8}, "shards": {"y": 12}}, "multiples of the chunks"),
        ({"chunks": {"q": 8}}, r"chunks name axes the image does not have: \['q'\]"),
        ({"shards": {"y": 32, "w": 64}}, r"shards name axes the image does not have: \['w'\]"),
        ({"chunks_per_shard": {"k": 2}}, "chunks_per_shard name axes"),
        ({"chunks_per_shard": 0}, "positive"),
        ({"chunks_per_shard": 2, "shards": 8}, "not both"),
        ({"chunks_per_shard": 2, "version": "0.4"}, "sharding needs"),
    ],
)
def test_settings_that_cannot_take_effect_are_refused(tmp_path, kwargs, message):
    target = tmp_path / "a.ome.zarr"
    with pytest.raises(xoz.OmeZarrError, match=message) as info:
        xoz.to_ome_zarr(small_image(), target, **kwargs)
    assert info.value.store is not None
    assert not target.exists()


def test_chunks_per_shard(tmp_path):
    xoz.to_ome_zarr(
        small_image(),
        tmp_path / "a.ome.zarr",
        chunks={"c": 1, "z": 2, "y": 8, "x": 8},
        chunks_per_shard=2,
        scale_factors=[2, 2],
    )
    group = zarr.open_group(tmp_path / "a.ome.zarr")
    assert group["0"].chunks == (1, 2, 8, 8) and group["0"].shards == (2, 4, 16, 16)
    # chunks asked by axis hold on every level (z: 2 on a level of 1); chunks_per_shard=2,
    # one number for every axis, is clipped to each level
    assert group["2"].chunks == (1, 2, 8, 8) and group["2"].shards == (2, 2, 8, 8)
    xoz.to_ome_zarr(
        small_image(), tmp_path / "b.ome.zarr", chunks=8, chunks_per_shard={"y": 2, "x": 4}
    )
    assert zarr.open_group(tmp_path / "b.ome.zarr")["0"].shards == (2, 4, 16, 32)


def test_an_axis_only_some_images_have_is_not_refused(tmp_path):
    image = small_image()
    labels = xr.DataArray(np.zeros((4, 32, 32), np.uint8), dims=("z", "y", "x"), name="n")
    tree = xr.DataTree.from_dict(
        {"/scale0": image.to_dataset(), "/labels/n/scale0": labels.to_dataset()}
    )
    xoz.to_ome_zarr(tree, tmp_path / "a.ome.zarr", chunks={"c": 1, "y": 16}, shards={"y": 32})
    group = zarr.open_group(tmp_path / "a.ome.zarr")
    assert group["labels/n/0"].chunks == (4, 16, 32) and group["labels/n/0"].shards[1] == 32


def test_cli_convert_chunks_per_shard_as_the_readme_says(tmp_path, capsys):
    from xarray_ome_zarr.cli import main

    source = tmp_path / "src.ome.zarr"
    xoz.to_ome_zarr(small_image(), source)
    out = tmp_path / "out.ome.zarr"
    args = ["convert", str(source), str(out), "--chunks", "z=2,y=8,x=8"]
    assert main([*args, "--chunks-per-shard", "2"]) == 0
    assert zarr.open_group(out)["0"].shards == (2, 4, 16, 16)
    # --shards is a shard shape: smaller than the chunk is refused, not ignored
    assert main([*args, "--shards", "2", "--overwrite"]) != 0
    assert "smaller than the chunk" in capsys.readouterr().err
    assert zarr.open_group(out)["0"].shards == (2, 4, 16, 16)  # untouched


# ---- geometry of axes without coordinate values ----------------------------------------------
def ome_multiscale(path) -> dict:
    document = json.loads((path / "zarr.json").read_text())["attributes"]["ome"]
    return document["multiscales"][0]


def transforms(path, level: int = 0) -> tuple[list, list]:
    scale, translation = ome_multiscale(path)["datasets"][level]["coordinateTransformations"]
    return scale["scale"], translation["translation"]


def test_a_custom_axis_gets_a_coordinate_and_selections_shift_it(tmp_path):
    angle_store(tmp_path / "a.ome.zarr")
    ds = xr.open_dataset(tmp_path / "a.ome.zarr", engine="ome-zarr")
    angle = ds["angle"]
    np.testing.assert_array_equal(angle.values, [45.0, 135.0, 225.0, 315.0])
    assert angle.attrs == {"axis_type": "angle", "scale": 90.0, "units": "degree"}
    assert ds.ome.scale["angle"] == 90.0 and ds.ome.translation["angle"] == 45.0
    xoz.to_ome_zarr(ds, tmp_path / "same.ome.zarr")
    assert transforms(tmp_path / "same.ome.zarr") == transforms(tmp_path / "a.ome.zarr")
    assert ome_multiscale(tmp_path / "same.ome.zarr")["axes"][0] == {
        "name": "angle",
        "type": "angle",
        "unit": "degree",
    }
    picked = ds.sel(angle=[135.0, 225.0])
    xoz.to_ome_zarr(picked, tmp_path / "b.ome.zarr")
    assert transforms(tmp_path / "b.ome.zarr")[1][0] == 135.0
    again = xr.open_dataset(tmp_path / "b.ome.zarr", engine="ome-zarr")
    xr.testing.assert_identical(again["angle"], picked["angle"])


def test_ome_zarr_py_custom_axis(tmp_path):
    """ome-zarr-py 0.18 writes a custom axis as ``type: custom`` with its scale."""
    writer = pytest.importorskip("ome_zarr.writer")
    path = tmp_path / "omz.ome.zarr"
    root = zarr.open_group(path, mode="w", zarr_format=3)
    axes = [{"name": "angle", "type": "angle"}, {"name": "y", "type": "space"}]
    axes.append({"name": "x", "type": "space"})
    data = np.arange(4 * 16 * 16, dtype="u1").reshape(4, 16, 16)
    writer.write_image(data, root, axes=axes, scale={"angle": 90.0, "y": 0.5, "x": 0.5})
    tree = xr.open_datatree(path, engine="ome-zarr")
    np.testing.assert_array_equal(tree["scale0"]["angle"].values, [0.0, 90.0, 180.0, 270.0])
    assert tree["scale0"]["angle"].attrs["axis_type"] == "custom"
    xoz.to_ome_zarr(tree["scale0"].to_dataset().isel(angle=slice(2, None)), tmp_path / "b.zarr")
    scale, translation = transforms(tmp_path / "b.zarr")
    assert (scale[0], translation[0]) == (90.0, 180.0)


def test_a_dropped_coordinate_keeps_its_stored_geometry(tmp_path):
    angle_store(tmp_path / "a.ome.zarr")
    for drop in ("y", "angle"):
        ds = xr.open_dataset(tmp_path / "a.ome.zarr", engine="ome-zarr").drop_vars(drop)
        xoz.to_ome_zarr(ds, tmp_path / f"{drop}.ome.zarr")
        assert transforms(tmp_path / f"{drop}.ome.zarr") == transforms(tmp_path / "a.ome.zarr")
        read = xr.open_dataset(tmp_path / "a.ome.zarr", engine="ome-zarr", drop_variables=drop)
        xoz.to_ome_zarr(read, tmp_path / f"read-{drop}.ome.zarr")
        assert transforms(tmp_path / f"read-{drop}.ome.zarr") == transforms(tmp_path / "a.ome.zarr")


def test_a_dropped_coordinate_of_a_resized_axis_is_an_error(tmp_path):
    angle_store(tmp_path / "a.ome.zarr")
    ds = xr.open_dataset(tmp_path / "a.ome.zarr", engine="ome-zarr")
    cropped = ds.drop_vars("y").isel(y=slice(2, 5))
    with pytest.raises(
        xoz.OmeZarrError, match=r"axis 'y' has no coordinate and 3 pixels.*stored level's 6"
    ) as info:
        xoz.to_ome_zarr(cropped, tmp_path / "b.ome.zarr")
    assert info.value.store is not None
    assert not (tmp_path / "b.ome.zarr").exists()
    # a pyramid from it too: the length of level 0 is what is checked
    with pytest.raises(xoz.OmeZarrError, match="no coordinate"):
        xoz.to_ome_zarr(cropped, tmp_path / "c.ome.zarr", scale_factors=[2])


# ---- exact stored numbers --------------------------------------------------------------------
def test_rewriting_keeps_the_stored_numbers_exactly(tmp_path):
    ngff_zarr = pytest.importorskip("ngff_zarr")
    data = np.arange(3 * 64 * 48, dtype=np.uint16).reshape(3, 64, 48)
    image = ngff_zarr.to_ngff_image(
        data,
        dims=["z", "y", "x"],
        scale={"z": 0.1 + 0.2, "y": 0.325, "x": 0.325},
        translation={"z": 12.7, "y": 87654.321, "x": -3.3},
    )
    source = tmp_path / "ngff.ome.zarr"
    ngff_zarr.to_ngff_zarr(
        source, ngff_zarr.to_multiscales(image, scale_factors=[2]), version="0.5"
    )
    stored = [transforms(source, i) for i in range(2)]
    assert stored[0][0][0] == 0.30000000000000004  # not a short decimal: kept as it is
    xoz.to_ome_zarr(xr.open_datatree(source, engine="ome-zarr"), tmp_path / "tree.ome.zarr")
    assert [transforms(tmp_path / "tree.ome.zarr", i) for i in range(2)] == stored
    level = xr.open_dataset(source, engine="ome-zarr", level=0)
    xoz.to_ome_zarr(level, tmp_path / "level.ome.zarr")
    assert transforms(tmp_path / "level.ome.zarr") == stored[0]
    # materialised coordinates (numpy values, as after a computation) agree just as well
    plain = level.assign_coords({d: np.asarray(level[d].values) for d in ("z", "y", "x")})
    xoz.to_ome_zarr(plain, tmp_path / "plain.ome.zarr")
    assert transforms(tmp_path / "plain.ome.zarr") == stored[0]
    # moved coordinates are read off the coordinates
    cropped = level.isel(y=slice(10, None))
    xoz.to_ome_zarr(cropped, tmp_path / "crop.ome.zarr")
    scale, translation = transforms(tmp_path / "crop.ome.zarr")
    assert scale == stored[0][0]
    assert translation[1] == pytest.approx(87654.321 + 10 * 0.325, abs=1e-9)
    shifted = level.assign_coords(x=level["x"] + 1e-3 * 0.325)
    xoz.to_ome_zarr(shifted, tmp_path / "shift.ome.zarr")
    assert transforms(tmp_path / "shift.ome.zarr")[1][2] != stored[0][1][2]


# ---- a consolidated listing is a cache, not the truth ------------------------------------------
def consolidated_image_with_late_labels(path, version: str) -> None:
    """ngff-zarr 0.50 writes consolidated metadata (0.5: in zarr.json; 0.4: .zmetadata);
    ome-zarr-py 0.18 ``write_labels`` then adds a label image without consolidating again."""
    ngff_zarr = pytest.importorskip("ngff_zarr")
    ome_writer = pytest.importorskip("ome_zarr.writer")
    ome_format = pytest.importorskip("ome_zarr.format")
    data = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32)
    image = ngff_zarr.to_ngff_image(data, dims=["y", "x"], scale={"y": 0.5, "x": 0.5})
    multiscales = ngff_zarr.to_multiscales(image, scale_factors=[2])
    ngff_zarr.to_ngff_zarr(path, multiscales, version=version)
    if version == "0.5":
        assert "consolidated_metadata" in json.loads((path / "zarr.json").read_text())
    else:
        assert (path / ".zmetadata").is_file()
    fmt = ome_format.FormatV05() if version == "0.5" else ome_format.FormatV04()
    root = zarr.open_group(path, mode="r+", use_consolidated=False)
    labels = (data % 7).astype(np.uint8)
    ome_writer.write_labels(labels, root, name="late", axes="yx", fmt=fmt, scale_factors=[2])


@pytest.fixture(params=["0.4", "0.5"])
def late_labels(request, tmp_path):
    path = tmp_path / f"late-{request.param}.ome.zarr"
    consolidated_image_with_late_labels(path, request.param)
    return path


def test_labels_added_after_consolidation_are_found(late_labels):
    tree = xr.open_datatree(late_labels, engine="ome-zarr")
    assert list(tree["labels"].children) == ["late"]
    (label,) = tree["labels/late/scale0"].data_vars.values()
    assert label.dtype == np.uint8
    ds = xr.open_dataset(late_labels, engine="ome-zarr", group="labels/late")
    (opened,) = ds.data_vars.values()
    np.testing.assert_array_equal(opened.values, label.values)
    # consolidated=True: the consolidated listing is used, and still checked for labels
    tree = xr.open_datatree(late_labels, engine="ome-zarr", consolidated=True)
    assert list(tree["labels"].children) == ["late"]
    tree = xr.open_datatree(late_labels, engine="ome-zarr", consolidated=False)
    assert list(tree["labels"].children) == ["late"]


def test_consolidated_true_requires_consolidated_metadata(tmp_path):
    write_hand_image(tmp_path / "plain.ome.zarr", "0.5")
    with pytest.raises(xoz.OmeZarrError, match="plain.ome.zarr"):
        xr.open_dataset(tmp_path / "plain.ome.zarr", engine="ome-zarr", consolidated=True)


def test_validate_warns_when_consolidated_metadata_is_stale(late_labels):
    problems = xoz.validate(late_labels)
    stale = [p for p in problems if "consolidated" in p.message]
    assert stale and all(p.severity == "warning" for p in stale)
    assert any("labels" in p.message for p in stale)


def test_validate_is_quiet_about_fresh_consolidated_metadata(tmp_path):
    tree = xr.DataTree.from_dict({"/scale0": small_image().to_dataset()})
    for version in ("0.4", "0.5"):
        path = tmp_path / f"{version}.ome.zarr"
        xoz.to_ome_zarr(tree, path, version=version, consolidated=True)
        assert not [p for p in xoz.validate(path) if "consolidated" in p.message]


def test_late_labels_over_http_cost_no_round_trip_when_fresh(late_labels, tmp_path):
    from ..servers import copy_tree, http_server

    site = tmp_path / "site"
    copy_tree(late_labels, site / "late.ome.zarr")
    fresh = site / "fresh.ome.zarr"
    xoz.to_ome_zarr(xr.open_datatree(late_labels, engine="ome-zarr"), fresh, consolidated=True)
    with http_server(site, delay=0.05) as server:
        tree = xr.open_datatree(f"{server.url}/late.ome.zarr", engine="ome-zarr")
        assert list(tree["labels"].children) == ["late"]
        server.clear()
        tree = xr.open_datatree(f"{server.url}/fresh.ome.zarr", engine="ome-zarr")
        assert list(tree["labels"].children) == ["late"]
        # one wave: the root and its labels group, probed together; the rest is consolidated
        assert len(server.rounds()) == 1, server.paths()
        assert not server.chunk_requests()
