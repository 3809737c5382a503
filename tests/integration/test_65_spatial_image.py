"""spatial-image and multiscale-spatial-image: their objects in, OME-Zarr out, and back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import spatial_image as si
import xarray as xr
import zarr

import xarray_ome_zarr as xoz
from xarray_ome_zarr.transforms import block_factor

from ..conftest import CHANNELS, SCALE, TRANSLATION, write_hand_image

msi = pytest.importorskip("multiscale_spatial_image")

UM = "micrometer"
ZYX_SCALE = {"z": 2.0, "y": 0.5, "x": 0.25}
ZYX_TRANSLATION = {"z": 1.0, "y": -3.0, "x": 1.5}


@pytest.fixture
def writer():
    """The writer, when it exists (it is built in parallel with this module)."""
    if not hasattr(xoz, "to_ome_zarr"):
        pytest.skip("xoz.to_ome_zarr is not available yet")
    return xoz


def spatial(shape=(2, 8, 16, 24), dims=("c", "z", "y", "x"), **kwargs) -> xr.DataArray:
    """A spatial-image with units, channel names and a translation, built by spatial-image."""
    data = np.random.default_rng(1).integers(0, 4000, shape, dtype=np.uint16)
    spatial_dims = [d for d in dims if d in "zyx"]
    arguments = {
        "dims": dims,
        "scale": {d: ZYX_SCALE[d] for d in spatial_dims},
        "translation": {d: ZYX_TRANSLATION[d] for d in spatial_dims},
        "axis_units": {d: UM for d in spatial_dims},
        "name": "cells",
    }
    if "c" in dims:
        arguments["c_coords"] = CHANNELS[: shape[dims.index("c")]]
    return si.to_spatial_image(data, **(arguments | kwargs))


def expected_from_hand(data: np.ndarray, level: int, name: str = "cells") -> xr.DataArray:
    """What spatial-image builds from a hand-written level's pixels and metadata."""
    f = 2**level
    scale = {"z": SCALE[1], "y": SCALE[2] * f, "x": SCALE[3] * f}
    translation = {
        "z": TRANSLATION[1],
        "y": TRANSLATION[2] + (f - 1) / 2 * SCALE[2],
        "x": TRANSLATION[3] + (f - 1) / 2 * SCALE[3],
    }
    return si.to_spatial_image(
        data[:, :, ::f, ::f],
        dims=("c", "z", "y", "x"),
        scale=scale,
        translation=translation,
        name=name,
        axis_units={d: UM for d in "zyx"},
        c_coords=CHANNELS,
    )


def assert_same_spatial_image(actual: xr.DataArray, expected: xr.DataArray) -> None:
    """Same dims, coordinates (values and attrs), name, dtype and pixels."""
    xr.testing.assert_identical(actual, expected)
    assert actual.dtype == expected.dtype
    for dim in expected.dims:
        assert actual[dim].attrs == expected[dim].attrs
        assert actual[dim].dtype == expected[dim].dtype
    assert si.is_spatial_image(actual)


def assert_same_coordinates(actual: xr.DataArray, expected: xr.DataArray) -> None:
    """Channel names equal, positions equal to rounding."""
    np.testing.assert_array_equal(actual["c"].values, expected["c"].values)
    for dim in "zyx":
        np.testing.assert_allclose(actual[dim].values, expected[dim].values, rtol=1e-12)


# ---- to_spatial_image ---------------------------------------------------------------------
@pytest.mark.parametrize("level", [0, 1, -1, "scale1"])
def test_to_spatial_image_from_tree(hand_image, level):
    path, data, _ = hand_image
    dt = xr.open_datatree(path, engine="ome-zarr")
    index = {0: 0, 1: 1, -1: 1, "scale1": 1}[level]
    actual = xoz.to_spatial_image(dt, level=level)
    assert_same_spatial_image(actual, expected_from_hand(data, index))


def test_to_spatial_image_from_level_node_dataset_and_dataarray(hand_image):
    path, data, _ = hand_image
    expected = expected_from_hand(data, 1)
    ds = xr.open_dataset(path, engine="ome-zarr", level=1)
    dt = xr.open_datatree(path, engine="ome-zarr")
    for obj in (dt["scale1"], ds, ds["cells"]):
        assert_same_spatial_image(xoz.to_spatial_image(obj), expected)


