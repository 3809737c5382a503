"""Strict writing, truthful validation (issue 12, "validate tells the whole truth").

Everything the writer produces passes ``validate(strict=True)`` and the peers' validators
(ngff-zarr, ome-zarr-py, ome-zarr-models, yaozarrs): what the strict schemas want and the
source lacks is filled in, every value the source has is kept. ``validate`` checks the
hierarchy rules of the spec. A negative scale is written as it is, and peers read it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr

import xarray_ome_zarr as xoz

from ..conftest import write_hand_image
from ..fixtures import stores
from ..fixtures.labels import add_labels, put_ome

VERSIONS = ["0.4", "0.5"]


def _image(shape: tuple[int, ...] = (4, 8, 6)) -> xr.DataArray:
    dims = ("z", "y", "x")[-len(shape) :]
    coords = {d: np.arange(n) * 0.5 for d, n in zip(dims, shape, strict=True)}
    data = np.arange(np.prod(shape), dtype="uint16").reshape(shape)
    return xr.DataArray(data, dims=dims, coords=coords, name="cells")


def _open(path: Path) -> xr.DataTree:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xoz.OmeZarrWarning)
        return xr.open_datatree(path, engine="ome-zarr")


def _multiscale(path: Path, node: str = "") -> dict[str, Any]:
    group = zarr.open_group(path / node if node else path, mode="r")
    attrs = group.attrs.asdict()
    return attrs.get("ome", attrs)["multiscales"][0]


def _peers_accept(path: Path) -> None:
    """ngff-zarr, ome-zarr-models, yaozarrs and ome-zarr-py read and validate ``path``."""
    yaozarrs = pytest.importorskip("yaozarrs")
    ome_zarr_models = pytest.importorskip("ome_zarr_models")
    ngff_zarr = pytest.importorskip("ngff_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    yaozarrs.validate_zarr_store(str(path))
    ome_zarr_models.open_ome_zarr(zarr.open_group(path, mode="r"))
    if "multiscales" in json.dumps(zarr.open_group(path, mode="r").attrs.asdict()):
        ngff_zarr.from_ngff_zarr(str(path), validate=True)
    assert list(Reader(parse_url(str(path)))())


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("scale_factors", [None, [2]])
def test_a_new_image_passes_strict_validation(version, scale_factors, tmp_path):
    path = tmp_path / "new.zarr"
    xoz.to_ome_zarr(_image(), path, version=version, scale_factors=scale_factors)
    assert xoz.validate(path, strict=True) == []
    multiscale = _multiscale(path)
    assert multiscale["name"] == "cells"
    assert isinstance(multiscale["type"], str) and isinstance(multiscale["metadata"], dict)
    _peers_accept(path)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_rewrite_of_ome_zarr_py_stores_passes_strict_validation(version, tmp_path):
    """ome-zarr-py 0.18 writes no multiscale ``type``/``metadata``: the rewrite adds them."""
    image = stores.ome_zarr_py_image(tmp_path / "image", version)
    plate = stores.ome_zarr_py_plate(tmp_path / "plate", version)
    for spec in (image, plate):
        out = tmp_path / f"{spec.path.name}-copy.zarr"
        xoz.to_ome_zarr(_open(spec.path), out, version=version)
        assert xoz.validate(out, strict=True) == []
        _peers_accept(out)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_source_values_are_kept(version, tmp_path):
    path = tmp_path / "source.zarr"
    write_hand_image(path, version)
    group = zarr.open_group(path, mode="r+")
    attrs = group.attrs.asdict()
    multiscale = attrs.get("ome", attrs)["multiscales"][0]
    multiscale["type"] = "gaussian"
    multiscale["metadata"] = {"method": "skimage.transform.pyramid_gaussian", "sigma": 1}
    group.attrs.put(attrs)
    out = tmp_path / "copy.zarr"
    xoz.to_ome_zarr(_open(path), out, version=version)
    written = _multiscale(out)
    assert (written["name"], written["type"]) == ("cells", "gaussian")
    assert written["metadata"] == {"method": "skimage.transform.pyramid_gaussian", "sigma": 1}


def _plate_tree(version: str, tmp_path: Path) -> Path:
    """A plate whose acquisition has neither a name nor a maximumfieldcount (hand-made: both
    are optional in the plain schema, required by the strict one)."""
    path = tmp_path / "plate.zarr"
    root = zarr.open_group(path, mode="w", zarr_format=3 if version == "0.5" else 2)
    plate: dict[str, Any] = {
        "rows": [{"name": "A"}],
        "columns": [{"name": "1"}, {"name": "2"}],
        "wells": [
            {"path": "A/1", "rowIndex": 0, "columnIndex": 0},
            {"path": "A/2", "rowIndex": 0, "columnIndex": 1},
        ],
        "acquisitions": [{"id": 3}],
    }
    if version == "0.4":
        plate["version"] = "0.4"
    put_ome(root, version, {"plate": plate})
    for well, fields in (("A/1", ["0", "1", "2"]), ("A/2", ["0"])):
        block: dict[str, Any] = {"images": [{"path": f, "acquisition": 3} for f in fields]}
        if version == "0.4":
            block["version"] = "0.4"
        put_ome(root.require_group(well), version, {"well": block})
        for field in fields:
            write_hand_image(path / well / field, version)
    return path


@pytest.mark.parametrize("version", VERSIONS)
def test_a_plate_rewrite_fills_what_the_strict_schema_wants(version, tmp_path):
    source = _plate_tree(version, tmp_path)
    assert any("maximumfieldcount" in p.message for p in xoz.validate(source, strict=True))
    out = tmp_path / "copy.zarr"
    xoz.to_ome_zarr(_open(source), out, version=version)
    assert xoz.validate(out, strict=True) == []
    attrs = zarr.open_group(out, mode="r").attrs.asdict()
    plate = attrs.get("ome", attrs)["plate"]
    assert plate["acquisitions"] == [{"id": 3, "name": "3", "maximumfieldcount": 3}]
    assert plate["name"] == "plate"
    _peers_accept(out)


# ---- the hierarchy rules validate checks ------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_a_label_image_needs_as_many_levels_as_its_image(version, tmp_path):
    path = tmp_path / "image.zarr"
    write_hand_image(path, version)  # two levels
    add_labels(path, version, {"nuclei": np.zeros((5, 13, 11), "uint8")}, levels=1)
    problems = [p for p in xoz.validate(path) if p.severity == "error"]
    assert [(p.node, p.key, p.rule) for p in problems] == [
        ("/labels/nuclei", "multiscales/0/datasets", "label-levels")
    ]


def test_every_05_group_states_its_version(tmp_path):
    path = tmp_path / "image.zarr"
    write_hand_image(path, "0.5")
    add_labels(path, "0.5", {"nuclei": np.zeros((5, 13, 11), "uint8")})
    group = zarr.open_group(path / "labels", mode="r+")
    group.attrs.put({"ome": {"labels": ["nuclei"]}})
    problems = xoz.validate(path)
    assert [(p.node, p.key, p.rule) for p in problems] == [
        ("/labels", "version", "version-missing")
    ]


# ---- negative scale ------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_a_reversed_axis_is_written_with_a_negative_scale_that_peers_read(version, tmp_path):
    image = _image().isel(x=slice(None, None, -1))
    path = tmp_path / "reversed.zarr"
    xoz.to_ome_zarr(image, path, version=version)
    transforms = _multiscale(path)["datasets"][0]["coordinateTransformations"]
    assert transforms[0]["scale"][-1] == -0.5 and transforms[1]["translation"][-1] == 2.5
    assert xoz.validate(path, strict=True) == []
    _peers_accept(path)
    back = xr.open_dataset(path, engine="ome-zarr")
    np.testing.assert_array_equal(back["x"].values, image["x"].values)
    np.testing.assert_array_equal(back["cells"].values, image.values)
    ngff_zarr = pytest.importorskip("ngff_zarr")
    read = ngff_zarr.from_ngff_zarr(str(path))
    assert read.images[0].scale["x"] == -0.5 and read.images[0].translation["x"] == 2.5
