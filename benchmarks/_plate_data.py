"""Benchmark plates: OME-Zarr 0.5 HCS plates written with zarr-python directly.

One field image (``c=1, y=x=64`` uint16, 3 levels of 64, 32 and 16 pixels, one chunk per
level) is written with zarr-python; every field of every well is a copy of its files. The
plate and well documents are written as the spec lays them out. Built once into the cache
directory and reused while ``PLATE_VERSION`` and the layout are unchanged.
"""

from __future__ import annotations

import json
import shutil
import string
import warnings
from pathlib import Path

import numpy as np

#: Bumped whenever the generated content or layout changes, to invalidate old caches.
PLATE_VERSION = 1
LEVELS = 3
SIZE = 64

#: name -> (rows, columns, fields per well)
PLATES = {"plate-384": (16, 24, 2), "plate-96": (8, 12, 2)}


def field_attributes() -> dict:
    """The ``ome`` block of one field image (0.5)."""
    datasets = [
        {
            "path": str(i),
            "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, 0.5 * 2**i, 0.5 * 2**i]},
                {"type": "translation", "translation": [0.0, 0.25 * (2**i - 1), 0.25 * (2**i - 1)]},
            ],
        }
        for i in range(LEVELS)
    ]
    axes = [
        {"name": "c", "type": "channel"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    return {
        "version": "0.5",
        "multiscales": [{"name": "image", "axes": axes, "datasets": datasets}],
        "omero": {
            "channels": [
                {
                    "label": "DAPI",
                    "color": "0000FF",
                    "active": True,
                    "window": {"start": 0, "end": 4000, "min": 0, "max": 65535},
                }
            ]
        },
    }


def write_field(path: Path) -> None:
    """One field image, written with zarr-python."""
    import zarr

    root = zarr.open_group(zarr.storage.LocalStore(path), mode="w", zarr_format=3)
    rng = np.random.default_rng(0)
    for i in range(LEVELS):
        n = SIZE >> i
        arr = root.create_array(
            str(i), shape=(1, n, n), chunks=(1, n, n), dtype="uint16", dimension_names="cyx"
        )
        arr[...] = rng.integers(0, 4000, size=(1, n, n), dtype=np.uint16)
    root.attrs["ome"] = field_attributes()


def _write_group(path: Path, ome: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    doc = {"zarr_format": 3, "node_type": "group", "attributes": {"ome": ome}}
    (path / "zarr.json").write_text(json.dumps(doc))


def write_plate(path: Path, rows: int, columns: int, fields: int) -> None:
    """A plate of ``rows`` x ``columns`` wells of ``fields`` fields each."""
    if path.exists():
        shutil.rmtree(path)
    tmp = path.with_name(path.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    field = tmp.with_name(tmp.name + ".field")
    if field.exists():
        shutil.rmtree(field)
    write_field(field)
    row_names = list(string.ascii_uppercase[:rows])
    column_names = [str(j + 1) for j in range(columns)]
    wells = []
    for r, row in enumerate(row_names):
        for c, column in enumerate(column_names):
            well = tmp / row / column
            _write_group(
                well,
                {"version": "0.5", "well": {"images": [{"path": str(f)} for f in range(fields)]}},
            )
            for f in range(fields):
                shutil.copytree(field, well / str(f))
            wells.append({"path": f"{row}/{column}", "rowIndex": r, "columnIndex": c})
    for row in row_names:
        doc = {"zarr_format": 3, "node_type": "group", "attributes": {}}
        (tmp / row / "zarr.json").write_text(json.dumps(doc))
    plate = {
        "name": path.name,
        "rows": [{"name": n} for n in row_names],
        "columns": [{"name": n} for n in column_names],
        "wells": wells,
        "field_count": fields,
    }
    _write_group(tmp, {"version": "0.5", "plate": plate})
    shutil.rmtree(field)
    tmp.rename(path)


def consolidate(path: Path) -> None:
    """Consolidate the plate's metadata in place (zarr-python)."""
    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "consolidated metadata is not part of zarr v3 spec"
        zarr.consolidate_metadata(zarr.storage.LocalStore(path))


def ensure_plates(cache: Path) -> dict[str, str]:
    """Build (or reuse) the plates, plain and consolidated; their paths by name."""
    folder = cache / "plates"
    marker = folder / "plate-params.json"
    params = {"version": PLATE_VERSION, "plates": PLATES, "levels": LEVELS, "size": SIZE}
    params = json.loads(json.dumps(params))
    fresh = not (marker.is_file() and json.loads(marker.read_text()) == params)
    out = {}
    if fresh:
        folder.mkdir(parents=True, exist_ok=True)
        if marker.exists():
            marker.unlink()
    for name, (rows, columns, fields) in PLATES.items():
        plain, cons = folder / f"{name}.ome.zarr", folder / f"{name}-consolidated.ome.zarr"
        if fresh:
            print(f"building {name} ({rows}x{columns} wells, {fields} fields) ...", flush=True)
            write_plate(plain, rows, columns, fields)
            if cons.exists():
                shutil.rmtree(cons)
            shutil.copytree(plain, cons)
            consolidate(cons)
        out[name], out[f"{name}-consolidated"] = str(plain), str(cons)
    if fresh:
        marker.write_text(json.dumps(params))
    return out
