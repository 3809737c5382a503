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
