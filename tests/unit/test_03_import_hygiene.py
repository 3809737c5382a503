"""What a fresh process imports: the heavy optional modules only when they are used.

A fresh process that imports the package, opens a level and reads it (issue 16's "fresh
process") must not pay for dask, distributed, fsspec's network stack, the S3 client or
scipy; importing the package must not load the schema validator (jsonschema) either. Each check
runs in its own interpreter and looks at ``sys.modules`` (never at the clock).
"""

from __future__ import annotations

import json
import subprocess
import sys

from ..conftest import write_hand_image

#: Never imported by ``import xarray_ome_zarr``.
NOT_ON_IMPORT = (
    "dask",
    "distributed",
    "fsspec",
    "aiohttp",
    "s3fs",
    "jsonschema",
    "referencing",
    "scipy",
    "spatial_image",
    "multiscale_spatial_image",
    "xarray_ome_zarr.writer",
)
#: Never imported by opening a local level without ``chunks=`` and reading it.
NOT_ON_READ = (
    "dask",
    "distributed",
    "aiohttp",
    "s3fs",
    "scipy",
    "spatial_image",
    "multiscale_spatial_image",
    "xarray_ome_zarr.writer",
)


def loaded_after(code: str, watch: tuple[str, ...]) -> list[str]:
    """The modules of ``watch`` that a fresh interpreter has loaded after running ``code``."""
    program = (
        f"{code}\nimport sys, json\n"
        f"print(json.dumps([m for m in {list(watch)!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], check=True, capture_output=True, text=True
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_import_loads_no_heavy_optional_module():
    assert loaded_after("import xarray_ome_zarr", NOT_ON_IMPORT) == []


def test_open_and_read_a_level_loads_no_dask(tmp_path):
    write_hand_image(tmp_path / "img.zarr", "0.5")
    code = (
        "import xarray as xr\n"
        f"ds = xr.open_dataset({str(tmp_path / 'img.zarr')!r}, engine='ome-zarr')\n"
        "values = ds[next(iter(ds.data_vars))].values\n"
        "assert values.size and 'c' in ds.coords\n"  # channel names: a pandas index
    )
    assert loaded_after(code, NOT_ON_READ) == []
