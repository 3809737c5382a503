"""Writing into an existing store: ``mode=``/``group=`` as xarray's ``to_zarr`` has them, label
images, fields and wells added to an existing store, ``xoz.write_metadata``."""

from __future__ import annotations

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
