"""Parsing OME-Zarr 0.6 documents into the model (``ngff/v06.py``, ``ngff/parse.py``)."""

from __future__ import annotations

import copy
import warnings

import pytest

from xarray_ome_zarr.errors import OmeZarrError, OmeZarrWarning
from xarray_ome_zarr.ngff.parse import parse_node
from xarray_ome_zarr.ngff.v06 import normalise_spelling, scene_image_paths

AXES = [
    {
        "name": "z",
        "type": "space",
        "unit": "micrometer",
        "orientation": {"value": "superior-to-inferior"},
    },
    {"name": "y", "type": "space", "unit": "micrometer"},
    {"name": "x", "type": "space", "unit": "micrometer"},
]


def _doc(version="0.6"):
    return {
        "ome": {
            "version": version,
            "multiscales": [
                {
                    "name": "img",
                    "type": "gaussian",
                    "metadata": {"method": "test"},
                    "coordinateSystems": [
                        {"name": "world", "axes": [dict(a, unit="millimeter") for a in AXES]},
                        {"name": "physical", "axes": AXES},
                    ],
                    "datasets": [
                        {
                            "path": "s0",
                            "coordinateTransformations": [
                                {
                                    "type": "scale",
                                    "scale": [2.0, 0.5, 0.5],
                                    "input": {"path": "s0"},
                                    "output": {"name": "physical"},
                                }
                            ],
                        },
                        {
                            "path": "s1",
                            "coordinateTransformations": [
                                {
                                    "type": "sequence",
                                    "input": {"path": "s1"},
                                    "output": {"name": "physical"},
                                    "transformations": [
                                        {"type": "translation", "translation": [0, 0.25, 0.25]},
                                        {"type": "scale", "scale": [2.0, 1.0, 1.0]},
                                    ],
                                }
                            ],
                        },
                    ],
                    "coordinateTransformations": [
                        {
                            "type": "scale",
                            "scale": [0.001, 0.001, 0.001],
                            "input": {"name": "physical"},
                            "output": {"name": "world"},
                        }
                    ],
                }
            ],
        }
    }


def test_axes_come_from_the_datasets_output_system_by_name():
    meta = parse_node(_doc(), "W")
    (ms,) = meta.multiscales
    assert ms.coordinate_system == "physical"  # not the first system of the list
    assert [cs.name for cs in ms.coordinate_systems] == ["world", "physical"]
    assert ms.axis_names == ("z", "y", "x")
    assert ms.axes[0].unit == "micrometer"
    assert ms.axes[0].extra == {"orientation": {"value": "superior-to-inferior"}}
    assert ms.transforms == ()
    s0, s1 = ms.levels
    assert s0.transforms[0].values == (2.0, 0.5, 0.5)
    assert [t.type for t in s1.transforms] == ["scale", "translation"]
    # translation first, then scale: (x + t) * s = x * s + t * s
    assert s1.transforms[1].values == (0.0, 0.25, 0.25)
    assert meta.document == _doc()["ome"]  # verbatim


@pytest.mark.parametrize("version", ["0.6", "0.6rc0", "0.6.dev3", "0.6.dev4"])
def test_every_06_version_string_reads(version):
    assert parse_node(_doc(version), "W").version == version


def _dev_spelled(version):
    doc = _doc(version)
    ms = doc["ome"]["multiscales"][0]
    for ds in ms["datasets"]:
        t = ds["coordinateTransformations"][0]
        t["input"], t["output"] = ds["path"], "physical"
    ms["coordinateTransformations"][0].update(input="physical", output="world")
    return doc


def test_dev_spelling_in_a_dev_version_is_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meta = parse_node(_dev_spelled("0.6.dev4"), "W", strict=True)
    assert meta.multiscales[0].coordinate_system == "physical"


def test_dev_spelling_in_a_06_document_warns_and_strict_refuses():
    with pytest.warns(OmeZarrWarning, match="0.6.dev spelling") as caught:
        meta = parse_node(_dev_spelled("0.6"), "store 'a', node '/'")
    assert caught[0].message.rule == "v06-spelling"
    assert meta.multiscales[0].levels[1].transforms[1].values == (0.0, 0.25, 0.25)
    with pytest.raises(OmeZarrError, match="0.6.dev spelling") as err:
        parse_node(_dev_spelled("0.6"), "store 'a', node '/'", strict=True)
    assert err.value.key == "multiscales/0/coordinateTransformations/0/input"


def test_normalise_spelling_keys_and_dataset_paths():
    spelled, found = normalise_spelling(_dev_spelled("0.6")["ome"])
    assert spelled == _doc()["ome"] | {"version": "0.6"}
    assert [k for k, _ in found][:2] == [
        "multiscales/0/coordinateTransformations/0/input",
        "multiscales/0/coordinateTransformations/0/output",
    ]


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            lambda ms: ms["datasets"][1]["coordinateTransformations"][0].update(
                output={"name": "world"}
            ),
            "every dataset must map to one coordinate system",
        ),
        (
            lambda ms: ms["datasets"][0]["coordinateTransformations"][0].update(
                output={"name": "nope"}
            ),
            "must name a coordinate system of the multiscale",
        ),
        (
            lambda ms: ms["datasets"][0]["coordinateTransformations"][0].pop("output"),
            "coordinateTransformations/0",
        ),
        (
            lambda ms: ms["datasets"][0].update(coordinateTransformations=[]),
            "coordinateTransformations",
        ),
        (lambda ms: ms.update(coordinateSystems=[]), "coordinateSystems"),
        (lambda ms: ms["coordinateSystems"][1]["axes"].append({"name": "x"}), "axis names repeat"),
    ],
)
def test_bad_06_images_name_the_key(edit, match):
    doc = copy.deepcopy(_doc())
    edit(doc["ome"]["multiscales"][0])
    with pytest.raises(OmeZarrError, match=match) as err:
        parse_node(doc, "store 'a', node '/'")
    assert "store 'a', node '/'" in str(err.value)


def test_scene_parses_and_lists_its_images():
    doc = {
        "ome": {
            "version": "0.6",
            "scene": {
                "coordinateSystems": [{"name": "world", "axes": AXES[1:]}],
                "coordinateTransformations": [
                    {
                        "type": "translation",
                        "translation": [0, 10],
                        "input": {"path": "a", "name": "physical"},
                        "output": {"name": "world"},
                    },
                    {
                        "type": "identity",
                        "input": {"path": "b/c", "name": "physical"},
                        "output": {"name": "world"},
                    },
                ],
            },
        }
    }
    meta = parse_node(doc, "W")
    assert meta.is_ome and not meta.is_image
    assert meta.scene == doc["ome"]["scene"]
    assert scene_image_paths(meta.scene) == ("a", "b/c")
    doc["ome"]["scene"]["coordinateTransformations"][1]["output"] = {"name": "elsewhere"}
    with pytest.raises(OmeZarrError, match="names no coordinate system of the scene"):
        parse_node(doc, "W")


def test_05_document_unchanged_by_06_support():
    doc = {
        "ome": {
            "version": "0.5",
            "multiscales": [
                {
                    "axes": AXES,
                    "datasets": [
                        {
                            "path": "0",
                            "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}],
                        }
                    ],
                }
            ],
        }
    }
    ms = parse_node(doc, "W").multiscales[0]
    assert ms.coordinate_systems == () and ms.coordinate_system is None
