"""The public names: each loads on first use, and help() shows its parameters and examples."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import xarray_ome_zarr as xoz

FUNCTIONS = [
    "build_pyramid",
    "image",
    "info",
    "open_ome_dataset",
    "open_ome_datatree",
    "to_multiscale",
    "to_ome_zarr",
    "to_spatial_image",
    "validate",
    "write_metadata",
]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_help_shows_parameters_and_examples(name):
    function = getattr(xoz, name)
    doc = inspect.getdoc(function) or ""
    assert "see :func:" not in doc.split("\n", 1)[0], doc
    for section in ("Parameters", "Examples"):
        assert f"{section}\n--" in doc, f"{name}: no {section} section"
    for parameter in inspect.signature(function).parameters:
        assert parameter.lstrip("*") in doc, f"{name}: {parameter} undocumented"


def test_every_public_name_is_listed_and_loads():
    for name in xoz.__all__:
        assert getattr(xoz, name) is not None
    assert set(FUNCTIONS) <= set(xoz.__all__) <= set(dir(xoz))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = xoz.nope


def test_public_functions_are_the_documented_ones():
    from xarray_ome_zarr import writer

    assert xoz.to_ome_zarr is writer.to_ome_zarr


def test_import_loads_no_writer_or_reader():
    code = (
        "import sys, xarray_ome_zarr as xoz\n"
        "loaded = [m for m in ('xarray_ome_zarr.writer', 'xarray_ome_zarr.reader', 'zarr', "
        "'xarray_ome_zarr.render') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
