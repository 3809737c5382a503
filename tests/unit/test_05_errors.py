"""OmeZarrError and OmeZarrWarning: location fields beside the message, kept by pickling."""

from __future__ import annotations

import pickle

import pytest

from xarray_ome_zarr.errors import OmeZarrError, OmeZarrWarning, located_message


def test_plain_message_keeps_text_and_has_no_location() -> None:
    err = OmeZarrError("something is wrong")
    assert str(err) == "something is wrong"
    assert (err.store, err.node, err.key, err.rule) == (None, None, None, None)
    assert err.reason == "something is wrong"
    assert isinstance(err, ValueError)


def test_at_composes_the_message_from_its_location() -> None:
    err = OmeZarrError.at("must be a list", store="a.zarr", node="plate", key="plate/wells")
    assert str(err) == "store 'a.zarr', node '/plate': plate/wells: must be a list"
    assert (err.store, err.node, err.key) == ("a.zarr", "/plate", "plate/wells")
    assert err.reason == "must be a list"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "bad"),
        ({"key": "k"}, "k: bad"),
        ({"node": ""}, "node '/': bad"),
        ({"store": "s", "key": "k"}, "store 's': k: bad"),
        ({"store": "s", "node": "a/b"}, "store 's', node '/a/b': bad"),
    ],
)
def test_located_message_leaves_out_unknown_parts(kwargs: dict, expected: str) -> None:
    assert located_message("bad", **kwargs) == expected


def test_in_store_prefixes_the_store_and_keeps_the_other_fields() -> None:
    inner = OmeZarrError.at("uneven", node="img", key="x", rule="R1")
    outer = inner.in_store("out.zarr")
    assert str(outer) == "store 'out.zarr', node '/img': x: uneven"
    assert (outer.store, outer.node, outer.key, outer.rule) == ("out.zarr", "/img", "x", "R1")
    assert outer.reason == "uneven"


@pytest.mark.parametrize("cls", [OmeZarrError, OmeZarrWarning])
def test_fields_survive_pickling(cls: type) -> None:
    original = cls.at("bad dtype", store="s.zarr", node="labels/a", key="datasets/0", rule="R9")
    copy = pickle.loads(pickle.dumps(original))
    assert type(copy) is cls
    assert str(copy) == str(original)
    assert (copy.store, copy.node, copy.key, copy.reason, copy.rule) == (
        "s.zarr",
        "/labels/a",
        "datasets/0",
        "bad dtype",
        "R9",
    )


def test_warning_carries_its_fields_through_warnings_warn() -> None:
    with pytest.warns(OmeZarrWarning) as caught:
        import warnings

        warnings.warn(OmeZarrWarning.at("odd", node="", key="omero", rule="W1"), stacklevel=1)
    (record,) = caught
    assert str(record.message) == "node '/': omero: odd"
    assert record.message.key == "omero"
    assert record.message.rule == "W1"
