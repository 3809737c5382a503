"""to_ome_zarr: round trips through real stores, peers reading what we write, bad input, safety."""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path
from typing import Any

import dask.array as da
import numcodecs
import numpy as np
import pytest
import xarray as xr
import zarr

import xarray_ome_zarr as xoz
from xarray_ome_zarr import OmeZarrError
from xarray_ome_zarr.ngff.schema import kinds_for

from ..conftest import CHANNELS, SCALE, TRANSLATION, write_hand_image
from ..fixtures.conformance import validate_schema
from ..fixtures.stores import STORE_WRITERS, StoreSpec, group_attrs

VERSIONS = ["0.4", "0.5"]
OME_VERSION_KEYS = ("image-label", "plate", "well")


# ---- helpers ---------------------------------------------------------------------------------
class Sources:
    """Fixture stores, each written once for the module when first asked for."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.written: dict[str, StoreSpec] = {}

    def __getitem__(self, name: str) -> StoreSpec:
        if name not in self.written:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.written[name] = STORE_WRITERS[name](self.directory / name)
        return self.written[name]


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Sources:
    return Sources(tmp_path_factory.mktemp("sources"))


def open_tree(path) -> xr.DataTree:
    return xr.open_datatree(path, engine="ome-zarr")


def ome_document(attrs: dict) -> dict:
    """The OME document of a group's attributes (0.5: under ``ome``), without version keys;
    of a node's attrs, those of its ``ome_group_attrs``."""
    attrs = attrs.get("ome_group_attrs", attrs)
    doc = copy.deepcopy(attrs.get("ome", attrs))
    doc.pop("version", None)
    for key in OME_VERSION_KEYS:
        if isinstance(doc.get(key), dict):
            doc[key].pop("version", None)
    return doc


def kept_blocks(attrs: dict) -> dict:
    """Everything but ``multiscales`` (which the writer regenerates)."""
    return {k: v for k, v in ome_document(attrs).items() if k != "multiscales"}


def assert_same_level(actual: xr.Dataset, expected: xr.Dataset) -> None:
    assert list(actual.data_vars) == list(expected.data_vars)
    for name, var in expected.data_vars.items():
        assert actual[name].dims == var.dims
        np.testing.assert_array_equal(actual[name].values, var.values)
    assert set(actual.coords) == set(expected.coords)
    for name, coord in expected.coords.items():
        if coord.dtype.kind in "US":
            np.testing.assert_array_equal(actual[name].values, coord.values)
        else:
            np.testing.assert_allclose(actual[name].values, coord.values, rtol=1e-12, atol=1e-12)
        assert actual[name].attrs.keys() == coord.attrs.keys()
        assert actual[name].attrs.get("units") == coord.attrs.get("units")
        assert actual[name].attrs.get("axis_type") == coord.attrs.get("axis_type")
        if "scale" in coord.attrs:
            assert actual[name].attrs["scale"] == pytest.approx(coord.attrs["scale"], rel=1e-12)


def assert_valid_store(path: Path, version: str) -> None:
    """Every group of the store validates against the schemas that apply to it."""
    checked = 0
    for dirpath, _, files in os.walk(path):
        if not ({"zarr.json", ".zattrs", ".zgroup"} & set(files)):
            continue
        node = Path(dirpath).relative_to(path).as_posix().strip(".")
        meta_file = Path(dirpath) / ("zarr.json" if version == "0.5" else ".zgroup")
        if version == "0.5" and json.loads(meta_file.read_text())["node_type"] != "group":
            continue
        if version == "0.4" and not meta_file.exists():
            continue
        attrs = group_attrs(path, node)
        for kind in kinds_for(attrs.get("ome", attrs), version):
            assert validate_schema(attrs, version, kind) == [], (node, kind)
            checked += 1
    assert checked


def snapshot(obj: Any) -> Any:
    """Attrs, encodings and coordinates of every variable of an xarray object, deep-copied."""
    if isinstance(obj, xr.DataTree):
        return {node.path: snapshot(node.to_dataset(inherit=False)) for node in obj.subtree} | {
            "attrs": copy.deepcopy(obj.attrs)
        }
    if isinstance(obj, xr.DataArray):
        obj = obj.to_dataset(name="__da__", promote_attrs=True)
    return {
        "attrs": copy.deepcopy(obj.attrs),
        "vars": {
            k: (copy.deepcopy(v.attrs), copy.deepcopy(v.encoding), v.dims)
            for k, v in obj.variables.items()
        },
        "coords": {k: np.asarray(v.values).copy() for k, v in obj.coords.items()},
    }


