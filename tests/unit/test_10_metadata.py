"""The metadata layer against the OME-NGFF spec's own conformance cases."""

from __future__ import annotations

import warnings

import pytest

from xarray_ome_zarr import OmeZarrError, OmeZarrWarning
from xarray_ome_zarr.ngff import parse_node
from xarray_ome_zarr.ngff.schema import schema_problems

from ..fixtures.conformance import attribute_cases_06, example_cases, suite_cases

SUITES = suite_cases("0.4") + suite_cases("0.5")
EXAMPLES = example_cases("0.4") + example_cases("0.5")


def _params(cases):
    return [pytest.param(*case[1:], id=case[0]) for case in cases]


@pytest.mark.parametrize(("kind", "doc", "valid"), _params(SUITES))
def test_suite_case(kind, doc, valid):
    strict = kind.startswith("strict_")
    if valid:
        with warnings.catch_warnings():
            warnings.simplefilter("error", OmeZarrWarning)
            meta = parse_node(doc, "case", strict=strict)
        assert meta.is_ome
        return
    with pytest.raises(OmeZarrError, match="case"):
        parse_node(doc, "case", strict=True)
    if strict:
        return
    # The lenient reading path refuses too, except for the transitional omero block, whose
    # problems warn and keep the pixels (the documented policy).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parse_node(doc, "case")
        except OmeZarrError:
            return
    assert "omero" in doc.get("ome", doc)
    assert any(issubclass(w.category, OmeZarrWarning) for w in caught)


@pytest.mark.parametrize(("kind", "doc", "valid"), _params(EXAMPLES))
def test_example(kind, doc, valid):
    if valid:
        assert parse_node(doc, "example", strict=kind.endswith("_strict")).is_ome
    else:
        with pytest.raises(OmeZarrError):
            parse_node(doc, "example", strict=True)


@pytest.mark.parametrize(("kind", "doc", "valid", "strict"), _params(attribute_cases_06()))
def test_06_cases_parse_as_the_case_says(kind, doc, valid, strict, tmp_path):
    """0.6 is read (issue 14): valid documents parse; invalid ones are refused or warned.

    The whole verdict (with the three documented departures) is
    ``tests/integration/test_74_v06_conformance.py``.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            meta = parse_node(doc, "store 'case.zarr', node '/'", strict=strict)
        except OmeZarrError as err:
            assert not valid, err
            assert "case.zarr" in str(err)
            return
    assert not meta.is_ome or meta.version.startswith("0.6")
    if not valid:  # what the reader lets through, it names (strict cases: validate does)
        assert strict or not meta.is_ome or caught


def test_schema_problem_names_the_key():
    doc = {"multiscales": [{"version": "0.4", "axes": [], "datasets": []}]}
    problems = schema_problems(doc, "0.4", "image")
    assert any(p.key.startswith("multiscales/0") for p in problems)


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"ome": "x"},
        {"ome": {"version": 5}},
        {"ome": {"multiscales": [{"axes": [], "datasets": []}]}},
        {"ome": {"version": "0.9", "multiscales": []}},
        {"multiscales": "nope"},
        {"multiscales": [{"version": "0.4", "axes": [{"name": "y"}, 3]}]},
        {"multiscales": [{"version": 4}]},
        {"plate": []},
        {"bioformats2raw.layout": "3"},
        {"labels": [1, 2]},
    ],
)
def test_garbage_gives_ome_zarr_error(doc):
    with pytest.raises(OmeZarrError, match="here"):
        parse_node(doc, "here")


def _field_document(**omero: object) -> dict:
    ome = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1]}]}
                ],
            }
        ],
    }
    if omero:
        ome["omero"] = omero
    return {"ome": ome}


def test_equal_documents_are_parsed_once_per_memo():
    from xarray_ome_zarr.ngff.parse import ParseMemo

    memo = ParseMemo()
    first = parse_node(_field_document(), "field 1", memo=memo)
    assert parse_node(_field_document(), "field 2", memo=memo) is first  # shared, immutable
    other = _field_document()
    other["ome"]["multiscales"][0]["datasets"][0]["path"] = "s0"
    assert parse_node(other, "field 3", memo=memo).multiscales[0].levels[0].path == "s0"
    # the memo is the caller's: without one, every document is parsed
    assert parse_node(_field_document(), "field 4") is not first


def test_documents_with_something_to_say_say_it_for_every_node():
    from xarray_ome_zarr.ngff.parse import ParseMemo

    memo = ParseMemo()
    bad_omero = _field_document(channels="not a list")  # the schema's problem warns
    for node in ("field 1", "field 2"):
        with pytest.warns(OmeZarrWarning, match=node):
            parse_node(bad_omero, node, memo=memo)
    deviating = _field_document()
    del deviating["ome"]["version"]  # accepted with a deviation (rule version-missing)
    said: list[str] = []
    for node in ("field 1", "field 2"):
        parse_node(deviating, node, memo=memo, deviate=lambda key, msg, rule: said.append(rule))
    assert said == ["version-missing", "version-missing"]
    assert not memo.known
