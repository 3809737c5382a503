"""Liberal reading, strict refusing, truthful validation (issue 12, "Read what peers read").

Each deviation below is in stores that peers (ome-zarr-py, ngff-zarr, vizarr, napari) open.
By default it is read, with an ``OmeZarrWarning`` naming the store, node, key and rule id;
``strict=True`` refuses it; ``validate`` lists it as an error with the same rule id; and
``docs/errors.md`` lists the rule id in its reading policy.
"""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr

import xarray_ome_zarr as xoz
from xarray_ome_zarr import OmeZarrError, OmeZarrWarning

from ..conftest import write_hand_image
from ..fixtures.labels import add_labels, put_ome

DOCS = Path(__file__).parents[2] / "docs" / "errors.md"


@dataclass(frozen=True)
class Deviation:
    """A store with one deviation, and where the warning must point."""

    path: Path
    rule: str
    node: str
    key: str
    check: Callable[[xr.DataTree], None] = lambda tree: None


def _edit(path: Path, node: str, edit: Callable[[dict], None]) -> None:
    group = zarr.open_group(path / node if node else path, mode="r+")
    attrs = group.attrs.asdict()
    edit(attrs.get("ome", attrs))
    group.attrs.put(attrs)


def _plain_image(path: Path, version: str, shapes: list[tuple[int, ...]], dims: str) -> None:
    """Arrays ``0``, ``1``... of ``shapes`` with unit-scale metadata, to be edited."""
    root = zarr.open_group(path, mode="w", zarr_format=3 if version == "0.5" else 2)
    datasets = []
    for i, shape in enumerate(shapes):
        kwargs = {"dimension_names": list(dims)} if version == "0.5" else {}
        array = root.create_array(str(i), shape=shape, dtype="uint16", **kwargs)
        array[...] = np.arange(np.prod(shape), dtype="uint16").reshape(shape)
        transforms = [{"type": "scale", "scale": [1.0] * len(dims)}]
        datasets.append({"path": str(i), "coordinateTransformations": transforms})
    axes = [{"name": d, "type": "channel" if d == "c" else "space"} for d in dims]
    multiscale: dict[str, Any] = {"name": "img", "axes": axes, "datasets": datasets}
    if version != "0.5":
        multiscale["version"] = version
    put_ome(root, version, {"multiscales": [multiscale]})


# ---- the deviations --------------------------------------------------------------------
def iohub_identity(tmp_path: Path) -> Deviation:
    """iohub 0.2 (``iohub.ngff.open_ome_zarr(..., layout="fov").create_image``) writes an
    identity transform both multiscale-wide and as a dataset's only transform (hand-made
    copy: iohub needs zarr 2)."""
    path = tmp_path / "iohub.zarr"
    _plain_image(path, "0.4", [(2, 6, 8)], "cyx")

    def edit(doc: dict) -> None:
        multiscale = doc["multiscales"][0]
        multiscale["coordinateTransformations"] = [{"type": "identity"}]
        multiscale["datasets"][0]["coordinateTransformations"] = [{"type": "identity"}]

    _edit(path, "", edit)

    def check(tree: xr.DataTree) -> None:
        np.testing.assert_array_equal(tree["scale0"]["x"].values, np.arange(8.0))

    return Deviation(
        path, "identity-transform", "/", "multiscales/0/coordinateTransformations", check
    )


def missing_transforms(tmp_path: Path) -> Deviation:
    """0.4 datasets without ``coordinateTransformations``: vizarr reads them (hand-made)."""
    path = tmp_path / "no-transforms.zarr"
    _plain_image(path, "0.4", [(13, 11), (7, 6), (4, 3)], "yx")

    def edit(doc: dict) -> None:
        for dataset in doc["multiscales"][0]["datasets"]:
            del dataset["coordinateTransformations"]

    _edit(path, "", edit)

    def check(tree: xr.DataTree) -> None:
        np.testing.assert_array_equal(tree["scale0"]["y"].values, np.arange(13.0))
        # level 1: factor 2 by the pixel-centre rule: centres at 0.5, 2.5, ...
        np.testing.assert_array_equal(tree["scale1"]["y"].values, 0.5 + 2 * np.arange(7.0))
        np.testing.assert_array_equal(tree["scale2"]["x"].values, 1.5 + 4 * np.arange(3.0))

    key = "multiscales/0/datasets/0/coordinateTransformations"
    return Deviation(path, "missing-transforms", "/", key, check)


