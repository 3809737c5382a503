"""OME-Zarr 0.6 between us and the peers (issue 14, "Conformance, proven").

- ngff-zarr 0.50 writes 0.6 (an image with multiscale-level transforms to five other
  coordinate systems, RFC-4 orientation, and a scene of two images) and reads it back with
  ``validate=True``; we read the same coordinates, pixels and graph, and our
  ``coordinate_system=``, ``transform_points`` and ``.ome.affine`` agree with ngff-zarr's own
  transform math (its public RFC-5 -> ITK bridge, which composes every linear transform into
  one matrix);
- the other way: what we write at 0.6, ngff-zarr reads and validates with the same geometry;
- ome-zarr-models 1.7, ome-zarr-py 0.18 and yaozarrs 0.3 have no RFC-5 model: what each does
  with a 0.6 store is pinned here, so a peer that gains 0.6 shows up as a failing test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr

import xarray_ome_zarr as xoz
from xarray_ome_zarr.errors import OmeZarrError

from ..conftest import logging_store
from ..servers import http_server

nz = pytest.importorskip("ngff_zarr")
m6 = pytest.importorskip("ngff_zarr.v06.zarr_metadata")

SCALE = {"z": 2.0, "y": 0.5, "x": 0.25}
TRANSLATION = {"z": 1.0, "y": 10.0, "x": -3.0}
DIMS = ("z", "y", "x")
ORIENTATION = {"type": "anatomical", "value": "superior-to-inferior"}
ROTATION = [[1.0, 0.0, 0.0], [0.0, 0.6, -0.8], [0.0, 0.8, 0.6]]


def _ref(name=None, path=None):
    return m6.CoordinateSystemIdentifier(name=name, path=path)


def _system(name, dims=DIMS, unit="micrometer"):
    return m6.CoordinateSystem(
        name=name, axes=[m6.Axis(name=d, type="space", unit=unit) for d in dims]
    )


def _ngff_multiscales(name: str, offset: int = 0):
    """A 2-level z/y/x image built the way an ngff-zarr user builds one (0.6 metadata)."""
    data = (np.arange(4 * 8 * 6, dtype="uint16").reshape(4, 8, 6) + offset).astype("uint16")
    image = nz.to_ngff_image(
        data,
        dims=list(DIMS),
        scale=SCALE,
        translation=TRANSLATION,
        name=name,
        axes_units=dict.fromkeys(DIMS, "micrometer"),
    )
    image.axes_orientations = {
        "z": nz.AnatomicalOrientation(value=nz.AnatomicalOrientationValues.superior_to_inferior)
    }
    return nz.to_multiscales(
        image, scale_factors=[{"z": 1, "y": 2, "x": 2}], method=nz.Methods.ITKWASM_BIN_SHRINK
    )


#: The image's systems other than ``intrinsic`` (the datasets' output), each with the
#: multiscale-level transform ngff-zarr writes to reach it.
def _image_graph():
    seq = m6.TransformSequence(
        input=_ref("intrinsic"),
        output=_ref("world"),
        transformations=[
            m6.Scale(scale=[0.001, 0.001, 0.001]),
            m6.Translation(translation=[5.0, 0.0, 0.0]),
        ],
    )
    swap = m6.MapAxis(mapAxis=[0, 2, 1], input=_ref("intrinsic"), output=_ref("swapped"))
    # stage -> intrinsic: reaching "stage" from the coordinates takes the inverse
    stage = m6.Translation(
        translation=[0.5, -10.0, 3.0], input=_ref("stage"), output=_ref("intrinsic")
    )
    by_dim = m6.ByDimension(
        input=_ref("intrinsic"),
        output=_ref("aniso"),
        transformations=[
            m6.ByDimensionItem(transformation=m6.Scale(scale=[3.0]), inputAxes=[0], outputAxes=[0]),
            m6.ByDimensionItem(
                transformation=m6.Translation(translation=[1.0, 2.0]),
                inputAxes=[1, 2],
                outputAxes=[1, 2],
            ),
        ],
    )
    tilted = m6.Affine(
        affine=[[*row, t] for row, t in zip(ROTATION, [0.0, 1.0, -1.0], strict=True)],
        input=_ref("intrinsic"),
        output=_ref("tilted"),
    )
    systems = [
        _system("world", unit="millimeter"),
        _system("swapped"),  # ngff-zarr writes axes in z, y, x order only
        _system("stage"),
        _system("aniso"),
        _system("tilted"),
    ]
    return systems, [seq, swap, stage, by_dim, tilted]


@pytest.fixture(scope="module")
def ngff(tmp_path_factory):
    """ngff-zarr's 0.6 image and scene, and what ngff-zarr reads back from them (validated)."""
    root = tmp_path_factory.mktemp("ngff-zarr-06")
    image = _ngff_multiscales("img")
    systems, transforms = _image_graph()
    image.metadata.coordinateSystems.extend(systems)
    image.metadata.coordinateTransformations = transforms
    nz.to_ngff_zarr(str(root / "image.ome.zarr"), image, version="0.6")

    scene = nz.NgffScene(
        images={"a": _ngff_multiscales("a"), "b": _ngff_multiscales("b", offset=7)},
        coordinateSystems=[_system("scene"), _system("aligned")],
        coordinateTransformations=[
            m6.Translation(
                translation=[0.0, 0.0, 0.0], input=_ref("intrinsic", "a"), output=_ref("scene")
            ),
            m6.Translation(
                translation=[0.0, 100.0, -5.0], input=_ref("intrinsic", "b"), output=_ref("scene")
            ),
            m6.Rotation(rotation=ROTATION, input=_ref("scene"), output=_ref("aligned")),
        ],
    )
    nz.to_ome_zarr(str(root / "scene.ome.zarr"), scene)
    # the same image at 0.5 and at 0.6 (one coordinate system: both versions hold it)
    for version in ("0.5", "0.6"):
        nz.to_ngff_zarr(
            str(root / f"same-{version}.ome.zarr"), _ngff_multiscales("img"), version=version
        )
    return {
        "root": root,
        "image": root / "image.ome.zarr",
        "scene": root / "scene.ome.zarr",
        "read": nz.from_ngff_zarr(str(root / "image.ome.zarr"), validate=True),
        "read_scene": nz.from_ome_zarr(str(root / "scene.ome.zarr"), kind="scene", validate=True),
    }


