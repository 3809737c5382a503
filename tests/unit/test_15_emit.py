"""The metadata emitter: documents built from plain values, checked against the spec's schemas."""

from __future__ import annotations

import copy

import pytest

from xarray_ome_zarr import OmeZarrError
from xarray_ome_zarr.ngff.emit import (
    axis_json,
    check_axes,
    check_version,
    convert_blocks,
    dataset_json,
    group_attributes,
    multiscale_json,
    normalize_unit,
    omero_for_channels,
    present_entries,
    split_source,
    stored_multiscale,
    zarr_format_of,
)
from xarray_ome_zarr.ngff.emit_v06 import (
    dataset_json_06,
    multiscale_json_06,
    own_system_name,
    scene_json_06,
    stored_multiscale_06,
    stored_paths,
)
from xarray_ome_zarr.ngff.model import Axis
from xarray_ome_zarr.ngff.parse import parse_node
from xarray_ome_zarr.ngff.schema import schema_problems

from ..fixtures.conformance import validate_schema

T, C, Z, Y, X = (
    Axis("t", "time", "second"),
    Axis("c", "channel"),
    Axis("z", "space", "micrometer"),
    Axis("y", "space", "micrometer"),
    Axis("x", "space", "micrometer"),
)


def image_document(version: str, axes=(C, Y, X), **blocks) -> dict:
    datasets = [
        dataset_json(str(i), [1.0] + [0.5 * 2**i] * (len(axes) - 1), [0.0] * len(axes))
        for i in range(2)
    ]
    multiscale = multiscale_json(
        version,
        axes,
        datasets,
        name="cells",
        type="mean",
        metadata={"method": "m", "version": "1", "description": "d"},
    )
    return group_attributes(version, blocks, {}, multiscale)


# ---- versions and axes ---------------------------------------------------------------------
@pytest.mark.parametrize("version", ["0.4", "0.5", "0.6"])
def test_writable_versions(version):
    assert check_version(version) == version
    assert zarr_format_of(version) == (2 if version == "0.4" else 3)


@pytest.mark.parametrize("version", ["0.1", "0.3", "0.6rc0", 0.5, None, "latest"])
def test_unwritable_versions_are_refused(version):
    with pytest.raises(OmeZarrError, match="cannot write OME-Zarr version"):
        check_version(version)


@pytest.mark.parametrize(
    "axes",
    [(Y, X), (Z, Y, X), (C, Y, X), (T, C, Z, Y, X), (T, Y, X), (Axis("lens"), Y, X)],
    ids=["yx", "zyx", "cyx", "tczyx", "tyx", "custom-yx"],
)
def test_valid_axes_pass(axes):
    check_axes(axes)


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ((T, C, Axis("a"), Z, Y, X), "2 to 5 axes"),
        ((X,), "2 to 5 axes"),
        ((C, X), "2 or 3 space axes"),
        ((Axis("w", "space"), Z, Y, X), "2 or 3 space axes"),
        ((Y, X, C), "ordered time"),
        ((C, T, Y, X), "ordered time"),
        ((T, Axis("t2", "time"), Y, X), "one time axis"),
        ((C, Axis("c2", "channel"), Y, X), "one channel axis"),
        ((Y, Y), "names repeat"),
    ],
    ids=[
        "6-dims",
        "1-dim",
        "1-space",
        "4-space",
        "space-first",
        "c-before-t",
        "2-time",
        "2-c",
        "dup",
    ],
)
def test_bad_axes_are_refused_with_the_reason(axes, message):
    with pytest.raises(OmeZarrError, match=message):
        check_axes(axes, "node '/'")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("um", "micrometer"),
        ("µm", "micrometer"),
        ("nm", "nanometer"),
        ("s", "second"),
        ("micrometer", "micrometer"),
        ("parsec", "parsec"),
        ("", None),
        (None, None),
        (" ", None),
    ],
)
def test_units_are_spelled_as_the_spec_wants(given, expected):
    assert normalize_unit(given) == expected


# ---- documents -----------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["0.4", "0.5", "0.6"])
@pytest.mark.parametrize("kind", ["image", "strict_image"])
def test_image_documents_validate_and_parse(version, kind):
    window = {"min": 0, "max": 255, "start": 0, "end": 200}
    channel = {"label": "a", "color": "FF0000", "window": window}
    doc = image_document(version, omero={"channels": [channel]})
    if version == "0.6":  # the spec's 0.6rc0 schemas, with the version rule widened
        assert schema_problems(doc, version, kind) == []
    else:
        assert validate_schema(doc, version, kind) == []
    meta = parse_node(doc, validate=True, strict=True)
    assert meta.version == version
    assert meta.multiscales[0].axis_names == ("c", "y", "x")
    assert [lv.path for lv in meta.multiscales[0].levels] == ["0", "1"]


def test_layouts_of_the_two_versions():
    old = image_document("0.4", omero={"channels": []})
    assert set(old) == {"multiscales", "omero"}
    assert old["multiscales"][0]["version"] == "0.4"
    new = image_document("0.5", omero={"channels": []})
    assert set(new) == {"ome"}
    assert new["ome"]["version"] == "0.5"
    assert "version" not in new["ome"]["multiscales"][0]
    assert set(new["ome"]) == {"version", "multiscales", "omero"}


