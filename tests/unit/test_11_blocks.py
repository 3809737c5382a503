"""Plate, well, image-label and omero blocks parsed into the model, their raw blocks kept."""

from __future__ import annotations

from xarray_ome_zarr.ngff import Channel, FieldRef, ImageLabel, Plate, Well, WellRef, parse_node
from xarray_ome_zarr.ngff.parse import parse_omero, parse_plate, parse_well

PLATE = {
    "name": "screen",
    "rows": [{"name": "A"}, {"name": "B"}],
    "columns": [{"name": "1"}, {"name": "2"}],
    "wells": [
        {"path": "A/1", "rowIndex": 0, "columnIndex": 0},
        {"path": "B/2", "rowIndex": 1, "columnIndex": 1},
    ],
    "acquisitions": [{"id": 0}],
    "field_count": 2,
}


def test_a_plate_is_parsed_and_kept_verbatim():
    meta = parse_node({"ome": {"version": "0.5", "plate": PLATE}})
    plate = meta.plate
    assert isinstance(plate, Plate)
    assert (plate.name, plate.rows, plate.columns) == ("screen", ("A", "B"), ("1", "2"))
    assert [w.path for w in plate.wells] == ["A/1", "B/2"]
    assert plate.wells[1] == WellRef("B/2", 1, 1, PLATE["wells"][1])
    assert (plate.field_count, plate.acquisitions) == (2, ({"id": 0},))
    assert plate.raw is meta.document["plate"]


def test_a_plate_names_the_path_its_indices_give():
    plate = parse_plate(PLATE)
    assert plate.expected_path(WellRef("x", 1, 0)) == "B/1"
    assert plate.expected_path(WellRef("x", 2, 0)) is None  # out of range
    assert plate.expected_path(WellRef("x", None, 0)) is None
    assert parse_plate({"wells": [{"path": "A/1", "rowIndex": True}]}).wells[0].row_index is None


def test_a_well_lists_its_fields():
    block = {"images": [{"path": "0", "acquisition": 3}, {"path": "1"}, "bad"]}
    meta = parse_node({"ome": {"version": "0.5", "well": block}}, validate=False)
    assert meta.well == Well(
        (FieldRef("0", 3, block["images"][0]), FieldRef("1", None, {"path": "1"}), FieldRef(None)),
        block,
    )
    assert parse_well({"images": "nope"}).images is None


def test_omero_channels_and_their_labels():
    block = {
        "channels": [
            {"label": "DAPI", "color": "0000FF", "active": True, "window": {"start": 0, "end": 9}},
            {"label": "GFP", "color": 7},
        ],
        "rdefs": {"model": "color"},
    }
    meta = parse_node({"ome": {"version": "0.5", "omero": block}}, validate=False)
    assert meta.omero is not None and meta.omero.raw is block
    assert meta.omero.labels == ("DAPI", "GFP")
    assert meta.omero.channels[0] == Channel(
        "DAPI", "0000FF", {"start": 0, "end": 9}, True, block["channels"][0]
    )
    assert meta.omero.channels[1].color is None  # not a string: left out, kept in raw
    unnamed = parse_omero({"channels": [{"label": "a"}, {"color": "FF0000"}]})
    assert unnamed is not None and unnamed.labels is None  # not every channel is named
    assert parse_omero({"channels": []}).labels is None
    assert parse_omero({"channels": "nope"}).channels is None
    assert parse_omero("nope") is None and parse_omero(None) is None


def test_an_image_label_block():
    block = {
        "colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}],
        "properties": [{"label-value": 1, "area": 10}],
        "source": {"image": "../../"},
    }
    label = parse_node({"ome": {"version": "0.5", "image-label": block}}, validate=False)
    assert label.image_label == ImageLabel(
        tuple(block["colors"]), tuple(block["properties"]), "../../", block
    )
    assert label.omero is None and label.plate is None and label.well is None
