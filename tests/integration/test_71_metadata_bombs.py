"""Metadata bombs: absurd values are refused with OmeZarrError or opened lazily, within bounds.

Each store is metadata only (``zarr.json`` documents, no chunks). Each open runs in a child
process under an address-space limit (``RLIMIT_AS``) and a time limit: an out-of-memory
kill, a MemoryError or a hang fails the test, as would any exception but ``OmeZarrError``.
The children fork from one server process that imported xarray, zarr, dask and the package
once (multiprocessing's forkserver), so each starts as a fresh interpreter after those
imports would, without paying for them again.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(300)

#: Address space of the child: the interpreter with xarray, zarr and dask is about 0.6 GiB.
MEMORY_LIMIT = 2 * 2**30
#: Seconds each child may take: parsing a bomb's JSON (up to 100 MB) is most of it, and
#: the machine running the suite may be shared.
TIME_LIMIT = 180
MILLION = 10**6

AXES = [
    {"name": "y", "type": "space", "unit": "micrometer"},
    {"name": "x", "type": "space", "unit": "micrometer"},
]


def dataset(path: str = "0", scale: Any = (1.0, 1.0)) -> dict[str, Any]:
    return {"path": path, "coordinateTransformations": [{"type": "scale", "scale": list(scale)}]}


def image_attrs(**multiscale: Any) -> dict[str, Any]:
    ms = {"axes": AXES, "datasets": [dataset()], **multiscale}
    return {"ome": {"version": "0.5", "multiscales": [ms]}}


def group_json(path: Path, attributes: dict[str, Any] | str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if isinstance(attributes, str):  # raw JSON text of the attributes
        text = '{"zarr_format": 3, "node_type": "group", "attributes": ' + attributes + "}"
    else:
        text = json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attributes})
    (path / "zarr.json").write_text(text)


def array_json(path: Path, shape: list[int], chunks: list[int], dtype: str = "uint16") -> None:
    path.mkdir(parents=True, exist_ok=True)
    meta = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "dimension_names": ["y", "x"],
    }
    (path / "zarr.json").write_text(json.dumps(meta))


def image(path: Path, attrs: dict[str, Any] | str | None = None, shape=(64, 64), chunks=(32, 32)):
    group_json(path, image_attrs() if attrs is None else attrs)
    array_json(path / "0", list(shape), list(chunks))
    return path


#: What the forkserver imports once, before any child forks from it.
PRELOAD = ["xarray", "zarr", "dask.array", "xarray_ome_zarr", __name__]


def _child(path: str, call: str, out: str) -> None:
    """In the child: limit the address space, run ``call``, write the verdict line to ``out``
    (or the traceback of any other exception, and exit 1)."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    import xarray as xr

    import xarray_ome_zarr as xoz

    warnings.simplefilter("ignore")
    start = time.perf_counter()
    try:
        exec(call, {"xr": xr, "xoz": xoz, "path": path})  # noqa: S102 - the test's own call
    except xoz.OmeZarrError as err:
        verdict = f"REFUSED {time.perf_counter() - start} {str(err)[:300]}"
    except BaseException:
        Path(out).write_text(traceback.format_exc()[-3000:])
        raise SystemExit(1) from None
    else:
        verdict = f"OPENED {time.perf_counter() - start}"
    Path(out).write_text(verdict)


def open_in_child(path: Path, call: str = "xr.open_datatree(path, engine='ome-zarr')") -> str:
    """Run ``call`` (with ``path`` bound) in a memory-limited child; its verdict line."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    out = path.with_name(path.name + ".verdict")
    child = context.Process(target=_child, args=(str(path), call, str(out)))
    child.start()
    child.join(TIME_LIMIT)
    if child.is_alive():
        child.kill()
        child.join()
        raise AssertionError(f"no verdict within {TIME_LIMIT} s")
    report = out.read_text() if out.exists() else ""
    assert child.exitcode == 0, f"exit code {child.exitcode}\n{report}"
    verdict = report.strip().splitlines()[-1]
    assert len(verdict) < 1000, "messages must not repeat huge values"
    return verdict


def write_bomb(name: str, root: Path) -> Path:
    path = root / f"{name}.ome.zarr"
    if name == "shape-near-int64":
        return image(path, shape=(2**62, 2**62), chunks=(2**31, 2**31))
    if name == "shape-product-overflows":
        return image(path, shape=(2**63 - 1, 2**63 - 1), chunks=(1, 1))
    if name == "million-datasets":
        datasets = [{"path": "0"}] * MILLION
        return image(path, image_attrs(datasets=datasets))
    if name == "million-wells":
        wells = [{"path": "A/1", "rowIndex": 0, "columnIndex": 0}] * MILLION
        plate = {"rows": [{"name": "A"}], "columns": [{"name": "1"}], "wells": wells}
        group_json(path, {"ome": {"version": "0.5", "plate": plate}})
        return path
    if name == "million-channels":
        attrs = image_attrs()
        channels = [{"label": "c", "color": "FFFFFF"}] * MILLION
        attrs["ome"]["omero"] = {"channels": channels}
        return image(path, attrs)
    if name == "deep-json":
        depth = 100_000
        ome = json.dumps(image_attrs()["ome"])[:-1] + ', "x-deep": ' + "[" * depth + "]" * depth
        return image(path, '{"ome": ' + ome + "}}")
    if name == "huge-string":
        return image(path, image_attrs(name="n" * 100 * MILLION))
    if name == "scale-1e308":
        return image(path, image_attrs(datasets=[dataset(scale=(1e308, 1e308))]))
    if name == "scale-nan":
        text = json.dumps(image_attrs(datasets=[dataset(scale=(1.0, 1.0))]))
        return image(path, text.replace('"scale": [1.0, 1.0]', '"scale": [NaN, 1.0]'))
    if name == "negative-chunks":
        return image(path, chunks=(-4, 32))
    if name == "zero-chunks":
        return image(path, chunks=(0, 32))
    raise AssertionError(name)


#: What each bomb must give: "REFUSED" with these words in the message, or either verdict.
BOMBS = {
    "shape-near-int64": None,
    "shape-product-overflows": None,
    "million-datasets": "multiscales/0/datasets: lists 1000000 entries",
    "million-wells": "plate/wells: lists 1000000 entries",
    "million-channels": "omero/channels: lists 1000000 entries",
    "deep-json": None,
    "huge-string": None,
    "scale-1e308": "beyond the range of float64",
    "scale-nan": "scale",
    "negative-chunks": "chunk",
    "zero-chunks": "chunk shape (0, 32) has a size that is not positive",
}


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_bomb_is_refused_or_opened_within_bounds(bomb: str, tmp_path: Path) -> None:
    path = write_bomb(bomb, tmp_path)
    verdict = open_in_child(path)
    assert verdict.startswith(("REFUSED", "OPENED")), verdict
    if BOMBS[bomb] is not None:
        assert verdict.startswith("REFUSED"), verdict
        assert BOMBS[bomb] in verdict, verdict
