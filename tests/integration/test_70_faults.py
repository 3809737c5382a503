"""Bad input and faults on the reading side (issue 6): clear errors, every problem listed.

Every store is real, written by hand with zarr-python into ``tmp_path``, then broken the way
stores break in the wild: a missing or corrupt array, a wrong rank, float labels, a plate that
names groups that are not there, a truncated chunk, a sloppy ``omero`` block.
"""

from __future__ import annotations

import json
import os
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

from xarray_ome_zarr import OmeZarrError, OmeZarrWarning, Problem, validate

from ..conftest import pixels, write_hand_image
from ..fixtures.conformance import attribute_cases_06, suite_cases

VERSIONS = ["0.4", "0.5"]


# ---- writing stores by hand ----------------------------------------------------------------


def _zarr_format(version: str) -> int:
    return 3 if version == "0.5" else 2


def _put_ome(group: zarr.Group, version: str, document: dict[str, Any]) -> None:
    """Store an OME document the way ``version`` does (0.5: under ``ome``)."""
    if version == "0.5":
        group.attrs.put({"ome": {"version": "0.5", **document}})
    else:
        group.attrs.put(document)


def _edit_ome(path: Path, version: str, edit: Callable[[dict], None]) -> None:
    """Change the OME document of the root group of ``path`` in place."""
    group = zarr.open_group(path, mode="r+")
    attrs = group.attrs.asdict()
    edit(attrs["ome"] if version == "0.5" else attrs)
    group.attrs.put(attrs)


def _create_array(
    group: zarr.Group,
    name: str,
    data: np.ndarray,
    dims: list[str],
    **kwargs: Any,
) -> zarr.Array:
    """An array of ``data`` with ``dimension_names`` where the format has them."""
    if group.metadata.zarr_format == 3:
        kwargs.setdefault("dimension_names", dims)
    array = group.create_array(name, shape=data.shape, dtype=data.dtype, overwrite=True, **kwargs)
    array[...] = data
    return array