def assert_same_snapshot(a: Any, b: Any) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict) and key != "attrs":
            assert_same_snapshot(a[key], b[key])
        elif isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key])
        else:
            assert a[key] == b[key], key


def hand_tree(tmp_path, version="0.5") -> tuple[xr.DataTree, Path]:
    path = tmp_path / f"hand-{version}.ome.zarr"
    write_hand_image(path, version)
    return open_tree(path), path


def image_array(shape=(2, 3, 8, 10), dims=("c", "z", "y", "x"), dtype="uint16", **coords):
    data = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    default = {
        d: (d, 0.5 * np.arange(n) + 1.0, {"units": "micrometer"})
        for d, n in zip(dims, shape, strict=True)
        if d in "zyx"
    }
    return xr.DataArray(data, dims=dims, coords=default | coords, name="img")


# ---- round trips -----------------------------------------------------------------------------
#: Stores written by the peers (converted to the other format) and by hand (to both formats);
#: the hand-written variants that differ only in how they are read are left out.
PEER_STORES = [n for n in STORE_WRITERS if not n.startswith(("hand", "bf2raw"))]
HAND_STORES = [
    "hand-0.1-dot",
    "hand-0.2-slash",
    "hand-0.3-dot-zyx",
    "hand-0.3-slash-cyx",
    "hand-0.4-dot",
    "hand-0.5",
    "hand-0.4-global_transform",
    "hand-0.4-paths_s",
    "hand-0.5-paths_nested",
    "hand-0.5-sharded",
    "bf2raw-0.4",
    "bf2raw-0.5",
]


def _round_trips() -> list[tuple[str, str]]:
    peers = [(n, "0.5" if n.endswith("0.4") else "0.4") for n in PEER_STORES]
    return peers + [(n, v) for n in HAND_STORES for v in VERSIONS]


@pytest.mark.parametrize(("name", "version"), _round_trips())
def test_round_trip_of_every_fixture_store(sources, tmp_path, name, version):
    spec = sources[name]
    source = open_tree(spec.path)
    path = tmp_path / "out.ome.zarr"
    xoz.to_ome_zarr(source, path, version=version)
    back = open_tree(path)
    assert sorted(n.path for n in back.subtree) == sorted(n.path for n in source.subtree)
    for node in source.subtree:
        written = back[node.path]
        if node.has_data:
            assert_same_level(written.to_dataset(), node.to_dataset())
            assert written.attrs["ome_dataset_path"] == node.attrs["ome_dataset_path"]
            encoding = next(iter(node.data_vars.values())).encoding
            new = next(iter(written.data_vars.values())).encoding
            assert new["chunks"] == encoding["chunks"]
            assert new["zarr_format"] == (3 if version == "0.5" else 2)
            if new["zarr_format"] == encoding["zarr_format"]:
                assert new["compressors"] == encoding["compressors"]
                assert new.get("shards") == encoding.get("shards")
        else:
            assert kept_blocks(written.attrs) == kept_blocks(node.attrs), node.path
    assert_valid_store(path, version)


@pytest.mark.parametrize(("source", "target"), [("0.4", "0.5"), ("0.5", "0.4"), ("0.5", "0.5")])
def test_unknown_keys_and_omero_move_between_layouts(tmp_path, source, target):
    tree, _ = hand_tree(tmp_path, source)
    path = tmp_path / "out.ome.zarr"
    xoz.to_ome_zarr(tree, path, version=target)
    attrs = group_attrs(path)
    document = attrs["ome"] if target == "0.5" else attrs
    assert document["x-custom"] == {"keep": 1}
    assert document["omero"] == ome_document(tree.attrs)["omero"]
    assert document["multiscales"][0]["name"] == "cells"
    back = open_tree(path)
    assert list(back["scale0"]["c"].values) == CHANNELS
    assert back["scale0"]["x"].attrs["units"] == "micrometer"


def test_sharded_encoding_is_kept_and_dimension_names_written(sources, tmp_path):
    tree = open_tree(sources["hand-0.5-sharded"].path)
    xoz.to_ome_zarr(tree, tmp_path / "s.ome.zarr")
    array = zarr.open_group(tmp_path / "s.ome.zarr")["0"]
    assert array.shards == (1, 2, 16, 24) and array.chunks == (1, 2, 8, 8)
    assert array.metadata.dimension_names == ("t", "z", "y", "x")


