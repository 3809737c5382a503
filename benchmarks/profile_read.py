#!/usr/bin/env python
"""Where xarray-ome-zarr's read paths spend their time and memory.

    python benchmarks/profile_read.py [--quick] [--only imports|open|values|dask|http]

Standard library only (plus what the benchmarks use), so it runs wherever run.py runs:

- imports: a fresh ``xr.open_dataset(..., engine="ome-zarr")`` + ``.values`` under
  ``python -X importtime``, import time summed per top-level package, and the call site that
  first imported each heavy package (an import hook records the stack);
- open: cProfile of the first open in a process (imports already done) and of a later one;
- values / dask: a wall-clock sampler over *all* threads (``sys._current_frames`` every
  millisecond; zarr decodes in its own threads, where cProfile cannot see) for ours and for
  zarr-python side by side, and tracemalloc's view of the allocations alive at the peak;
- http: the request timeline of opening the image over a 20 ms/request server: how many
  requests, and how many sequential waves of round trips.
"""

# ruff: noqa: E501  (code run in child processes is kept as literal source text)
from __future__ import annotations

import argparse
import collections
import cProfile
import gc
import io
import json
import os
import pstats
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _data  # noqa: E402
from _http import DelayedHTTPServer  # noqa: E402

SECTIONS = ("imports", "fresh", "open", "values", "dask", "http")


def title(text: str) -> None:
    print(f"\n## {text}\n", flush=True)


# ---- imports -----------------------------------------------------------------------------
HOOK = r"""
import sys, traceback, importlib.abc
WATCH = {"dask", "dask.array", "jsonschema", "referencing", "kerchunk", "scipy", "pandas",
         "zarr", "fsspec", "aiohttp", "xarray_ome_zarr.reader", "xarray_ome_zarr.accessor",
         "xarray_ome_zarr.validation", "xarray_ome_zarr.writer", "distributed", "numcodecs",
         "spatial_image", "pydoc", "psutil", "attr", "charset_normalizer", "requests",
         "scipy.fft", "scipy.sparse", "xarray_ome_zarr.multiscale", "xarray_ome_zarr.adapters"}
SEEN = {}
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name in WATCH and name not in SEEN and name not in sys.modules:
            stack = traceback.extract_stack()[:-1]
            if any(f.filename.endswith(("importlib/util.py", "importlib.util>")) for f in stack):
                return None  # importlib.util.find_spec: a probe, not an import
            keep = [f for f in stack if "importlib" not in f.filename and "<frozen" not in f.filename]
            SEEN[name] = [f"{f.filename.split('site-packages/')[-1].split('/src/')[-1]}:{f.lineno} {f.name}" for f in keep[-6:]]
        return None
sys.meta_path.insert(0, Watch())
"""


def code_for(who: str, path: str) -> str:
    if who == "ours":
        return (
            f"import xarray as xr\nds = xr.open_dataset({path!r}, engine='ome-zarr')\n"
            "a = ds['image'].values\n"
        )
    if who == "ours_direct":
        return (
            "import xarray as xr\nfrom xarray_ome_zarr.backend import OmeZarrBackendEntrypoint"
            f"\nds = xr.open_dataset({path!r}, engine=OmeZarrBackendEntrypoint)\n"
            "a = ds['image'].values\n"
        )
    if who == "ngff":
        return (
            f"from ngff_zarr import from_ngff_zarr\nms = from_ngff_zarr({path!r})\n"
            "a = ms.images[0].data.compute()\n"
        )
    if who == "zarr":
        return f"import zarr\na = zarr.open_array({path!r} + '/0', mode='r')[...]\n"
    raise ValueError(who)


def importtime(code: str) -> tuple[dict[str, float], float]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True
    )
    per_pkg: dict[str, float] = collections.defaultdict(float)
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.split(":", 1)[1].split("|")
        try:
            self_us = int(parts[0])
        except ValueError:
            continue
        name = parts[2].strip()
        per_pkg[name.split(".")[0]] += self_us / 1e6
    return dict(per_pkg), sum(per_pkg.values())