def _write_image(
    group: zarr.Group,
    version: str,
    levels: list[np.ndarray],
    dims: list[str],
    extra: dict[str, Any] | None = None,
) -> None:
    """A plain multiscale image: arrays ``0``, ``1``... and metadata, ``extra`` blocks added."""
    axes = [
        {"name": d, "type": "channel"}
        if d == "c"
        else {"name": d, "type": "space", "unit": "micrometer"}
        for d in dims
    ]
    datasets = []
    for i, level in enumerate(levels):
        _create_array(group, str(i), level, dims)
        scale = [1.0 if d == "c" else float(2**i) for d in dims]
        datasets.append(
            {"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        )
    multiscale: dict[str, Any] = {"axes": axes, "datasets": datasets}
    if version != "0.5":
        multiscale["version"] = version
    _put_ome(group, version, {"multiscales": [multiscale], **(extra or {})})


def _write_labels(
    root: zarr.Group, version: str, labels: dict[str, np.ndarray], listed: list[str]
) -> None:
    """A ``labels`` group listing ``listed``, with a label image for each of ``labels``, of
    two levels like the image (the spec wants as many)."""
    group = root.require_group("labels")
    _put_ome(group, version, {"labels": listed})
    for name, data in labels.items():
        block = {"colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}]}
        if version != "0.5":
            block["version"] = version
        levels = [data, data[:, ::2, ::2]]
        _write_image(
            group.require_group(name), version, levels, ["z", "y", "x"], {"image-label": block}
        )


def _write_plate(
    path: Path,
    version: str,
    *,
    fields: dict[str, list[str]],
    missing_wells: tuple[str, ...] = (),
    missing_fields: tuple[str, ...] = (),
) -> Path:
    """A 2x2 plate whose wells hold ``fields``; listed wells or fields can be left unwritten."""
    root = zarr.open_group(path, mode="w", zarr_format=_zarr_format(version))
    rows, columns = ["A", "B"], ["1", "2"]
    wells = [
        {"path": well, "rowIndex": rows.index(well[0]), "columnIndex": columns.index(well[2])}
        for well in fields
    ]
    plate: dict[str, Any] = {
        "name": "test plate",
        "rows": [{"name": r} for r in rows],
        "columns": [{"name": c} for c in columns],
        "wells": wells,
    }
    if version != "0.5":
        plate["version"] = version
    _put_ome(root, version, {"plate": plate})
    for well, images in fields.items():
        if well in missing_wells:
            continue
        block: dict[str, Any] = {"images": [{"path": p} for p in images]}
        if version != "0.5":
            block["version"] = version
        group = root.require_group(well)
        _put_ome(group, version, {"well": block})
        for field in images:
            if f"{well}/{field}" not in missing_fields:
                _write_image(group.require_group(field), version, [pixels((6, 5))], ["y", "x"])
    return path


def _image(tmp_path: Path, version: str) -> Path:
    path = tmp_path / f"image-{version}.ome.zarr"
    write_hand_image(path, version)
    return path


# ---- structural errors ---------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """A broken store, the reader's complaint, and the problem ``validate`` must list."""

    path: Path
    node: str  #: the node the reader's message names
    words: tuple[str, ...]  #: what else the reader's message must contain
    key: str  #: the key of validate's Problem at ``node``
    open_dataset: dict[str, Any] | None = None  #: kwargs under which open_dataset fails too
    #: the rule id of the warning when liberal reading accepts the fault (strict=True raises)
    liberal: str | None = None


def fault_missing_level(tmp_path: Path, version: str) -> Fault:
    path = _image(tmp_path, version)
    shutil.rmtree(path / "1")
    key = "multiscales/0/datasets/1/path"
    return Fault(path, "/", (key, "'1'"), key, {"level": 1})


def fault_rank(tmp_path: Path, version: str) -> Fault:
    path = _image(tmp_path, version)
    root = zarr.open_group(path, mode="r+")
    _create_array(root, "1", pixels((5, 7, 6)), ["z", "y", "x"])
    return Fault(path, "/", ("'1'", "3 dimensions"), "multiscales/0/datasets/1/path", {"level": 1})


def fault_dimension_names(tmp_path: Path, version: str) -> Fault:
    path = _image(tmp_path, version)
    root = zarr.open_group(path, mode="r+")
    _create_array(root, "1", pixels((2, 5, 7, 6)), ["c", "z", "x", "y"])
    return Fault(
        path, "/", ("'1'", "dimension_names"), "multiscales/0/datasets/1/path", {"level": 1}
    )


def fault_float_labels(tmp_path: Path, version: str) -> Fault:
    path = _image(tmp_path, version)
    root = zarr.open_group(path, mode="r+")
    _write_labels(root, version, {"nuclei": np.zeros((5, 13, 11), "float32")}, ["nuclei"])
    key = "multiscales/0/datasets/0/path"
    return Fault(path, "/labels/nuclei", ("float32", "integers"), key, liberal="label-dtype")


def fault_missing_label_group(tmp_path: Path, version: str) -> Fault:
    path = _image(tmp_path, version)
    root = zarr.open_group(path, mode="r+")
    labels = {"nuclei": np.zeros((5, 13, 11), "uint8")}
    _write_labels(root, version, labels, ["nuclei", "cells"])
    return Fault(path, "/labels", ("'cells'",), "labels/1", liberal="broken-node")


def fault_well_without_images(tmp_path: Path, version: str) -> Fault:
    path = _write_plate(tmp_path / "plate.ome.zarr", version, fields={"A/1": [], "B/2": ["0"]})
    return Fault(path, "/A/1", ("well/images",), "well/images", liberal="broken-node")


def fault_missing_well(tmp_path: Path, version: str) -> Fault:
    path = _write_plate(
        tmp_path / "plate.ome.zarr",
        version,
        fields={"A/1": ["0"], "B/2": ["0"]},
        missing_wells=("B/2",),
    )
    key = "plate/wells/1/path"
    return Fault(path, "/", (key, "'B/2'"), key, liberal="broken-node")


def fault_missing_field(tmp_path: Path, version: str) -> Fault:
    path = _write_plate(
        tmp_path / "plate.ome.zarr",
        version,
        fields={"A/1": ["0", "1"]},
        missing_fields=("A/1/1",),
    )
    key = "well/images/1/path"
    return Fault(path, "/A/1", (key, "'1'"), key, liberal="broken-node")


def fault_levels_grow(tmp_path: Path, version: str) -> Fault:
    path = _image(tmp_path, version)
    _edit_ome(path, version, lambda doc: doc["multiscales"][0]["datasets"].reverse())
    return Fault(path, "/", ("level 1", "larger"), "multiscales/0/datasets/1")


def fault_transform_length(tmp_path: Path, version: str) -> Fault:
    """Refused when the level is read: the 0.4 suite calls such a document valid."""

    def edit(doc: dict) -> None:
        doc["multiscales"][0]["datasets"][1]["coordinateTransformations"][0]["scale"] = [1, 2, 3]

    path = _image(tmp_path, version)
    _edit_ome(path, version, edit)
    key = "multiscales/0/datasets/1/coordinateTransformations/0/scale"
    return Fault(path, "/", (key, "3 values"), key, {"level": 1})


FAULTS = {
    "missing level": (fault_missing_level, VERSIONS),
    "rank": (fault_rank, VERSIONS),
    "dimension_names": (fault_dimension_names, ["0.5"]),
    "float labels": (fault_float_labels, VERSIONS),
    "missing label group": (fault_missing_label_group, VERSIONS),
    "well without images": (fault_well_without_images, VERSIONS),
    "missing well": (fault_missing_well, VERSIONS),
    "missing field": (fault_missing_field, VERSIONS),
    "levels grow": (fault_levels_grow, VERSIONS),
    "transform length": (fault_transform_length, VERSIONS),
}
FAULT_PARAMS = [
    pytest.param(make, version, id=f"{name}-{version}")
    for name, (make, versions) in FAULTS.items()
    for version in versions
]


def _assert_names(err: BaseException, fault: Fault) -> None:
    message = str(err)
    assert str(fault.path) in message, message
    assert f"node {fault.node!r}" in message, message
    for word in fault.words:
        assert word in message, message


@pytest.mark.parametrize(("make", "version"), FAULT_PARAMS)
def test_structural_error_is_named_by_the_reader(make, version, tmp_path):
    fault = make(tmp_path, version)
    # what liberal reading accepts (docs/errors.md) strict=True refuses with the same words
    strict = {"strict": True} if fault.liberal else {}
    with pytest.raises(OmeZarrError) as caught:
        xr.open_datatree(fault.path, engine="ome-zarr", **strict)
    _assert_names(caught.value, fault)
    if fault.liberal:
        with pytest.warns(OmeZarrWarning) as warned:
            xr.open_datatree(fault.path, engine="ome-zarr")
        assert fault.liberal in {getattr(w.message, "rule", None) for w in warned}
    if fault.open_dataset is not None:
        with pytest.raises(OmeZarrError) as caught:
            xr.open_dataset(fault.path, engine="ome-zarr", **fault.open_dataset)
        _assert_names(caught.value, fault)


@pytest.mark.parametrize(("make", "version"), FAULT_PARAMS)
def test_structural_error_is_listed_by_validate(make, version, tmp_path):
    fault = make(tmp_path, version)
    problems = validate(fault.path)
    errors = [p for p in problems if p.severity == "error"]
    assert any(p.node == fault.node and p.key == fault.key for p in errors), problems
    for p in problems:
        assert isinstance(p, Problem)
        assert str(p).startswith(f"{p.severity} {p.node} {p.key}: ")


@pytest.mark.parametrize("version", VERSIONS)
def test_float_label_refused_when_opened_directly(version, tmp_path):
    fault = fault_float_labels(tmp_path, version)
    with pytest.raises(OmeZarrError, match="integers"):
        xr.open_dataset(fault.path, engine="ome-zarr", group="labels/nuclei", strict=True)
    with pytest.warns(OmeZarrWarning, match="label-dtype"):
        xr.open_dataset(fault.path, engine="ome-zarr", group="labels/nuclei")


def _dot_dot_level(tmp_path: Path, version: str) -> tuple[Path, str, str]:
    path = _image(tmp_path, version)
    _edit_ome(path, version, lambda doc: doc["multiscales"][0]["datasets"][1].update(path="../0"))
    return path, "/", "multiscales/0/datasets/1/path"


def _dot_dot_label(tmp_path: Path, version: str) -> tuple[Path, str, str]:
    path = _image(tmp_path, version)
    labels = {"nuclei": np.zeros((5, 13, 11), "uint8")}
    _write_labels(zarr.open_group(path, mode="r+"), version, labels, ["nuclei", "../x"])
    return path, "/labels", "labels/1"


def _dot_dot_series(tmp_path: Path, version: str) -> tuple[Path, str, str]:
    path = tmp_path / "collection.ome.zarr"
    root = zarr.open_group(path, mode="w", zarr_format=_zarr_format(version))
    _put_ome(root, version, {"bioformats2raw.layout": 3})
    _write_image(root.require_group("0"), version, [pixels((6, 5))], ["y", "x"])
    _put_ome(root.require_group("OME"), version, {"series": ["0", "../x"]})
    return path, "/OME", "series/1"


DOT_DOT = [
    pytest.param(make, version, id=f"{make.__name__.removeprefix('_dot_dot_')}-{version}")
    for make in (_dot_dot_level, _dot_dot_label, _dot_dot_series)
    for version in VERSIONS
]


@pytest.mark.parametrize(("make", "version"), DOT_DOT)
def test_dot_dot_paths_are_listed_by_validate(make, version, tmp_path):
    path, node, key = make(tmp_path, version)
    errors = [(p.node, p.key) for p in validate(path) if p.severity == "error"]
    assert errors == [(node, key)]


@pytest.mark.parametrize(("make", "version"), DOT_DOT)
def test_dot_dot_paths_give_ome_zarr_error(make, version, tmp_path):
    path, _, _ = make(tmp_path, version)
    with pytest.raises(OmeZarrError, match="'../"):
        xr.open_datatree(path, engine="ome-zarr")


# ---- unreadable array metadata -------------------------------------------------------------


def _break_array_metadata(path: Path, version: str, how: str) -> None:
    meta = path / "1" / ("zarr.json" if version == "0.5" else ".zarray")
    if how == "not json":
        meta.write_text("{not json", encoding="utf-8")
        return
    doc = json.loads(meta.read_text(encoding="utf-8"))
    if how == "unknown codec" and version == "0.5":
        doc["codecs"] = [{"name": "no-such-codec"}]
    elif how == "unknown codec":
        doc["compressor"] = {"id": "no-such-codec"}
    elif how == "chunk rank" and version == "0.5":
        doc["chunk_grid"]["configuration"]["chunk_shape"] = [1, 2]
    elif how == "chunk rank":
        doc["chunks"] = [1, 2]
    elif how == "shards" and version == "0.5":
        inner = {"chunk_shape": [1, 2, 3, 4], "codecs": [{"name": "bytes"}]}
        doc["codecs"] = [{"name": "sharding_indexed", "configuration": inner}]
    meta.write_text(json.dumps(doc), encoding="utf-8")


BROKEN_METADATA = [
    pytest.param(version, how, id=f"{how}-{version}")
    for version in VERSIONS
    for how in ("not json", "unknown codec", "chunk rank", "shards")
    if not (how == "shards" and version == "0.4")
]


@pytest.mark.parametrize(("version", "how"), BROKEN_METADATA)
def test_unreadable_array_metadata_is_listed_by_validate(version, how, tmp_path):
    path = _image(tmp_path, version)
    _break_array_metadata(path, version, how)
    problems = validate(path)
    (problem,) = problems
    assert (problem.node, problem.key) == ("/", "multiscales/0/datasets/1/path")
    assert "cannot read the metadata of array '1'" in problem.message


@pytest.mark.parametrize(("version", "how"), BROKEN_METADATA)
def test_unreadable_array_metadata_gives_ome_zarr_error(version, how, tmp_path):
    path = _image(tmp_path, version)
    _break_array_metadata(path, version, how)
    with pytest.raises(OmeZarrError, match="'1'") as caught:
        xr.open_datatree(path, engine="ome-zarr")
    assert str(path) in str(caught.value)


# ---- several problems at once --------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_every_problem_of_an_image_is_listed(version, tmp_path):
    path = _image(tmp_path, version)
    shutil.rmtree(path / "1")
    root = zarr.open_group(path, mode="r+")
    labels = {"nuclei": np.zeros((5, 13, 11), "float64")}
    _write_labels(root, version, labels, ["nuclei", "cells"])
    _edit_ome(path, version, lambda doc: doc["omero"]["channels"][0]["window"].pop("max"))

    found = {(p.node, p.key, p.severity) for p in validate(path)}
    assert found == {
        ("/", "multiscales/0/datasets/1/path", "error"),
        ("/", "omero/channels/0/window", "warning"),
        ("/labels", "labels/1", "error"),
        ("/labels/nuclei", "multiscales/0/datasets/0/path", "error"),
        ("/labels/nuclei", "multiscales/0/datasets/1/path", "error"),
    }
    strict = {(p.node, p.key, p.severity) for p in validate(path, strict=True)}
    assert ("/", "omero/channels/0/window", "error") in strict


@pytest.mark.parametrize("version", VERSIONS)
def test_every_problem_of_a_plate_is_listed(version, tmp_path):
    path = _write_plate(
        tmp_path / "plate.ome.zarr",
        version,
        fields={"A/1": [], "A/2": ["0", "1"], "B/2": ["0"]},
        missing_wells=("B/2",),
        missing_fields=("A/2/1",),
    )
    errors = {(p.node, p.key) for p in validate(path) if p.severity == "error"}
    assert errors == {
        ("/A/1", "well/images"),
        ("/A/2", "well/images/1/path"),
        ("/", "plate/wells/2/path"),
    }


def test_04_column_first_well_path_is_accepted_with_a_warning(tmp_path):
    path = _write_plate(tmp_path / "plate.ome.zarr", "0.4", fields={"A/1": ["0"]})
    group = zarr.open_group(path, mode="r+")
    attrs = group.attrs.asdict()
    attrs["plate"]["rows"], attrs["plate"]["columns"] = [{"name": "1"}], [{"name": "A"}]
    attrs["plate"]["wells"] = [{"path": "A/1", "rowIndex": 0, "columnIndex": 0}]
    group.attrs.put(attrs)
    tree = xr.open_datatree(path, engine="ome-zarr")
    assert "scale0" in tree["A/1/0"].children
    shutil.rmtree(path / "A" / "1" / "0" / "0")  # the well is still followed
    problem, missing = validate(path)
    assert (missing.node, missing.key) == ("/A/1/0", "multiscales/0/datasets/0/path")
    assert (problem.severity, problem.key) == ("warning", "plate/wells/0/path")


def test_valid_stores_have_no_problems(tmp_path):
    for version in VERSIONS:
        path = _image(tmp_path, version)
        labels = {"nuclei": np.zeros((5, 13, 11), "uint16")}
        _write_labels(zarr.open_group(path, mode="r+"), version, labels, ["nuclei"])
        assert validate(path) == []
        plate = _write_plate(tmp_path / f"plate-{version}", version, fields={"B/1": ["0", "1"]})
        assert validate(plate) == []


def test_validate_on_nothing_raises(tmp_path):
    with pytest.raises(OmeZarrError, match="nothing-here"):
        validate(tmp_path / "nothing-here")


def test_validate_plain_zarr_group(tmp_path):
    zarr.open_group(tmp_path / "plain.zarr", mode="w").create_array("a", shape=(2,), dtype="u1")
    (problem,) = validate(tmp_path / "plain.zarr")
    assert (problem.node, problem.severity) == ("/", "error")
    assert "no OME-Zarr metadata" in problem.message


# ---- chunks --------------------------------------------------------------------------------


def _chunk_files(path: Path, level: str = "0") -> list[Path]:
    names = ("zarr.json", ".zarray", ".zattrs")
    return sorted(p for p in (path / level).rglob("*") if p.is_file() and p.name not in names)


def _replace_level0(path: Path, version: str, data: np.ndarray, **kwargs: Any) -> None:
    root = zarr.open_group(path, mode="r+")
    _create_array(root, "0", data, ["c", "z", "y", "x"], chunks=(1, 2, 5, 4), **kwargs)


def _read_fails(path: Path) -> list[str]:
    messages = []
    for chunks in (None, {}):
        ds = xr.open_dataset(path, engine="ome-zarr", chunks=chunks)
        with pytest.raises(OmeZarrError) as caught:
            ds["cells"].values  # noqa: B018
        messages.append(str(caught.value))
    return messages


@pytest.mark.parametrize("version", VERSIONS)
def test_corrupt_chunk_raises_when_read(version, tmp_path):
    path = _image(tmp_path, version)
    chunk = _chunk_files(path)[5]
    chunk.write_bytes(np.random.default_rng(1).bytes(chunk.stat().st_size))
    ds = xr.open_dataset(path, engine="ome-zarr")  # opening reads no chunk
    assert ds["cells"].shape == (2, 5, 13, 11)
    for message in _read_fails(path):
        assert str(path) in message and "array '0'" in message
    assert validate(path) == []  # never reads a chunk unless asked
    (problem,) = validate(path, read_chunks=True)
    assert problem.key == "multiscales/0/datasets/0/path"
    assert "cannot read" in problem.message


TRUNCATED = [
    pytest.param("0.5", {}, id="zstd-0.5"),
    pytest.param("0.5", {"compressors": None}, id="uncompressed-0.5"),
    pytest.param("0.4", {"compressors": None}, id="uncompressed-0.4"),
    pytest.param(
        "0.4",
        {},
        id="blosc-0.4",
        marks=pytest.mark.xfail(
            strict=True,
            reason="upstream numcodecs#228: Blosc.decode does not check a buffer against "
            "the size in its header, so a truncated chunk of incompressible (memcpyed) data "
            "decodes to garbage instead of failing",
        ),
    ),
]


@pytest.mark.parametrize(("version", "kwargs"), TRUNCATED)
def test_truncated_chunk_raises_when_read(version, kwargs, tmp_path):
    path = _image(tmp_path, version)
    if kwargs:
        _replace_level0(path, version, pixels(), **kwargs)
    chunk = _chunk_files(path)[3]
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    for message in _read_fails(path):
        assert str(path) in message and "array '0'" in message


@pytest.mark.parametrize("version", VERSIONS)
def test_missing_chunk_reads_as_fill_value(version, tmp_path):
    path = _image(tmp_path, version)
    data = pixels()
    _replace_level0(path, version, data, fill_value=7)
    first = _chunk_files(path)[0]
    os.remove(first)
    expected = data.copy()
    expected[0:1, 0:2, 0:5, 0:4] = 7
    for chunks in (None, {}):
        ds = xr.open_dataset(path, engine="ome-zarr", chunks=chunks)
        np.testing.assert_array_equal(ds["cells"].values, expected)
    assert validate(path, read_chunks=True) == []


# ---- more than one multiscale ----------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_a_second_multiscale_is_named_in_a_warning(version, tmp_path):
    """The spec: read the first multiscale by default. The others are not lost silently."""
    import copy

    import xarray_ome_zarr as xoz

    path = tmp_path / "image.ome.zarr"
    data = write_hand_image(path, version)

    def add_second(doc: dict) -> None:
        second = copy.deepcopy(doc["multiscales"][0])
        second["name"] = "second"
        doc["multiscales"].append(second)

    _edit_ome(path, version, add_second)
    with pytest.warns(OmeZarrWarning, match=r"2 multiscales.*not read: \['second'\]") as caught:
        tree = xr.open_datatree(path, engine="ome-zarr")
    assert len(caught) == 1 and str(path) in str(caught[0].message)
    np.testing.assert_array_equal(tree["scale0"]["cells"].values, data)
    with pytest.warns(OmeZarrWarning, match="second") as caught:
        ds = xr.open_dataset(path, engine="ome-zarr", level=-1)
    assert len(caught) == 1 and ds["cells"].ndim == data.ndim
    copy_path = tmp_path / "copy.ome.zarr"
    xoz.to_ome_zarr(tree, copy_path, version=version)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OmeZarrWarning)  # one multiscale now: no warning
        again = xr.open_datatree(copy_path, engine="ome-zarr")
    np.testing.assert_array_equal(again["scale0"]["cells"].values, data)
    assert validate(copy_path) == []


# ---- the transitional omero block ----------------------------------------------------------

OMERO_FAULTS = {
    "window without max": lambda ch: ch[0]["window"].pop("max"),
    "colour a number": lambda ch: ch[1].update(color=255),
    "window not an object": lambda ch: ch[0].update(window=[0, 1]),
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("fault", list(OMERO_FAULTS))
def test_bad_omero_warns_and_keeps_the_pixels(fault, version, tmp_path):
    path = tmp_path / "image.ome.zarr"
    data = write_hand_image(path, version)
    _edit_ome(path, version, lambda doc: OMERO_FAULTS[fault](doc["omero"]["channels"]))
    with pytest.warns(OmeZarrWarning, match="omero") as caught:
        tree = xr.open_datatree(path, engine="ome-zarr")
    assert any(str(path) in str(w.message) for w in caught)
    np.testing.assert_array_equal(tree["scale0"]["cells"].values, data)
    assert list(tree["scale0"]["c"].values) == ["DAPI", "GFP"]
    with pytest.warns(OmeZarrWarning):
        ds = xr.open_dataset(path, engine="ome-zarr")
    np.testing.assert_array_equal(ds["cells"].values, data)
    problems = validate(path)
    assert problems and all(p.severity == "warning" for p in problems)
    assert all(p.key.startswith("omero/channels") for p in problems)
    assert any(p.severity == "error" for p in validate(path, strict=True))


@pytest.mark.parametrize("version", VERSIONS)
def test_omero_channel_count_mismatch_warns_and_keeps_the_pixels(version, tmp_path):
    path = tmp_path / "image.ome.zarr"
    data = write_hand_image(path, version)
    _edit_ome(path, version, lambda doc: doc["omero"]["channels"].pop())
    with pytest.warns(OmeZarrWarning, match="channel"):
        ds = xr.open_dataset(path, engine="ome-zarr")
    assert "c" not in ds.coords
    np.testing.assert_array_equal(ds["cells"].values, data)
    (problem,) = validate(path)
    assert (problem.severity, problem.key) == ("warning", "omero/channels")


@pytest.mark.parametrize("version", VERSIONS)
def test_omero_colour_with_hash_is_a_warning(version, tmp_path):
    path = tmp_path / "image.ome.zarr"
    write_hand_image(path, version)
    _edit_ome(path, version, lambda doc: doc["omero"]["channels"][1].update(color="#00ff00"))
    (problem,) = validate(path)
    assert (problem.severity, problem.key) == ("warning", "omero/channels/1/color")
    assert "'#00ff00'" in problem.message


# ---- the spec's own cases, in real stores --------------------------------------------------

#: Valid by the 0.4 suite, refused when the level is read: 2 scale values for 3 axes.
READ_REFUSED = {"0.4-image-valid-mismatch_axes_units"}


def _suite_params() -> list:
    return [
        pytest.param(ident, version, kind, doc, valid, id=ident)
        for version in VERSIONS
        for ident, kind, doc, valid in suite_cases(version)
    ]


def _write_case(path: Path, version: str, doc: dict) -> None:
    """A group holding ``doc``, with a small integer array at every dataset path it names."""
    root = zarr.open_group(path, mode="w", zarr_format=_zarr_format(version))
    ome = doc.get("ome", doc) if isinstance(doc, dict) else {}
    multiscales = ome.get("multiscales") if isinstance(ome, dict) else None
    multiscale = multiscales[0] if isinstance(multiscales, list) and multiscales else {}
    multiscale = multiscale if isinstance(multiscale, dict) else {}
    axes = multiscale.get("axes")
    axes = axes if isinstance(axes, list) else []
    names = [a.get("name", f"d{i}") if isinstance(a, dict) else str(a) for i, a in enumerate(axes)]
    names = names or ["y", "x"]
    channels = (ome.get("omero") or {}).get("channels") if isinstance(ome, dict) else None
    shape = tuple(len(channels) if n == "c" and channels else 4 for n in names)
    for dataset in multiscale.get("datasets") or []:
        p = dataset.get("path") if isinstance(dataset, dict) else None
        if isinstance(p, str) and p.strip("/"):
            _create_array(root, p.strip("/"), np.zeros(shape, "uint8"), names)
    root.attrs.put(doc)


@pytest.mark.parametrize(("ident", "version", "kind", "doc", "valid"), _suite_params())
def test_suite_case_in_a_real_store(ident, version, kind, doc, valid, tmp_path):
    path = tmp_path / "case.ome.zarr"
    _write_case(path, version, doc)
    strict = kind.startswith("strict_")
    errors = [p for p in validate(path, strict=strict) if p.severity == "error"]
    is_image = "multiscales" in doc.get("ome", doc)
    if valid and is_image:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OmeZarrWarning)
            if ident in READ_REFUSED:
                with pytest.raises(OmeZarrError, match="2 values for 3 axes"):
                    xr.open_datatree(path, engine="ome-zarr")
                assert [p.key for p in errors] == [
                    "multiscales/0/datasets/0/coordinateTransformations/0/scale"
                ]
                return
            xr.open_datatree(path, engine="ome-zarr")
        assert errors == []
    elif valid:
        # no wells or fields are written: those, and nothing else, are missing
        assert all("names no group" in p.message for p in errors), errors
    elif strict:
        assert errors
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                xr.open_datatree(path, engine="ome-zarr")
            except OmeZarrError as err:
                assert str(path) in str(err) and "node '/'" in str(err)
            else:  # the transitional omero block: warn, keep the pixels
                assert any(issubclass(w.category, OmeZarrWarning) for w in caught)
        if errors:
            return
        assert "omero" in doc.get("ome", doc)
        assert any(p.key.startswith("omero") for p in validate(path))


def _invalid_06_params() -> list:
    return [
        pytest.param(doc, strict, id=ident)
        for ident, _kind, doc, valid, strict in attribute_cases_06()
        if not valid
    ]


@pytest.mark.parametrize(("doc", "strict"), _invalid_06_params())
def test_invalid_06_case_in_a_real_store(doc, strict, tmp_path):
    path = tmp_path / "case.ome.zarr"
    zarr.open_group(path, mode="w", zarr_format=3, attributes=doc)
    with warnings.catch_warnings(record=True) as caught_warnings:
        warnings.simplefilter("always")
        try:
            xr.open_datatree(path, engine="ome-zarr")
        except OmeZarrError as err:
            assert str(path) in str(err)
        else:
            if strict:  # a SHOULD of the spec: validate(strict=True) reports it
                warned = []
            # liberal reading: only a fault that leaves the geometry determined (the
            # transitional omero block, the 0.6.dev spelling of input/output) opens, warned
            else:
                warned = [w for w in caught_warnings if issubclass(w.category, OmeZarrWarning)]
                assert warned
            assert all(str(path) in str(w.message) for w in warned)
            assert all(("omero" in str(w.message)) or ("0.6.dev" in str(w.message)) for w in warned)
    problems = validate(path, strict=True)
    errors = [p for p in problems if p.severity == "error"]
    assert errors and all(p.node == "/" for p in errors)


@pytest.mark.parametrize("version", VERSIONS)
def test_non_udunits_unit_is_a_warning_and_strict_error(version, tmp_path):
    path = _image(tmp_path, version)
    _edit_ome(path, version, lambda doc: doc["multiscales"][0]["axes"][-1].update(unit="um"))
    (problem,) = validate(path)
    assert problem.severity == "warning"
    assert problem.key.endswith("/unit") and "micrometer" in problem.message
    strict = [p for p in validate(path, strict=True) if p.key == problem.key]
    assert [p.severity for p in strict] == ["error"]
    xr.open_dataset(path, engine="ome-zarr")  # the pixels still open
