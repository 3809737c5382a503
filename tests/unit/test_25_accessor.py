"""The .ome accessor: OME geometry read off coordinates on DataArray, Dataset and DataTree."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import xarray_ome_zarr as xoz
from xarray_ome_zarr import layout

from ..conftest import CHANNELS, SCALE, TRANSLATION, write_hand_image

UM = "micrometer"


def image(shape=(2, 4, 6, 8), scale=(3.0, 0.5, 0.25), translation=(1.0, -2.0, 0.5)):
    """A c/z/y/x DataArray with pixel-centre coordinates, as a user would build it."""
    coords = {"c": ["DAPI", "GFP"][: shape[0]]}
    for dim, size, s, t in zip("zyx", shape[1:], scale, translation, strict=True):
        coords[dim] = xr.Variable(dim, t + s * np.arange(size), attrs={"units": UM})
    data = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    return xr.DataArray(data, dims=("c", "z", "y", "x"), coords=coords, name="cells")


def hand_tree(tmp_path, version="0.5") -> xr.DataTree:
    path = tmp_path / f"hand-{version}.ome.zarr"
    write_hand_image(path, version)
    return xr.open_datatree(path, engine="ome-zarr")


# ---- DataArray ------------------------------------------------------------------------
def test_dataarray_geometry():
    da = image()
    assert da.ome.scale == {"z": 3.0, "y": 0.5, "x": 0.25}
    assert da.ome.translation == {"z": 1.0, "y": -2.0, "x": 0.5}
    assert da.ome.units == {"z": UM, "y": UM, "x": UM}
    assert da.ome.axes == [
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": UM},
        {"name": "y", "type": "space", "unit": UM},
        {"name": "x", "type": "space", "unit": UM},
    ]
    assert da.ome.transforms == [
        {"type": "scale", "scale": [1.0, 3.0, 0.5, 0.25]},
        {"type": "translation", "translation": [0.0, 1.0, -2.0, 0.5]},
    ]


@pytest.mark.parametrize(
    ("select", "scale", "translation"),
    [
        (lambda da: da.isel(x=slice(3, None)), 0.25, 0.5 + 3 * 0.25),
        (lambda da: da.isel(x=slice(1, None, 2)), 0.5, 0.75),
        (lambda da: da.isel(x=slice(None, None, -1)), -0.25, 0.5 + 7 * 0.25),
        (lambda da: da.sel(x=slice(1.0, 2.0)), 0.25, 1.0),
        (lambda da: da.isel(x=[5]), 0.25, 0.5 + 5 * 0.25),
        (lambda da: da.sel(x=[1.25]), 0.25, 1.25),
    ],
    ids=["crop", "stride", "reversed", "sel", "length-1", "sel-length-1"],
)
def test_geometry_follows_selections(select, scale, translation):
    da = image()
    da["x"].attrs["scale"] = 0.25  # as the reader sets it
    out = select(da)
    assert out.ome.scale["x"] == pytest.approx(scale)
    assert out.ome.translation["x"] == pytest.approx(translation)
    assert out.ome.translation["y"] == -2.0


def test_length_one_axis_without_scale_attr_has_scale_one():
    assert image().isel(x=[2]).ome.scale["x"] == 1.0


def test_dropped_dim_is_gone():
    da = image().isel(z=1)
    assert list(da.ome.scale) == ["y", "x"]
    assert [a["name"] for a in da.ome.axes] == ["c", "y", "x"]


def test_dims_without_coordinates_have_identity_geometry():
    da = xr.DataArray(np.zeros((3, 4)), dims=("y", "x"))
    assert da.ome.scale == {"y": 1.0, "x": 1.0}
    assert da.ome.translation == {"y": 0.0, "x": 0.0}
    assert da.ome.units == {"y": None, "x": None}
    assert da.ome.axes == [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]


def test_axis_types_from_attrs_and_names_geometry_from_numbers():
    da = xr.DataArray(
        np.zeros((2, 3, 4, 5, 6)),
        dims=("angle", "t", "row", "x", "label"),
        coords={
            "t": xr.Variable("t", [0.0, 1.5, 3.0], attrs={"units": "s"}),
            "row": [0, 2, 4, 6],
            "x": xr.Variable("x", np.arange(5.0), attrs={"axis_type": "time"}),
            "label": list("abcdef"),
        },
    )
    assert da.ome.axes == [
        {"name": "angle"},
        {"name": "t", "type": "time", "unit": "second"},
        {"name": "row"},
        {"name": "x", "type": "time"},
        {"name": "label"},
    ]
    # a custom axis with numbers for positions keeps them; one without has none
    assert da.ome.scale == {"t": 1.5, "row": 2.0, "x": 1.0}
    assert da.ome.transforms[0]["scale"] == [1.0, 1.5, 2.0, 1.0, 1.0]


def test_units_are_spelled_as_ome_zarr_spells_them():
    da = image()
    da["x"].attrs["units"] = "um"
    da["y"].attrs["units"] = ""
    assert da.ome.units == {"z": UM, "y": None, "x": UM}


def test_string_coordinate_on_a_space_axis_is_an_error():
    da = xr.DataArray(np.zeros((2, 3)), dims=("y", "x"), coords={"x": list("abc")})
    with pytest.raises(xoz.OmeZarrError, match=r"axis 'x'.*<U1"):
        _ = da.ome.scale


def test_uneven_spacing_is_an_error_naming_the_axis():
    da = image().isel(y=[0, 1, 3])
    with pytest.raises(xoz.OmeZarrError, match=r"DataArray 'cells': axis 'y'.*evenly spaced"):
        _ = da.ome.scale


def test_datetime_time_axis_is_an_error_naming_the_axis():
    times = np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[ns]")
    da = xr.DataArray(np.zeros((2, 3)), dims=("t", "x"), coords={"t": times})
    with pytest.raises(xoz.OmeZarrError, match=r"axis 't'.*datetime64"):
        _ = da.ome.translation


def test_empty_axis_is_an_error():
    with pytest.raises(xoz.OmeZarrError, match="axis 'x'"):
        _ = image().isel(x=slice(0, 0)).ome.scale


def test_unknown_object():
    with pytest.raises(xoz.OmeZarrError, match="ndarray"):
        layout.image_level(np.zeros(3))


# ---- Dataset --------------------------------------------------------------------------
def test_dataset_uses_its_one_data_variable():
    ds = image().to_dataset()
    assert ds.ome.scale == image().ome.scale
    assert ds.ome.transforms == image().ome.transforms


def test_dataset_with_several_variables_is_an_error():
    ds = image().to_dataset().assign(other=image())
    with pytest.raises(xoz.OmeZarrError, match=r"2 \['cells', 'other'\]"):
        _ = ds.ome.scale


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_stored_axes_give_types_and_units_without_coordinates(version):
    axes = [
        {"name": "angle", "type": "angle"},
        {"name": "y", "type": "space", "unit": UM},
        {"name": "x", "type": "space", "unit": UM},
    ]
    block = {"multiscales": [{"axes": axes, "datasets": [{"path": "0"}]}]}
    attrs = {"ome": {"version": "0.5", **block}} if version == "0.5" else block
    ds = xr.Dataset({"image": (("angle", "y", "x"), np.zeros((2, 3, 4)))}, attrs=attrs)
    assert ds.ome.axes == axes
    assert ds.ome.units == {"y": UM, "x": UM}


def test_stored_axes_tolerate_malformed_metadata():
    for attrs in ({"multiscales": "nope"}, {"ome": 3}, {"multiscales": [{"axes": [1, "y"]}]}):
        ds = xr.Dataset({"image": (("y",), np.zeros(3))}, attrs=attrs)
        assert ds.ome.scale == {"y": 1.0}


def test_opened_level_dataset(hand_image):
    path, _, _ = hand_image
    ds = xr.open_dataset(path, engine="ome-zarr", level=1)
    assert ds.ome.scale == {"z": SCALE[1], "y": SCALE[2] * 2, "x": SCALE[3] * 2}
    assert ds.ome.translation == pytest.approx(
        {
            "z": TRANSLATION[1],
            "y": TRANSLATION[2] + SCALE[2] / 2,
            "x": TRANSLATION[3] + SCALE[3] / 2,
        }
    )


# ---- DataTree -------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_tree_properties_describe_scale0(tmp_path, version):
    dt = hand_tree(tmp_path, version)
    assert dt.ome.scale == {"z": SCALE[1], "y": SCALE[2], "x": SCALE[3]}
    assert dt.ome.translation == {"z": TRANSLATION[1], "y": TRANSLATION[2], "x": TRANSLATION[3]}
    assert dt.ome.units == {"z": UM, "y": UM, "x": UM}
    assert dt.ome.axes == [
        {"name": "c", "type": "channel"},
        *({"name": d, "type": "space", "unit": UM} for d in "zyx"),
    ]
    assert dt.ome.transforms == [
        {"type": "scale", "scale": SCALE},
        {"type": "translation", "translation": TRANSLATION},
    ]


def test_tree_levels(tmp_path):
    dt = hand_tree(tmp_path)
    one = {"z": SCALE[1], "y": SCALE[2] * 2, "x": SCALE[3] * 2}
    assert dt.ome.level(1).scale == one
    assert dt.ome.level(-1).scale == one
    assert dt.ome.level("scale1").scale == one
    assert dt["scale1"].ome.scale == one
    assert [view.scale for view in dt.ome.levels] == [dt.ome.scale, one]
    assert dt.ome.level(1).translation == dt["scale1"].ome.translation


def test_tree_level_view_is_the_level_dataset_with_image_attrs(tmp_path):
    dt = hand_tree(tmp_path)
    ds = dt.ome.level(1)._obj
    assert ds.ome.group_attrs["ome"] == dt.ome.group_attrs["ome"]
    assert ds.attrs["ome_dataset_path"] == "1"
    assert list(ds.data_vars) == ["cells"]


@pytest.mark.parametrize("level", [2, -3, "scale7", "0", True, 1.0])
def test_tree_bad_level(tmp_path, level):
    dt = hand_tree(tmp_path)
    with pytest.raises(xoz.OmeZarrError, match=r"no level .*2 levels \['scale0', 'scale1'\]"):
        dt.ome.level(level)


def test_tree_after_crop_of_every_level(tmp_path):
    dt = hand_tree(tmp_path)
    cropped = dt.map_over_datasets(lambda ds: ds.sel(x=slice(2.0, None)) if ds.dims else ds)
    assert cropped.ome.translation["x"] == 2.0
    assert cropped.ome.level(1).translation["x"] == pytest.approx(2.125)


def test_length_one_levels_infer_scale_from_the_level_above():
    """multiscale-spatial-image trees carry no scale attr; the pixel-centre rule gives it."""
    base = image(shape=(1, 2, 8, 8), scale=(1.0, 0.5, 0.5), translation=(0.0, 0.0, 0.0))
    levels = {"scale0": base}
    for i, factor in enumerate([2, 4], start=1):
        previous = levels[f"scale{i - 1}"]
        levels[f"scale{i}"] = previous.coarsen(y=factor, x=factor).mean()
    tree = xr.DataTree.from_dict({k: v.to_dataset() for k, v in levels.items()})
    assert tree["scale2"]["y"].size == 1
    assert tree.ome.level(2).scale == {"z": 1.0, "y": 4.0, "x": 4.0}
    assert tree.ome.level(2).translation == {"z": 0.0, "y": 1.75, "x": 1.75}
    # without the tree around it, a length-1 axis has nothing but its attrs to go by
    assert tree["scale2"].ome.scale["y"] == 1.0


def test_a_bad_lower_level_does_not_spoil_the_levels_above(tmp_path):
    dt = hand_tree(tmp_path)
    uneven = dt["scale1"].to_dataset().isel(x=[0, 1, 3])
    tree = xr.DataTree.from_dict({"/": dt.to_dataset(), "scale0": dt["scale0"], "scale1": uneven})
    tree.attrs = dt.attrs
    assert tree.ome.scale == dt.ome.scale
    with pytest.raises(xoz.OmeZarrError, match=r"level 'scale1'.*axis 'x'.*evenly spaced"):
        _ = tree.ome.level(1).scale


def test_tree_that_is_not_an_image(tmp_path):
    with pytest.raises(xoz.OmeZarrError, match="DataTree node '/': not an image"):
        _ = xr.DataTree().ome.scale
    with pytest.raises(xoz.OmeZarrError, match="single level has no level 1"):
        image().to_dataset().pipe(xr.DataTree).ome.level(1)


def test_single_level_node_has_one_view():
    tree = xr.DataTree(image().to_dataset())
    assert [view.scale for view in tree.ome.levels] == [image().ome.scale]


# ---- the module itself ------------------------------------------------------------------
def test_accessor_registers_on_import_without_heavy_imports():
    code = (
        "import sys, xarray as xr, xarray_ome_zarr\n"
        "assert hasattr(xr.DataArray, 'ome') and hasattr(xr.DataTree, 'ome')\n"
        "heavy = [m for m in ('zarr', 'dask.array', 'spatial_image', 'xarray_ome_zarr.reader')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_channel_names_are_not_geometry():
    da = image()
    assert "c" not in da.ome.scale and list(da["c"].values) == CHANNELS


def test_public_names():
    assert "to_spatial_image" in xoz.__all__
    assert xoz.accessor.OmeAccessor is type(image().ome)