def section_imports(data: dict) -> None:
    title("imports: a fresh process that opens level 0 and reads it")
    path = data["source"]
    rows = {}
    for who in ("ours", "ours_direct", "ngff", "zarr"):
        per_pkg, total = importtime(code_for(who, path))
        rows[who] = (per_pkg, total)
    pkgs = sorted(
        {p for per, _ in rows.values() for p in per},
        key=lambda p: -max(rows[w][0].get(p, 0) for w in rows),
    )[:22]
    print("import time per top-level package (self time summed, ms; `-X importtime`):\n")
    print("| package | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))
    for p in pkgs:
        print(f"| {p} | " + " | ".join(f"{rows[w][0].get(p, 0) * 1000:.0f}" for w in rows) + " |")
    print("| **total** | " + " | ".join(f"**{rows[w][1] * 1000:.0f}**" for w in rows) + " |")
    print(
        "\nours_direct = `xr.open_dataset(path, engine=OmeZarrBackendEntrypoint)`: passing the "
        "class skips xarray's engine discovery (which imports every installed backend)."
    )

    # Phases of a fresh process, and who first imports each heavy package.
    probe = (
        HOOK + "import time; t0 = time.perf_counter()\nimport xarray as xr\n"
        "t1 = time.perf_counter(); xr.backends.list_engines(); t2 = time.perf_counter()\n"
        f"ds = xr.open_dataset({path!r}, engine='ome-zarr'); t3 = time.perf_counter()\n"
        f"ds2 = xr.open_dataset({path!r}, engine='ome-zarr'); t4 = time.perf_counter()\n"
        "a = ds['image'].values; t5 = time.perf_counter()\n"
        "import json; print('@@' + json.dumps({'import xarray': t1 - t0, "
        "'xarray engine discovery (list_engines)': t2 - t1, 'first open': t3 - t2, "
        "'second open': t4 - t3, 'read .values': t5 - t4, 'first imports': SEEN}))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    line = [x for x in proc.stdout.splitlines() if x.startswith("@@")]
    if not line:
        print(proc.stderr[-2000:])
        return
    info = json.loads(line[0][2:])
    seen = info.pop("first imports")
    print("\nphases of a fresh process (ours, wall clock):\n")
    for k, v in info.items():
        print(f"- {k}: {v * 1000:.0f} ms")
    print("\nwho first imports each heavy package (innermost frames last):\n")
    for name, stack in seen.items():
        print(f"- `{name}`: " + " → ".join(stack[-6:]))


# ---- fresh process: what the proposed changes would save ------------------------------------
NO_DASK_PATCH = """
import types, xarray_ome_zarr.reader as R
from xarray.core.variable import Variable
def _variable(dims, data, attrs=None, encoding=None):
    # what reader.py would do: numpy coordinates passed with fastpath=True, so xarray's
    # as_compatible_data never asks whether they are dask arrays (importing dask.array)
    return Variable(dims, data, attrs, encoding, fastpath=True)
R.xr = types.SimpleNamespace(**{k: getattr(xr, k) for k in dir(xr) if not k.startswith('__')})
R.xr.Variable = _variable
"""


def fresh_variant(name: str, path: str) -> str:
    head = "import time, sys\nt0 = time.perf_counter()\nimport xarray as xr\n"
    engine, kwargs = "'ome-zarr'", ""
    patch = ""
    if "no-dask" in name:
        patch = NO_DASK_PATCH
    if "no-validate" in name:
        kwargs = ", validate=False"
    if "class" in name:
        head += "from xarray_ome_zarr.backend import OmeZarrBackendEntrypoint\n"
        engine = "OmeZarrBackendEntrypoint"
    if name == "ngff-zarr":
        return (
            "import time, sys\nt0 = time.perf_counter()\n"
            + code_for("ngff", path)
            + "print('@@', 'dask.array' in sys.modules)"
        )
    if name == "zarr-python":
        return (
            "import time, sys\nt0 = time.perf_counter()\n"
            + code_for("zarr", path)
            + "print('@@', 'dask.array' in sys.modules)"
        )
    return (
        head + patch + f"ds = xr.open_dataset({path!r}, engine={engine}{kwargs})\n"
        "a = ds['image'].values\nprint('@@', 'dask.array' in sys.modules, "
        "'jsonschema' in sys.modules, 'kerchunk' in sys.modules)"
    )


def section_fresh(data: dict, repeat: int = 5) -> None:
    import resource
    import statistics

    title("fresh process: import, open, read level 0 — what each proposed change saves")
    path = data["source"]
    names = [
        "ngff-zarr",
        "zarr-python",
        "ours (as is)",
        "ours no-dask",
        "ours no-dask no-validate",
        "ours no-dask no-validate class",
    ]
    walls: dict[str, list[float]] = {n: [] for n in names}
    cpus: dict[str, list[float]] = {n: [] for n in names}
    flags: dict[str, str] = {}
    for r in range(repeat):
        for name in names if r % 2 == 0 else names[::-1]:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", fresh_variant(name, path)], capture_output=True, text=True
            )
            walls[name].append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            out = [x for x in proc.stdout.splitlines() if x.startswith("@@")]
            flags[name] = out[0][3:] if out else proc.stderr.strip().splitlines()[-1:]
    ref_w = statistics.median(walls["ngff-zarr"])
    ref_c = statistics.median(cpus["ngff-zarr"])
    print(
        f"{repeat} alternating runs each; medians. no-dask: coordinates built without "
        "xarray importing dask.array; no-validate: validate=False (no jsonschema); class: "
        "engine=OmeZarrBackendEntrypoint (no engine discovery).\n"
    )
    print(
        "| variant | wall | / ngff-zarr | CPU | / ngff-zarr | dask.array, jsonschema, "
        "kerchunk imported |"
    )
    print("|---|---|---|---|---|---|")
    for name in names:
        w, c = statistics.median(walls[name]), statistics.median(cpus[name])
        print(
            f"| {name} | {w:.2f} s | {w / ref_w:.2f}× | {c:.2f} s | {c / ref_c:.2f}× | "
            f"{flags[name]} |"
        )


# ---- cProfile of open ----------------------------------------------------------------------
def cprofile(fn, limit: int = 25, sort: str = "cumulative", pattern: str | None = None) -> float:
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    fn()
    prof.disable()
    dt = time.perf_counter() - t0
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats(sort)
    if pattern:
        stats.print_stats(pattern, limit)
    else:
        stats.print_stats(limit)
    text = out.getvalue()
    text = text.replace(str(Path(sys.prefix)), "<prefix>").replace(str(HERE.parent), "<repo>")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    print("```")
    print("\n".join(lines[start:]))
    print("```")
    return dt


def section_open(data: dict) -> None:
    import xarray as xr

    import xarray_ome_zarr.backend  # noqa: F401
    import xarray_ome_zarr.reader  # noqa: F401

    path = data["source"]
    xr.backends.list_engines()
    title("open: cProfile of the first xr.open_dataset in a process (imports done before)")
    dt = cprofile(lambda: xr.open_dataset(path, engine="ome-zarr"), limit=30)
    print(f"\nfirst open: {dt * 1000:.0f} ms")
    title("open: cProfile of a later open (steady state)")
    dt = cprofile(lambda: xr.open_dataset(path, engine="ome-zarr"), limit=20)
    print(f"\nlater open: {dt * 1000:.0f} ms")
    n = 20
    for validate in (True, False):
        t0 = time.perf_counter()
        for _ in range(n):
            xr.open_dataset(path, engine="ome-zarr", validate=validate)
        print(
            f"- steady-state open, validate={validate}: "
            f"{(time.perf_counter() - t0) / n * 1000:.1f} ms"
        )
    import zarr

    t0 = time.perf_counter()
    for _ in range(n):
        zarr.open_array(f"{path}/0", mode="r")
    print(
        f"- zarr.open_array of level 0 (for scale): {(time.perf_counter() - t0) / n * 1000:.1f} ms"
    )
    t0 = time.perf_counter()
    for _ in range(n):
        xr.open_datatree(path, engine="ome-zarr")
    print(
        f"- steady-state open_datatree (3 levels): {(time.perf_counter() - t0) / n * 1000:.1f} ms"
    )


# ---- sampling all threads ------------------------------------------------------------------
IDLE = {
    ("threading.py", "wait"),
    ("selectors.py", "select"),
    ("queue.py", "get"),
    ("thread.py", "_worker"),
    ("base_events.py", "_run_once"),
    ("threading.py", "_wait_for_tstate_lock"),
    ("concurrent/futures/_base.py", "result"),
    ("_base.py", "result"),
    ("_base.py", "wait"),
}


def _short(code) -> str:  # type: ignore[no-untyped-def]
    fn = code.co_filename
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in fn:
            fn = fn.split(marker, 1)[1]
            break
    return f"{fn}:{code.co_name}"


class Sampler:
    """Samples the Python stack of every other thread every ``interval`` seconds."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.leaf: collections.Counter[str] = collections.Counter()
        self.inclusive: collections.Counter[str] = collections.Counter()
        self.busy = 0
        self.total = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.is_set():
            for tid, frame in sys._current_frames().items():
                if tid == me:
                    continue
                code = frame.f_code
                base = os.path.basename(code.co_filename)
                self.total += 1
                if (base, code.co_name) in IDLE or any(
                    code.co_filename.endswith(f) and code.co_name == n for f, n in IDLE
                ):
                    continue
                self.busy += 1
                self.leaf[_short(code)] += 1
                seen = set()
                f = frame
                while f is not None:
                    name = _short(f.f_code)
                    if name not in seen:
                        seen.add(name)
                        self.inclusive[name] += 1
                    f = f.f_back
            time.sleep(self.interval)

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self, top: int = 12, include: tuple[str, ...] = ()) -> None:
        print(
            f"busy samples {self.busy} (of {self.total} thread-samples); "
            "top innermost Python frames (where the time is spent, C calls inside):\n"
        )
        for name, n in self.leaf.most_common(top):
            print(f"  {100 * n / max(self.busy, 1):5.1f}%  {name}")
        if include:
            print("\n  inclusive (frame anywhere on a busy stack), selected:")
            for name, n in self.inclusive.most_common():
                if any(s in name for s in include):
                    print(f"  {100 * n / max(self.busy, 1):5.1f}%  {name}")


def peak_allocations(fn, top: int = 8) -> None:  # type: ignore[no-untyped-def]
    """Run ``fn`` under tracemalloc; show the allocation sites alive near the traced peak."""
    tracemalloc.start(12)
    best: dict = {"peak": 0, "snap": None}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            cur, _ = tracemalloc.get_traced_memory()
            if cur > best["peak"] + 16 * 2**20:
                best["peak"] = cur
                best["snap"] = tracemalloc.take_snapshot()
            time.sleep(0.002)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    out = fn()
    stop.set()
    t.join()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"tracemalloc: traced peak {peak / 2**20:.0f} MiB for a "
        f"{getattr(out, 'nbytes', 0) / 2**20:.0f} MiB result; alive near the peak "
        f"({best['peak'] / 2**20:.0f} MiB), by allocation site:\n"
    )
    if best["snap"] is None:
        return
    stats = best["snap"].statistics("traceback")
    for st in stats[:top]:
        frames = [
            f"{Path(fr.filename).name}:{fr.lineno}"
            for fr in st.traceback
            if "tracemalloc" not in fr.filename
        ][-4:]
        print(f"  {st.size / 2**20:7.1f} MiB in {st.count:4d} blocks  " + " ← ".join(frames[::-1]))


def steady(fn, repeat: int = 3):  # type: ignore[no-untyped-def]
    fn()
    gc.collect()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        del out
        gc.collect()
    return min(times)


def section_values(data: dict, chunks: bool) -> None:
    import numpy as np
    import xarray as xr
    import zarr

    path = data["source"]
    if chunks:
        ours = lambda: xr.open_dataset(path, engine="ome-zarr", chunks={})["image"].compute()  # noqa: E731
        label = "chunks={} + .compute()"
    else:
        ours = lambda: xr.open_dataset(path, engine="ome-zarr")["image"].values  # noqa: E731
        label = ".values"
    ref = lambda: zarr.open_array(f"{path}/0", mode="r")[...]  # noqa: E731
    title(f"read level 0 with {label}, steady state: ours vs zarr-python")
    print(
        f"zarr config: {zarr.config.get('async')}, threading {zarr.config.get('threading')}, "
        f"codec_pipeline {zarr.config.get('codec_pipeline.path')}\n"
    )
    for name, fn in (("zarr-python", ref), (f"ours {label}", ours)):
        best = steady(fn)
        with Sampler() as s:
            t0 = time.perf_counter()
            c0 = time.process_time()
            out = fn()
            cpu = time.process_time() - c0
            dt = time.perf_counter() - t0
        print(
            f"### {name}: best of 3 {best * 1000:.0f} ms; sampled run {dt * 1000:.0f} ms wall, "
            f"{cpu * 1000:.0f} ms CPU; result {type(out).__name__} "
            f"{np.asarray(out).nbytes / 2**20:.0f} MiB\n"
        )
        s.report(
            include=(
                "xarray_ome_zarr",
                "xarray/core/indexing",
                "dask/threaded",
                "dask/local",
                "zarr/core/array.py:_get_selection",
                "codec_pipeline",
                "numcodecs",
            )
        )
        print()
        del out
        gc.collect()
        peak_allocations(fn)
        print()
    if chunks:
        ds = xr.open_dataset(path, engine="ome-zarr", chunks={})
        arr = ds["image"].data
        graph = dict(arr.__dask_graph__())
        t0 = time.perf_counter()
        for _ in range(5):
            xr.open_dataset(path, engine="ome-zarr", chunks={})
        per_open = (time.perf_counter() - t0) / 5
        print(
            f"dask: {arr.npartitions} chunks {arr.chunksize}, {len(graph)} graph keys; "
            f"open with chunks={{}} (graph construction) {per_open * 1000:.1f} ms"
        )


# ---- http ----------------------------------------------------------------------------------
HTTP_CLIENT = r"""
import sys, json, time
import aiohttp, fsspec, fsspec.implementations.http, zarr, dask.array, jsonschema
who, url = sys.argv[1], sys.argv[2]
if who == "ours":
    import xarray as xr, xarray_ome_zarr.reader
    xr.backends.list_engines()
    op = lambda: xr.open_datatree(url, engine="ome-zarr")
elif who == "ngff":
    from ngff_zarr import from_ngff_zarr
    from ngff_zarr._remote_reader import remote_read_available
    op = (lambda: from_ngff_zarr(url)) if remote_read_available() else (lambda: from_ngff_zarr(fsspec.get_mapper(url)))
else:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    op = lambda: list(Reader(parse_url(url))())
print("@@START", time.perf_counter(), flush=True)
t0 = time.perf_counter(); op(); print("@@" + json.dumps(time.perf_counter() - t0))
"""


def section_http(data: dict) -> None:
    title("open the 3-level image over HTTP (20 ms per request): request timelines")
    folder = Path(data["folder"])
    for store in (Path(data["source"]).name, Path(data["consolidated"]).name):
        with DelayedHTTPServer(folder, 0.020) as server:
            for who in ("ours", "ngff", "omezarr"):
                server.reset()
                proc = subprocess.run(
                    [sys.executable, "-c", HTTP_CLIENT, who, f"{server.url}/{store}"],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "PYTHONWARNINGS": "ignore"},
                )
                res = [
                    x for x in proc.stdout.splitlines() if x.startswith("@@") and "START" not in x
                ]
                if not res:
                    print(f"### {who} on {store}: failed: {proc.stderr.strip().splitlines()[-1:]}")
                    continue
                snap = server.snapshot()
                with server._lock:
                    timeline = sorted(server.timeline)
                t0 = timeline[0][0] if timeline else 0.0
                print(
                    f"### {who} on {store}: {json.loads(res[0][2:]) * 1000:.0f} ms, "
                    f"{snap['total']} requests in {snap['waves']} sequential waves\n"
                )
                print("```")
                for start, end, method, status, p in timeline:
                    print(
                        f"  {1000 * (start - t0):7.1f} → {1000 * (end - t0):7.1f} ms  "
                        f"{method} {status} {p}"
                    )
                print("```")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", action="append", choices=SECTIONS)
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(os.environ.get("XOZ_BENCH_CACHE", HERE / ".cache"))
    )
    args = parser.parse_args()
    data = _data.ensure_data(args.cache_dir, args.quick)
    print(
        f"# profile of xarray-ome-zarr's read paths on {data['source']} "
        f"{tuple(data['image']['shape'])}"
    )
    for section in args.only or SECTIONS:
        if section == "imports":
            section_imports(data)
        elif section == "fresh":
            section_fresh(data)
        elif section == "open":
            section_open(data)
        elif section == "values":
            section_values(data, chunks=False)
        elif section == "dask":
            section_values(data, chunks=True)
        elif section == "http":
            section_http(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
