"""Run one measurement in a fresh interpreter; print one ``@@RESULT {json}`` line.

``python benchmarks/_worker.py '{"mode": "read", "who": "ours", ...}'``. Started by
``run.py``; every measurement gets its own process, so no library's imports, caches, thread
pools or heap of one contender influence another's.

Memory: peak resident-set growth, measured by the kernel. Before the measured call the
process's peak RSS (``VmHWM``) is reset to its current RSS by writing ``5`` to
``/proc/self/clear_refs``; afterwards growth = ``VmHWM - VmRSS(before)``. This catches every
page touched by any thread (numpy, decompressors, dask workers), short-lived spikes included,
with no sampling interval to miss them. Where ``clear_refs`` is not writable the worker falls
back to sampling RSS with psutil every millisecond (and says so in the result).
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


# ---- memory ------------------------------------------------------------------------------
def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def trim_heap() -> None:
    """Return freed heap memory to the OS (glibc ``malloc_trim``), where there is glibc.

    Without it, memory an earlier read freed but the allocator kept would be reused without
    raising the RSS, and the growth would understate what a read needs.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak RSS growth over a block of code (kernel high-water mark, else psutil sampling)."""

    def __init__(self, trim: bool = True) -> None:
        self.trim = trim
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            _status("VmHWM")
            self.method = "VmHWM"
        except OSError:
            self.method = "psutil-1ms"
        self._stop = threading.Event()
        self._peak = 0

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if self.trim:
            trim_heap()
        if self.method == "VmHWM":
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.base = _status("VmRSS")
        else:
            import psutil

            proc = psutil.Process()
            self.base = self._peak = proc.memory_info().rss

            def sample() -> None:
                while not self._stop.is_set():
                    self._peak = max(self._peak, proc.memory_info().rss)
                    time.sleep(0.001)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.method == "VmHWM":
            self.growth = _status("VmHWM") - self.base
        else:
            self._stop.set()
            self._thread.join()
            self.growth = self._peak - self.base


def timed(fn, trim: bool = True):  # type: ignore[no-untyped-def]
    """(result, {time, cpu, peak, mem_method}) of one call.

    ``cpu`` is the CPU time of the whole process (every thread) during the call: less
    sensitive than wall time to other work on the machine, so it is reported alongside.
    """
    gc.collect()
    with PeakMemory(trim) as mem:
        c0 = time.process_time()
        t0 = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - c0
    return out, {"time": seconds, "cpu": cpu, "peak": mem.growth, "mem_method": mem.method}


def fingerprint(a) -> list:  # type: ignore[no-untyped-def]
    """Shape and a cheap checksum of a sample of the pixels, to check everyone read the same."""
    import numpy as np

    a = np.asarray(a)
    return [list(a.shape), int(a[..., ::7, ::13, ::17].sum(dtype=np.int64))]


# ---- full-level reads, steady state ------------------------------------------------------
def readers(path: str):  # type: ignore[no-untyped-def]
    """The read contenders: each a function of nothing returning level 0 as an array."""

    def zarr_python():
        import zarr

        return lambda: zarr.open_array(f"{path}/0", mode="r")[...]

    def ours():
        import xarray as xr

        return lambda: xr.open_dataset(path, engine="ome-zarr")["image"].values

    def ours_dask():
        import xarray as xr

        return lambda: xr.open_dataset(path, engine="ome-zarr", chunks={})["image"].compute()

    def ngff():
        from ngff_zarr import from_ngff_zarr

        return lambda: from_ngff_zarr(path).images[0].data.compute()

    def omezarr():
        from ome_zarr.io import parse_url
        from ome_zarr.reader import Reader

        return lambda: list(Reader(parse_url(path))())[0].data[0].compute()

    def xrzarr():
        import xarray as xr

        return lambda: (
            xr.open_dataset(
                path, engine="zarr", chunks={}, consolidated=False, drop_variables=["1", "2"]
            )["0"].values
        )

    return {
        "zarr": zarr_python,
        "ours": ours,
        "ours_dask": ours_dask,
        "ngff": ngff,
        "omezarr": omezarr,
        "xrzarr": xrzarr,
    }


def mode_read(spec: dict) -> dict:
    """Warm up with one read, time ``reads`` more, then one more read for memory.

    Timed reads run as a long-lived program would run them: memory freed by earlier reads
    stays with the allocator and is reused. The memory read starts from a trimmed heap
    (``malloc_trim``), so its growth is what a read needs, not what the allocator still holds.
    """
    import statistics

    read = readers(spec["path"])[spec["who"]]()
    first = read()  # the first read: warms imports, caches, thread pools, the heap
    check = fingerprint(first)
    del first
    runs = []
    for _ in range(spec.get("reads", 1)):
        out, m = timed(read, trim=False)
        if fingerprint(out) != check:
            return {"error": "a later read differs from the first"}
        del out
        runs.append(m)
    out, mem = timed(read, trim=True)
    del out
    result = {k: statistics.median(r[k] for r in runs) for k in ("time", "cpu")}
    result.update(
        peak=mem["peak"],
        mem_method=mem["mem_method"],
        check=check,
        each=[{k: r[k] for k in ("time", "cpu")} for r in runs],
    )
    return result


# ---- fresh process -----------------------------------------------------------------------
FRESH = {
    "zarr": """