def float_label_level(tmp_path: Path) -> Deviation:
    """idr0062 (IDR, converted by bioformats2raw/omero-cli-zarr) has a float64 label level 1
    (hand-made copy of the structure)."""
    path = tmp_path / "idr0062.zarr"
    write_hand_image(path, "0.4")
    add_labels(path, "0.4", {"nuclei": np.arange(5 * 13 * 11, dtype="uint16").reshape(5, 13, 11)})
    label = zarr.open_group(path / "labels" / "nuclei", mode="r+")
    level1 = label.create_array("1", shape=(5, 7, 6), dtype="float64", overwrite=True)
    level1[...] = 3.0

    def check(tree: xr.DataTree) -> None:
        assert tree["labels/nuclei/scale1"]["image"].dtype == np.float64
        assert tree["labels/nuclei/scale0"]["image"].dtype == np.uint16

    return Deviation(path, "label-dtype", "/labels/nuclei", "multiscales/0/datasets/1/path", check)


def bool_labels(tmp_path: Path) -> Deviation:
    path = tmp_path / "bool-labels.zarr"
    write_hand_image(path, "0.5")
    add_labels(path, "0.5", {"mask": np.ones((5, 13, 11), bool)})

    def check(tree: xr.DataTree) -> None:
        assert tree["labels/mask/scale0"]["image"].dtype == bool

    return Deviation(path, "label-dtype", "/labels/mask", "multiscales/0/datasets/0/path", check)


def unversioned_labels_group(tmp_path: Path) -> Deviation:
    """ome-zarr-py 0.18 writes a 0.5 ``labels`` group without ``version`` (real tool)."""
    ome_zarr_writer = pytest.importorskip("ome_zarr.writer")
    from ome_zarr.format import FormatV05

    path = tmp_path / "ome-zarr-py.zarr"
    root = zarr.open_group(path, mode="w", zarr_format=3)
    ome_zarr_writer.write_image(np.zeros((16, 16), "uint16"), root, axes="yx", fmt=FormatV05())
    ome_zarr_writer.write_labels(
        np.ones((16, 16), "uint8"), root, name="cells", axes="yx", fmt=FormatV05()
    )
    assert "version" not in zarr.open_group(path / "labels").attrs["ome"]

    def check(tree: xr.DataTree) -> None:
        assert "scale0" in tree["labels/cells"].children

    return Deviation(path, "version-missing", "/labels", "version", check)


def missing_dimension_names(tmp_path: Path) -> Deviation:
    """A 0.5 array without ``dimension_names`` (zarr-python's default)."""
    path = tmp_path / "no-dimension-names.zarr"
    _plain_image(path, "0.5", [(6, 8)], "yx")
    group = zarr.open_group(path, mode="r+")
    group.create_array("0", shape=(6, 8), dtype="uint16", overwrite=True)
    return Deviation(path, "dimension-names-missing", "/", "multiscales/0/datasets/0/path")


DEVIATIONS = {
    "iohub identity": iohub_identity,
    "0.4 without transforms": missing_transforms,
    "float label level": float_label_level,
    "bool labels": bool_labels,
    "0.5 labels group without version": unversioned_labels_group,
    "0.5 array without dimension_names": missing_dimension_names,
}
PARAMS = [pytest.param(make, id=name) for name, make in DEVIATIONS.items()]


def _ome_warnings(caught: list[warnings.WarningMessage]) -> list[OmeZarrWarning]:
    return [w.message for w in caught if isinstance(w.message, OmeZarrWarning)]