def test_to_spatial_image_keeps_encoding(hand_image):
    path, _, _ = hand_image
    ds = xr.open_dataset(path, engine="ome-zarr")
    assert xoz.to_spatial_image(ds).encoding == ds["cells"].encoding


def test_to_spatial_image_of_a_spatial_image_is_itself():
    image = spatial(axis_names={"z": "depth"})
    assert_same_spatial_image(xoz.to_spatial_image(image), image)
    assert xoz.to_spatial_image(image)["z"].attrs["long_name"] == "depth"


@pytest.mark.parametrize(
    ("shape", "dims"),
    [((16, 24), ("y", "x")), ((3, 16, 24), ("t", "y", "x")), ((3, 2, 8, 16, 24), tuple("tczyx"))],
)
def test_to_spatial_image_other_layouts(shape, dims):
    t = {"t_coords": [0.0, 2.5, 5.0], "axis_units": {"t": "second", "y": UM}} if "t" in dims else {}
    image = spatial(shape, dims, **t)
    assert_same_spatial_image(xoz.to_spatial_image(image), image)


def test_to_spatial_image_after_a_crop(hand_image):
    path, data, _ = hand_image
    dt = xr.open_datatree(path, engine="ome-zarr")
    crop = dt["scale0"].to_dataset().sel(y=slice(-1.0, 2.0), x=slice(2.0, None))
    expected = si.to_spatial_image(
        data[:, :, 4:11, 2:],
        dims=("c", "z", "y", "x"),
        scale={"z": 2.0, "y": 0.5, "x": 0.25},
        translation={"z": 10.0, "y": -1.0, "x": 2.0},
        name="cells",
        axis_units={d: UM for d in "zyx"},
        c_coords=CHANNELS,
    )
    assert_same_spatial_image(xoz.to_spatial_image(crop), expected)


def test_to_spatial_image_stays_lazy(hand_image):
    path, data, _ = hand_image
    lazy = xoz.to_spatial_image(xr.open_dataset(path, engine="ome-zarr"))
    # Overwrite the stored pixels: a result that had read them would show the old ones.
    zarr.open_array(path / "0", mode="r+")[...] = data[::-1]
    np.testing.assert_array_equal(lazy.values, data[::-1])
    dask = xoz.to_spatial_image(xr.open_dataset(path, engine="ome-zarr", chunks={}))
    assert dask.chunks == ((1, 1), (2, 2, 1), (5, 5, 3), (4, 4, 3))
    np.testing.assert_array_equal(dask.values, data[::-1])


SPACE_YX = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]


def write_custom_axes(path: Path, axes: list[dict]) -> None:
    """A one-level 0.5 image with the given axes, scale 0.5 on space axes."""
    root = zarr.open_group(path, mode="w", zarr_format=3)
    names = [a["name"] for a in axes]
    root.create_array("0", shape=(3,) * len(axes), dtype="uint8", dimension_names=names)
    scale = [0.5 if a.get("type") == "space" else 1.0 for a in axes]
    root.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": axes,
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
                ],
            }
        ],
    }


@pytest.mark.parametrize(
    ("axes", "bad"),
    [
        ([{"name": "angle", "type": "angle"}, *SPACE_YX], "angle"),
        ([{"name": "c", "type": "channel"}, SPACE_YX[0], {"name": "X", "type": "space"}], "X"),
        ([{"name": "t", "type": "time"}, {"name": "p"}, *SPACE_YX], "p"),
    ],
    ids=["angle", "upper-case-X", "untyped"],
)
def test_axes_spatial_image_cannot_hold(tmp_path, axes, bad):
    write_custom_axes(tmp_path / "custom.ome.zarr", axes)
    dt = xr.open_datatree(tmp_path / "custom.ome.zarr", engine="ome-zarr")
    with pytest.raises(xoz.OmeZarrError, match=rf"axis '{bad}' cannot be held by a spatial-image"):
        xoz.to_spatial_image(dt)