import time; t0 = time.perf_counter()
import zarr
t1 = time.perf_counter()
z = zarr.open_array(P + "/0", mode="r")
t2 = time.perf_counter()
a = z[...]
""",
    "ours": """
import time; t0 = time.perf_counter()
import xarray as xr
t1 = time.perf_counter()
ds = xr.open_dataset(P, engine="ome-zarr")
t2 = time.perf_counter()
a = ds["image"].values
""",
    "ngff": """
import time; t0 = time.perf_counter()
from ngff_zarr import from_ngff_zarr
t1 = time.perf_counter()
ms = from_ngff_zarr(P)
t2 = time.perf_counter()
a = ms.images[0].data.compute()
""",
}
FRESH_TAIL = """
t3 = time.perf_counter()
import json
print("@@RESULT " + json.dumps({"import": t1 - t0, "open": t2 - t1, "read": t3 - t2,
      "shape": list(a.shape)}))
"""


def fresh_code(who: str, path: str) -> str:
    """The whole program a fresh process runs for ``who`` (timed from outside by run.py)."""
    return f"P = {path!r}\n" + FRESH[who].strip() + FRESH_TAIL


# ---- opening over HTTP -------------------------------------------------------------------
def mode_http(spec: dict) -> dict:
    url, who = spec["url"], spec["who"]
    # Everyone's one-time imports happen before the clock starts.
    import aiohttp  # noqa: F401
    import dask.array  # noqa: F401
    import fsspec
    import fsspec.implementations.http  # noqa: F401
    import jsonschema  # noqa: F401
    import zarr  # noqa: F401

    if who.startswith("ours"):
        import xarray as xr

        import xarray_ome_zarr.backend  # noqa: F401
        import xarray_ome_zarr.reader  # noqa: F401

        xr.backends.list_engines()  # xarray's engine discovery is not ours to pay for here

        if who == "ours_level0":

            def op():
                return xr.open_dataset(url, engine="ome-zarr")

            def check(ds):
                return [list(ds["image"].shape)]
        else:

            def op():
                return xr.open_datatree(url, engine="ome-zarr")

            def check(dt):
                return [list(dt[f"scale{i}"]["image"].shape) for i in range(3)]
    elif who.startswith("ngff"):
        from ngff_zarr import from_ngff_zarr
        from ngff_zarr._remote_reader import remote_read_available

        # ngff-zarr reads URLs through obstore (its [remote] extra); without it, it takes a
        # key -> bytes mapping, here fsspec's (the same HTTP client the others use).
        variant = "url (obstore)" if remote_read_available() else "fsspec mapper"

        def op():
            if remote_read_available():
                return from_ngff_zarr(url)
            return from_ngff_zarr(fsspec.get_mapper(url))

        def check(ms):
            return [list(im.data.shape) for im in ms.images]
    elif who == "omezarr":
        from ome_zarr.io import parse_url
        from ome_zarr.reader import Reader

        def op():
            return list(Reader(parse_url(url))())

        def check(nodes):
            return [list(a.shape) for a in nodes[0].data]
    else:
        raise ValueError(who)
    t0 = time.perf_counter()
    obj = op()
    seconds = time.perf_counter() - t0
    result = {"time": seconds, "check": check(obj)}
    if who.startswith("ngff"):
        result["variant"] = variant
    return result


# ---- reading level 0 over a network (HTTP with latency, S3 on moto) ----------------------
def mode_remote(spec: dict) -> dict:
    """Open and read level 0 from a URL: one warm-up read, then ``reads`` timed ones.

    Every read opens the store again (as a one-liner does); the HTTP server's request count
    is taken by run.py around the whole process and divided by the reads (warm-up included).
    """
    import statistics

    url, who = spec["url"], spec["who"]
    options = spec.get("storage_options") or {}
    os.environ.update(spec.get("env") or {})
    import zarr

    if who == "ours":
        import xarray as xr

        import xarray_ome_zarr.reader  # noqa: F401

        xr.backends.list_engines()

        def read():  # type: ignore[no-untyped-def]
            ds = xr.open_dataset(url, engine="ome-zarr", storage_options=options or None)
            return ds["image"].values
    elif who == "zarr":

        def read():  # type: ignore[no-untyped-def]
            return zarr.open_array(f"{url}/0", mode="r", storage_options=options or None)[...]
    else:
        raise ValueError(who)
    first = read()
    check = fingerprint(first)
    del first
    runs = []
    for _ in range(spec.get("reads", 1)):
        out, m = timed(read, trim=False)
        if fingerprint(out) != check:
            return {"error": "a later read differs from the first"}
        del out
        runs.append(m)
    result = {k: statistics.median(r[k] for r in runs) for k in ("time", "cpu")}
    result.update(check=check, reads=1 + len(runs), peak=max(r["peak"] for r in runs))
    if who == "ours" and url.startswith("s3://"):  # who fetched the chunks
        from xarray_ome_zarr import s3_obstore

        result["variant"] = "chunks via obstore" if s3_obstore._STORES else "chunks via s3fs"
    return result


# ---- writing a pyramid -------------------------------------------------------------------
def _data_module():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(HERE))
    import _data

    return _data


def data_array(arr, labels=("DAPI", "GFP")):  # type: ignore[no-untyped-def]
    """A DataArray over ``arr`` (numpy or dask) with the pixel-centre coordinates of level 0."""
    import numpy as np
    import xarray as xr

    _data = _data_module()
    coords = {"c": list(labels[: arr.shape[0]])}
    for name, n, s in zip(_data.AXES[1:], arr.shape[1:], _data.SCALE0[1:], strict=True):
        coords[name] = xr.Variable(name, np.arange(n) * s, attrs={"units": "micrometer"})
    return xr.DataArray(arr, dims=_data.AXES, coords=coords, name="image")


_FACTORS: list = []


def ours_factors(scratch: str) -> list[int]:
    """The ``scale_factors`` that make our writer produce levels 2x and 4x smaller.

    ngff-zarr and ome-zarr-py read ``[2, 4]`` as factors from level 0 (2x, 4x);
    multiscale-spatial-image (and so xarray-ome-zarr, which follows it) reads each entry
    relative to the level before (``[2, 4]`` gives 2x and 8x). One tiny write tells which.
    """
    if not _FACTORS:
        import numpy as np
        import zarr

        from xarray_ome_zarr import to_ome_zarr

        probe = Path(scratch).with_name(Path(scratch).name + "-probe")
        shutil.rmtree(probe, ignore_errors=True)
        to_ome_zarr(data_array(np.zeros((1, 8, 8, 8), np.uint16)), str(probe), scale_factors=[2, 4])
        z = [a.shape[1] for a in _arrays_below(str(probe))]
        shutil.rmtree(probe, ignore_errors=True)
        del zarr
        _FACTORS.extend([2, 4] if z == [8, 4, 2] else [2, 2])
    return list(_FACTORS)


def writers():  # type: ignore[no-untyped-def]
    """The write contenders: each takes (numpy array, destination) and writes 3 levels."""
    _data = _data_module()
    scale = dict(zip(_data.AXES[1:], _data.SCALE0[1:], strict=True))
    units = {a: "micrometer" for a in _data.AXES[1:]}

    def ours(arr, dst):
        from xarray_ome_zarr import to_ome_zarr

        to_ome_zarr(data_array(arr), dst, scale_factors=ours_factors(dst))

    def ngff(arr, dst, method="ITKWASM_BIN_SHRINK"):
        import ngff_zarr as nz

        img = nz.to_ngff_image(
            arr,
            dims=list(_data.AXES),
            scale={"c": 1.0, **scale},
            translation={a: 0.0 for a in _data.AXES},
            axes_units=units,
            name="image",
        )
        ms = nz.to_multiscales(img, scale_factors=[2, 4], method=getattr(nz.Methods, method))
        nz.to_ngff_zarr(dst, ms, version="0.5")

    def ngff_dask(arr, dst):
        ngff(arr, dst, method="DASK_BIN_SHRINK")

    def omezarr(arr, dst):
        import warnings

        import zarr
        from ome_zarr.scale import Methods
        from ome_zarr.writer import write_image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write_image(
                arr,
                zarr.open_group(dst, mode="w"),
                scale_factors=[{a: f for a in _data.AXES[1:]} for f in (2, 4)],
                method=Methods.LOCAL_MEAN,
                axes="".join(_data.AXES),
                scale=scale,
                axes_units=units,
            )

    return {"ours": ours, "ngff": ngff, "ngff_dask": ngff_dask, "omezarr": omezarr}


def _arrays_below(path: str) -> list:
    """The arrays of an OME-Zarr image, in the order of its multiscale datasets."""
    import zarr

    group = zarr.open_group(path, mode="r")
    attrs = group.attrs.asdict()
    ome = attrs.get("ome", attrs)
    return [group[d["path"]] for d in ome["multiscales"][0]["datasets"]]


def describe_output(path: str, arr) -> dict:  # type: ignore[no-untyped-def]
    """Size on disk, levels, chunks, codecs, and whether level 1 is the 2x2x2 block mean."""
    import numpy as np

    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    levels = _arrays_below(path)
    info = {
        "bytes": size,
        "files": sum(len(files) for _, _, files in os.walk(path)),
        "levels": [list(a.shape) for a in levels],
        "chunks": [list(a.chunks) for a in levels],
        "shards": [list(a.shards) if a.shards else None for a in levels],
        "codecs": repr(levels[0].compressors),
    }
    if arr is not None and len(levels) > 1:
        part = np.asarray(arr[:1, :8, :64, :64], dtype=np.float64)
        want = part.reshape(1, 4, 2, 32, 2, 32, 2).mean(axis=(2, 4, 6))
        got = np.asarray(levels[1][:1, :4, :32, :32], dtype=np.float64)
        info["level1_max_abs_diff_from_block_mean"] = float(np.abs(got - want).max())
    return info


def mode_write(spec: dict) -> dict:
    import numpy as np
    import zarr

    write = writers()[spec["who"]]
    arr = zarr.open_array(spec["path"] + "/0", mode="r")[...]  # the input, in memory
    dst = Path(spec["dst"])
    warm = dst.with_name(dst.name + "-warmup")
    # One small write first: one-time costs (imports, wasm compilation, thread pools) are
    # not what this benchmark compares.
    write(np.ascontiguousarray(arr[:, :8, :64, :64]), str(warm))
    shutil.rmtree(warm, ignore_errors=True)
    _, m = timed(lambda: write(arr, str(dst)))
    result = {**m, "output": describe_output(str(dst), arr)}
    if spec["who"] == "ours":
        result["variant"] = f"scale_factors={ours_factors(str(dst))}"
    return result


def mode_lazy(spec: dict) -> dict:
    _data = _data_module()
    from xarray_ome_zarr import to_ome_zarr

    image = _data.ImageSpec(tuple(spec["shape"]), tuple(spec["chunks"]))
    da = data_array(_data.lazy_image(image))
    dst = spec["dst"]
    factors = ours_factors(dst)
    _, m = timed(lambda: to_ome_zarr(da, dst, scale_factors=factors))
    return {
        **m,
        "input_bytes": image.nbytes,
        "output": describe_output(dst, None),
        "variant": f"scale_factors={factors}",
    }


MODES = {
    "read": mode_read,
    "remote": mode_remote,
    "http": mode_http,
    "write": mode_write,
    "lazy": mode_lazy,
}


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        result = MODES[spec["mode"]](spec)
    except Exception as err:  # reported in the table, not a crash of the whole run
        import traceback

        traceback.print_exc()
        result = {"error": f"{type(err).__name__}: {err}"[:300]}
    print("@@RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
