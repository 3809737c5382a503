"""to_ome_zarr settings as users type them: bare arrays, compressors=, encoding=, version=0.4."""

from __future__ import annotations

import warnings

import numcodecs
import numpy as np
import pytest
import xarray as xr
import zarr

import xarray_ome_zarr as xoz
from xarray_ome_zarr import OmeZarrError


def _pixels(shape=(2, 4, 32, 32)) -> np.ndarray:
    return np.arange(np.prod(shape), dtype="uint16").reshape(shape)


def _open(path) -> zarr.Group:
    return zarr.open_group(path, mode="r")


def _config(codec) -> dict:
    """A codec's settings, without the ones zarr fills in from the dtype."""
    if isinstance(codec, numcodecs.abc.Codec):
        return codec.get_config()
    document = codec.to_dict()
    settings = {k: v for k, v in document.get("configuration", {}).items() if k != "typesize"}
    return {"name": document["name"], **settings}


# ---- a bare array in one line ---------------------------------------------------------------
def test_a_numpy_array_with_its_pixel_size_in_one_line(tmp_path):
    pixels = _pixels()
    xoz.to_ome_zarr(
        pixels,
        tmp_path / "a.ome.zarr",
        scale={"z": 2.0, "y": 0.5, "x": 0.5},
        units="micrometer",
        channels=["DAPI", "GFP"],
        name="cells",
        scale_factors=[2],
    )
    ds = xr.open_dataset(tmp_path / "a.ome.zarr", engine="ome-zarr")
    np.testing.assert_array_equal(ds["cells"].values, pixels)
    assert list(ds.c.values) == ["DAPI", "GFP"]
    assert ds.ome.scale == {"z": 2.0, "y": 0.5, "x": 0.5}
    assert ds.x.attrs["units"] == "micrometer"
    assert xoz.validate(tmp_path / "a.ome.zarr", strict=True) == []


def test_a_zarr_array_is_copied_without_loading_it_whole(tmp_path):
    source = zarr.create_array(tmp_path / "src.zarr", shape=(64, 64), chunks=(16, 16), dtype="u1")
    source[:] = 7
    xoz.to_ome_zarr(source, tmp_path / "b.ome.zarr", scale=0.25)
    ds = xr.open_dataset(tmp_path / "b.ome.zarr", engine="ome-zarr")
    assert int(ds["image"].sum()) == 7 * 64 * 64 and ds.ome.scale == {"y": 0.25, "x": 0.25}


def test_array_keywords_with_an_xarray_object_are_refused(tmp_path):
    image = xoz.image(_pixels())
    with pytest.raises(OmeZarrError, match="scale= describe a bare array"):
        xoz.to_ome_zarr(image, tmp_path / "c.ome.zarr", scale=2.0)
    assert not (tmp_path / "c.ome.zarr").exists()


def test_misspelled_axis_names_say_how_to_rename(tmp_path):
    with pytest.raises(OmeZarrError, match=r"rename a DataArray with \.rename\(\{'Y': 'y'"):
        xoz.to_ome_zarr(xr.DataArray(_pixels((3, 4)), dims=("Y", "X")), tmp_path / "d.ome.zarr")


# ---- compressors= ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "v3", "v2"),
    [
        ("zstd", zarr.codecs.ZstdCodec(level=3), numcodecs.Zstd(level=3)),
        ("gzip", zarr.codecs.GzipCodec(level=5), numcodecs.GZip(level=5)),
        (
            "blosc-zstd",
            zarr.codecs.BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle"),
            numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE),
        ),
        (
            "lz4",
            zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"),
            numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE),
        ),
    ],
)
def test_short_codec_names_pick_the_codec_of_the_target_format(tmp_path, name, v3, v2):
    xoz.to_ome_zarr(_pixels(), tmp_path / "v3.ome.zarr", compressors=name)
    (written,) = _open(tmp_path / "v3.ome.zarr")["0"].compressors
    assert _config(written) == _config(v3)
    xoz.to_ome_zarr(_pixels(), tmp_path / "v2.ome.zarr", compressors=name, version="0.4")
    (written,) = _open(tmp_path / "v2.ome.zarr")["0"].compressors
    assert _config(written) == _config(v2)


def test_default_codec_is_blosc_lz4_with_bit_shuffle(tmp_path):
    xoz.to_ome_zarr(_pixels(), tmp_path / "a.ome.zarr")
    (codec,) = _open(tmp_path / "a.ome.zarr")["0"].compressors
    assert (codec.cname.value, codec.shuffle.value, codec.clevel) == ("lz4", "bitshuffle", 5)


def test_none_writes_no_compression_and_objects_go_as_they_are(tmp_path):
    xoz.to_ome_zarr(_pixels(), tmp_path / "a.ome.zarr", compressors=None)
    assert _open(tmp_path / "a.ome.zarr")["0"].compressors == ()
    codecs = (zarr.codecs.ZstdCodec(level=1),)
    xoz.to_ome_zarr(_pixels(), tmp_path / "b.ome.zarr", compressors=codecs)
    assert _open(tmp_path / "b.ome.zarr")["0"].compressors == codecs