def test_known_name_with_another_type(tmp_path):
    write_custom_axes(tmp_path / "odd.ome.zarr", [{"name": "z", "type": "time"}, *SPACE_YX])
    dt = xr.open_datatree(tmp_path / "odd.ome.zarr", engine="ome-zarr")
    with pytest.raises(xoz.OmeZarrError, match=r"axis 'z' has type 'time'.*space"):
        xoz.to_spatial_image(dt)


def test_order_spatial_image_has_no_layout_for():
    image = spatial().transpose("x", "y", "z", "c")
    with pytest.raises(xoz.OmeZarrError, match=r"no layout for the axes \('x', 'y', 'z', 'c'\)"):
        xoz.to_spatial_image(image)


def test_uneven_coordinates_are_refused():
    image = spatial().isel(x=[0, 1, 5])
    with pytest.raises(xoz.OmeZarrError, match="axis 'x'.*evenly spaced"):
        xoz.to_spatial_image(image)


# ---- multiscale-spatial-image on our trees ------------------------------------------------
def test_msi_transpose_on_our_tree(hand_image):
    path, data, _ = hand_image
    dt = xr.open_datatree(path, engine="ome-zarr")
    out = dt.msi.transpose("z", "y", "x", "c")
    for i in (0, 1):
        level = out[f"scale{i}"]["cells"]
        assert level.dims == ("z", "y", "x", "c")
        np.testing.assert_array_equal(
            level.values, data[:, :, :: 2**i, :: 2**i].transpose(1, 2, 3, 0)
        )
        assert out.ome.level(i).scale == dt.ome.level(i).scale
    # (z, y, x, c) is a spatial-image layout: the transposed level converts
    expected = expected_from_hand(data, 1).transpose("z", "y", "x", "c")
    assert_same_spatial_image(xoz.to_spatial_image(out, level=1), expected)


def test_msi_assign_coords_on_our_tree(hand_image):
    path, _, _ = hand_image
    dt = xr.open_datatree(path, engine="ome-zarr")
    shifted = dt.msi.assign_coords({"x": lambda ds: ds["x"] + 10.0})
    assert shifted.ome.translation["x"] == pytest.approx(TRANSLATION[3] + 10.0)
    assert shifted.ome.level(1).scale == dt.ome.level(1).scale


def test_msi_to_zarr_of_our_tree_reads_back(tmp_path):
    """MSI writes NGFF 0.4 (zarr v2); a tree read from a 0.4 store goes through it.

    MSI writes its own ``multiscales`` only: the source's other blocks (``omero``, so the
    channel names) stay in the ``ome_group_attrs`` attribute that xarray's ``to_zarr``
    under MSI copies, verbatim but not as OME metadata, and the reader says so.
    """
    write_hand_image(tmp_path / "in.ome.zarr", "0.4")
    dt = xr.open_datatree(tmp_path / "in.ome.zarr", engine="ome-zarr")
    dt.msi.to_zarr(tmp_path / "msi.ome.zarr")
    with pytest.warns(xoz.OmeZarrWarning, match=r"'omero'.*nested-group-attrs") as caught:
        back = xr.open_datatree(tmp_path / "msi.ome.zarr", engine="ome-zarr")
    assert {w.message.key for w in caught if w.message.rule == "nested-group-attrs"} == {  # type: ignore[union-attr]
        "ome_group_attrs"
    }
    problems = [
        p for p in xoz.validate(tmp_path / "msi.ome.zarr") if p.rule == "nested-group-attrs"
    ]
    assert [(p.node, p.severity) for p in problems] == [("/", "warning")]
    original = xr.open_datatree(tmp_path / "in.ome.zarr", engine="ome-zarr")
    kept = back.ome.group_attrs["ome_group_attrs"]
    assert kept["omero"] == original.ome.group_attrs["omero"]
    for i in (0, 1):
        xr.testing.assert_allclose(
            back[f"scale{i}"].to_dataset(), original[f"scale{i}"].to_dataset().drop_vars("c")
        )
        assert back.ome.level(i).scale == pytest.approx(original.ome.level(i).scale)
        assert back[f"scale{i}"].attrs["ome_dataset_path"] == f"scale{i}/cells"