def test_non_ome_attributes_sit_beside_the_ome_key():
    attrs = group_attributes("0.5", {"labels": ["a"]}, {"x-tool": 1, "ome": "stale"})
    assert attrs == {"x-tool": 1, "ome": {"version": "0.5", "labels": ["a"]}}
    assert group_attributes("0.4", {"labels": ["a"]}, {"x-tool": 1}) == {
        "x-tool": 1,
        "labels": ["a"],
    }


def test_multiscale_keeps_unknown_keys_but_not_stale_transforms():
    ms = multiscale_json(
        "0.5",
        (Y, X),
        [dataset_json("0", [1, 1], [0, 0])],
        extra={"x-key": {"a": 1}, "coordinateTransformations": [{"type": "identity"}]},
    )
    assert ms["x-key"] == {"a": 1}
    assert "coordinateTransformations" not in ms
    assert ms["axes"] == [
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]


def test_axis_extra_keys_and_unit_aliases():
    ms = multiscale_json("0.4", (Axis("y", "space", "um", {"longName": "Y"}), X), [])
    assert ms["axes"][0] == {"name": "y", "type": "space", "unit": "micrometer", "longName": "Y"}


# ---- source documents ----------------------------------------------------------------------
def test_split_source_of_each_layout():
    v4 = split_source({"multiscales": [{"version": "0.4"}], "omero": {}, "x": 1})
    assert (v4.version, dict(v4.blocks), dict(v4.other)) == ("0.4", {"omero": {}, "x": 1}, {})
    v5 = split_source({"ome": {"version": "0.5", "labels": ["a"]}, "other": 2})
    assert (v5.version, dict(v5.blocks), dict(v5.other)) == ("0.5", {"labels": ["a"]}, {"other": 2})
    unversioned = split_source({"ome": {"labels": ["a"]}})
    assert unversioned.version == "0.5" and unversioned.is_ome
    plain = split_source({"anything": 1})
    assert not plain.is_ome


def test_convert_blocks_moves_version_keys_and_copies():
    blocks = {
        "image-label": {"version": "0.4", "colors": [{"label-value": 1, "rgba": [1, 2, 3, 4]}]},
        "plate": {"version": "0.4", "rows": [], "columns": [], "wells": []},
        "omero": {"version": "0.1", "channels": []},
    }
    before = copy.deepcopy(blocks)
    to5 = convert_blocks(blocks, "0.4", "0.5")
    assert "version" not in to5["image-label"] and "version" not in to5["plate"]
    assert to5["omero"] == blocks["omero"]  # omero stays verbatim
    to4 = convert_blocks({"well": {"images": []}}, "0.5", "0.4")
    assert to4["well"]["version"] == "0.4"
    kept = convert_blocks({"image-label": {"version": "0.5"}}, "0.5", "0.5")
    assert kept["image-label"] == {"version": "0.5"}
    assert blocks == before
    to5["image-label"]["colors"].append("x")
    assert blocks == before


def test_stored_multiscale_is_lenient():
    good = split_source(image_document("0.4"))
    assert stored_multiscale(good).name == "cells"
    broken = split_source({"multiscales": [{"version": "0.4", "axes": "nope", "datasets": []}]})
    assert stored_multiscale(broken) is None
    assert stored_multiscale(split_source({})) is None


# ---- omero and listings --------------------------------------------------------------------
def test_omero_follows_the_channel_coordinate():
    stored = {
        "channels": [{"label": "DAPI", "color": "0000FF"}, {"label": "GFP", "color": "00FF00"}],
        "rdefs": {"model": "color"},
    }
    subset = omero_for_channels(stored, ["GFP"])
    assert subset == {
        "channels": [{"label": "GFP", "color": "00FF00"}],
        "rdefs": {"model": "color"},
    }
    swapped = omero_for_channels(stored, ["GFP", "DAPI"])
    assert [c["label"] for c in swapped["channels"]] == ["GFP", "DAPI"]
    new = omero_for_channels(None, ["a", "b"], (0.0, 255.0))
    assert [c["label"] for c in new["channels"]] == ["a", "b"]
    assert new["channels"][0]["window"] == {"min": 0.0, "max": 255.0, "start": 0.0, "end": 255.0}
    assert (
        validate_schema(
            {
                "ome": {
                    "version": "0.5",
                    "multiscales": image_document("0.5")["ome"]["multiscales"],
                    "omero": new,
                }
            },
            "0.5",
            "image",
        )
        == []
    )
    assert stored["channels"][0] == {"label": "DAPI", "color": "0000FF"}


def test_present_entries_keeps_listed_nodes_that_exist():
    wells = [{"path": "A/1"}, {"path": "B/2"}]
    assert present_entries(wells, "path", {"A/1"}) == [{"path": "A/1"}]
    assert present_entries(None, "path", set()) is None


