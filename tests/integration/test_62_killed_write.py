"""A write killed half-way (SIGKILL) never leaves something that opens as an image.

The writer is a real process, forked from a server that imported the libraries once
(``tests/processes.py``)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import xarray as xr

import xarray_ome_zarr as xoz

from ..processes import Child

CHILD = """
import sys, time
import dask
import dask.array as da
import numpy as np
import xarray as xr
import xarray_ome_zarr as xoz
import zarr

def slow(block):
    time.sleep(0.02)
    return block

# 128 MiB: the writer works in blocks of about 32 MiB, so it writes four times.
shape = (1, 256, 512, 512)
data = da.ones(shape, dtype="uint16", chunks=(1, 8, 128, 128)).map_blocks(slow)
image = xr.DataArray(
    data,
    dims=("c", "z", "y", "x"),
    coords={d: ("zyx".index(d) + np.arange(n) * 0.5) for d, n in zip("zyx", shape[1:])},
)
target = sys.argv[1]
if target.startswith("store:"):  # a store object: written in place, no rename at the end
    target = zarr.storage.LocalStore(target.removeprefix("store:"))
with dask.config.set(scheduler="synchronous"):
    xoz.to_ome_zarr(image, target, version=sys.argv[2], chunks=(1, 8, 128, 128), overwrite=True)
print("finished")
"""


def _chunk_files(root: Path) -> list[Path]:
    names = ("zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata")
    return [p for p in root.rglob("*") if p.is_file() and p.name not in names]


def _kill_mid_write(target: str, watch: Path, version: str) -> None:
    child = Child(CHILD, target, version)
    try:
        deadline = time.monotonic() + 300  # a hang guard: the child imports, under load
        while not _chunk_files(watch):
            assert child.poll() is None, "the writer ended before it could be interrupted"
            assert time.monotonic() < deadline, "the writer never started writing chunks"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def _does_not_open_as_an_image(path: Path) -> None:
    with pytest.raises(xoz.OmeZarrError):
        xr.open_datatree(path, engine="ome-zarr")
    with pytest.raises(xoz.OmeZarrError):
        xr.open_dataset(path, engine="ome-zarr")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_killed_write_to_a_new_directory(tmp_path, version):
    target = tmp_path / "new.ome.zarr"
    _kill_mid_write(str(target), tmp_path, version)
    _does_not_open_as_an_image(target)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_killed_write_to_a_store_object_leaves_no_metadata(tmp_path, version):
    """Written in place (no rename): arrays first, OME metadata last."""
    target = tmp_path / "store.ome.zarr"
    _kill_mid_write(f"store:{target}", target, version)
    assert _chunk_files(target), "the write was interrupted before any chunk landed"
    _does_not_open_as_an_image(target)
