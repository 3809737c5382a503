"""Finding the store an opened object reads from, and copying what 0.6 transforms store."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

from xarray_ome_zarr import OmeZarrError
from xarray_ome_zarr.stored_data import backing_array, source_group, stored_copies

from ..fixtures.v06 import image_document, write_image


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "outer" / "image.zarr"
    zarr.open_group(tmp_path / "outer", mode="w", zarr_format=3)
    write_image(path, image_document())
    extra = zarr.open_group(path / "params", mode="w", zarr_format=3)
    extra.attrs["ome"] = {"version": "0.6rc0", "note": 1}
    extra.create_array("m", shape=(3, 4), dtype="f8", dimension_names=["i", "j"])[...] = 1.0
    return path


@pytest.mark.parametrize("chunks", [None, {}])
def test_the_backing_array_is_found_through_selections(image, chunks):
    ds = xr.open_dataset(image, engine="ome-zarr", chunks=chunks)
    level = ds["img"].isel(x=slice(1, 4))
    array = backing_array(level)
    assert array is not None and array.path.endswith("s0")
    group = source_group([level], ["s0"])
    assert group is not None and "multiscales" in group.attrs["ome"]


def test_no_backing_array_in_memory(image):
    loaded = xr.open_dataset(image, engine="ome-zarr")["img"].load()
    assert backing_array(loaded) is None
    assert backing_array(xr.DataArray(np.zeros(3))) is None
    assert source_group([loaded], ["s0"]) is None


def test_an_image_inside_a_bigger_store_is_found(image):
    opened = xr.open_dataset(image.parent, engine="ome-zarr", group="image.zarr")
    group = source_group([opened["img"]], ["s0"])
    assert group is not None and group.path == "image.zarr"
    # the image as seen from a scene at the store's root
    above = source_group([opened["img"]], ["s0"], below="image.zarr")
    assert above is not None and above.path in ("", "/")


def test_stored_copies(image):
    group = zarr.open_group(image, mode="r")
    copies = stored_copies(group, "params", "/")
    assert [c.path for c in copies] == ["params", "params/m"]
    assert copies[0].attrs["ome"] == {"version": "0.6", "note": 1}
    assert copies[1].array is not None and copies[1].array.dims == ("i", "j")
    assert copies[1].array.encoding["chunks"] == (3, 4)
    with pytest.raises(OmeZarrError, match="'missing'"):
        stored_copies(group, "missing", "/")
