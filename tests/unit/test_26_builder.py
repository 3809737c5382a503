"""xoz.image: from a bare numpy, dask or zarr array to an image of the model in one call."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

import xarray_ome_zarr as xoz
from xarray_ome_zarr import OmeZarrError
from xarray_ome_zarr.builder import default_dims


@pytest.mark.parametrize(
    ("shape", "dims"),
    [
        ((4, 5), ("y", "x")),
        ((3, 4, 5), ("z", "y", "x")),
        ((2, 3, 4, 5), ("c", "z", "y", "x")),
        ((6, 2, 3, 4, 5), ("t", "c", "z", "y", "x")),
        ((4, 5, 3), ("y", "x", "c")),
        ((4, 5, 4), ("y", "x", "c")),
        ((2, 4, 5, 3), ("z", "y", "x", "c")),
    ],
)
def test_default_dims_from_the_rank(shape, dims):
    assert default_dims(shape) == dims


@pytest.mark.parametrize("shape", [(5,), (1, 2, 3, 4, 5, 6)])
def test_ranks_ome_zarr_cannot_hold_ask_for_dims(shape):
    with pytest.raises(OmeZarrError, match="2 to 5.*dims="):
        xoz.image(np.zeros(shape))


def test_geometry_units_and_name():
    pixels = np.arange(3 * 4 * 5, dtype="uint16").reshape(3, 4, 5)
    img = xoz.image(
        pixels,
        scale={"z": 2.0, "y": 0.5, "x": 0.25},
        translation={"x": 10.0},
        units="µm",
        name="cells",
    )
    assert img.dims == ("z", "y", "x") and img.name == "cells"
    np.testing.assert_array_equal(img.values, pixels)
    np.testing.assert_allclose(img.x.values, 10.0 + 0.25 * np.arange(5))
    np.testing.assert_allclose(img.z.values, [0.0, 2.0, 4.0])
    assert img.x.attrs == {"axis_type": "space", "scale": 0.25, "units": "micrometer"}
    assert img.ome.scale == {"z": 2.0, "y": 0.5, "x": 0.25}
    assert img.ome.translation == {"z": 0.0, "y": 0.0, "x": 10.0}


def test_one_number_for_every_space_axis_and_units_by_dim():
    img = xoz.image(np.zeros((2, 3, 4)), dims=("t", "y", "x"), scale=0.5, units={"t": "second"})
    assert img.ome.scale == {"t": 1.0, "y": 0.5, "x": 0.5}
    assert img.ome.units == {"t": "second", "y": None, "x": None}


def test_channels_name_the_c_coordinate_and_colours_make_omero():
    img = xoz.image(np.zeros((2, 4, 4), "uint8"), dims=("c", "y", "x"), channels=["a", "b"])
    assert list(img.c.values) == ["a", "b"] and "omero" not in img.attrs
    coloured = xoz.image(
        np.zeros((2, 4, 4), "uint16"), dims="cyx", channels={"DAPI": "#0000ff", "GFP": None}
    )
    channels = coloured.attrs["omero"]["channels"]
    assert [c["color"] for c in channels] == ["0000FF", "FFFFFF"]
    assert channels[0]["window"] == {"start": 0.0, "end": 65535.0, "min": 0.0, "max": 65535.0}


def test_rgb_picture_gets_its_channel_axis_moved_first_and_named():
    pixels = np.random.default_rng(0).integers(0, 255, (6, 7, 3), dtype="uint8")
    img = xoz.image(pixels)
    assert img.dims == ("c", "y", "x") and list(img.c.values) == ["R", "G", "B"]
    np.testing.assert_array_equal(img.values, np.moveaxis(pixels, -1, 0))
    assert [c["color"] for c in img.attrs["omero"]["channels"]] == ["FF0000", "00FF00", "0000FF"]
    rgba = xoz.image(np.zeros((2, 6, 7, 4), "uint8"))
    assert rgba.dims == ("c", "z", "y", "x") and list(rgba.c.values) == ["R", "G", "B", "A"]


def test_explicit_channel_last_dims_are_put_in_ome_order_lazily():
    pixels = da.zeros((6, 7, 2), chunks=(3, 7, 2), dtype="uint8")
    img = xoz.image(pixels, dims=("y", "x", "c"))
    assert img.dims == ("c", "y", "x") and isinstance(img.data, da.Array)


def test_zarr_array_is_wrapped_lazily_chunked_as_stored(tmp_path):
    array = zarr.create_array(
        tmp_path / "a.zarr", shape=(2, 64, 64), chunks=(1, 32, 32), dtype="f4"
    )
    array[:] = 1.5
    img = xoz.image(array, dims=("c", "y", "x"))
    assert isinstance(img.data, da.Array) and img.data.chunksize == (1, 32, 32)
    assert float(img.sum()) == 1.5 * array.size


def test_dataarray_gives_its_dims_and_name():
    img = xoz.image(xr.DataArray(np.zeros((3, 4)), dims=("y", "x"), name="n"), scale=2)
    assert img.name == "n" and img.ome.scale == {"y": 2.0, "x": 2.0}


@pytest.mark.parametrize(
    ("dims", "hint"),
    [
        (("Y", "X"), "dims=('y', 'x')"),
        (("row", "col"), ".rename({'row': 'y', 'col': 'x'})"),
        (("channel", "y", "x"), "dims=('c', 'y', 'x')"),
    ],
)
def test_axis_names_spelled_otherwise_say_how_to_rename(dims, hint):
    with pytest.raises(OmeZarrError, match="t, c, z, y, x") as caught:
        xoz.image(np.zeros((2, 3, 4)[-len(dims) :]), dims=dims)
    assert hint in str(caught.value)


def test_other_axis_names_are_refused_with_the_way_to_a_custom_axis():
    """A custom axis (``angle``) is not guessed from its name: the message says how to make
    one (a coordinate whose attrs give its type); never a KeyError."""
    with pytest.raises(OmeZarrError, match=r"\['angle'\].*axis_type") as caught:
        xoz.image(np.zeros((4, 6, 8)), dims=("angle", "y", "x"))
    assert "t, c, z, y, x" in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": {"q": 1.0}}, "names \\['q'\\]"),
        ({"scale": {"y": 0}}, "positive"),
        ({"scale": {"y": "big"}}, "must be a number"),
        ({"translation": [1.0, 2.0, 3.0, 4.0]}, "dict by dim"),
        ({"channels": ["a"]}, "names 1 channels"),
        ({"channels": {"a": "red", "b": None}}, "6 hex digits"),
        ({"units": {"c": "micrometer"}}, "channel axis"),
        ({"dims": ("y", "x")}, "do not fit"),
    ],
)
def test_bad_keywords_are_refused_with_the_reason(kwargs, message):
    kwargs = {"dims": ("c", "y", "x"), **kwargs}
    with pytest.raises(OmeZarrError, match=message):
        xoz.image(np.zeros((2, 3, 4)), **kwargs)
