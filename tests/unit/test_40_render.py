"""render: the RGB composite viewers show, on known pixel values, colours and windows."""

from __future__ import annotations

import io

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import xarray_ome_zarr as xoz
from xarray_ome_zarr import OmeZarrError
from xarray_ome_zarr.render import png_bytes, render, write_png


def _channel(label, color, start=0.0, end=100.0, active=True):
    window = {"start": start, "end": end, "min": 0.0, "max": 255.0}
    return {"label": label, "color": color, "window": window, "active": active}


def _level(pixels: np.ndarray, channels=None, dims=("c", "z", "y", "x")) -> xr.Dataset:
    """A level Dataset as the reader gives it: 0.5 attrs, coordinates with units."""
    image = xoz.image(pixels, dims=dims, scale={"z": 2.0, "y": 0.5, "x": 0.5}, units="um")
    if "c" in dims:
        image = image.assign_coords(c=[f"ch{i}" for i in range(pixels.shape[0])])
    ome = {"version": "0.5", "multiscales": []}
    if channels is not None:
        ome["omero"] = {"channels": channels}
    return image.to_dataset(name="image").assign_attrs(ome=ome)


def test_two_channels_are_tinted_windowed_and_added():
    pixels = np.zeros((2, 1, 2, 2), dtype="uint16")
    pixels[0, 0] = [[0, 20], [100, 300]]  # red: 0, 0.2, 1, clipped to 1
    pixels[1, 0] = [[100, 60], [40, 0]]  # green, window 40..60: 1, 1, 0, 0
    channels = [_channel("ch0", "FF0000"), _channel("ch1", "00FF00", start=40, end=60)]
    rgb = render(_level(pixels, channels)).values
    np.testing.assert_array_equal(rgb[..., 0], [[0, 51], [255, 255]])
    np.testing.assert_array_equal(rgb[..., 1], [[255, 255], [0, 0]])
    np.testing.assert_array_equal(rgb[..., 2], 0)


def test_colours_mix_and_saturate():
    pixels = np.full((2, 1, 1, 1), 50, dtype="uint8")
    channels = [_channel("ch0", "FF00FF"), _channel("ch1", "FFFF00", end=50)]
    (value,) = render(_level(pixels, channels)).values.reshape(-1, 3)
    # magenta at half (128, 0, 128) plus yellow at full (255, 255, 0), clipped
    assert value.tolist() == [255, 255, 128]


def test_inactive_channels_are_not_drawn_and_channels_match_by_name():
    pixels = np.full((2, 1, 1, 1), 100, dtype="uint8")
    channels = [_channel("ch1", "00FF00"), _channel("ch0", "FF0000", active=False)]
    (value,) = render(_level(pixels, channels)).values.reshape(-1, 3)
    assert value.tolist() == [0, 255, 0]


def test_without_omero_grey_and_the_window_is_the_planes_range():
    pixels = np.arange(16, dtype="float32").reshape(1, 4, 4) * 10 + 5
    ds = _level(pixels, dims=("z", "y", "x"))
    rgb = render(ds).values
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[-1, -1].tolist() == [255, 255, 255]
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 1])


def test_result_is_lazy_uint8_with_the_plane_coordinates():
    pixels = np.zeros((2, 5, 6, 7), dtype="uint16")
    ds = _level(pixels, [_channel("ch0", "FF0000"), _channel("ch1", "00FF00")])
    rgb = render(ds)
    assert rgb.dims == ("y", "x", "rgb") and rgb.sizes["rgb"] == 3 and rgb.dtype == np.uint8
    assert isinstance(rgb.data, da.Array)
    np.testing.assert_array_equal(rgb.x.values, ds.x.values)
    assert rgb.y.attrs["units"] == "micrometer" and set(rgb.coords) == {"y", "x"}


def test_selection_by_position_default_planes_and_projection():
    pixels = np.zeros((3, 5, 2, 2), dtype="uint8")  # t, z, y, x
    for t in range(3):
        for z in range(5):
            pixels[t, z] = 10 * t + z
    image = xoz.image(pixels, dims=("t", "z", "y", "x"), scale={"z": 2.0})
    ds = image.to_dataset(name="image").assign_attrs(
        omero={"channels": [_channel("a", "FFFFFF", end=100)]}
    )

    def grey(**kwargs):
        return int(render(ds, **kwargs).values[0, 0, 0])

    assert grey() == round(2 * 2.55)  # t = 0, the middle z plane (index 2)
    assert grey(z=6.9) == round(3 * 2.55)  # nearest z = 6 µm is index 3
    assert grey(t=2, z=0) == round(20 * 2.55)
    assert grey(project="z", t=1) == round(14 * 2.55)
    with pytest.raises(OmeZarrError, match="no axis 'q'"):
        render(ds, q=1)
    with pytest.raises(OmeZarrError, match="project='c'"):
        render(ds, project="c")


def test_channels_are_selected_by_name():
    pixels = np.full((2, 1, 1, 1), 100, dtype="uint8")
    ds = _level(pixels, [_channel("ch0", "FF0000"), _channel("ch1", "00FF00")])
    assert render(ds, c="ch1").values.reshape(3).tolist() == [0, 255, 0]
    with pytest.raises(OmeZarrError, match="c='nope'"):
        render(ds, c="nope")


def test_accessor_and_dataarray_with_its_attrs_and_rgb_pictures():
    picture = np.zeros((2, 3, 3), dtype="uint8")
    picture[0, 0] = [255, 0, 0]
    picture[1, 2] = [10, 20, 30]
    image = xoz.image(picture)  # RGB: R, G, B in red, green, blue, windows 0..255
    rgb = image.ome.render().values
    np.testing.assert_array_equal(rgb, picture)
    assert image.ome.render().dims == ("y", "x", "rgb")


def test_tree_renders_a_level(tmp_path):
    pixels = np.arange(2 * 4 * 8 * 8, dtype="uint16").reshape(2, 4, 8, 8)
    xoz.to_ome_zarr(pixels, tmp_path / "a.ome.zarr", scale_factors=[2], channels=["a", "b"])
    dt = xr.open_datatree(tmp_path / "a.ome.zarr", engine="ome-zarr")
    assert dt.ome.render().shape == (4, 4, 3)  # the smallest level by default
    ds = xr.open_dataset(tmp_path / "a.ome.zarr", engine="ome-zarr")
    assert ds.ome.render().shape == (8, 8, 3)


def test_show_plots_y_down():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    ds = _level(np.zeros((1, 1, 3, 4), dtype="uint8"), [_channel("ch0", "FF0000")])
    shown = ds.ome.show()
    assert shown.axes.yaxis_inverted()
    assert shown.get_array().shape[:2] == (3, 4)  # xarray adds an alpha channel


def test_png_is_a_valid_image_row_zero_on_top(tmp_path):
    image = pytest.importorskip("PIL.Image")
    rgb = np.zeros((2, 3, 3), dtype="uint8")
    rgb[0, 0] = [255, 0, 0]
    rgb[1, 2] = [0, 0, 255]
    written = write_png(rgb, tmp_path / "a.png")
    np.testing.assert_array_equal(np.asarray(image.open(written).convert("RGB")), rgb)
    assert png_bytes(rgb)[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.open(io.BytesIO(png_bytes(rgb))).size == (3, 2)
