"""Property-based tests: geometry round trips and the metadata parser against any JSON."""

from __future__ import annotations

import contextlib
import copy
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from xarray_ome_zarr import OmeZarrError
from xarray_ome_zarr.ngff import NodeMeta, parse_node
from xarray_ome_zarr.ngff.emit import (
    convert_blocks,
    dataset_json,
    group_attributes,
    multiscale_json,
    split_source,
)
from xarray_ome_zarr.transforms import (
    coordinate_values,
    downsampled,
    level_geometry,
    scale_translation,
)

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- geometry ------------------------------------------------------------------------------


@st.composite
def scales(draw: st.DrawFn) -> float:
    """A non-zero scale from 1e-9 to 1e9 in magnitude, either sign."""
    magnitude = draw(st.floats(min_value=1.0, max_value=10.0, exclude_max=True))
    exponent = draw(st.integers(min_value=-9, max_value=8))
    sign = draw(st.sampled_from([1.0, -1.0]))
    return sign * magnitude * 10.0**exponent


@st.composite
def axis_geometry(draw: st.DrawFn) -> tuple[int, float, float]:
    """(size, scale, translation), the translation within a million pixels of the origin."""
    size = draw(st.integers(min_value=1, max_value=5000))
    scale = draw(scales())
    pixels = draw(st.one_of(st.just(0.0), st.floats(min_value=-1e6, max_value=1e6)))
    return size, scale, pixels * abs(scale)


@SETTINGS
@given(axis_geometry())
@example((1, 1e-9, 0.0))
@example((2, -1e9, 3.5e14))
@example((5000, 1e-9, -1e-3))
def test_coordinates_round_trip(geometry: tuple[int, float, float]) -> None:
    size, scale, translation = geometry
    values = coordinate_values(size, scale, translation)
    assert values.dtype == np.float64 and values.shape == (size,)
    got_scale, got_translation = scale_translation(values, fallback_scale=scale, name="x")
    assert got_translation == translation
    assert got_scale == pytest.approx(scale, rel=1e-9)
    np.testing.assert_allclose(
        coordinate_values(size, got_scale, got_translation),
        values,
        rtol=1e-9,
        atol=1e-9 * abs(scale),
    )


@SETTINGS
@given(scales(), st.floats(min_value=-1e6, max_value=1e6))
def test_length_one_axis_needs_the_fallback_scale(scale: float, translation: float) -> None:
    values = coordinate_values(1, scale, translation)
    assert scale_translation(values, fallback_scale=scale) == (scale, translation)
    assert scale_translation(values) == (1.0, translation)


@SETTINGS
@given(axis_geometry(), st.integers(min_value=2, max_value=8))
def test_downsampled_pixel_is_the_centre_of_its_block(
    geometry: tuple[int, float, float], factor: int
) -> None:
    _, scale, translation = geometry
    block = coordinate_values(factor, scale, translation)
    new_scale, new_translation = downsampled(scale, translation, factor)
    assert new_scale == pytest.approx(scale * factor, rel=1e-12)
    assert new_translation == pytest.approx(block.mean(), rel=1e-9, abs=1e-9 * abs(scale))


@SETTINGS
@given(axis_geometry(), st.data())
def test_uneven_coordinates_are_refused(geometry: tuple[int, float, float], data) -> None:
    size, scale, translation = geometry
    if size < 3:
        size = 3
    values = coordinate_values(size, scale, translation)
    i = data.draw(st.integers(min_value=1, max_value=size - 2))
    values[i] += scale * data.draw(st.sampled_from([0.3, -0.4, 0.01]))
    with pytest.raises(OmeZarrError, match="'x'"):
        scale_translation(values, name="x")


# ---- valid documents -----------------------------------------------------------------------

SPACE_UNITS = [None, "micrometer", "nanometer", "millimeter", "angstrom"]
TIME_UNITS = [None, "second", "millisecond"]
positive = st.floats(min_value=1e-3, max_value=1e3, allow_subnormal=False)
offsets = st.floats(min_value=-1e3, max_value=1e3, allow_subnormal=False)


@st.composite
def axes_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    """2 to 5 axes in a legal order: optional time, optional channel, 2 or 3 space axes."""
    axes: list[dict[str, Any]] = []
    if draw(st.booleans()):
        axes.append({"name": "t", "type": "time", "unit": draw(st.sampled_from(TIME_UNITS))})
    if draw(st.booleans()):
        axes.append({"name": "c", "type": "channel"})
    spaces = ["z", "y", "x"][-draw(st.integers(min_value=2, max_value=3)) :]
    unit = draw(st.sampled_from(SPACE_UNITS))
    axes += [{"name": n, "type": "space", "unit": unit} for n in spaces]
    return [{k: v for k, v in a.items() if v is not None} for a in axes]