def _matrix(transform, dims=DIMS) -> np.ndarray:
    """ngff-zarr's own homogeneous matrix of a linear RFC-5 transform, in ``dims`` order.

    Through its public ITK bridge: one affine, parameters in ITK's x, y, z order (matrix row
    by row, then the translation) about the centre in ``fixedParameters``.
    """
    (itk,) = nz.ngff_transform_to_itk_transform(transform, list(dims))
    n = len(dims)
    linear = np.asarray(itk.parameters[: n * n]).reshape(n, n)[::-1, ::-1]
    offset = np.asarray(itk.parameters[n * n :])[::-1]
    centre = np.asarray(itk.fixedParameters)[::-1]
    out = np.eye(n + 1)
    out[:n, :n] = linear
    out[:n, n] = offset + centre - linear @ centre
    return out


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:-1, :-1].T + matrix[:-1, -1]


def _centres(ds: xr.Dataset, dims=DIMS) -> np.ndarray:
    grids = np.meshgrid(*(ds[d].values for d in dims), indexing="ij")
    return np.stack(grids, -1).reshape(-1, len(dims))


def _rows(points: np.ndarray) -> np.ndarray:
    """``points`` in a fixed order (by their rounded values), to compare two sets."""
    return points[np.lexsort(np.round(points, 9).T[::-1])]


def _document(path) -> dict:
    return json.loads((path / "zarr.json").read_text())["attributes"]["ome"]


# ---- direction 1: ngff-zarr writes 0.6, we read -----------------------------------------
def test_we_read_ngff_zarr_06_image_exactly(ngff):
    path, theirs = ngff["image"], ngff["read"]
    doc = _document(path)
    assert doc["version"] == "0.6"
    tree = xr.open_datatree(path, engine="ome-zarr")
    assert list(tree.children) == ["scale0", "scale1"]
    for level, image in zip(tree.children.values(), theirs.images, strict=True):
        ds = level.to_dataset()
        assert ds["img"].dims == tuple(image.dims)
        for dim in DIMS:
            n = ds.sizes[dim]
            np.testing.assert_array_equal(
                ds[dim].values, image.translation[dim] + image.scale[dim] * np.arange(n)
            )
            assert ds[dim].attrs["units"] == "micrometer"
        np.testing.assert_array_equal(ds["img"].values, np.asarray(image.data))
        # RFC-4 orientation kept verbatim in the coordinate's attrs and in the axes
        assert ds["z"].attrs["orientation"] == ORIENTATION
    ms = doc["multiscales"][0]
    ds = xr.open_dataset(path, engine="ome-zarr", level=-1)
    assert ds.ome.coordinate_systems == {cs["name"]: cs["axes"] for cs in ms["coordinateSystems"]}
    assert ds.ome.coordinate_systems["intrinsic"][0]["orientation"] == ORIENTATION
    assert ds.ome.coordinate_transformations == ms["coordinateTransformations"]
    assert xoz.validate(path, strict=True) == []