@pytest.mark.parametrize("factors", [[2, {"y": 6, "x": 5}], [2, {"y": 4, "x": 4}]])
def test_msi_pyramid_of_our_image_has_the_right_geometry(hand_image, factors):
    """MSI's to_multiscale on our spatial-image; .ome reads its length-1 levels right.

    MSI coarsens with ``side="right"``: odd sizes lose pixels at the start, so its levels are
    aligned to the end of the axis; the length-1 scales come out right either way.
    """
    path, _, _ = hand_image
    image = xoz.to_spatial_image(xr.open_datatree(path, engine="ome-zarr"))
    pyramid = msi.to_multiscale(image, factors)
    assert pyramid["scale2"]["x"].size == 1 and pyramid["scale2"]["y"].size == 1
    s = SCALE
    fy, fx = 2 * factors[1]["y"], 2 * factors[1]["x"]
    # an int factor applies to every spatial dim (z: 5 -> 2), a dict only to its dims
    assert pyramid.ome.level(1).scale == {"z": s[1] * 2, "y": s[2] * 2, "x": s[3] * 2}
    assert pyramid.ome.level(2).scale == pytest.approx(
        {"z": s[1] * 2, "y": s[2] * fy, "x": s[3] * fx}
    )
    for i in range(3):
        first = {d: float(pyramid[f"scale{i}"][d][0]) for d in "zyx"}
        assert pyramid.ome.level(i).translation == first


def test_block_factor():
    assert block_factor(2.5, 6) == 6  # start-aligned
    assert block_factor(3.5, 6) == 4  # end-aligned, 2 pixels trimmed at the start
    assert block_factor(0.0, 1) == 1
    assert block_factor(0.75, 4) == 2.5  # no whole factor: start-aligned value


# ---- through the writer ------------------------------------------------------------------
def test_spatial_image_round_trip(tmp_path, writer):
    image = spatial()
    writer.to_ome_zarr(image, tmp_path / "si.ome.zarr")
    back = xoz.to_spatial_image(xr.open_datatree(tmp_path / "si.ome.zarr", engine="ome-zarr"))
    assert_same_spatial_image(back, image)


@pytest.mark.parametrize(
    "factors",
    [
        [2, 4],
        [{"z": 1, "y": 2, "x": 3}, {"y": 2, "x": 2}],
        [2, {"y": 6, "x": 8}],
    ],
    ids=["2-4", "per-dim", "one-pixel-trimmed"],
)
def test_msi_pyramid_round_trip(tmp_path, writer, factors):
    """The last case ends in one-pixel y and x that MSI trimmed at the start (8 -> 1 by 6)."""
    pyramid = msi.to_multiscale(spatial(), factors)
    path = tmp_path / "msi.ome.zarr"
    writer.to_ome_zarr(pyramid, path)
    back = xr.open_datatree(path, engine="ome-zarr")
    assert sorted(back.children) == sorted(pyramid.children)
    for i in range(len(factors) + 1):
        expected = pyramid[f"scale{i}"]["cells"]
        actual = back[f"scale{i}"]["cells"]
        assert actual.dims == expected.dims
        np.testing.assert_array_equal(actual.values, expected.values)
        assert_same_coordinates(actual, expected)
        assert back.ome.level(i).scale == pytest.approx(pyramid.ome.level(i).scale)
        assert back.ome.level(i).translation == pytest.approx(pyramid.ome.level(i).translation)
        assert back.ome.level(i).units == {d: UM for d in "zyx"}


def test_msi_pyramid_opens_in_ngff_zarr(tmp_path, writer):
    ngff_zarr = pytest.importorskip("ngff_zarr")
    pyramid = msi.to_multiscale(spatial(), [2, 4])
    path = tmp_path / "msi.ome.zarr"
    writer.to_ome_zarr(pyramid, path)
    multiscales = ngff_zarr.from_ngff_zarr(str(path))
    assert len(multiscales.images) == 3
    for i, image in enumerate(multiscales.images):
        view = pyramid.ome.level(i)
        assert {d: image.scale[d] for d in "zyx"} == pytest.approx(view.scale)
        assert {d: image.translation[d] for d in "zyx"} == pytest.approx(view.translation)
        np.testing.assert_array_equal(np.asarray(image.data), pyramid[f"scale{i}"]["cells"].values)