def test_0_4_arrays_use_the_slash_separator(tmp_path):
    tree, _ = hand_tree(tmp_path, "0.5")
    xoz.to_ome_zarr(tree, tmp_path / "o.ome.zarr", version="0.4")
    zarray = json.loads((tmp_path / "o.ome.zarr" / "0" / ".zarray").read_text())
    assert zarray["dimension_separator"] == "/"
    # the source's v3 codecs cannot go to zarr v2: zarr's default v2 compressor is used
    assert zarray["compressor"] is not None and zarray["compressor"]["id"] != "zstd"


# ---- peers read what we write ----------------------------------------------------------------
PEER_SOURCES = ["ngff_zarr-0.5", "ome_zarr_py-0.4", "hand-0.4-global_transform", "hand-0.5-sharded"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", PEER_SOURCES)
def test_ngff_zarr_reads_the_same_geometry(sources, tmp_path, name, version):
    ngff_zarr = pytest.importorskip("ngff_zarr")
    tree = open_tree(sources[name].path)
    path = tmp_path / "nz.ome.zarr"
    xoz.to_ome_zarr(tree, path, version=version)
    multiscales = ngff_zarr.from_ngff_zarr(str(path), validate=True)
    levels = [n for n in tree.children if n.startswith("scale")]
    assert len(multiscales.images) == len(levels)
    for i, image in enumerate(multiscales.images):
        level = tree[f"scale{i}"]
        data = next(iter(level.data_vars.values()))
        np.testing.assert_array_equal(np.asarray(image.data), data.values)
        for dim in data.dims:
            if dim in level.coords and level[dim].dtype.kind == "f":
                assert image.scale[dim] == pytest.approx(level[dim].attrs["scale"])
                assert image.translation[dim] == pytest.approx(float(level[dim][0]))


@pytest.mark.parametrize("version", VERSIONS)
def test_ome_zarr_py_reads_image_labels_and_channels(sources, tmp_path, version):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    tree = open_tree(sources["ome_zarr_py-0.5"].path)
    path = tmp_path / "oz.ome.zarr"
    xoz.to_ome_zarr(tree, path, version=version)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nodes = list(Reader(parse_url(str(path)))())
    image = nodes[0]
    assert image.metadata["channel_names"] == ["DAPI", "GFP"]
    assert [tuple(d.shape) for d in image.data] == [
        tree[f"scale{i}"]["ozimage"].shape for i in range(3)
    ]
    np.testing.assert_array_equal(np.asarray(image.data[1]), tree["scale1"]["ozimage"].values)
    transforms = image.metadata["coordinateTransformations"][1]
    assert transforms[0]["scale"] == pytest.approx([1.0, 1.5, 0.8, 0.6])
    label = next(n for n in nodes if "labels/nuclei" in str(n.zarr))
    assert label.metadata["color"][1] == [1.0, 0.0, 0.0, 1.0]  # colours from image-label
    assert label.metadata["properties"][2] == {"class": "debris"}


@pytest.mark.parametrize("name", ["ome_zarr_py-0.4", "ome_zarr_py_plate-0.4", "bf2raw-0.4"])
def test_yaozarrs_validates_what_we_write(sources, tmp_path, name):
    yaozarrs = pytest.importorskip("yaozarrs")
    path = tmp_path / "y.ome.zarr"
    xoz.to_ome_zarr(open_tree(sources[name].path), path, version="0.5")
    yaozarrs.validate_zarr_store(str(path))
    for group in ("", "labels/nuclei", "A/1", "A/1/0", "OME"):
        file = path / group / "zarr.json"
        if file.exists():
            yaozarrs.validate_ome_json(file.read_text())


# ---- geometry from coordinates --------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_a_crop_writes_its_own_translation(tmp_path, version):
    tree, _ = hand_tree(tmp_path)
    level = tree["scale1"].to_dataset()
    crop = level.isel(z=slice(1, 4), y=slice(2, 6), x=slice(1, None, 2))
    path = tmp_path / "crop.ome.zarr"
    xoz.to_ome_zarr(crop, path, version=version)
    back = xr.open_dataset(path, engine="ome-zarr")
    assert back.attrs["ome_dataset_path"] == "1"
    assert_same_level(back.drop_attrs(), crop.drop_attrs().load())
    document = ome_document(group_attrs(path))
    scale, translation = document["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    assert scale["scale"] == pytest.approx([1.0, 2.0, 1.0, 1.0])
    assert translation["translation"] == pytest.approx(
        [0.0, TRANSLATION[1] + 2.0, TRANSLATION[2] + 0.25 + 2 * 1.0, TRANSLATION[3] + 0.125 + 0.5]
    )


def test_sel_by_position_and_a_length_one_axis_keeps_its_scale(tmp_path):
    _, path = hand_tree(tmp_path)
    level = xr.open_dataset(path, engine="ome-zarr")  # with the image's stored metadata
    crop = level.sel(z=slice(12.0, 12.0), y=slice(-1.0, 0.5))
    assert crop.sizes["z"] == 1
    xoz.to_ome_zarr(crop, tmp_path / "sel.ome.zarr")
    back = xr.open_dataset(tmp_path / "sel.ome.zarr", engine="ome-zarr")
    assert back["z"].attrs["scale"] == SCALE[1]
    assert float(back["z"][0]) == 12.0 and float(back["y"][0]) == -1.0
    stripped = crop.assign_coords(z=crop["z"].copy(data=crop["z"].values).drop_attrs())
    xoz.to_ome_zarr(stripped, tmp_path / "stripped.ome.zarr")  # scale from the stored metadata
    assert (
        xr.open_dataset(tmp_path / "stripped.ome.zarr", engine="ome-zarr")["z"].attrs["scale"]
        == SCALE[1]
    )


def test_channel_subsets_and_dropped_axes(tmp_path):
    tree, _ = hand_tree(tmp_path)
    level = tree["scale0"].to_dataset()
    xoz.to_ome_zarr(level.sel(c=["GFP"]), tmp_path / "gfp.ome.zarr")
    back = xr.open_dataset(tmp_path / "gfp.ome.zarr", engine="ome-zarr")
    assert list(back["c"].values) == ["GFP"]
    assert [c["label"] for c in back.ome.group_attrs["ome"]["omero"]["channels"]] == ["GFP"]
    xoz.to_ome_zarr(level.isel(z=2), tmp_path / "plane.ome.zarr", version="0.4")
    plane = xr.open_dataset(tmp_path / "plane.ome.zarr", engine="ome-zarr")
    assert plane["cells"].dims == ("c", "y", "x")
    np.testing.assert_array_equal(plane["cells"].values, level["cells"].values[:, 2])


def test_dropped_levels(tmp_path):
    tree, _ = hand_tree(tmp_path)
    xoz.to_ome_zarr(tree.drop_nodes("scale0"), tmp_path / "low.ome.zarr")
    back = open_tree(tmp_path / "low.ome.zarr")
    assert sorted(back.children) == ["scale0"]
    assert back["scale0"].attrs["ome_dataset_path"] == "1"
    assert_same_level(
        back["scale0"].to_dataset().drop_attrs(), tree["scale1"].to_dataset().drop_attrs()
    )


def test_spatial_image_and_msi_inputs(tmp_path):
    si = pytest.importorskip("spatial_image")
    msi = pytest.importorskip("multiscale_spatial_image")
    image = si.to_spatial_image(
        np.arange(2 * 4 * 12 * 10, dtype=np.uint8).reshape(2, 4, 12, 10),
        dims=("t", "z", "y", "x"),
        scale={"z": 2.0, "y": 0.5, "x": 0.5},
        translation={"z": 1.0, "y": 0.0, "x": 4.0},
        t_coords=[0.0, 3.0],
        axis_units={"t": "second", "z": "um", "y": "um", "x": "um"},
    )
    xoz.to_ome_zarr(image, tmp_path / "si.ome.zarr")
    back = xr.open_dataset(tmp_path / "si.ome.zarr", engine="ome-zarr")
    assert back["t"].attrs["units"] == "second" and back["x"].attrs["units"] == "micrometer"
    np.testing.assert_allclose(back["t"].values, [0.0, 3.0])
    pyramid = msi.to_multiscale(image, [2])
    xoz.to_ome_zarr(pyramid, tmp_path / "msi.ome.zarr", version="0.4")
    tree = open_tree(tmp_path / "msi.ome.zarr")
    for level in ("scale0", "scale1"):
        np.testing.assert_allclose(tree[level]["x"].values, pyramid[level]["x"].values)
        np.testing.assert_array_equal(tree[level]["image"].values, pyramid[level]["image"].values)


def test_datasets_and_dataarrays_without_coordinates(tmp_path):
    plain = xr.DataArray(np.ones((3, 5, 6), dtype=np.float32), dims=("c", "y", "x"))
    xoz.to_ome_zarr(plain, tmp_path / "plain.ome.zarr")
    back = xr.open_dataset(tmp_path / "plain.ome.zarr", engine="ome-zarr")
    assert list(back.data_vars) == ["image"]
    np.testing.assert_array_equal(back["y"].values, np.arange(5.0))
    assert "c" not in back.coords


def test_default_chunks(tmp_path):
    image = image_array(shape=(2, 3, 300, 280))
    xoz.to_ome_zarr(image, tmp_path / "c.ome.zarr")
    assert zarr.open_group(tmp_path / "c.ome.zarr")["0"].chunks == (1, 3, 256, 256)


# ---- chunks, shards, codecs asked for ---------------------------------------------------------
def test_caller_chunks_shards_and_compressor(tmp_path):
    image = image_array(shape=(2, 3, 40, 50))
    codec = zarr.codecs.BloscCodec(cname="zstd", clevel=3)
    xoz.to_ome_zarr(
        image,
        tmp_path / "a.ome.zarr",
        chunks={"c": 1, "z": 1, "y": 8, "x": 8},
        shards={"y": 32, "x": 48},
        compressor=codec,
        scale_factors=[2],
    )
    group = zarr.open_group(tmp_path / "a.ome.zarr")
    assert group["0"].chunks == (1, 1, 8, 8) and group["0"].shards == (1, 1, 32, 48)
    assert group["1"].shards == (1, 1, 32, 48)  # as asked by axis, on the smaller level too
    compressor = group["0"].compressors[0]
    assert (compressor.cname, compressor.clevel) == (codec.cname, codec.clevel)
    np.testing.assert_array_equal(group["0"][...], image.values)
    xoz.to_ome_zarr(image, tmp_path / "b.ome.zarr", version="0.4", chunks=4, compressor=())
    array = zarr.open_group(tmp_path / "b.ome.zarr")["0"]
    assert array.chunks == (2, 3, 4, 4) and array.compressors == ()
    xoz.to_ome_zarr(
        image, tmp_path / "c.ome.zarr", version="0.4", compressor=numcodecs.GZip(level=1)
    )
    assert zarr.open_group(tmp_path / "c.ome.zarr")["0"].compressors == (numcodecs.GZip(level=1),)


def test_caller_chunks_replace_the_stored_chunks_and_shards(sources, tmp_path):
    tree = open_tree(sources["hand-0.5-sharded"].path)
    xoz.to_ome_zarr(tree, tmp_path / "r.ome.zarr", chunks={"y": 16, "x": 16})
    array = zarr.open_group(tmp_path / "r.ome.zarr")["0"]
    assert array.chunks == (1, 2, 16, 16) and array.shards is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"version": "0.4", "shards": 32}, "sharding needs"),
        ({"chunks": {"y": 8}, "shards": {"y": 12}}, "multiples of the chunks"),
        ({"chunks": (1, 2)}, "does not fit dims"),
        ({"version": "0.4", "compressors": zarr.codecs.ZstdCodec()}, "a zarr v3 codec"),
        ({"scale_factors": [{"c": 2}]}, "only space axes"),
        ({"method": "bicubic", "scale_factors": [2]}, "unknown downsampling method"),
        ({"method": "mode"}, "needs scale_factors"),
    ],
)
def test_bad_settings(tmp_path, kwargs, message):
    with pytest.raises(OmeZarrError, match=message):
        xoz.to_ome_zarr(image_array((2, 3, 40, 50)), tmp_path / "x.ome.zarr", **kwargs)
    assert not (tmp_path / "x.ome.zarr").exists()