@st.composite
def transform_lists(draw: st.DrawFn, ndim: int) -> list[dict[str, Any]]:
    """A scale, optionally followed by a translation."""
    out = [{"type": "scale", "scale": draw(st.lists(positive, min_size=ndim, max_size=ndim))}]
    if draw(st.booleans()):
        values = draw(st.lists(offsets, min_size=ndim, max_size=ndim))
        out.append({"type": "translation", "translation": values})
    return out


@st.composite
def image_documents(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """(attributes, version) of a valid 0.4 or 0.5 image document."""
    version = draw(st.sampled_from(["0.4", "0.5"]))
    axes = draw(axes_lists())
    ndim = len(axes)
    count = draw(st.integers(min_value=1, max_value=4))
    datasets = [
        {"path": f"s{i}", "coordinateTransformations": draw(transform_lists(ndim))}
        for i in range(count)
    ]
    multiscale: dict[str, Any] = {"axes": axes, "datasets": datasets}
    if draw(st.booleans()):
        multiscale["coordinateTransformations"] = draw(transform_lists(ndim))
    if draw(st.booleans()):
        multiscale["name"] = draw(st.text(min_size=1, max_size=8))
    if draw(st.booleans()):
        multiscale["type"] = draw(st.sampled_from(["mean", "gaussian", "mode"]))
        multiscale["metadata"] = {"method": "generated", "order": draw(st.integers(0, 3))}
    if draw(st.booleans()):
        multiscale["x-note"] = {"kept": draw(st.integers())}
    if version == "0.4":
        return {"multiscales": [{**multiscale, "version": "0.4"}]}, version
    return {"ome": {"version": "0.5", "multiscales": [multiscale]}}, version


def _vectors(transforms: list[dict[str, Any]], ndim: int) -> tuple[np.ndarray, np.ndarray]:
    scale, translation = np.ones(ndim), np.zeros(ndim)
    for t in transforms:
        if t["type"] == "scale":
            scale = np.asarray(t["scale"], dtype=float)
        else:
            translation = np.asarray(t["translation"], dtype=float)
    return scale, translation


def _multiscale_of(doc: dict[str, Any]) -> dict[str, Any]:
    return doc.get("ome", doc)["multiscales"][0]


@SETTINGS
@given(image_documents())
def test_valid_documents_parse_to_their_geometry(case: tuple[dict[str, Any], str]) -> None:
    doc, version = case
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meta = parse_node(doc, "generated")
    raw = _multiscale_of(doc)
    ndim = len(raw["axes"])
    assert meta.version == version
    (multiscale,) = meta.multiscales
    assert multiscale.axis_names == tuple(a["name"] for a in raw["axes"])
    assert [a.type for a in multiscale.axes] == [a["type"] for a in raw["axes"]]
    assert [a.unit for a in multiscale.axes] == [a.get("unit") for a in raw["axes"]]
    assert [lv.path for lv in multiscale.levels] == [d["path"] for d in raw["datasets"]]
    s_ms, t_ms = _vectors(raw.get("coordinateTransformations", []), ndim)
    for i, dataset in enumerate(raw["datasets"]):
        s_ds, t_ds = _vectors(dataset["coordinateTransformations"], ndim)
        scale, translation = level_geometry(multiscale, i)
        np.testing.assert_allclose(scale, s_ms * s_ds, rtol=1e-12)
        np.testing.assert_allclose(translation, s_ms * t_ds + t_ms, rtol=1e-12, atol=1e-12)


# ---- anything else -------------------------------------------------------------------------

KEYS = [
    "ome",
    "version",
    "multiscales",
    "axes",
    "datasets",
    "path",
    "coordinateTransformations",
    "type",
    "scale",
    "translation",
    "name",
    "unit",
    "labels",
    "plate",
    "well",
    "images",
    "rows",
    "columns",
    "wells",
    "rowIndex",
    "columnIndex",
    "image-label",
    "omero",
    "channels",
    "window",
    "bioformats2raw.layout",
    "series",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(),
    st.text(max_size=6),
    st.sampled_from(["0.4", "0.5", "0.3", "space", "time", "channel", "scale", "translation"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), children, max_size=5),
    ),
    max_leaves=30,
)