def test_auto_keeps_the_sources_codecs(tmp_path):
    xoz.to_ome_zarr(_pixels(), tmp_path / "a.ome.zarr", compressors="gzip")
    dt = xr.open_datatree(tmp_path / "a.ome.zarr", engine="ome-zarr")
    xoz.to_ome_zarr(dt, tmp_path / "b.ome.zarr")
    assert _open(tmp_path / "b.ome.zarr")["0"].compressors == (zarr.codecs.GzipCodec(level=5),)


@pytest.mark.parametrize(
    ("version", "codec", "message"),
    [
        ("0.5", "snappy", "unknown codec name; known: 'lz4'"),
        ("0.5", numcodecs.Zstd(), "zarr v2 codec; OME-Zarr 0.5 is stored in zarr v3"),
        ("0.4", zarr.codecs.ZstdCodec(), "zarr v3 codec; OME-Zarr 0.4 is stored in zarr v2"),
    ],
)
def test_codecs_that_cannot_work_are_refused_before_writing(tmp_path, version, codec, message):
    with pytest.raises(OmeZarrError, match=message):
        xoz.to_ome_zarr(_pixels(), tmp_path / "a.ome.zarr", version=version, compressors=codec)
    assert not (tmp_path / "a.ome.zarr").exists()


def test_compressor_is_a_deprecated_alias_with_its_old_meaning(tmp_path):
    with pytest.warns(FutureWarning, match="compressors="):
        xoz.to_ome_zarr(_pixels(), tmp_path / "a.ome.zarr", compressor=())
    assert _open(tmp_path / "a.ome.zarr")["0"].compressors == ()
    with pytest.warns(FutureWarning):
        xoz.to_ome_zarr(_pixels(), tmp_path / "b.ome.zarr", compressor=numcodecs.GZip(level=1),
                        version="0.4")  # fmt: skip
    assert _open(tmp_path / "b.ome.zarr")["0"].compressors == (numcodecs.GZip(level=1),)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xoz.to_ome_zarr(_pixels(), tmp_path / "c.ome.zarr", compressor=None)  # the default
    with pytest.warns(FutureWarning), pytest.raises(OmeZarrError, match="not both"):
        xoz.to_ome_zarr(_pixels(), tmp_path / "d.ome.zarr", compressor=(), compressors=None)


# ---- encoding= ------------------------------------------------------------------------------
def test_encoding_by_variable_overrides_the_keywords(tmp_path):
    image = xoz.image(_pixels(), name="cells")
    xoz.to_ome_zarr(
        image,
        tmp_path / "a.ome.zarr",
        chunks=16,
        compressors="zstd",
        scale_factors=[2],
        encoding={"cells": {"chunks": {"y": 8, "x": 8}, "compressors": None, "fill_value": 3}},
    )
    group = _open(tmp_path / "a.ome.zarr")
    for path in ("0", "1"):
        assert group[path].compressors == () and group[path].fill_value == 3
    assert group["0"].chunks == (1, 4, 8, 8)


def test_encoding_of_a_tree_goes_by_node_path(tmp_path):
    xoz.to_ome_zarr(_pixels(), tmp_path / "src.ome.zarr", scale_factors=[2])
    dt = xr.open_datatree(tmp_path / "src.ome.zarr", engine="ome-zarr")
    xoz.to_ome_zarr(
        dt,
        tmp_path / "a.ome.zarr",
        compressors="gzip",
        encoding={"/": {"image": {"compressors": "zstd"}}, "/scale1": {"image": {"chunks": 8}}},
    )
    group = _open(tmp_path / "a.ome.zarr")
    assert group["0"].compressors == group["1"].compressors == (zarr.codecs.ZstdCodec(level=3),)
    assert group["1"].chunks == (2, 2, 8, 8) and group["0"].chunks != (2, 2, 8, 8)


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        ({"nope": {"chunks": 8}}, "variable 'nope' of node '/', which the input does not hold"),
        ({"chunks": 8}, r"encoding is \{variable: \{...\}\}"),
        ({"image": {"dtype": "f4"}}, r"unknown keys \['dtype'\]; known: chunks"),
    ],
)
def test_encoding_that_names_nothing_or_unknown_keys_is_refused(tmp_path, encoding, message):
    with pytest.raises(OmeZarrError, match=message):
        xoz.to_ome_zarr(_pixels(), tmp_path / "a.ome.zarr", encoding=encoding)
    assert not (tmp_path / "a.ome.zarr").exists()


# ---- version --------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [0.4, 0.5])
def test_version_as_a_float_is_the_string(tmp_path, version):
    xoz.to_ome_zarr(_pixels(), tmp_path / "a.ome.zarr", version=version)
    ds = xr.open_dataset(tmp_path / "a.ome.zarr", engine="ome-zarr")
    attrs = ds.ome.group_attrs
    found = attrs.get("ome", {}).get("version") or attrs["multiscales"][0]["version"]
    assert found == str(version)