# ---- bad input ------------------------------------------------------------------------------
def _uneven() -> xr.DataArray:
    return image_array().assign_coords(x=[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: image_array((1, 1, 2, 3, 4, 5), ("t", "c", "w", "z", "y", "x")), "2 to 5 axes"),
        (lambda: image_array().transpose("z", "y", "x", "c"), "ordered time"),
        (lambda: image_array((2, 3, 4), ("c", "t", "x")), "ordered time|2 or 3 space"),
        (lambda: image_array().rename(c="t").transpose("z", "t", "y", "x"), "ordered time"),
        (
            lambda: image_array((2, 3, 8, 10), ("t", "T", "y", "x")).assign_coords(
                T=("T", np.arange(3.0), {"axis_type": "time"})
            ),
            "one time axis",
        ),
        (lambda: image_array((4, 5), ("y", "q")), "2 or 3 space axes"),
        (_uneven, "not evenly spaced"),
        (
            lambda: image_array().assign_coords(
                z=np.array(["2020-01-01", "2020-01-02", "2020-01-03"], dtype="datetime64[ns]")
            ),
            "datetime",
        ),
        (lambda: image_array(dtype="float32").assign_attrs({"image-label": {}}), "integers"),
        (lambda: xr.Dataset({"a": image_array(), "b": image_array()}), "exactly one"),
        (lambda: [[0, 1], [2, 3]], "takes a DataArray"),  # arrays are taken: see test_63
        (lambda: xr.DataTree(), "holds no image"),
        (lambda: image_array().astype(object), "not numeric"),
    ],
    ids=[
        "6-dims",
        "order",
        "c-t",
        "t-after-z",
        "dup-type",
        "one-space",
        "uneven",
        "datetime",
        "float-labels",
        "two-vars",
        "list",
        "empty-tree",
        "object",
    ],
)
def test_bad_input_is_refused_before_anything_is_written(tmp_path, make, message):
    with pytest.raises(OmeZarrError, match=message):
        xoz.to_ome_zarr(make(), tmp_path / "bad.ome.zarr")
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("version", ["0.3", "0.6rc0", "1.0", 0.3])  # 0.4, a float, is "0.4"
def test_unwritable_versions(tmp_path, version):
    with pytest.raises(OmeZarrError, match="cannot write OME-Zarr version"):
        xoz.to_ome_zarr(image_array(), tmp_path / "v.ome.zarr", version=version)


