"""Nothing silently lost (issue 12): consolidated listings, geometry without coordinate
values, exact stored numbers, refused settings, xarray's keywords and ``to_zarr``."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

import xarray_ome_zarr as xoz

from ..conftest import write_hand_image

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
    assert group["2"].chunks == (1, 1, 8, 8) and group["2"].shards == (2, 1, 8, 8)  # clipped
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
