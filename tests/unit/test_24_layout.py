"""layout.py: the xarray side of the model (names, the data variable, axis types, geometry)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xarray_ome_zarr as xoz
from xarray_ome_zarr import layout
from xarray_ome_zarr.ngff.model import TYPE_BY_NAME, Axis

UM = "micrometer"


def level(values_by_dim: dict[str, np.ndarray], **attrs_by_dim: dict) -> xr.DataArray:
    """A DataArray with the given 1-D coordinates (attrs per dim)."""
    coords = {
        d: xr.Variable(d, np.asarray(v), attrs=attrs_by_dim.get(d, {}))
        for d, v in values_by_dim.items()
    }
    shape = tuple(len(v) for v in values_by_dim.values())
    return xr.DataArray(np.zeros(shape, np.uint8), dims=tuple(values_by_dim), coords=coords)


# ---- names ------------------------------------------------------------------------------
def test_the_names_of_the_model():
    assert (layout.TYPE_ATTR, layout.SCALE_ATTR, layout.UNITS_ATTR) == (
        "axis_type",
        "scale",
        "units",
    )
    assert layout.PATH_ATTR == "ome_dataset_path"
    assert layout.DEFAULT_NAME == "image"
    assert layout.TYPE_BY_NAME is TYPE_BY_NAME  # one map: the format layer's


@pytest.mark.parametrize(
    ("name", "expected"),
    [("cells", "cells"), (None, "image"), ("", "image"), ("a/b", "image"), (3, "image")],
)
def test_variable_name(name, expected):
    assert layout.variable_name(name) == expected


def test_level_names_are_numbered_children_in_numeric_order():
    tree = xr.DataTree.from_dict(
        {f"/scale{i}": xr.Dataset() for i in (10, 2, 0, 1)} | {"/labels": xr.Dataset()}
    )
    assert layout.level_names(tree) == ["scale0", "scale1", "scale2", "scale10"]
    assert [layout.level_number(n) for n in ("scale3", "scale", "scale1x", "s0")] == [
        3,
        *[None] * 3,
    ]
    assert layout.level_name(tree, -1, "here") == "scale10"
    assert layout.level_name(tree, "scale2", "here") == "scale2"
    with pytest.raises(xoz.OmeZarrError, match=r"here: no level 4; the image has 4 levels"):
        layout.level_name(tree, 4, "here")
    with pytest.raises(xoz.OmeZarrError, match="no level True"):
        layout.level_name(tree, True, "here")


def test_a_level_holds_exactly_one_data_variable():
    ds = xr.Dataset({"a": ("x", [1]), "b": ("x", [2])})
    with pytest.raises(
        xoz.OmeZarrError, match=r"^here: .*exactly one data variable.*2 \['a', 'b'\]"
    ):
        layout.single_array(ds, "here")
    assert layout.single_array(ds[["a"]], "here").name == "a"


# ---- axes -------------------------------------------------------------------------------
def test_axis_type_precedence():
    stored = {"x": Axis("x", "time"), "q": Axis("q", None)}
    assert layout.axis_type("x", {"axis_type": "space"}, stored) == "space"  # coordinate first
    assert layout.axis_type("x", {"axis_type": ""}, stored) == "time"  # then the stored axis
    assert layout.axis_type("q", {}, {"q": Axis("q", None)}) is None  # stored custom stays so
    assert layout.axis_type("y", {}, stored) == "space"  # then the name
    assert layout.axis_type("angle", {}) is None


def test_axis_types_and_units_of_an_array():
    da = level(
        {"c": ["a", "b"], "z": [0.0, 1.0], "x": [0.0, 2.0]},
        z={"units": "um"},
        x={"axis_type": "time"},
    )
    assert layout.axis_types(da) == {"c": "channel", "z": "space", "x": "time"}
    assert layout.axis_unit(da["z"]) == UM
    assert layout.axis_unit(da["x"], Axis("x", "time", "s")) == "second"
    assert layout.axis_unit(None) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.5, 0.5), (2, 2.0), (np.float32(0.25), 0.25), (0, None), (True, None), ("1", None)],
)
def test_attr_scale(value, expected):
    coord = xr.DataArray([1.0], dims="x", attrs={"scale": value})
    assert layout.attr_scale(coord) == expected


def test_stored_axes_of_every_version():
    axes = [{"name": "t", "type": "time", "unit": "second", "x-extra": 1}, {"name": "y"}]
    v05 = layout.stored_axes({"ome": {"version": "0.5", "multiscales": [{"axes": axes}]}})
    assert v05 == {"t": Axis("t", "time", "second", {"x-extra": 1}), "y": Axis("y")}
    v03 = layout.stored_axes({"multiscales": [{"version": "0.3", "axes": ["c", "y", "x"]}]})
    assert v03 == {"c": Axis("c", "channel"), "y": Axis("y", "space"), "x": Axis("x", "space")}
    for bad in ({"ome": 3}, {"multiscales": {}}, {"ome": {"version": 5, "multiscales": []}}):
        assert layout.stored_axes(bad) == {}


def test_ome_document_is_found_leniently():
    assert layout.ome_document({"ome": {"version": "0.5", "plate": {}}}) == (
        "0.5",
        {"version": "0.5", "plate": {}},
    )
    assert layout.ome_document({"well": {"version": "0.4"}}) == (
        "0.4",
        {"well": {"version": "0.4"}},
    )
    assert layout.ome_document({"ome": "nope"}) == (None, {"ome": "nope"})


# ---- geometry ---------------------------------------------------------------------------
def test_coordinate_geometry_reads_numbers_off_coordinates():
    da = level({"c": [0.0, 1.0], "y": [1.0, 1.5, 2.0], "x": [7.0]}, x={"scale": 3.0})
    assert layout.coordinate_geometry(da, "c", "channel") is None
    assert layout.coordinate_geometry(da, "y", "space") == (0.5, 1.0)
    assert layout.coordinate_geometry(da, "x", "space", fallback=9.0) == (3.0, 7.0)  # attr first
    del da["x"].attrs["scale"]
    assert layout.coordinate_geometry(da, "x", "space", fallback=9.0) == (9.0, 7.0)
    assert layout.coordinate_geometry(da, "x", "space") == (1.0, 7.0)


def test_coordinate_geometry_refuses_what_is_not_a_position():
    strings = level({"y": [0.0, 1.0], "x": ["a", "b"]})
    assert layout.coordinate_geometry(strings, "x", None) is None  # a custom axis: no positions
    with pytest.raises(xoz.OmeZarrError, match=r"^axis 'x': the coordinate is <U1"):
        layout.coordinate_geometry(strings, "x", "space")
    times = level({"t": np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[ns]")})
    with pytest.raises(xoz.OmeZarrError, match=r"axis 't'.*datetime64"):
        layout.coordinate_geometry(times, "t", None)
    with pytest.raises(xoz.OmeZarrError, match="evenly spaced"):
        layout.coordinate_geometry(level({"x": [0.0, 1.0, 3.0]}), "x", "space")


@pytest.mark.parametrize(
    ("position", "size", "expected"),
    [
        (1.25, 4, 4 * 0.5),  # 4 pixels from 0.5 by 0.5, start-aligned: factor 4
        (1.75, 5, 4 * 0.5),  # 5 pixels, the first trimmed (coarsen side="right"): factor 4
        (0.5, 1, 0.5),  # a level of one pixel above: factor 1
        (0.8, 4, 4 * 0.5),  # no whole factor: the pixel covers the level above
    ],
)
def test_one_pixel_scale(position, size, expected):
    assert layout.one_pixel_scale(position, 0.5, 0.5, size) == pytest.approx(expected)


def test_the_reader_side_and_the_writer_infer_length_one_scales_alike(tmp_path):
    """One rule: the accessor and the writer give a one-pixel level the same scale, also
    where no whole factor explains its position."""
    base = level({"y": 0.5 + 0.5 * np.arange(4), "x": 0.5 + 0.5 * np.arange(6)})
    one = level({"y": [1.25], "x": [1.2]})  # y: factor 4; x: no whole factor
    tree = xr.DataTree.from_dict(
        {"scale0": base.rename("image").to_dataset(), "scale1": one.rename("image").to_dataset()}
    )
    assert tree.ome.level(1).scale == {"y": 2.0, "x": 3.0}
    xoz.to_ome_zarr(tree, tmp_path / "one.ome.zarr")
    back = xr.open_datatree(tmp_path / "one.ome.zarr", engine="ome-zarr")
    assert back.ome.level(1).scale == tree.ome.level(1).scale
    assert back["scale1"]["x"].attrs["scale"] == 3.0


def test_image_level_of_each_kind_of_object():
    da = level({"y": [0.0, 2.0], "x": [1.0, 2.0]}).rename("cells")
    assert layout.image_level(da).where == "DataArray 'cells'"
    ds = da.to_dataset().assign_attrs(ome_dataset_path="1")
    found = layout.image_level(ds)
    assert found.where == "Dataset at level path '1'" and found.dataset is ds
    assert [a.scale for a in found.geometry()] == [2.0, 1.0]
    with pytest.raises(xoz.OmeZarrError, match="got list"):
        layout.image_level([1, 2])