def test_msi_pyramid_opens_in_ome_zarr_py(tmp_path, writer):
    pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    pyramid = msi.to_multiscale(spatial(), [2, 4])
    path = tmp_path / "msi.ome.zarr"
    writer.to_ome_zarr(pyramid, path)
    node = next(iter(Reader(parse_url(str(path)))()))
    assert node.metadata["channel_names"] == CHANNELS
    for i, transforms in enumerate(node.metadata["coordinateTransformations"]):
        stored = {t["type"]: t[t["type"]] for t in transforms}
        expected = pyramid.ome.level(i).transforms
        assert stored["scale"] == pytest.approx(expected[0]["scale"])
        assert stored["translation"] == pytest.approx(expected[1]["translation"])
        np.testing.assert_array_equal(
            np.asarray(node.data[i]), pyramid[f"scale{i}"]["cells"].values
        )


def test_accessor_to_zarr_delegates(tmp_path, writer):
    image = spatial()
    image.ome.to_zarr(tmp_path / "a.ome.zarr", scale_factors=[2])
    dt = xr.open_datatree(tmp_path / "a.ome.zarr", engine="ome-zarr")
    assert dt.ome.scale == ZYX_SCALE
    assert dt.ome.level(1).scale == {d: 2 * s for d, s in ZYX_SCALE.items()}
    for version in ("0.5", "0.4"):
        dt.ome.to_zarr(tmp_path / f"b{version}.ome.zarr", version=version)
        again = xr.open_datatree(tmp_path / f"b{version}.ome.zarr", engine="ome-zarr")
        assert [v.transforms for v in again.ome.levels] == [v.transforms for v in dt.ome.levels]
    dt.ome.level(1).to_zarr(tmp_path / "c.ome.zarr")
    one = xr.open_datatree(tmp_path / "c.ome.zarr", engine="ome-zarr")
    assert one.ome.scale == dt.ome.level(1).scale
    assert one.ome.translation == pytest.approx(dt.ome.level(1).translation)


def test_crop_round_trip_keeps_physical_position(tmp_path, writer):
    image = spatial()
    writer.to_ome_zarr(image, tmp_path / "full.ome.zarr", scale_factors=[2])
    dt = xr.open_datatree(tmp_path / "full.ome.zarr", engine="ome-zarr")
    crop = dt["scale0"].to_dataset().sel(y=slice(0.0, 3.0), x=slice(2.5, 5.0))
    assert crop.ome.translation == {"z": 1.0, "y": 0.0, "x": 2.5}
    crop.ome.to_zarr(tmp_path / "crop.ome.zarr")
    back = xr.open_datatree(tmp_path / "crop.ome.zarr", engine="ome-zarr")
    assert back.ome.translation == crop.ome.translation
    assert_same_spatial_image(xoz.to_spatial_image(back), xoz.to_spatial_image(crop).compute())


# ---- the accessor says what the writer writes ------------------------------------------
def _written(path: Path) -> dict:
    return zarr.open_group(path, mode="r").attrs.asdict()["ome"]["multiscales"][0]


def _by_type(transforms: list[dict]) -> dict[str, list[float]]:
    return {t["type"]: t[t["type"]] for t in transforms}


@pytest.mark.parametrize(
    "make",
    [
        lambda: spatial(),
        lambda: spatial().isel(x=slice(5, 20, 3), y=[7]),
        lambda: spatial((3, 16, 24), ("t", "y", "x"), t_coords=[0.0, 2.5, 5.0]),
        lambda: (
            spatial((2, 16, 24), ("c", "y", "x")).rename(c="angle").assign_coords(angle=[0.0, 90.0])
        ),
    ],
    ids=["spatial-image", "strided-length-1", "time", "custom-axis"],
)
def test_transforms_and_axes_are_what_the_writer_writes(tmp_path, writer, make):
    image = make()
    writer.to_ome_zarr(image, tmp_path / "w.ome.zarr")
    written = _written(tmp_path / "w.ome.zarr")
    assert written["axes"] == image.ome.axes
    stored = _by_type(written["datasets"][0]["coordinateTransformations"])
    expected = _by_type(image.ome.transforms)
    assert stored["scale"] == pytest.approx(expected["scale"])
    assert stored.get("translation", [0.0] * image.ndim) == pytest.approx(expected["translation"])