def test_float_label_image_in_a_tree(tmp_path):
    tree, _ = hand_tree(tmp_path)
    labels = tree["scale0"].to_dataset()["cells"].isel(c=0, drop=True).astype("float32")
    tree["labels/bad/scale0"] = xr.DataTree(labels.to_dataset())
    with pytest.raises(OmeZarrError, match="label image must hold integers"):
        xoz.to_ome_zarr(tree, tmp_path / "l.ome.zarr")


def test_a_node_that_cannot_be_placed(tmp_path):
    tree, _ = hand_tree(tmp_path)
    tree["scale0"] = tree["scale0"].assign(extra=tree["scale0"]["cells"] * 2)
    with pytest.raises(OmeZarrError, match="exactly one data variable"):
        xoz.to_ome_zarr(tree, tmp_path / "n.ome.zarr")


def test_hierarchy_listings_follow_the_tree(sources, tmp_path):
    plate = open_tree(sources["ome_zarr_py_plate-0.5"].path)
    smaller = plate.copy()
    smaller["B"] = smaller["B"].drop_nodes("2")
    smaller["A/1"] = smaller["A/1"].drop_nodes("1")
    xoz.to_ome_zarr(smaller, tmp_path / "p.ome.zarr", version="0.4")
    attrs = group_attrs(tmp_path / "p.ome.zarr")
    assert [w["path"] for w in attrs["plate"]["wells"]] == ["A/1", "A/2"]
    assert attrs["plate"]["version"] == "0.4"
    well = group_attrs(tmp_path / "p.ome.zarr", "A/1")["well"]
    assert [i["path"] for i in well["images"]] == ["0"]
    back = open_tree(tmp_path / "p.ome.zarr")
    assert "A/1/0/scale1" in {n.path.strip("/") for n in back.subtree}