# ---- 0.6 -------------------------------------------------------------------------------------
def _dataset_06(path, scale, translation, system="intrinsic"):
    return {
        "path": path,
        "coordinateTransformations": [
            {
                "input": {"path": path},
                "output": {"name": system},
                "type": "sequence",
                "transformations": [
                    {"type": "scale", "scale": scale},
                    {"type": "translation", "translation": translation},
                ],
            }
        ],
    }


def test_06_new_image_has_one_system_and_sequences():
    doc = image_document("0.6")
    assert set(doc) == {"ome"} and doc["ome"]["version"] == "0.6"
    ms = doc["ome"]["multiscales"][0]
    assert "axes" not in ms and "version" not in ms
    assert ms["coordinateSystems"] == [
        {"name": "intrinsic", "axes": [axis_json(a) for a in (C, Y, X)]}
    ]
    assert ms["datasets"][1] == _dataset_06("1", [1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    assert "coordinateTransformations" not in ms


def test_06_keeps_the_stored_systems_transforms_and_names():
    other = {"name": "world", "axes": [{"name": "y", "type": "space"}, {"name": "x"}]}
    to_world = {"type": "identity", "input": {"name": "phys"}, "output": {"name": "world"}}
    stored = {
        "coordinateSystems": [other, {"name": "phys", "axes": other["axes"], "x-note": 1}],
        "datasets": [
            {
                "path": "s0",
                "coordinateTransformations": [
                    {
                        "type": "scale",
                        "scale": [1, 1],
                        "name": "s0 to phys",
                        "input": {"path": "s0"},
                    }
                ],
            }
        ],
        "coordinateTransformations": [to_world],
    }
    stored["datasets"][0]["coordinateTransformations"][0]["output"] = {"name": "phys"}
    before = copy.deepcopy(stored)
    ms = multiscale_json_06(
        [axis_json(Y), axis_json(X)],
        [("s0", [0.5, 0.5], [0.0, 0.0]), ("s1", [1.0, 1.0], [0.25, 0.25])],
        stored=stored,
    )
    assert stored == before  # not mutated
    assert ms["coordinateSystems"][0] == other  # order kept, other systems verbatim
    assert ms["coordinateSystems"][1]["x-note"] == 1
    assert [a["name"] for a in ms["coordinateSystems"][1]["axes"]] == ["y", "x"]
    assert ms["coordinateTransformations"] == [to_world]
    # the stored shape (a scale alone) and name are kept where they still fit
    assert ms["datasets"][0]["coordinateTransformations"][0] == {
        "input": {"path": "s0"},
        "output": {"name": "phys"},
        "name": "s0 to phys",
        "type": "scale",
        "scale": [0.5, 0.5],
    }
    assert ms["datasets"][1] == _dataset_06("s1", [1.0, 1.0], [0.25, 0.25], "phys")
    with pytest.raises(OmeZarrError, match=r"changed from \['y', 'x'\] to \['x'\]"):
        multiscale_json_06([axis_json(X)], [("s0", [1.0], [0.0])], stored=ms)


def test_06_a_stored_identity_stays_one_where_it_still_fits():
    stored = {"type": "identity", "input": {"path": "0"}, "output": {"name": "a"}}
    kept = dataset_json_06("0", [1.0, 1.0], [0.0, 0.0], "a", stored)
    assert kept["coordinateTransformations"][0]["type"] == "identity"
    moved = dataset_json_06("0", [1.0, 1.0], [0.0, 2.0], "a", stored)
    assert moved["coordinateTransformations"][0]["type"] == "sequence"


def test_06_stored_multiscale_is_spelled_as_06():
    dev = {
        "coordinateSystems": [{"name": "a", "axes": []}],
        "datasets": [
            {
                "path": "0",
                "coordinateTransformations": [{"type": "identity", "input": "0", "output": "a"}],
            }
        ],
    }
    spelled = stored_multiscale_06("0.6.dev4", [dev])
    first = spelled["datasets"][0]["coordinateTransformations"][0]
    assert first["input"] == {"path": "0"} and first["output"] == {"name": "a"}
    assert own_system_name(spelled) == "a"
    assert stored_multiscale_06("0.5", [dev]) is None
    assert own_system_name(None) == "intrinsic"


def test_06_scene_and_stored_paths():
    scene = {
        "coordinateSystems": [{"name": "s", "axes": []}],
        "coordinateTransformations": [
            {
                "type": "bijection",
                "input": "a",
                "output": "s",
                "forward": {"type": "displacements", "path": "f/d"},
                "inverse": {
                    "type": "sequence",
                    "transformations": [
                        {"type": "coordinates", "path": "/f/c/"},
                        {"type": "affine", "path": "p"},
                        {"type": "scale", "scale": [1]},
                    ],
                },
            }
        ],
    }
    assert scene_json_06(scene)["coordinateTransformations"][0]["output"] == {"name": "s"}
    assert stored_paths({"scene": scene}) == ["f/d", "f/c", "p"]
    converted = convert_blocks({"scene": scene}, "0.6.dev4", "0.6")
    assert converted["scene"]["coordinateTransformations"][0]["input"] == {"name": "a"}
