"""The command as a Unix tool: stdout for results, stderr for progress, warnings and errors;
quiet when asked; pipes; remote options; JSON.

Most checks call ``main()`` in this process (what the console script calls), with stdout and
stderr captured and not a terminal: a fresh interpreter per command costs seconds of imports.
What only a real process shows (a closed pipe, a shell pipeline, stderr free of anything
printed outside ``main()``) runs the command as a user runs it, in a subprocess."""

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


def cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of the command run in this process."""
    capsys.readouterr()  # nothing printed before belongs to this command
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


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
def test_info_json_is_the_python_twin(cells, capsys):
    status, out, err = cli(capsys, "info", cells, "--json")
    assert status == 0, err
    summary = json.loads(out)
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


def test_progress_goes_to_stderr_only_when_asked_or_on_a_terminal(cells, tmp_path, capsys):
    assert not sys.stderr.isatty()  # captured here, as in a pipe
    status, out, err = cli(capsys, "convert", cells, tmp_path / "a.ome.zarr")
    assert status == 0, err
    assert out == f"wrote {tmp_path / 'a.ome.zarr'} (OME-Zarr 0.5)\n"
    assert err == ""  # not a terminal: no progress bar
    status, out, err = cli(capsys, "convert", cells, tmp_path / "b.ome.zarr", "--progress")
    assert status == 0, err
    assert "Completed" in err and "%" in err
    assert out == f"wrote {tmp_path / 'b.ome.zarr'} (OME-Zarr 0.5)\n"


def test_quiet_prints_nothing_but_errors(cells, tmp_path, capsys):
    # a real process: nothing at all on stderr, not even from imports or at exit
    done = run("demo", tmp_path / "d.ome.zarr", "--quiet", "--progress")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    argv = ["convert", cells, tmp_path / "q.ome.zarr"]
    assert cli(capsys, *argv, "--quiet", "--progress") == (0, "", "")
    status, out, err = cli(capsys, *argv, "--quiet")
    assert status == 2 and out == ""
    assert err.startswith("xarray-ome-zarr: error: ") and "--overwrite" in err


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


def _assert_clean_warning_lines(command: str, err: str) -> None:
    lines = err.splitlines()
    assert all(line.startswith("warning: ") for line in lines), err
    assert len(set(lines)) == len(lines)
    assert "warnings.warn" not in err and "Warning:" not in err
    if command == "info":
        assert len(lines) == 1, err


@pytest.mark.parametrize("store", ["two_multiscales", "zip_in_a_folder"])
@pytest.mark.parametrize("command", ["info", "validate"])
def test_warnings_are_one_clean_line(request, store, command, capsys):
    path = request.getfixturevalue(store)
    status, _, err = cli(capsys, command, path)
    assert status == 0, err
    _assert_clean_warning_lines(command, err)
    assert cli(capsys, command, path, "--quiet")[2] == ""


def test_warnings_are_one_clean_line_in_a_real_process(zip_in_a_folder):
    """A fresh interpreter: its default warning filters, imports and exit add nothing (its
    quiet twin: ``demo --quiet`` in test_quiet_prints_nothing_but_errors)."""
    done = run("info", zip_in_a_folder)
    assert done.returncode == 0, done.stderr
    _assert_clean_warning_lines("info", done.stderr)


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


@pytest.fixture
def fresh_s3fs():
    """No S3 filesystem cached by earlier tests: the commands find only those made from the
    options this test gives them, as in a new process."""
    s3fs = pytest.importorskip("s3fs")
    s3fs.S3FileSystem.clear_instance_cache()  # others keep theirs; new ones are made
    yield


def test_storage_options_reach_the_source_and_the_target(bucket, fresh_s3fs, capsys):
    endpoint = f"endpoint_url={bucket.endpoint_url}"
    status, out, err = cli(capsys, "info", "s3://cli/cells.ome.zarr", "--storage-option", endpoint)
    assert status == 0, err
    assert out.startswith("/: image 'image', OME-Zarr 0.5")
    status, out, err = cli(
        capsys, "validate", "s3://cli/cells.ome.zarr", "--storage-option", endpoint
    )
    assert (status, out) == (0, "valid\n"), err
    status, out, err = cli(
        capsys,
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
    assert status == 0, err
    copied = xr.open_datatree(
        "s3://cli/copy.ome.zarr", engine="ome-zarr", storage_options=bucket.storage_options
    )
    assert copied["scale0"]["image"].shape == (2, 16, 128, 128)


#: Commands run in-process one after another (as test_storage_options_reach_the_source_and_
#: the_target runs them), then the filesystem cache dropped and collected, as a long-lived
#: process (or a test fixture) may do: every aiohttp session a command opened must be closed.
IN_PROCESS_COMMANDS = """
import gc, sys
import s3fs
from xarray_ome_zarr.cli import main
endpoint = sys.argv[1]
source, target = "s3://cli/cells.ome.zarr", "s3://cli/sessions.ome.zarr"
for argv in (
    ["info", source, "--storage-option", endpoint],
    ["validate", source, "--storage-option", endpoint],
    ["convert", source, target, "--storage-option", endpoint,
     "--target-storage-option", endpoint, "--quiet", "--overwrite"],
):
    assert main(argv) == 0, argv
s3fs.S3FileSystem.clear_instance_cache()
gc.collect()
"""


def test_commands_close_the_sessions_they_open(bucket):
    endpoint = f"endpoint_url={bucket.endpoint_url}"
    done = subprocess.run(
        [sys.executable, "-c", IN_PROCESS_COMMANDS, endpoint],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": ""},
    )
    assert done.returncode == 0, done.stderr
    assert "Unclosed" not in done.stderr, done.stderr
    done = run("info", "s3://cli/cells.ome.zarr", "--storage-option", endpoint)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_anon_reads_without_credentials(bucket, fresh_s3fs, capsys, monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "")
    status, out, err = cli(
        capsys,
        "info",
        "s3://cli/cells.ome.zarr",
        "--anon",
        "--storage-option",
        f"endpoint_url={bucket.endpoint_url}",
        "--json",
    )
    assert status == 0, err
    assert json.loads(out)["nodes"][0]["channels"] == ["DAPI", "GFP"]


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


def test_storage_option_without_equals_is_a_usage_error(cells, capsys):
    status, _, err = cli(capsys, "info", cells, "--storage-option", "anon")
    assert status == 2
    assert err.count("\n") == 1 and "KEY=VALUE" in err


# ---- thumbnail -------------------------------------------------------------------------------
def test_thumbnail_is_the_smallest_level_in_its_colours(cells, tmp_path, capsys):
    image = pytest.importorskip("PIL.Image")
    status, out, err = cli(capsys, "info", cells, "--thumbnail", tmp_path / "t.png")
    assert status == 0, err
    assert out.startswith("/: image")
    pixels = image.open(tmp_path / "t.png").convert("RGB")
    assert pixels.size == (16, 16)
    ds = xr.open_dataset(cells, engine="ome-zarr", level=-1)
    np.testing.assert_array_equal(np.asarray(pixels), ds.ome.render().values)
    red, green, blue = np.asarray(pixels).reshape(-1, 3).max(axis=0)
    assert red == 0 and green > 0 and blue > 0  # DAPI blue, GFP green
