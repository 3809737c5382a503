"""Issue 14's "Read" and "Conformance, proven" items that no other test pinned down.

- every version spelling (``0.6``, ``0.6rc0``, ``0.6.dev3``, ``0.6.dev4``) in both spellings
  of a transformation's ``input``/``output`` opens with the same coordinates;
- labels, plates (wells, fields) and bioformats2raw collections at 0.6 open, and
  ``coordinate_system=`` reaches their images;
- displacement and coordinate fields stay lazy: opening an image that has them asks the
  store for exactly the keys it asks without them, and never a key of a field;
- ``xoz.transform_points`` on a URL;
- the one-line command docs/cli.md gives the spec's conformance runner works as written.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

import xarray_ome_zarr as xoz
from xarray_ome_zarr.errors import OmeZarrError, OmeZarrWarning

from ..conftest import logging_store
from ..fixtures.conformance import hierarchy_cases_06
from ..fixtures.v06 import (
    AXES,
    field_transform,
    image_document,
    system,
    write_field,
    write_image,
    write_scene,
)
from ..servers import http_server

ROOT = Path(__file__).resolve().parents[2]


def _dev_spelling(obj):
    """A 0.6 document with each ``input``/``output`` object written as the 0.6.dev string."""
    if isinstance(obj, list):
        return [_dev_spelling(v) for v in obj]
    if isinstance(obj, dict):
        return {
            k: (v.get("name") or v.get("path"))
            if k in ("input", "output") and isinstance(v, dict)
            else _dev_spelling(v)
            for k, v in obj.items()
        }
    return obj


def test_every_version_spelling_opens_the_same(tmp_path):
    expected_y = 10.25 + np.arange(4)
    for version in ("0.6", "0.6rc0", "0.6.dev3", "0.6.dev4"):
        for dev in (False, True):
            doc = image_document()
            doc["version"] = version
            path = tmp_path / f"{version}-{'dev' if dev else 'objects'}.zarr"
            write_image(path, doc)
            if dev:
                zarr.open_group(path, mode="r+").attrs["ome"] = _dev_spelling(doc)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ds = xr.open_dataset(path, engine="ome-zarr", level=1)
                world = xr.open_dataset(path, engine="ome-zarr", level=1, coordinate_system="world")
            np.testing.assert_allclose(ds["y"].values, expected_y)
            np.testing.assert_allclose(world["y"].values, 0.001 * expected_y)
            assert ds["z"].attrs["orientation"] == AXES[0]["orientation"]
            rules = {getattr(w.message, "rule", None) for w in caught}
            errors = {p.rule for p in xoz.validate(path) if p.severity == "error"}
            # the 0.6.dev spelling is the dev versions' own; a 0.6 document in it is read
            # with a warning, and validate calls it an error (the 0.6 text decides)
            old_spelling_in_06 = dev and not version.startswith("0.6.dev")
            assert rules == ({"v06-spelling"} if old_spelling_in_06 else set()), (version, dev)
            assert errors == ({"v06-spelling"} if old_spelling_in_06 else set()), (version, dev)
            assert all(isinstance(w.message, OmeZarrWarning) for w in caught)


def _group(path, attrs):
    group = zarr.open_group(path, mode="w", zarr_format=3)
    group.attrs["ome"] = {"version": "0.6", **attrs}


def test_labels_plates_and_collections_at_06(tmp_path):
    labelled = tmp_path / "labelled.zarr"
    write_image(labelled, image_document())
    _group(labelled / "labels", {"labels": ["nuclei"]})
    label = image_document(name="nuclei")
    label["image-label"] = {"colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}]}
    write_image(labelled / "labels" / "nuclei", label, dtype="uint8")

    plate = tmp_path / "plate.zarr"
    _group(
        plate,
        {
            "plate": {
                "name": "p",
                "columns": [{"name": "1"}],
                "rows": [{"name": "A"}],
                "wells": [{"path": "A/1", "rowIndex": 0, "columnIndex": 0}],
                "field_count": 1,
            }
        },
    )
    zarr.open_group(plate / "A", mode="w", zarr_format=3)
    _group(plate / "A" / "1", {"well": {"images": [{"path": "0"}]}})
    write_image(plate / "A" / "1" / "0", image_document())

    collection = tmp_path / "collection.zarr"
    _group(collection, {"bioformats2raw.layout": 3})
    write_image(collection / "0", image_document())
    _group(collection / "OME", {"series": ["0"]})

    for path, images in (
        (labelled, ["/", "/labels/nuclei"]),
        (plate, ["/A/1/0"]),
        (collection, ["/0"]),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("error", OmeZarrWarning)
            tree = xr.open_datatree(path, engine="ome-zarr")
            placed = xr.open_datatree(path, engine="ome-zarr", coordinate_system="world")
        for image in images:
            level = f"{image.rstrip('/')}/scale1"
            np.testing.assert_allclose(tree[level]["y"].values, 10.25 + np.arange(4))
            np.testing.assert_allclose(placed[level]["y"].values, 0.001 * (10.25 + np.arange(4)))
            assert placed[level].attrs["ome_coordinate_system"] == "world"
        assert [p for p in xoz.validate(path) if p.severity == "error"] == [], path
    assert tree.ome.group_attrs["ome"]["bioformats2raw.layout"] == 3
    plate_tree = xr.open_datatree(plate, engine="ome-zarr")
    assert plate_tree.ome.group_attrs["ome"]["plate"]["name"] == "p"
    assert plate_tree["A/1"].ome.group_attrs["ome"]["well"]["images"] == [{"path": "0"}]


def test_a_scene_naming_a_system_its_image_lacks(tmp_path):
    """A scene transform from ``{"path": "b", "name": "nowhere"}``: image b has no such
    system, so the transform joins nothing (ngff-zarr refuses the store). validate says so;
    reading warns (strict=True refuses), and coordinate_system= names the image."""
    path = tmp_path / "scene.zarr"
    write_scene(path, {"a": (0.0, 0.0, 0.0), "b": (0.0, 100.0, 0.0)})
    root = zarr.open_group(path, mode="r+")
    ome = copy.deepcopy(root.attrs["ome"])
    ome["scene"]["coordinateTransformations"][1]["input"]["name"] = "nowhere"
    root.attrs["ome"] = ome
    key = "scene/coordinateTransformations/1/input"
    (problem,) = xoz.validate(path)
    assert (problem.severity, problem.node, problem.key, problem.rule) == (
        "error",
        "/",
        key,
        "v06-scene-reference",
    )
    assert "'nowhere'" in problem.message and "'b'" in problem.message
    with pytest.warns(OmeZarrWarning, match="nowhere") as caught:
        tree = xr.open_datatree(path, engine="ome-zarr")
    assert {w.message.rule for w in caught} == {"v06-scene-reference"}
    assert set(tree.children) == {"a", "b"}
    with pytest.raises(OmeZarrError, match="v06-scene-reference"):
        xr.open_datatree(path, engine="ome-zarr", strict=True)
    with pytest.warns(OmeZarrWarning), pytest.raises(OmeZarrError, match=r"'/b'"):
        xr.open_datatree(path, engine="ome-zarr", coordinate_system="scene")


def test_fields_stay_lazy_no_extra_requests_at_open(tmp_path):
    plain = tmp_path / "plain.zarr"
    fielded = tmp_path / "fielded.zarr"
    write_image(plain, image_document())
    doc = image_document(
        extra_systems=[system("warped"), system("mapped")],
        extra_transforms=[
            field_transform(),
            field_transform("coordinates", "fields/c", "mapped"),
        ],
    )
    write_image(fielded, doc)
    write_field(fielded / "fields" / "d", "displacement")
    write_field(fielded / "fields" / "c", "coordinate")

    def keys(path, opener):
        store, recorder = logging_store(zarr.storage.LocalStore(path, read_only=True))
        opener(store, engine="ome-zarr")
        return sorted(recorder.keys)  # the walk fetches concurrently: any order

    for opener in (xr.open_dataset, xr.open_datatree):
        plain_keys, field_keys = keys(plain, opener), keys(fielded, opener)
        assert field_keys == plain_keys, opener
        assert not any(k.startswith("fields") for k in field_keys)
    # the field is read when a point goes through it, and only then
    store, recorder = logging_store(zarr.storage.LocalStore(fielded, read_only=True))
    got = xoz.transform_points(store, [[1.0, 2.0, 3.0]], source="physical", target="warped")
    np.testing.assert_allclose(got, [[1.0, 9.0, 3.0]])
    assert any(k.startswith("fields/d/") for k in recorder.keys)
    assert not any(k.startswith("fields/c/") for k in recorder.keys)


def test_transform_points_on_a_url(tmp_path):
    write_image(tmp_path / "image.zarr", image_document())
    with http_server(tmp_path) as served:
        got = xoz.transform_points(
            f"{served.url}/image.zarr", [[1.0, 10.0, -3.0]], source="physical", target="world"
        )
    np.testing.assert_allclose(got, [[5.001, 0.01, -0.003]])


def _documented_runner_command() -> str:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = text.split("### Driving the specification's conformance runner", 1)[1]
    (command,) = re.findall(r"```text\n(xarray-ome-zarr [^\n]*\{path\}[^\n]*)\n```", section)
    return command


def test_the_documented_conformance_runner_command(tmp_path):
    command = _documented_runner_command()
    words = shlex.split(command)
    # this interpreter's own script (a pyenv shim on PATH costs a shell per call)
    scripts = str(Path(sys.executable).parent)
    executable = shutil.which(words[0], path=scripts) or shutil.which(words[0])
    assert executable, f"{words[0]} is not installed"
    words[0] = executable
    cases = {c[0]: c for c in hierarchy_cases_06()}
    for ident, valid in (
        ("0.6rc0-strict-valid-plate-strict_acquisitions", True),
        ("0.6rc0-spec-invalid-image-missing_scale", False),
    ):
        _, case_dir, _, strict = cases[ident]
        argv = [w.replace("{path}", str(case_dir)) for w in words] + (["--strict"] * strict)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        out = json.loads(done.stdout)
        assert out["valid"] is valid, (ident, out)
        assert isinstance(out["message"], str) and out["message"]
        assert done.returncode == (0 if valid else 1)