def _parse_any(doc: Any, *, strict: bool = False) -> None:
    """Parse ``doc`` every way the reader does; only OmeZarrError may come out."""
    for validate in (True, False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                meta = parse_node(doc, "fuzz", validate=validate, strict=strict)
            except OmeZarrError as err:
                assert "fuzz" in str(err)
                continue
        assert isinstance(meta, NodeMeta)
        for multiscale in meta.multiscales:
            for i in range(len(multiscale.levels)):
                with contextlib.suppress(OmeZarrError):
                    level_geometry(multiscale, i)


@SETTINGS
@given(json_values, st.booleans())
def test_arbitrary_json_gives_a_result_or_ome_zarr_error(doc: Any, strict: bool) -> None:
    _parse_any(doc, strict=strict)


@SETTINGS
@given(json_values, st.sampled_from(["0.4", "0.5"]))
def test_arbitrary_json_under_a_versioned_block(value: Any, version: str) -> None:
    _parse_any({"ome": {"version": version, "multiscales": value}})
    _parse_any({"multiscales": [{"version": version, "axes": value, "datasets": value}]})


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside ``doc``."""
    out = []
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    )
    for k, v in items:
        out.append((*prefix, k))
        out.extend(_paths(v, (*prefix, k)))
    return out


def _wrong_type(value: Any) -> list[Any]:
    """Values of every other JSON type than ``value``'s."""
    candidates = [None, True, 7, -1.5, "text", [], [1, "a"], {}, {"name": 1}]
    return [c for c in candidates if type(c) is not type(value)]


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    """A valid image document with a few keys deleted or values replaced."""
    doc, _ = draw(image_documents())
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        op = draw(st.sampled_from(["delete", "wrong type", "any"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "wrong type":
            parent[path[-1]] = draw(st.sampled_from(_wrong_type(parent[path[-1]])))
        else:
            parent[path[-1]] = draw(json_values)
    return doc


@SETTINGS
@given(mutated_documents(), st.booleans())
def test_mutated_documents_give_a_result_or_ome_zarr_error(doc: Any, strict: bool) -> None:
    _parse_any(doc, strict=strict)


@pytest.mark.parametrize("validate", [True, False])
def test_huge_integer_scale_gives_ome_zarr_error(validate: bool) -> None:
    doc = {
        "multiscales": [
            {
                "version": "0.4",
                "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [{"type": "scale", "scale": [10**400, 1]}],
                    }
                ],
            }
        ]
    }
    with pytest.raises(OmeZarrError, match="fuzz"):
        parse_node(doc, "fuzz", validate=validate)


# ---- parse -> emit -> parse ----------------------------------------------------------------


def _emit(meta: Any, version: str) -> dict[str, Any]:
    """The document the writer's emitters make of a parsed image, in ``version``."""
    (multiscale,) = meta.multiscales
    datasets = [
        dataset_json(level.path, *level_geometry(multiscale, i))
        for i, level in enumerate(multiscale.levels)
    ]
    entry = multiscale_json(
        version,
        multiscale.axes,
        datasets,
        name=multiscale.name,
        type=multiscale.type,
        metadata=multiscale.metadata,
        extra=multiscale.extra,
    )
    source = split_source(meta_attrs(meta), "generated")
    blocks = convert_blocks(source.blocks, source.version, version)
    return group_attributes(version, blocks, source.other, entry)


def meta_attrs(meta: Any) -> dict[str, Any]:
    return {"ome": dict(meta.document)} if meta.version == "0.5" else dict(meta.document)


@SETTINGS
@given(image_documents(), st.sampled_from(["0.4", "0.5"]))
def test_parse_emit_parse_is_identity(case: tuple[dict[str, Any], str], target: str) -> None:
    doc, _ = case
    first = parse_node(doc, "generated")
    emitted = _emit(first, target)
    second = parse_node(emitted, "emitted")
    assert second.version == target
    (a,), (b,) = first.multiscales, second.multiscales
    assert b.axes == a.axes
    assert [lv.path for lv in b.levels] == [lv.path for lv in a.levels]
    assert (b.name, b.type, b.metadata, dict(b.extra)) == (
        a.name,
        a.type,
        a.metadata,
        dict(a.extra),
    )
    for i in range(len(a.levels)):
        for got, want in zip(level_geometry(b, i), level_geometry(a, i), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # and once more: emitting the re-parsed document gives the same document
    assert _emit(second, target) == emitted