@pytest.mark.parametrize("system", ["world", "swapped", "stage", "aniso"])
def test_coordinate_system_agrees_with_ngff_zarr_math(ngff, system):
    path = ngff["image"]
    transforms = {
        (t.input.name, t.output.name): t for t in ngff["read"].metadata.coordinateTransformations
    }
    own = xr.open_dataset(path, engine="ome-zarr", level=1)
    there = xr.open_dataset(path, engine="ome-zarr", level=1, coordinate_system=system)
    assert there.attrs["ome_coordinate_system"] == system
    axes = [a.name for a in next(s for s in _image_graph()[0] if s.name == system).axes]
    assert there["img"].dims == tuple(axes)
    if ("intrinsic", system) in transforms:
        matrix = _matrix(transforms["intrinsic", system])
    else:
        matrix = np.linalg.inv(_matrix(transforms[system, "intrinsic"]))
    expected = _apply(matrix, _centres(own))
    # the same set of pixel centres (a mapAxis reorders the array's axes)
    np.testing.assert_allclose(_rows(_centres(there, axes)), _rows(expected), atol=1e-12)
    np.testing.assert_allclose(
        xoz.transform_points(path, _centres(own), source="intrinsic", target=system), expected
    )
    # and each pixel keeps its value: the pixel at a mapped centre is the pixel mapped
    first = {d: there[d].values[0] for d in axes}
    last = {d: there[d].values[-1] for d in axes}
    for corner in (first, last):
        mapped = xoz.transform_points(
            path, [[corner[d] for d in axes]], source=system, target="intrinsic"
        )[0]
        assert (
            there["img"].sel(corner).item()
            == own["img"].sel(dict(zip(DIMS, mapped, strict=True))).item()
        )
    np.testing.assert_allclose(own.ome.affine(system), matrix, atol=1e-12)


def test_not_axis_aligned_agrees_with_ngff_zarr_math(ngff):
    path = ngff["image"]
    (tilted,) = [t for t in ngff["read"].metadata.coordinateTransformations if t.type == "affine"]
    # ngff-zarr's reader loaded the stored matrix into ``affine``
    with pytest.raises(OmeZarrError, match="transform_points"):
        xr.open_dataset(path, engine="ome-zarr", coordinate_system="tilted")
    own = xr.open_dataset(path, engine="ome-zarr")
    points = _centres(own)
    np.testing.assert_allclose(
        xoz.transform_points(path, points, source="intrinsic", target="tilted"),
        _apply(_matrix(tilted), points),
        atol=1e-12,
    )
    # ngff-zarr stores every affine's matrix in an array (coordinateTransformations/...):
    # an object opened from a path reads it from there when a point goes through it
    assert tilted.path and (path / tilted.path / "zarr.json").is_file()
    expected = _apply(_matrix(tilted), points)
    np.testing.assert_allclose(
        xoz.transform_points(own, points, source="intrinsic", target="tilted"), expected
    )
    tree = xr.open_datatree(path, engine="ome-zarr")
    np.testing.assert_allclose(
        xoz.transform_points(tree["scale0"], points, source="intrinsic", target="tilted"),
        expected,
    )
    # without the store it came from (a copy made in memory), it says where to map instead
    detached = own.copy()
    detached.encoding = {}
    with pytest.raises(OmeZarrError, match="on the store"):
        xoz.transform_points(detached, points, source="intrinsic", target="tilted")
    with pytest.raises(OmeZarrError, match="stored parameters"):
        detached.ome.affine("tilted")
    # the matrix is read when asked for, not at open
    np.testing.assert_allclose(own.ome.affine("tilted"), _matrix(tilted), atol=1e-12)
    np.testing.assert_allclose(
        tree.ome.affine("intrinsic", source="tilted"), np.linalg.inv(_matrix(tilted)), atol=1e-12
    )


