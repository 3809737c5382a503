"""The RFC-5 transformation layer (``ngff/transformations.py``): no xarray, no zarr."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from xarray_ome_zarr.errors import OmeZarrError
from xarray_ome_zarr.ngff import transformations as tf

from ..fixtures.conformance import transformation_case_attrs, transformation_cases


def _to_06_spelling(obj):
    """Rewrite a 0.6.dev document in the 0.6 spelling (objects, ``inputAxes`` items)."""
    if isinstance(obj, list):
        return [_to_06_spelling(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    out = {k: _to_06_spelling(v) for k, v in obj.items()}
    for key in ("input", "output"):
        if isinstance(out.get(key), str):
            out[key] = {"name": out[key]}
    if out.get("type") == "byDimension":
        items = []
        for item in out["transformations"]:
            body = {k: v for k, v in item.items() if k not in ("input_axes", "output_axes")}
            items.append(
                {
                    "transformation": body,
                    "inputAxes": item["input_axes"],
                    "outputAxes": item["output_axes"],
                }
            )
        out["transformations"] = items
    return out


CASES = transformation_cases()


@pytest.mark.parametrize("spelling", ["0.6.dev", "0.6"])
@pytest.mark.parametrize(("name", "case_dir", "toml"), CASES, ids=[c[0] for c in CASES])
def test_transformation_conformance_case(name, case_dir, toml, spelling):
    ome = transformation_case_attrs(case_dir)["ome"]
    if spelling == "0.6":
        ome = _to_06_spelling(ome)
        assert "input_axes" not in json.dumps(ome) and '"input": "' not in json.dumps(ome)
    graph = tf.graph_of_document(ome)
    source, target = toml["source"], toml["target"]
    if toml["should_error"]:
        with pytest.raises(OmeZarrError, match="no coordinate system"):
            graph.transform_points(source["coordinates"], source["name"], target["name"])
        return
    got = graph.transform_points(source["coordinates"], source["name"], target["name"])
    assert tf.close(
        got,
        target["coordinates"],
        atol=toml["absolute_tolerance"],
        rtol=toml["relative_tolerance"],
    ), (got, target["coordinates"])
    # a wrong answer would fail: the check is not vacuous
    assert not tf.close(got + 1.0, target["coordinates"])


def test_the_rc0_spelling_rewrite_changes_every_case():
    for _name, case_dir, _toml in CASES:
        ome = transformation_case_attrs(case_dir)["ome"]
        assert _to_06_spelling(ome) != ome


P = np.array([[1.0, 2.0, 3.0], [-4.0, 0.5, 7.0]])


def _t(raw):
    return tf.parse_transformation(raw, "store 'x', node '/'", "t")


TYPES = {
    "identity": ({"type": "identity"}, P),
    "scale": ({"type": "scale", "scale": [2, 4, 0.5]}, P * [2, 4, 0.5]),
    "translation": ({"type": "translation", "translation": [1, -1, 0]}, P + [1, -1, 0]),
    "affine": (
        {"type": "affine", "affine": [[0, 1, 0, 1], [1, 0, 0, 2], [0, 0, 2, 3]]},
        np.stack([P[:, 1] + 1, P[:, 0] + 2, 2 * P[:, 2] + 3], axis=1),
    ),
    "affine_homogeneous": (
        {"type": "affine", "affine": [[2, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]},
        P * [2, 1, 1] + [1, 0, 0],
    ),
    "rotation": (
        {"type": "rotation", "rotation": [[0, -1, 0], [1, 0, 0], [0, 0, 1]]},
        np.stack([-P[:, 1], P[:, 0], P[:, 2]], axis=1),
    ),
    "mapAxis": ({"type": "mapAxis", "mapAxis": [2, 0, 1]}, P[:, [2, 0, 1]]),
    "sequence": (
        {
            "type": "sequence",
            "transformations": [
                {"type": "scale", "scale": [2, 2, 2]},
                {"type": "translation", "translation": [1, 1, 1]},
            ],
        },
        P * 2 + 1,
    ),
    "byDimension": (
        {
            "type": "byDimension",
            "transformations": [
                {
                    "transformation": {"type": "scale", "scale": [3, 5]},
                    "inputAxes": [0, 2],
                    "outputAxes": [2, 0],
                },
                {
                    "transformation": {"type": "translation", "translation": [10]},
                    "inputAxes": [1],
                    "outputAxes": [1],
                },
            ],
        },
        np.stack([P[:, 2] * 5, P[:, 1] + 10, P[:, 0] * 3], axis=1),
    ),
    "bijection": (
        {
            "type": "bijection",
            "forward": {"type": "scale", "scale": [2, 2, 2]},
            "inverse": {"type": "scale", "scale": [0.5, 0.5, 0.5]},
        },
        P * 2,
    ),
    "inverseOf": (
        {"type": "inverseOf", "transformation": {"type": "scale", "scale": [2, 4, 8]}},
        P / [2, 4, 8],
    ),
}


@pytest.mark.parametrize("kind", sorted(TYPES))
def test_each_type_applies_and_inverts(kind):
    raw, expected = TYPES[kind]
    t = _t(copy.deepcopy(raw))
    got = t.apply(P)
    np.testing.assert_allclose(got, expected)
    np.testing.assert_allclose(t.inverse().apply(got), P)
    m = t.affine(3)
    assert m is not None
    homogeneous = np.c_[P, np.ones(len(P))] @ m.T
    np.testing.assert_allclose(homogeneous[:, :-1], expected)
    assert t.raw == raw  # verbatim


def test_affine_with_one_row_less_and_not_square():
    t = _t({"type": "affine", "affine": [[1, 0, 0, 5], [0, 1, 0, 6]]})  # 3-D -> 2-D
    np.testing.assert_allclose(t.apply(P), P[:, :2] + [5, 6])
    with pytest.raises(OmeZarrError, match="no inverse"):
        t.inverse()
    assert not t.invertible


def test_singular_affine_and_zero_scale_have_no_inverse():
    with pytest.raises(OmeZarrError, match="singular"):
        _t({"type": "affine", "affine": [[1, 1, 0], [1, 1, 0]]}).inverse()
    with pytest.raises(OmeZarrError, match="zero"):
        tf.Scale({"type": "scale"}, (0.0, 1.0)).inverse()


def test_map_axis_not_a_permutation_and_projection():
    with pytest.raises(OmeZarrError, match="axis indices repeat"):
        _t({"type": "mapAxis", "mapAxis": [0, 0]})
    t = _t({"type": "mapAxis", "mapAxis": [2, 0]})  # a projection keeps working forwards
    np.testing.assert_allclose(t.apply(P), P[:, [2, 0]])
    with pytest.raises(OmeZarrError, match="no inverse"):
        t.inverse()


def test_project_axis():
    t = _t({"type": "projectAxis", "droppedInputs": [1], "createdOutputs": [0]})
    np.testing.assert_allclose(t.apply(P), np.stack([0 * P[:, 0], P[:, 0], P[:, 2]], axis=1))
    assert not t.invertible


def test_dev_by_dimension_spelling():
    t = _t(
        {
            "type": "byDimension",
            "transformations": [
                {"type": "scale", "scale": [2], "input_axes": [1], "output_axes": [0]},
                {"type": "identity", "input_axes": [0], "output_axes": [1]},
            ],
        }
    )
    np.testing.assert_allclose(t.apply([[1, 2]]), [[4, 1]])


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"type": "nope"}, "unknown transform type 'nope'"),
        ({"type": "scale"}, "t/scale: is required"),
        ({"type": "scale", "scale": ["a"]}, "t/scale: must be a non-empty list of numbers"),
        ({"type": "affine"}, "needs the matrix"),
        ({"type": "affine", "affine": [[1, 2], [3]]}, "rows differ"),
        ({"type": "bijection", "forward": {"type": "identity"}}, "t/inverse: is required"),
        ({"type": "sequence"}, "t/transformations"),
        (
            {
                "type": "byDimension",
                "transformations": [{"transformation": {"type": "identity"}, "inputAxes": [0]}],
            },
            "needs inputAxes and outputAxes",
        ),
        ({"type": "displacements"}, "needs the path"),
        ({"type": "displacements", "path": "f", "interpolation": "spline"}, "interpolation"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_transforms_name_store_node_and_key(raw, match):
    with pytest.raises(OmeZarrError, match=match) as caught:
        _t(raw)
    assert "store 'x', node '/'" in str(caught.value)


def test_parse_ref_both_spellings():
    assert tf.parse_ref("world", "", "input", ["world"]) == tf.SystemRef(name="world")
    assert tf.parse_ref("s0", "", "input", ["world"]) == tf.SystemRef(path="s0")
    assert tf.parse_ref({"name": "w", "path": "a"}, "", "k") == tf.SystemRef("w", "a")
    with pytest.raises(OmeZarrError, match="needs a 'name' or a 'path'"):
        tf.parse_ref({}, "", "k")
    with pytest.raises(OmeZarrError, match="must be a string or"):
        tf.parse_ref(3, "", "k")


def _image_06(output="physical", extra=()):
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    return {
        "version": "0.6",
        "multiscales": [
            {
                "coordinateSystems": [
                    {"name": "world", "axes": axes},
                    {"name": output, "axes": axes},
                ],
                "datasets": [
                    {
                        "path": "s0",
                        "coordinateTransformations": [
                            {
                                "type": "scale",
                                "scale": [2, 3],
                                "input": {"path": "s0"},
                                "output": {"name": output},
                            }
                        ],
                    },
                    {
                        "path": "s1",
                        "coordinateTransformations": [
                            {
                                "type": "sequence",
                                "input": "s1",
                                "output": output,
                                "transformations": [
                                    {"type": "scale", "scale": [4, 6]},
                                    {"type": "translation", "translation": [1, 1.5]},
                                ],
                            }
                        ],
                    },
                ],
                "coordinateTransformations": [
                    {
                        "type": "translation",
                        "translation": [100, 200],
                        "input": {"name": output},
                        "output": {"name": "world"},
                    },
                    *extra,
                ],
            }
        ],
    }


def test_graph_of_an_image_arrays_and_systems():
    g = tf.graph_of_document(_image_06())
    # pixel (1, 1) of s1 -> physical (5, 7.5) -> world
    np.testing.assert_allclose(g.transform_points([[1, 1]], {"path": "s1"}, "physical"), [[5, 7.5]])
    np.testing.assert_allclose(g.transform_points([[1, 1]], ("s1", None), "world"), [[105, 207.5]])
    # and back through the inverses, to the other level
    np.testing.assert_allclose(
        g.transform_points([[105, 207.5]], "world", ("s0", None)), [[2.5, 2.5]]
    )
    m = g.affine(("s0", None), "world")
    np.testing.assert_allclose(m, [[2, 0, 100], [0, 3, 200], [0, 0, 1]])
    assert tf.axis_aligned(m) == [(0, 2.0, 100.0), (1, 3.0, 200.0)]


def test_graph_errors():
    g = tf.graph_of_document(_image_06())
    with pytest.raises(OmeZarrError, match="no coordinate system 'nowhere'"):
        g.path("physical", "nowhere")
    g.add_systems([tf.CoordinateSystem("island", ({"name": "a"}, {"name": "b"}))])
    with pytest.raises(OmeZarrError, match="no chain of coordinate transformations"):
        g.path("physical", "island")


def test_a_one_way_transform_is_not_walked_backwards():
    g = tf.TransformGraph()
    axes = ({"name": "y"}, {"name": "x"})
    g.add_systems([tf.CoordinateSystem("a", axes), tf.CoordinateSystem("b", axes)])
    g.add_transformation(
        _t({"type": "displacements", "path": "f"}), tf.SystemRef("a"), tf.SystemRef("b")
    )
    with pytest.raises(OmeZarrError, match="no chain"):
        g.path("b", "a")
    with pytest.raises(OmeZarrError, match="not affine"):
        g.affine("a", "b")


def test_scene_nodes_are_images_by_path():
    scene = {
        "version": "0.6",
        "scene": {
            "coordinateSystems": [{"name": "world", "axes": [{"name": "y"}, {"name": "x"}]}],
            "coordinateTransformations": [
                {
                    "type": "translation",
                    "translation": [0, 348],
                    "input": {"path": "tile_1", "name": "physical"},
                    "output": {"name": "world"},
                }
            ],
        },
    }
    g = tf.graph_of_document(scene)
    tf.graph_of_document(_image_06(), prefix="tile_1", graph=g)
    np.testing.assert_allclose(
        g.transform_points([[0, 0]], ("tile_1/s0", None), "world"), [[0, 348]]
    )
    # "physical" is unique in the graph, so a bare name finds it
    np.testing.assert_allclose(g.transform_points([[1, 1]], "physical", "world"), [[1, 349]])
    tf.graph_of_document(_image_06(), prefix="tile_2", graph=g)
    with pytest.raises(OmeZarrError, match="defined by several images"):
        g.resolve("physical")


def test_axis_aligned_refuses_shear_rotation_and_projection():
    assert tf.axis_aligned(np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1.0]])) is None
    rot = _t({"type": "rotation", "rotation": [[0.6, -0.8], [0.8, 0.6]]}).affine(2)
    assert tf.axis_aligned(rot) is None
    swap = _t({"type": "mapAxis", "mapAxis": [1, 0]}).affine(2)
    assert tf.axis_aligned(swap) == [(1, 1.0, 0.0), (0, 1.0, 0.0)]
    drop = _t({"type": "mapAxis", "mapAxis": [1]}).affine(2)
    assert tf.axis_aligned(drop) is None


def test_fields_apply_through_the_loader_only():
    values = np.zeros((4, 5, 2))
    values[..., 0] = 1.0  # every point moves +1 along y
    values[2, 3, 1] = 10.0
    grid = tf.FieldGrid(values, scale=(2.0, 2.0), translation=(0.0, 0.0))
    seen = []

    def loader(path, kind):
        seen.append((path, kind))
        return grid

    t = _t({"type": "displacements", "path": "fields/d", "interpolation": "nearest"})
    with pytest.raises(OmeZarrError, match="transform_points"):
        t.apply([[0, 0]])
    got = t.apply([[4.0, 6.0], [0.0, 0.0], [100.0, 0.0]], loader)
    np.testing.assert_allclose(got[:2], [[5.0, 16.0], [1.0, 0.0]])
    assert np.isnan(got[2]).all()  # outside the field: NaN, never an edge value
    assert seen == [("fields/d", "displacements")]
    assert not t.invertible
    c = _t({"type": "coordinates", "path": "c", "interpolation": "linear"})
    np.testing.assert_allclose(c.apply([[1.0, 0.0]], loader), [[1.0, 0.0]])