@pytest.mark.parametrize("make", PARAMS)
def test_read_by_default_with_a_warning(make, tmp_path):
    deviation = make(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tree = xr.open_datatree(deviation.path, engine="ome-zarr")
    found = [w for w in _ome_warnings(caught) if w.rule == deviation.rule]
    assert found, [str(w.message) for w in caught]
    warning = found[0]
    assert (warning.store, warning.node, warning.key) == (
        str(deviation.path),
        deviation.node,
        deviation.key,
    )
    for part in (str(deviation.path), deviation.node, deviation.key, deviation.rule):
        assert part in str(warning)
    deviation.check(tree)


@pytest.mark.parametrize("make", PARAMS)
def test_strict_refuses(make, tmp_path):
    deviation = make(tmp_path)
    with pytest.raises(OmeZarrError) as caught:
        xr.open_datatree(deviation.path, engine="ome-zarr", strict=True)
    err = caught.value
    assert (err.rule, err.node, err.key) == (deviation.rule, deviation.node, deviation.key)
    assert "strict" in str(err)


@pytest.mark.parametrize("make", PARAMS)
def test_validate_reports_an_error_with_the_rule(make, tmp_path):
    deviation = make(tmp_path)
    errors = [p for p in xoz.validate(deviation.path) if p.severity == "error"]
    assert any(
        (p.node, p.key, p.rule) == (deviation.node, deviation.key, deviation.rule) for p in errors
    ), errors


def test_every_rule_is_in_the_docs():
    table = DOCS.read_text(encoding="utf-8")
    rules = {
        "broken-node",
        "identity-transform",
        "missing-transforms",
        "label-dtype",
        "version-missing",
        "dimension-names-missing",
        "label-levels",
        "uneven-levels",
    }
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", table, flags=re.MULTILINE))
    assert rules <= documented, rules - documented


def test_open_dataset_of_a_level_without_transforms(tmp_path):
    deviation = missing_transforms(tmp_path)
    with pytest.warns(OmeZarrWarning, match="missing-transforms"):
        ds = xr.open_dataset(deviation.path, engine="ome-zarr", level=2)
    np.testing.assert_array_equal(ds["x"].values, 1.5 + 4 * np.arange(3.0))
    with pytest.raises(OmeZarrError, match="strict"):
        xr.open_dataset(deviation.path, engine="ome-zarr", level=1, strict=True)


def test_bool_labels_are_not_written_back(tmp_path):
    deviation = bool_labels(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OmeZarrWarning)
        tree = xr.open_datatree(deviation.path, engine="ome-zarr")
    with pytest.raises(OmeZarrError, match="astype"):
        xoz.to_ome_zarr(tree, tmp_path / "copy.zarr")


def test_strict_needs_validate(tmp_path):
    path = tmp_path / "image.zarr"
    write_hand_image(path, "0.5")
    with pytest.raises(OmeZarrError, match="validate=False"):
        xr.open_datatree(path, engine="ome-zarr", strict=True, validate=False)
    with pytest.raises(OmeZarrError, match="validate=False"):
        xr.open_dataset(path, engine="ome-zarr", strict=True, validate=False)


def test_schema_refusal_mentions_validate_false(tmp_path):
    path = tmp_path / "image.zarr"
    write_hand_image(path, "0.5")
    _edit(path, "", lambda doc: doc["multiscales"][0].update(datasets="not a list"))
    with pytest.raises(OmeZarrError, match="validate=False"):
        xr.open_datatree(path, engine="ome-zarr")


# ---- one broken node does not hide the rest ----------------------------------------------
def _labels_one_missing(tmp_path: Path) -> Path:
    path = tmp_path / "image.zarr"
    write_hand_image(path, "0.5")
    labels = {"nuclei": np.zeros((5, 13, 11), "uint8"), "cells": np.ones((5, 13, 11), "uint8")}
    add_labels(path, "0.5", labels)
    shutil.rmtree(path / "labels" / "nuclei" / "0")
    return path


def test_a_broken_label_image_does_not_hide_the_others(tmp_path):
    path = _labels_one_missing(tmp_path)
    with pytest.warns(OmeZarrWarning, match="broken-node") as caught:
        tree = xr.open_datatree(path, engine="ome-zarr")
    assert set(tree["labels"].children) == {"cells"}
    assert "scale1" in tree.children
    (warning,) = [w.message for w in caught if w.message.rule == "broken-node"]
    assert (warning.node, warning.key) == ("/labels", "labels/0")
    assert "/labels/nuclei" in str(warning) and "names no array" in str(warning)
    with pytest.raises(OmeZarrError, match="names no array"):
        xr.open_datatree(path, engine="ome-zarr", strict=True)


def test_a_missing_well_does_not_hide_the_plate(tmp_path):
    path = tmp_path / "plate.zarr"
    root = zarr.open_group(path, mode="w", zarr_format=3)
    wells = [
        {"path": "A/1", "rowIndex": 0, "columnIndex": 0},
        {"path": "B/2", "rowIndex": 1, "columnIndex": 1},
    ]
    plate = {
        "rows": [{"name": "A"}, {"name": "B"}],
        "columns": [{"name": "1"}, {"name": "2"}],
        "wells": wells,
    }
    put_ome(root, "0.5", {"plate": plate})
    well = root.require_group("A/1")
    put_ome(well, "0.5", {"well": {"images": [{"path": "0"}]}})
    _plain_image(path / "A" / "1" / "0", "0.5", [(6, 8)], "yx")
    with pytest.warns(OmeZarrWarning, match="broken-node"):
        tree = xr.open_datatree(path, engine="ome-zarr")
    assert "scale0" in tree["A/1/0"].children
    with pytest.raises(OmeZarrError, match="B/2"):
        xr.open_datatree(path, engine="ome-zarr", strict=True)


def test_info_shows_what_it_can(tmp_path, capsys):
    from xarray_ome_zarr.cli import main

    path = _labels_one_missing(tmp_path)
    assert main(["info", str(path)]) == 0
    captured = capsys.readouterr()
    assert "/labels/cells" in captured.out
    assert "broken-node" in captured.err
