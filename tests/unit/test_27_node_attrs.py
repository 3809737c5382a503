"""A node's attrs and its zarr group's attributes (``node_attrs``), and ``obj.ome.group_attrs``."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xarray_ome_zarr as xoz
from xarray_ome_zarr.layout import as_image_dataarray
from xarray_ome_zarr.node_attrs import group_attrs, node_attrs

OMERO = {"channels": [{"label": "a", "color": "FF0000"}]}


def test_group_attrs_merges_the_top_level_on_the_nested_dict_without_own_keys():
    attrs = {
        **node_attrs({"ome": {"version": "0.5"}}),
        "ome_dataset_path": "0",
        "ome_coordinate_system": "world",
        "experiment": "x",
    }
    assert group_attrs(attrs) == {"ome": {"version": "0.5"}, "experiment": "x"}
    assert group_attrs({"multiscales": [], "ome_dataset_path": "0"}) == {"multiscales": []}


def test_equal_values_in_both_places_are_fine_other_values_are_an_error():
    same = {"ome_group_attrs": {"a": np.arange(3)}, "a": np.arange(3)}
    assert list(group_attrs(same)) == ["a"]
    with pytest.raises(xoz.OmeZarrError, match="'a' is both in attrs") as err:
        group_attrs({"ome_group_attrs": {"a": 1}, "a": 2}, "node '/'")
    assert err.value.key == "a" and "node '/'" in str(err.value)
    with pytest.raises(xoz.OmeZarrError, match="must be a dict"):
        group_attrs({"ome_group_attrs": "text"})


def test_a_dataarray_keeps_its_own_attrs_beside_nested_group_attrs():
    array = xr.DataArray(np.zeros((2, 3)), dims=("y", "x"), attrs={"long_name": "cells"})
    assert as_image_dataarray(array)[1] == {}
    nested = array.assign_attrs(ome_group_attrs={"omero": OMERO})
    plain, attrs = as_image_dataarray(nested)
    assert attrs == {"omero": OMERO} and plain.attrs == {"long_name": "cells"}
    old = array.assign_attrs(omero=OMERO)  # the top-level spelling: all its attrs are the group's
    assert as_image_dataarray(old)[1] == {"long_name": "cells", "omero": OMERO}


def test_the_accessor_gives_the_nested_dict_and_moves_the_old_spelling_into_it():
    ds = xr.Dataset(attrs={"ome_group_attrs": {"omero": OMERO}, "ome_dataset_path": "0"})
    assert ds.ome.group_attrs is ds.attrs["ome_group_attrs"]
    old = xr.Dataset(attrs={"omero": OMERO, "ome_dataset_path": "0"})
    before = group_attrs(old.attrs)
    found = old.ome.group_attrs
    assert found is old.attrs["ome_group_attrs"] and found == {"omero": OMERO}
    assert old.attrs["ome_dataset_path"] == "0" and group_attrs(old.attrs) == before
    found["experiment"] = "x"  # written from now on
    assert group_attrs(old.attrs)["experiment"] == "x"
    array = xr.DataArray(np.zeros(2), dims="x", attrs={"long_name": "cells"})
    array.ome.group_attrs["omero"] = OMERO
    assert as_image_dataarray(array)[1] == {"omero": OMERO}
    assert array.attrs["long_name"] == "cells"
    tree = xr.DataTree(xr.Dataset(attrs={"ome": {"version": "0.5"}}))
    assert tree.ome.group_attrs is tree.attrs["ome_group_attrs"]
    assert tree.attrs["ome_group_attrs"] == {"ome": {"version": "0.5"}}


def test_the_accessor_moves_only_ome_blocks_and_leaves_a_users_attrs_where_they_are():
    """Reading ``ds.ome.group_attrs`` changes nothing a user reads at the top level."""
    ds = xr.Dataset(attrs={"omero": OMERO, "experiment": "x"})
    before = group_attrs(ds.attrs)
    assert ds.ome.group_attrs == {"omero": OMERO}
    assert ds.attrs["experiment"] == "x" and group_attrs(ds.attrs) == before
    plain = xr.DataTree(xr.Dataset(attrs={"experiment": "x"}))
    assert plain.ome.group_attrs == {} and plain.attrs["experiment"] == "x"


@pytest.mark.parametrize("spelling", ["nested", "top level"])
def test_a_dataarrays_group_attrs_are_written_to_the_group_not_the_array(tmp_path, spelling):
    import zarr

    omero = {"channels": [{"label": "a", "color": "FF0000", "active": True}]}
    attrs = {"ome_group_attrs": {"omero": omero}} if spelling == "nested" else {"omero": omero}
    array = xr.DataArray(
        np.zeros((1, 4, 4), "uint8"), dims=("c", "y", "x"), attrs={**attrs, "long_name": "q"}
    )
    xoz.to_ome_zarr(array, tmp_path / "a.ome.zarr")
    root = zarr.open_group(tmp_path / "a.ome.zarr", mode="r")
    assert root.attrs["ome"]["omero"]["channels"][0]["color"] == "FF0000"
    written = root["0"].attrs.asdict()
    assert "omero" not in written and "ome_group_attrs" not in written
    assert ("long_name" in written) == (spelling == "nested")