def test_we_read_ngff_zarr_06_scene(ngff):
    path, theirs = ngff["scene"], ngff["read_scene"]
    tree = xr.open_datatree(path, engine="ome-zarr")
    assert set(tree.children) == set(theirs.images) == {"a", "b"}
    assert tree.ome.group_attrs["ome"]["scene"] == _document(path)["scene"]
    for name, multiscales in theirs.images.items():
        for level, image in zip(tree[name].children.values(), multiscales.images, strict=True):
            np.testing.assert_array_equal(level[name].values, np.asarray(image.data))
            np.testing.assert_array_equal(
                level["y"].values,
                image.translation["y"] + image.scale["y"] * np.arange(level.sizes["y"]),
            )
    # placed in the scene's space: ngff-zarr's translation of each image
    placed = xr.open_datatree(path, engine="ome-zarr", coordinate_system="scene")
    to_scene = {
        t.input.path: t for t in theirs.coordinateTransformations if t.output.name == "scene"
    }
    for name in ("a", "b"):
        for level in ("scale0", "scale1"):
            np.testing.assert_allclose(
                _centres(placed[f"{name}/{level}"].to_dataset()),
                _apply(_matrix(to_scene[name]), _centres(tree[f"{name}/{level}"].to_dataset())),
            )
    # "aligned" is a rotation of the scene: neither image has coordinates there
    with pytest.raises(OmeZarrError, match=r"transform_points") as err:
        xr.open_datatree(path, engine="ome-zarr", coordinate_system="aligned")
    assert "(of 'a')" in str(err.value)


def test_transform_points_across_the_scene_agrees_with_ngff_zarr(ngff):
    path, theirs = ngff["scene"], ngff["read_scene"]
    by_ends = {
        (t.input.path, t.input.name, t.output.name): t for t in theirs.coordinateTransformations
    }
    a = _matrix(by_ends["a", "intrinsic", "scene"])
    b = _matrix(by_ends["b", "intrinsic", "scene"])
    rotation = _matrix(by_ends[None, "scene", "aligned"])
    points = np.array([[1.0, 110.0, 3.0], [7.0, 10.0, -2.5], [0.0, 0.0, 0.0]])
    b_sys = {"path": "b", "name": "intrinsic"}
    a_sys = {"path": "a", "name": "intrinsic"}
    np.testing.assert_allclose(
        xoz.transform_points(path, points, source=b_sys, target=a_sys),
        _apply(np.linalg.inv(a) @ b, points),
    )
    np.testing.assert_allclose(
        xoz.transform_points(path, points, source=b_sys, target="aligned"),
        _apply(rotation @ b, points),
    )
    tree = xr.open_datatree(path, engine="ome-zarr")
    np.testing.assert_allclose(
        xoz.transform_points(tree, points, source="aligned", target=a_sys),
        _apply(np.linalg.inv(rotation @ a), points),
    )


def test_opening_06_costs_no_more_requests_than_05(ngff):
    """The same image written by ngff-zarr at 0.5 and at 0.6: opening the 0.6 one asks no
    more of the store (zarr's LoggingStore) and of an HTTP server (requests and round trips)."""
    root = ngff["root"]
    assert _document(root / "same-0.6.ome.zarr")["version"] == "0.6"
    local = {}
    for version in ("0.5", "0.6"):
        for opener in (xr.open_dataset, xr.open_datatree):
            path = root / f"same-{version}.ome.zarr"
            store, recorder = logging_store(zarr.storage.LocalStore(path, read_only=True))
            opener(store, engine="ome-zarr")
            local[version, opener.__name__] = len(recorder.keys)
    for opener in ("open_dataset", "open_datatree"):
        assert local["0.6", opener] <= local["0.5", opener], local
    remote = {}
    with http_server(root) as served:
        for version in ("0.5", "0.6"):
            for opener in (xr.open_dataset, xr.open_datatree):
                served.clear()
                opener(f"{served.url}/same-{version}.ome.zarr", engine="ome-zarr")
                remote[version, opener.__name__] = len(served.requests)
    for opener in ("open_dataset", "open_datatree"):
        assert remote["0.6", opener] <= remote["0.5", opener], remote


# ---- direction 2: we write 0.6, ngff-zarr reads (validate=True) -------------------------
def _same_geometry(theirs, tree: xr.DataTree, name: str) -> None:
    """ngff-zarr's reading of what we wrote has our levels' pixels, scale and translation."""
    levels = list(tree.children.values())
    assert len(theirs.images) == len(levels)
    for image, level in zip(theirs.images, levels, strict=True):
        np.testing.assert_array_equal(np.asarray(image.data), level[name].values)
        for dim in DIMS:
            assert image.scale[dim] == level.ome.scale[dim]
            assert image.translation[dim] == level.ome.translation[dim]


