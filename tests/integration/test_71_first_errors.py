"""Errors a new user meets first say what is wrong, run as a user runs them.

The command runs in a subprocess where the process is the point (one line on a real stderr,
a module that cannot be imported), else through the same ``main()`` in this process (a fresh
interpreter per command costs seconds of imports)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import xarray_ome_zarr as xoz
from xarray_ome_zarr import OmeZarrError, OmeZarrWarning
from xarray_ome_zarr.cli import main

CLI = [sys.executable, "-m", "xarray_ome_zarr.cli"]


def cli(*argv) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *map(str, argv)], capture_output=True, text=True, timeout=300, env=os.environ
    )


def cli_here(capsys: pytest.CaptureFixture[str], *argv) -> subprocess.CompletedProcess:
    """The command run in this process, reported as ``cli`` reports a subprocess."""
    capsys.readouterr()
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(argv, status, out, err)


def one_error_line(done: subprocess.CompletedProcess, *words: str) -> str:
    assert done.returncode == 2, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("xarray-ome-zarr: error: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def cells(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("errors") / "cells.ome.zarr"
    xoz.to_ome_zarr(np.zeros((2, 4, 16, 16), "uint16"), path, scale_factors=[2])
    return path


def test_an_array_where_a_group_was_expected(cells, capsys):
    line = one_error_line(cli_here(capsys, "info", cells / "0"), "is an array, not a group")
    assert f"its image is the parent group {str(cells)!r}" in line
    with pytest.raises(OmeZarrError, match="its image is the parent group '/'") as caught:
        xr.open_dataset(cells, engine="ome-zarr", group="0")
    assert caught.value.node == "/0"


def test_a_regular_file_is_not_a_store(tmp_path):
    picture = tmp_path / "picture.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n")
    one_error_line(cli("info", picture), "picture.png", "is a file, not a zarr store")


@pytest.mark.parametrize(("version", "document"), [("0.5", "zarr.json"), ("0.4", ".zattrs")])
def test_corrupt_json_names_the_file_and_the_position(tmp_path, version, document, capsys):
    path = tmp_path / "bad.ome.zarr"
    xoz.to_ome_zarr(np.zeros((4, 4), "uint8"), path, version=version)
    text = (path / document).read_text()
    (path / document).write_text(text[:40])
    for command in ("info", "validate"):
        done = cli_here(capsys, command, path)
        line = one_error_line(done, document, "not valid JSON", "line ", "column ")
        assert "JSONDecodeError" not in line
    with pytest.raises(OmeZarrError) as caught:
        xr.open_datatree(path, engine="ome-zarr")
    assert caught.value.key == document


@pytest.mark.parametrize(
    ("version", "document"),
    [("0.5", "1/zarr.json"), ("0.4", "1/.zarray"), ("0.5", "labels/zarr.json")],
)
def test_corrupt_json_below_the_root_names_the_file(tmp_path, version, document):
    """A level's or child group's document that is not JSON: named, with the position."""
    path = tmp_path / "bad.ome.zarr"
    image = xr.DataArray(np.zeros((8, 8), "uint8"), dims=("y", "x"))
    tree = xoz.to_multiscale(image, [2])
    tree["labels/cells"] = xoz.to_multiscale(image.astype("uint16"), [2])
    xoz.to_ome_zarr(tree, path, version=version)
    (path / document).write_text((path / document).read_text()[:30])
    words = (repr(document), "is not valid JSON", "line ", "column ")
    if document.startswith("labels"):  # a broken child is left out with a warning
        with pytest.warns(OmeZarrWarning) as caught:
            xr.open_datatree(path, engine="ome-zarr")
        texts = [str(w.message) for w in caught if issubclass(w.category, OmeZarrWarning)]
    else:
        with pytest.raises(OmeZarrError) as raised:
            xr.open_datatree(path, engine="ome-zarr")
        texts = [str(raised.value)]
    assert any(all(word in text for word in words) for text in texts), texts
    problems = [p.message for p in xoz.validate(path)]
    assert any(all(word in text for word in words) for text in problems), problems


def _sabotage_staging(block: np.ndarray, target: Path) -> np.ndarray:
    """Replace the writer's staging directory by a file while the pixels are computed."""
    for staged in target.parent.glob(f".{target.name}.*"):
        if staged.is_dir():
            import shutil

            shutil.rmtree(staged, ignore_errors=True)
            staged.write_text("in the way")
    return block


def test_a_failed_write_names_the_target_not_the_staging_directory(tmp_path):
    target = tmp_path / "nope.ome.zarr"
    pixels = da.zeros((64, 64), chunks=(8, 8), dtype="uint8")
    image = xoz.image(pixels.map_blocks(_sabotage_staging, target, dtype="uint8"))
    with pytest.raises(OmeZarrError) as caught:
        xoz.to_ome_zarr(image, target, chunks=8)
    message = str(caught.value)
    assert ".xoz-" not in message and "nope.ome.zarr" in message and "cannot write" in message
    assert not target.exists()


def _without(modules: list[str], code: str) -> subprocess.CompletedProcess:
    blocked = "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    return subprocess.run(
        [sys.executable, "-c", f"import sys\n{blocked}{code}"],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x.ome.zarr", "s3://bucket/x.ome.zarr"])
def test_a_missing_remote_dependency_names_the_extra(url):
    done = _without(
        ["aiohttp", "s3fs"],
        f"from xarray_ome_zarr.cli import main\nsys.exit(main(['info', {url!r}]))",
    )
    assert done.returncode == 2
    assert "pip install 'xarray-ome-zarr[remote]'" in done.stderr and "Traceback" not in done.stderr


def test_writing_to_s3_without_s3fs_names_the_extra():
    done = _without(
        ["s3fs"],
        "import numpy as np, xarray_ome_zarr as xoz\n"
        "try:\n    xoz.to_ome_zarr(np.zeros((4, 4), 'u1'), 's3://bucket/y.ome.zarr')\n"
        "except xoz.OmeZarrError as err:\n    print(err)\n",
    )
    assert "pip install 'xarray-ome-zarr[remote]'" in done.stdout, done.stderr


def test_msi_without_the_extra_explains(cells):
    done = _without(
        ["multiscale_spatial_image"],
        "import xarray as xr, xarray_ome_zarr as xoz\n"
        f"dt = xr.open_datatree({str(cells)!r}, engine='ome-zarr')\n"
        "try:\n    dt.msi\nexcept xoz.OmeZarrError as err:\n    print(err)\n",
    )
    assert "pip install 'xarray-ome-zarr[msi]'" in done.stdout, done.stderr