# ---- targets --------------------------------------------------------------------------------
def test_zarr_store_objects_urls_and_groups(tmp_path):
    image = image_array()
    memory = zarr.storage.MemoryStore()
    xoz.to_ome_zarr(image, memory)
    np.testing.assert_array_equal(xr.open_dataset(memory, engine="ome-zarr")["img"], image)
    url = f"memory://xoz-test-{os.getpid()}-{id(tmp_path)}/image.ome.zarr"
    xoz.to_ome_zarr(image, url, storage_options={}, version="0.4")
    back = xr.open_dataset(url, engine="ome-zarr")
    np.testing.assert_array_equal(back["img"].values, image.values)
    group = zarr.open_group(tmp_path / "outer.zarr", mode="w").require_group("inner")
    xoz.to_ome_zarr(image, group)
    assert "img" in xr.open_dataset(tmp_path / "outer.zarr", engine="ome-zarr", group="inner")
    xoz.to_ome_zarr(image, f"file://{tmp_path / 'f.ome.zarr'}")
    assert (tmp_path / "f.ome.zarr" / "zarr.json").exists()


def test_an_ozx_in_memory_is_a_zip(tmp_path):
    """``memory://name.ozx`` (the name where a URL has its host) is zipped like any .ozx."""
    import fsspec

    image = image_array()
    url = f"memory://xoz-60-{os.getpid()}-{id(tmp_path)}.ozx"
    xoz.to_ome_zarr(image, url)
    memory = fsspec.filesystem("memory")
    assert memory.isfile(url) and memory.cat_file(url)[:2] == b"PK"
    np.testing.assert_array_equal(xr.open_dataset(url, engine="ome-zarr")["img"], image)
    with pytest.raises(OmeZarrError, match="0.5 or later"):
        xoz.to_ome_zarr(image, url.replace(".ozx", "-b.ozx"), version="0.4")
    memory.rm(url)