def _transform_dicts(transforms) -> list[dict]:
    return [t.to_dict() for t in transforms or ()]


def test_ngff_zarr_reads_our_06_image_with_every_system(ngff, tmp_path):
    tree = xr.open_datatree(ngff["image"], engine="ome-zarr")
    xoz.to_ome_zarr(tree, tmp_path / "ours.ome.zarr", version="0.6")
    theirs = nz.from_ngff_zarr(str(tmp_path / "ours.ome.zarr"), validate=True)
    _same_geometry(theirs, tree, "img")
    original = ngff["read"].metadata
    assert theirs.metadata.coordinateSystems == original.coordinateSystems
    assert _transform_dicts(theirs.metadata.coordinateTransformations) == _transform_dicts(
        original.coordinateTransformations
    )


def test_ngff_zarr_reads_our_06_scene(ngff, tmp_path):
    tree = xr.open_datatree(ngff["scene"], engine="ome-zarr")
    xoz.to_ome_zarr(tree, tmp_path / "ours.ome.zarr", version="0.6")
    theirs = nz.from_ome_zarr(str(tmp_path / "ours.ome.zarr"), kind="scene", validate=True)
    original = ngff["read_scene"]
    assert _transform_dicts(theirs.coordinateTransformations) == _transform_dicts(
        original.coordinateTransformations
    )
    assert theirs.coordinateSystems == original.coordinateSystems
    for name in ("a", "b"):
        _same_geometry(theirs.images[name], tree[name], name)


def test_ngff_zarr_reads_a_new_06_image_of_ours(tmp_path):
    data = np.arange(4 * 8 * 6, dtype="uint16").reshape(4, 8, 6)
    image = xoz.image(
        data, dims=DIMS, scale=SCALE, translation=TRANSLATION, units="micrometer", name="img"
    )
    tree = xoz.to_multiscale(image, scale_factors=[{"z": 1, "y": 2, "x": 2}])
    xoz.to_ome_zarr(tree, tmp_path / "new.ome.zarr", version="0.6")
    assert _document(tmp_path / "new.ome.zarr")["version"] == "0.6"
    theirs = nz.from_ngff_zarr(str(tmp_path / "new.ome.zarr"), validate=True)
    _same_geometry(theirs, xr.open_datatree(tmp_path / "new.ome.zarr", engine="ome-zarr"), "img")
    np.testing.assert_array_equal(np.asarray(theirs.images[0].data), data)
    assert theirs.images[1].translation == {"z": 1.0, "y": 10.25, "x": -2.875}


# ---- the other peers ------------------------------------------------------------------
def test_the_other_peers_have_no_06_model(ngff):
    """What ome-zarr-models 1.7, ome-zarr-py 0.18 and yaozarrs 0.3 do with a 0.6 image.

    None reads RFC-5 coordinate systems; if one starts to, this test fails: then cross-check
    its geometry here as for ngff-zarr.
    """
    path = ngff["image"]
    models = pytest.importorskip("ome_zarr_models")
    # ome-zarr-models: open_ome_zarr knows 0.4 and 0.5 only; its private _v06 package models
    # 0.6 with 0.5's flat axes (no coordinateSystems), so it refuses RFC-5 metadata too
    with pytest.raises(Exception, match="Could not successfully validate"):
        models.open_ome_zarr(zarr.open_group(path, mode="r"))
    from ome_zarr_models._v06 import Image

    with pytest.raises(Exception, match="axes"):
        Image.from_zarr(zarr.open_group(path, mode="r"))
    # ome-zarr-py: takes the store for 0.5 and reads the arrays the datasets name; the
    # coordinate systems and transformations are not in what it returns
    ome_zarr_io = pytest.importorskip("ome_zarr.io")
    from ome_zarr.reader import Reader

    location = ome_zarr_io.parse_url(str(path))
    assert location.version == "0.5"
    (node,) = list(Reader(location)())
    ours = xr.open_datatree(path, engine="ome-zarr")
    for level, data in zip(ours.children.values(), node.data, strict=True):
        np.testing.assert_array_equal(np.asarray(data), level["img"].values)
    assert "coordinateSystems" not in node.metadata
    # yaozarrs: structural validation of 0.6 is not implemented
    yaozarrs = pytest.importorskip("yaozarrs")
    with pytest.raises(NotImplementedError, match="0.6"):
        yaozarrs.validate_zarr_store(str(path))
