"""The command as a Unix tool, run as a user runs it (a subprocess): stdout for results,
stderr for progress, warnings and errors; quiet when asked; pipes; remote options; JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import xarray_ome_zarr as xoz
from xarray_ome_zarr.cli import main, storage_option

from ..servers import s3_server, upload_tree

CLI = [sys.executable, "-m", "xarray_ome_zarr.cli"]


def run(*argv: str | Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "", **kwargs.pop("env", {})}
    return subprocess.run(
        [*CLI, *map(str, argv)], capture_output=True, text=True, timeout=300, env=env, **kwargs
    )


@pytest.fixture(scope="module")
def cells(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "cells.ome.zarr"
    assert main(["demo", str(path), "--quiet"]) == 0
    return path


# ---- info --json and xoz.info -------------------------------------------------------------
def test_info_json_is_the_python_twin(cells):
    done = run("info", cells, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary == xoz.info(cells)
    image, labels = summary["nodes"]
    assert image["kind"] == "image" and image["channels"] == ["DAPI", "GFP"]
    assert image["levels"][0]["shape"] == [2, 16, 128, 128]
    assert image["levels"][-1]["scale"] == {"z": 8.0, "y": 2.0, "x": 2.0}
    assert image["levels"][0]["translation"] == {"z": 0.5, "y": 0.125, "x": 0.125}
    assert labels["path"] == "/labels/nuclei" and labels["kind"] == "label image"


# ---- pipes, progress, quiet -------------------------------------------------------------------
def test_a_closed_pipe_ends_quietly(cells):
    process = subprocess.Popen(
        [*CLI, "info", str(cells), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # the reader went away before anything was written (as head does)
    status = process.wait(timeout=300)
    err = process.stderr.read()
    process.stderr.close()
    assert "Traceback" not in err and "BrokenPipe" not in err and err == ""
    assert status == 141


def test_head_through_a_shell_prints_no_error(cells):
    done = subprocess.run(
        f"{' '.join(CLI)} info {cells} --json | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout == "{\n" and done.stderr == ""


def test_progress_goes_to_stderr_only_when_asked_or_on_a_terminal(cells, tmp_path):
    done = run("convert", cells, tmp_path / "a.ome.zarr")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"wrote {tmp_path / 'a.ome.zarr'} (OME-Zarr 0.5)\n"
    assert done.stderr == ""  # not a terminal: no progress bar
    done = run("convert", cells, tmp_path / "b.ome.zarr", "--progress")
    assert done.returncode == 0, done.stderr
    assert "Completed" in done.stderr and "%" in done.stderr
    assert done.stdout == f"wrote {tmp_path / 'b.ome.zarr'} (OME-Zarr 0.5)\n"


def test_quiet_prints_nothing_but_errors(cells, tmp_path):
    for argv in (["convert", cells, tmp_path / "q.ome.zarr"], ["demo", tmp_path / "d.ome.zarr"]):
        done = run(*argv, "--quiet", "--progress")
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    done = run("convert", cells, tmp_path / "q.ome.zarr", "--quiet")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("xarray-ome-zarr: error: ") and "--overwrite" in done.stderr


# ---- warnings -------------------------------------------------------------------------------
@pytest.fixture
def two_multiscales(tmp_path) -> Path:
    """An image group with a second multiscale (read: the first, with a warning)."""
    path = tmp_path / "two.ome.zarr"
    xoz.to_ome_zarr(np.zeros((8, 8), dtype="uint8"), path)
    document = json.loads((path / "zarr.json").read_text())
    multiscales = document["attributes"]["ome"]["multiscales"]
    multiscales.append({**multiscales[0], "name": "other"})
    (path / "zarr.json").write_text(json.dumps(document))
    return path


@pytest.fixture
def zip_in_a_folder(cells, tmp_path) -> Path:
    """An .ozx whose hierarchy sits in a folder (read, with a warning)."""
    path = tmp_path / "folder.ozx"
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(cells.rglob("*")):
            if file.is_file():
                archive.write(file, "cells/" + file.relative_to(cells).as_posix())
    return path


@pytest.mark.parametrize("store", ["two_multiscales", "zip_in_a_folder"])
@pytest.mark.parametrize("command", ["info", "validate"])
def test_warnings_are_one_clean_line(request, store, command):
    path = request.getfixturevalue(store)
    done = run(command, path)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert all(line.startswith("warning: ") for line in lines), done.stderr
    assert len(set(lines)) == len(lines)
    assert "warnings.warn" not in done.stderr and "Warning:" not in done.stderr
    if command == "info":
        assert len(lines) == 1, done.stderr
    quiet = run(command, path, "--quiet")
    assert quiet.stderr == ""


# ---- remote stores ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bucket(cells):
    with s3_server() as server:
        fs = server.filesystem()
        server.make_bucket("cli")
        upload_tree(fs, cells, "cli/cells.ome.zarr")
        public = {  # a public bucket: anyone may list it and read its objects
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": ["s3:GetObject", "s3:ListBucket"],
                    "Resource": ["arn:aws:s3:::cli", "arn:aws:s3:::cli/*"],
                }
            ],
        }
        fs.call_s3("put_bucket_policy", Bucket="cli", Policy=json.dumps(public))
        yield server


def test_storage_options_reach_the_source_and_the_target(bucket, tmp_path):
    endpoint = f"endpoint_url={bucket.endpoint_url}"
    done = run("info", "s3://cli/cells.ome.zarr", "--storage-option", endpoint)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("/: image 'image', OME-Zarr 0.5")
    done = run("validate", "s3://cli/cells.ome.zarr", "--storage-option", endpoint)
    assert (done.returncode, done.stdout) == (0, "valid\n"), done.stderr
    done = run(
        "convert",
        "s3://cli/cells.ome.zarr",
        "s3://cli/copy.ome.zarr",
        "--storage-option",
        endpoint,
        "--target-storage-option",
        endpoint,
        "--version",
        "0.4",
    )
    assert done.returncode == 0, done.stderr
    copied = xr.open_datatree(
        "s3://cli/copy.ome.zarr", engine="ome-zarr", storage_options=bucket.storage_options
    )
    assert copied["scale0"]["image"].shape == (2, 16, 128, 128)


def test_anon_reads_without_credentials(bucket):
    no_credentials = {k: "" for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    done = run(
        "info",
        "s3://cli/cells.ome.zarr",
        "--anon",
        "--storage-option",
        f"endpoint_url={bucket.endpoint_url}",
        "--json",
        env=no_credentials,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["nodes"][0]["channels"] == ["DAPI", "GFP"]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("anon=true", ("anon", True)),
        ("timeout=3", ("timeout", 3)),
        ("endpoint_url=http://h:1/x=y", ("endpoint_url", "http://h:1/x=y")),
        ('client_kwargs={"region_name": "eu"}', ("client_kwargs", {"region_name": "eu"})),
    ],
)
def test_storage_option_values(text, parsed):
    assert storage_option(text) == parsed


def test_storage_option_without_equals_is_a_usage_error(cells):
    done = run("info", cells, "--storage-option", "anon")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "KEY=VALUE" in done.stderr


# ---- thumbnail -------------------------------------------------------------------------------
def test_thumbnail_is_the_smallest_level_in_its_colours(cells, tmp_path):
    image = pytest.importorskip("PIL.Image")
    done = run("info", cells, "--thumbnail", tmp_path / "t.png")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("/: image")
    pixels = image.open(tmp_path / "t.png").convert("RGB")
    assert pixels.size == (16, 16)
    ds = xr.open_dataset(cells, engine="ome-zarr", level=-1)
    np.testing.assert_array_equal(np.asarray(pixels), ds.ome.render().values)
    red, green, blue = np.asarray(pixels).reshape(-1, 3).max(axis=0)
    assert red == 0 and green > 0 and blue > 0  # DAPI blue, GFP green
