"""Nothing silently lost (issue 12): consolidated listings, geometry without coordinate
values, exact stored numbers, refused settings, xarray's keywords and ``to_zarr``."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

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