@pytest.mark.parametrize(
    ("store", "kwargs", "message"),
    [
        ("x.ozx", {"version": "0.4"}, "0.5 or later"),
        ("local.ome.zarr", {"storage_options": {"anon": True}}, "only apply to URLs"),
        (42, {}, "cannot write to a int"),
    ],
)
def test_bad_targets(tmp_path, store, kwargs, message):
    target = tmp_path / store if isinstance(store, str) else store
    with pytest.raises(OmeZarrError, match=message):
        xoz.to_ome_zarr(image_array(), target, **kwargs)


def test_progress_bar(tmp_path, capsys):
    xoz.to_ome_zarr(image_array(), tmp_path / "p.ome.zarr", progress=True)
    out, err = capsys.readouterr()
    assert "100%" in err and out == ""  # progress goes to stderr (issue 17)
    xoz.to_ome_zarr(image_array(), tmp_path / "q.ome.zarr")
    assert capsys.readouterr() == ("", "")


# ---- safety ---------------------------------------------------------------------------------
def failing(shape=(2, 3, 8, 10), fail_at=3) -> xr.DataArray:
    """A lazy image whose ``fail_at``-th block raises when computed."""

    def block(x, block_info=None):
        if block_info is not None and block_info[None]["chunk-location"] == (1, fail_at % 3, 0, 0):
            raise RuntimeError("disk on fire")
        return x

    data = da.ones(shape, chunks=(1, 1, 8, 10), dtype=np.uint16).map_blocks(block, dtype=np.uint16)
    return image_array(shape).copy(data=data)


def test_existing_stores_are_not_touched_without_overwrite(tmp_path):
    path = tmp_path / "e.ome.zarr"
    xoz.to_ome_zarr(image_array(), path)
    before = sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))
    with pytest.raises(OmeZarrError, match="already exists.*overwrite=True"):
        xoz.to_ome_zarr(image_array(dtype="float32"), path)
    assert sorted(p.relative_to(path).as_posix() for p in path.rglob("*")) == before
    (tmp_path / "file").write_text("x")
    with pytest.raises(OmeZarrError, match="already exists"):
        xoz.to_ome_zarr(image_array(), tmp_path / "file")
    (tmp_path / "empty").mkdir()
    xoz.to_ome_zarr(image_array(), tmp_path / "empty")  # an empty directory is no store
    memory = zarr.storage.MemoryStore()
    xoz.to_ome_zarr(image_array(), memory)
    with pytest.raises(OmeZarrError, match="not empty"):
        xoz.to_ome_zarr(image_array(), memory)


def test_overwrite_replaces_the_store(tmp_path):
    path = tmp_path / "o.ome.zarr"
    xoz.to_ome_zarr(image_array(), path, version="0.4", scale_factors=[2])
    xoz.to_ome_zarr(image_array(dtype="float32") / 2, path, overwrite=True)
    tree = open_tree(path)
    assert sorted(tree.children) == ["scale0"] and not (path / ".zattrs").exists()
    assert tree["scale0"]["img"].dtype == np.float32
    assert [p.name for p in tmp_path.iterdir()] == ["o.ome.zarr"]  # no temporary left


