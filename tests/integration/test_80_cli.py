"""The ``xarray-ome-zarr`` command: info, validate, convert, demo; one-line errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

import xarray_ome_zarr as xoz
from xarray_ome_zarr import validate
from xarray_ome_zarr.cli import chunk_spec, main

from ..conftest import write_hand_image
from ..fixtures.stores import angle_store, hand_sharded_image, ome_zarr_py_plate

COMMANDS = ["info", "validate", "convert", "demo"]
HAS_WRITER = hasattr(xoz, "to_ome_zarr")
needs_writer = pytest.mark.skipif(not HAS_WRITER, reason="xarray_ome_zarr.to_ome_zarr missing")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _assert_one_error_line(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("xarray-ome-zarr: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], err


@pytest.fixture(params=["0.4", "0.5"])
def image(request, tmp_path) -> Path:
    path = tmp_path / f"image-{request.param}.ome.zarr"
    write_hand_image(path, request.param)
    return path


# ---- help, version, usage errors -----------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_help_on_every_subcommand(command, capsys):
    status, out, _ = _run(capsys, command, "--help")
    assert status == 0
    assert out.startswith(f"usage: xarray-ome-zarr {command}")


def test_help_and_version(capsys):
    status, out, _ = _run(capsys, "--help")
    assert status == 0
    for command in COMMANDS:
        assert command in out
    status, out, _ = _run(capsys, "--version")
    assert (status, out.strip()) == (0, f"xarray-ome-zarr {xoz.__version__}")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ([], ["COMMAND"]),
        (["bogus"], ["bogus"]),
        (["info"], ["PATH"]),
        (["validate", "a", "--nope"], ["--nope"]),
        (["convert", "a", "b", "--chunks", "z=0"], ["--chunks", "z=0"]),
        (["convert", "a", "b", "--shards", "y=1,y=2"], ["--shards", "twice"]),
        (["convert", "a", "b", "--version", "0.3"], ["--version", "0.3"]),
    ],
)
def test_usage_errors_are_one_line(argv, words, capsys):
    status, out, err = _run(capsys, *argv)
    assert status == 2 and out == ""
    _assert_one_error_line(err, *words)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("64", 64),
        (" 7 ", 7),
        ("z=32,y=256,x=256", {"z": 32, "y": 256, "x": 256}),
        ("x=1", {"x": 1}),
    ],
)
def test_chunk_spec(text, expected):
    assert chunk_spec(text) == expected


@pytest.mark.parametrize("text", ["0", "-3", "abc", "z=", "=4", "z=4,,y=2", "z=1.5", ""])
def test_bad_chunk_spec(text):
    with pytest.raises(Exception, match="'"):
        chunk_spec(text)


# ---- info ----------------------------------------------------------------------------------


def test_info_prints_levels_geometry_and_channels(image, capsys):
    status, out, err = _run(capsys, "info", str(image))
    assert status == 0, err
    version = "0.5" if image.name.endswith("0.5.ome.zarr") else "0.4"
    assert out.startswith(f"/: image 'cells', OME-Zarr {version}")
    for text in [
        "c (channel), z (space, micrometer), y (space, micrometer), x (space, micrometer)",
        "channels  DAPI, GFP",
        "2×5×13×11",
        "2×5×7×6",
        "uint16",
        "1×2×5×4",
        "scale (z y x)",
        "2 0.5 0.25",
        "10 -3 1.5",
        "2 1 0.5",
        "10 -2.75 1.625",
    ]:
        assert text in out, out


def test_info_columns_are_aligned(image, capsys):
    _, out, _ = _run(capsys, "info", str(image))
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.strip().startswith("level"))
    table = lines[header : header + 3]
    for column in ("path", "shape", "dtype", "chunks", "scale"):
        start = table[0].index(column)
        for row in table[1:]:
            assert row[start - 2 : start] == "  " and row[start] != " ", (column, table)


def test_info_labels_shards_plate(tmp_path, capsys):
    image = tmp_path / "image.ome.zarr"
    write_hand_image(image, "0.5")
    labels = zarr.open_group(image, mode="r+").require_group("labels")
    labels.attrs.put({"ome": {"version": "0.5", "labels": ["nuclei"]}})
    nuclei = labels.require_group("nuclei")
    array = nuclei.create_array("0", shape=(5, 13, 11), dtype="uint8", dimension_names="zyx")
    array[...] = 1
    axes = [{"name": d, "type": "space", "unit": "micrometer"} for d in "zyx"]
    nuclei.attrs.put(
        {
            "ome": {
                "version": "0.5",
                "multiscales": [
                    {
                        "axes": axes,
                        "datasets": [
                            {
                                "path": "0",
                                "coordinateTransformations": [
                                    {"type": "scale", "scale": [2.0, 0.5, 0.25]}
                                ],
                            }
                        ],
                    }
                ],
                "image-label": {"colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}]},
            }
        }
    )
    _, out, _ = _run(capsys, "info", str(image))
    assert "labels    nuclei" in out
    assert "/labels/nuclei: label image, OME-Zarr 0.5" in out
    assert "5×13×11  uint8" in out

    sharded = hand_sharded_image(tmp_path).path
    _, out, _ = _run(capsys, "info", str(sharded))
    assert "1×2×8×8  1×2×16×24" in out  # chunks, then shards

    plate = ome_zarr_py_plate(tmp_path, "0.4").path
    status, out, _ = _run(capsys, "info", str(plate))
    assert status == 0
    assert "/: plate 'test plate', 2 rows × 2 columns (A-B × 1-2), 3 wells" in out
    assert "/A/1: well, 2 fields (0, 1)" in out
    assert "/B/2/0: image" in out


def test_info_shows_a_custom_axis_geometry(tmp_path, capsys):
    """An axis of a custom type (``angle``, scale 90, translation 45) is listed with its
    scale and translation, as space and time axes are."""
    angle_store(tmp_path / "a.ome.zarr")
    _, out, _ = _run(capsys, "info", str(tmp_path / "a.ome.zarr"))
    assert "scale (angle y x)" in out and "translation (angle y x)" in out
    assert "90 0.325 0.325" in out and "45 87654.3 1.5" in out
    level = xoz.info(tmp_path / "a.ome.zarr")["nodes"][0]["levels"][0]
    assert level["scale"] == {"angle": 90.0, "y": 0.325, "x": 0.325}
    assert level["translation"] == {"angle": 45.0, "y": 87654.321, "x": 1.5}


def test_info_on_nothing_is_one_error_line(tmp_path, capsys):
    missing = tmp_path / "missing.ome.zarr"
    status, out, err = _run(capsys, "info", str(missing))
    assert status == 2 and out == ""
    _assert_one_error_line(err, str(missing))


def test_info_on_a_broken_store_is_one_error_line(image, capsys):
    shutil.rmtree(image / "1")
    status, _, err = _run(capsys, "info", str(image))
    assert status == 2
    _assert_one_error_line(err, str(image), "multiscales/0/datasets/1/path")


# ---- validate ------------------------------------------------------------------------------


def test_validate_valid_store(image, capsys):
    status, out, _ = _run(capsys, "validate", str(image))
    assert (status, out) == (0, "valid\n")


def test_validate_lists_every_error_and_fails(image, capsys):
    shutil.rmtree(image / "1")
    zarr.open_group(image, mode="r+").require_group("labels").attrs.put(
        {"ome": {"version": "0.5", "labels": ["gone"]}}
        if image.name.endswith("0.5.ome.zarr")
        else {"labels": ["gone"]}
    )
    status, out, _ = _run(capsys, "validate", str(image))
    assert status == 1
    lines = out.splitlines()
    assert lines[0].startswith("error / multiscales/0/datasets/1/path: ")
    assert lines[1].startswith("error /labels labels/0: ")
    assert lines[-1] == "invalid (2 errors)"


def test_validate_warnings_pass_unless_strict(image, capsys):
    def edit(doc: dict) -> None:
        doc["omero"]["channels"][0]["window"].pop("max")

    group = zarr.open_group(image, mode="r+")
    attrs = group.attrs.asdict()
    edit(attrs.get("ome", attrs))
    group.attrs.put(attrs)
    status, out, _ = _run(capsys, "validate", str(image))
    assert status == 0
    assert out.splitlines()[0].startswith("warning / omero/channels/0/window: ")
    assert out.splitlines()[-1] == "valid (1 warning)"
    status, out, _ = _run(capsys, "validate", "--strict", str(image))
    assert status == 1
    assert "error / omero/channels/0/window: " in out


def test_validate_read_chunks(image, capsys):
    metadata = ("zarr.json", ".zarray", ".zattrs")
    chunks = [p for p in (image / "0").rglob("*") if p.is_file() and p.name not in metadata]
    sorted(chunks)[0].write_bytes(b"garbage")
    assert _run(capsys, "validate", str(image))[0] == 0
    status, out, _ = _run(capsys, "validate", "--read-chunks", str(image))
    assert status == 1
    assert "cannot read" in out


def test_validate_on_nothing_is_one_error_line(tmp_path, capsys):
    status, _, err = _run(capsys, "validate", str(tmp_path / "nope"))
    assert status == 2
    _assert_one_error_line(err, "nope")


# ---- convert and demo ----------------------------------------------------------------------


@needs_writer
def test_demo_writes_a_valid_image_with_labels(tmp_path, capsys):
    dst = tmp_path / "demo.ome.zarr"
    status, out, err = _run(capsys, "demo", str(dst))
    assert status == 0, err
    assert str(dst) in out
    assert validate(dst) == []
    tree = xr.open_datatree(dst, engine="ome-zarr")
    assert list(tree["scale0"].coords["c"].values) == ["DAPI", "GFP"]
    assert len([n for n in tree.children if n.startswith("scale")]) == 3
    assert tree["scale0"]["z"].attrs["units"] == "micrometer"
    label = tree["labels/nuclei/scale0"]
    (name,) = label.data_vars
    assert label[name].dtype.kind in "iu" and int(label[name].max()) > 0
    status, out, _ = _run(capsys, "info", str(dst))
    assert status == 0 and "labels    nuclei" in out
    status, _, err = _run(capsys, "demo", str(dst))  # exists, no --overwrite
    assert status == 2
    _assert_one_error_line(err)


@needs_writer
def test_convert_changes_version_and_chunks(image, tmp_path, capsys):
    dst = tmp_path / "converted.ome.zarr"
    target = "0.4" if image.name.endswith("0.5.ome.zarr") else "0.5"
    argv = ["convert", str(image), str(dst), "--version", target, "--chunks", "z=5,y=8,x=8"]
    status, _, err = _run(capsys, *argv)
    assert status == 0, err
    assert validate(dst) == []
    assert (dst / ("zarr.json" if target == "0.5" else ".zattrs")).is_file()
    before = xr.open_dataset(image, engine="ome-zarr")
    after = xr.open_dataset(dst, engine="ome-zarr")
    np.testing.assert_array_equal(after["cells"].values, before["cells"].values)
    xr.testing.assert_equal(after.coords.to_dataset(), before.coords.to_dataset())
    assert after["cells"].encoding["chunks"][1:] == (5, 8, 8)
    status, _, err = _run(capsys, *argv)  # exists, no --overwrite
    assert status == 2
    _assert_one_error_line(err)


# ---- the installed console script ----------------------------------------------------------


def _console_script() -> str:
    beside = Path(sys.executable).with_name("xarray-ome-zarr")
    found = str(beside) if beside.is_file() else shutil.which("xarray-ome-zarr")
    if found is None:
        pytest.skip("the xarray-ome-zarr console script is not installed")
    return found


def test_console_script(image, tmp_path):
    script = _console_script()
    # both at once: each is a fresh interpreter whose start is mostly imports
    info, missing = (
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for argv in ([script, "info", str(image)], [script, "validate", str(tmp_path / "missing")])
    )
    try:
        out, err = info.communicate(timeout=120)
        assert info.returncode == 0, err
        assert "channels  DAPI, GFP" in out
        _, err = missing.communicate(timeout=120)
        assert missing.returncode == 2
        _assert_one_error_line(err, "missing")
    finally:
        for child in (info, missing):
            child.kill()  # no-op for one that ended
            child.communicate()