def test_overwrite_in_place_reads_the_old_store_while_writing(tmp_path):
    _, path = hand_tree(tmp_path)
    crop = xr.open_dataset(path, engine="ome-zarr").isel(y=slice(2, 9))
    expected = crop["cells"].values
    xoz.to_ome_zarr(crop, path, overwrite=True)
    back = xr.open_dataset(path, engine="ome-zarr")
    np.testing.assert_array_equal(back["cells"].values, expected)
    assert float(back["y"][0]) == TRANSLATION[2] + 2 * SCALE[2]


def test_errors_name_the_store_and_the_node(tmp_path, sources):
    tree = open_tree(sources["ome_zarr_py-0.4"].path)
    tree["labels/nuclei/scale0"] = tree["labels/nuclei/scale0"].to_dataset().astype("float32")
    with pytest.raises(OmeZarrError, match=r"store '.*t\.ome\.zarr', node '/labels/nuclei'"):
        xoz.to_ome_zarr(tree, tmp_path / "t.ome.zarr")


def test_an_interrupted_write_leaves_nothing_that_opens(tmp_path):
    path = tmp_path / "i.ome.zarr"
    with pytest.raises(RuntimeError, match="disk on fire"):
        xoz.to_ome_zarr(failing(), path)
    assert list(tmp_path.iterdir()) == []
    memory = zarr.storage.MemoryStore()
    with pytest.raises(RuntimeError, match="disk on fire"):
        xoz.to_ome_zarr(failing(), memory)
    with pytest.raises((OmeZarrError, FileNotFoundError, ValueError)):
        xr.open_dataset(memory, engine="ome-zarr")


def test_a_failed_overwrite_keeps_the_old_store_or_nothing(tmp_path):
    path = tmp_path / "old.ome.zarr"
    original = image_array()
    xoz.to_ome_zarr(original, path)
    with pytest.raises(RuntimeError, match="disk on fire"):
        xoz.to_ome_zarr(failing(), path, overwrite=True)
    np.testing.assert_array_equal(xr.open_dataset(path, engine="ome-zarr")["img"], original)
    assert [p.name for p in tmp_path.iterdir()] == ["old.ome.zarr"]
    memory = zarr.storage.MemoryStore()
    xoz.to_ome_zarr(original, memory, scale_factors=[2])
    with pytest.raises(RuntimeError, match="disk on fire"):
        xoz.to_ome_zarr(failing(), memory, overwrite=True)
    with pytest.raises((OmeZarrError, FileNotFoundError, ValueError)):
        xr.open_datatree(memory, engine="ome-zarr")


class RecordingStore(zarr.storage.MemoryStore):
    """A memory store that records every key written, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, bytes]] = []

    async def set(self, key, value, byte_range=None):
        self.writes.append((key, value.to_bytes()))
        await super().set(key, value)


@pytest.mark.parametrize("version", VERSIONS)
def test_arrays_first_ome_metadata_last(version):
    store = RecordingStore()
    xoz.to_ome_zarr(image_array(), store, version=version, scale_factors=[2])
    keys = [k for k, _ in store.writes]
    with_ome = [i for i, (k, v) in enumerate(store.writes) if b"multiscales" in v]
    chunks = [i for i, k in enumerate(keys) if k.split("/")[-1] not in METADATA]
    assert chunks and with_ome and max(chunks) < min(with_ome)
    assert keys[with_ome[-1]] in ("zarr.json", ".zattrs") and with_ome == [len(keys) - 1]


METADATA = ("zarr.json", ".zattrs", ".zgroup", ".zarray")


def test_the_callers_objects_are_not_mutated(tmp_path, sources):
    tree = open_tree(sources["ome_zarr_py-0.5"].path)
    before = snapshot(tree)
    xoz.to_ome_zarr(tree, tmp_path / "a.ome.zarr", version="0.4", chunks={"y": 8})
    assert_same_snapshot(before, snapshot(tree))
    level = tree["scale1"].to_dataset()
    cropped = level.isel(y=slice(0, 5), c=[1])
    before = snapshot(cropped)
    xoz.to_ome_zarr(cropped, tmp_path / "b.ome.zarr", scale_factors=[2], shards={"x": 16})
    assert_same_snapshot(before, snapshot(cropped))
    array = image_array().assign_attrs({"ome": tree.ome.group_attrs["ome"]})
    before = snapshot(array)
    xoz.to_ome_zarr(array, tmp_path / "c.ome.zarr", version="0.4", scale_factors=[2])
    assert_same_snapshot(before, snapshot(array))
