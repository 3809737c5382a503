#!/usr/bin/env python
"""Benchmarks of xarray-ome-zarr against zarr-python, ngff-zarr and ome-zarr-py (issue 7).

    python benchmarks/run.py                 # the full run (about 8 minutes on 2 cores)
    python benchmarks/run.py --quick         # a small image, fewer repeats (about 2 minutes)
    python benchmarks/run.py --only read     # one group: read, chunks, fresh, http, write, lazy

Every figure is a ratio measured side by side in this run: each measurement runs in its own
fresh Python process, the contenders of a group take turns round after round (the order
reversed every other round, so each pair alternates who goes first), and a ratio is the
median of ours over the median of the reference. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _data  # noqa: E402
from _http import DelayedHTTPServer, HTTPServerProcess, S3ServerProcess  # noqa: E402
from _worker import fresh_code  # noqa: E402

WORKER = HERE / "_worker.py"
READS = 3  # measured reads per process after the warm-up read (their median is the run's)
GROUPS = ("read", "sharded", "chunks", "fresh", "http", "remote", "write", "lazy")
HTTP_DELAY = 0.020
#: Paths of metadata documents (every other GET is a chunk).
METADATA = ("zarr.json", ".zattrs", ".zarray", ".zgroup", ".zmetadata")
MiB = 2**20
GiB = 2**30

NAMES = {
    "zarr": "zarr-python",
    "ours": "xarray-ome-zarr",
    "ours_dask": "xarray-ome-zarr chunks={}",
    "ours_level0": "xarray-ome-zarr open_dataset (1 level)",
    "ours_cons": "xarray-ome-zarr, consolidated store",
    "ngff": "ngff-zarr",
    "ngff_dask": "ngff-zarr DASK_BIN_SHRINK",
    "ngff_cons": "ngff-zarr, consolidated store",
    "omezarr": "ome-zarr-py",
    "http_ours": "xarray-ome-zarr over HTTP",
    "http_zarr": "zarr-python over HTTP",
    "s3_ours": "xarray-ome-zarr from S3",
    "s3_zarr": "zarr-python from S3",
    "s3_ours_s3fs": "xarray-ome-zarr from S3, XARRAY_OME_ZARR_OBSTORE=0",
    "shttp_ours": "xarray-ome-zarr, sharded, over HTTP",
    "shttp_zarr": "zarr-python, sharded, over HTTP",
    "xrzarr": "xarray zarr engine + dask",
}


# ---- running workers ---------------------------------------------------------------------
def worker_env() -> dict:
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def parse_result(stdout: str, stderr: str, returncode: int) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith("@@RESULT "):
            return json.loads(line.removeprefix("@@RESULT "))
    tail = (stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {returncode}: {tail}"[:300]}


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


class Background:
    """How busy the machine was with *other* work while a child process ran.

    Machine-wide busy CPU (from /proc/stat) minus the CPU the child used (getrusage),
    as a fraction of all cores: 0 on a quiet machine, 0.5 when another process keeps one of
    two cores busy. Benchmarks on a busy machine are noisy; the report shows this figure.
    """

    #: CPU seconds of processes other than the child that belong to the measurement.
    child_cpu_extra = 0.0

    def __enter__(self) -> Background:
        self.jiffies = _cpu_jiffies()
        self.child = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.t0
        busy0, total0 = self.jiffies
        busy1, total1 = _cpu_jiffies()
        child = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.child_cpu = (child.ru_utime - self.child.ru_utime) + (
            child.ru_stime - self.child.ru_stime
        )
        self.child_cpu += self.child_cpu_extra  # a server process of the measurement
        hz = os.sysconf("SC_CLK_TCK")
        cores = os.cpu_count() or 1
        if total1 > total0 and wall > 0:
            self.fraction = max(0.0, ((busy1 - busy0) / hz - self.child_cpu) / (wall * cores))
        else:
            self.fraction = None


def wait_quiet(limit: float) -> float:
    """Wait (at most ``limit`` s) until other work uses under a quarter of the machine."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        b0 = _cpu_jiffies()
        time.sleep(0.5)
        b1 = _cpu_jiffies()
        if b1[1] == b0[1] or (b1[0] - b0[0]) / (b1[1] - b0[1]) < 0.25:
            break
    return time.perf_counter() - start


WAIT_QUIET = 0.0
#: Where the remote group's servers run: "process" (their own) or "inline" (this one).
SERVERS = "process"


def run_worker(spec: dict, timeout: float = 600, server: Any = None) -> dict:
    """Run one measurement in a fresh process; ``server``: a server process whose CPU time
    (``server.cpu()``) is the measurement's, not other work's (``server_cpu``: per read)."""
    wait_quiet(WAIT_QUIET)
    served = server.cpu() if server is not None else 0.0
    with Background() as bg:
        proc = subprocess.run(
            [sys.executable, str(WORKER), json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=worker_env(),
        )
        if server is not None:
            served = server.cpu() - served
            bg.child_cpu_extra = served
    result = parse_result(proc.stdout, proc.stderr, proc.returncode)
    result["background"] = bg.fraction
    if server is not None and "error" not in result:
        result["server_cpu"] = served / result.get("reads", 1)
    if "error" in result and os.environ.get("BENCH_DEBUG"):
        print(proc.stderr, file=sys.stderr)
    return result


def run_fresh(who: str, path: str) -> dict:
    """Wall time of a whole fresh process that imports, opens and reads level 0."""
    code = fresh_code(who, path)
    wait_quiet(WAIT_QUIET)
    with Background() as bg:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=600,
            env=worker_env(),
        )
        wall = time.perf_counter() - t0
    result = parse_result(proc.stdout, proc.stderr, proc.returncode)
    result["background"] = bg.fraction
    if "error" not in result:
        result["time"] = wall
        result["cpu"] = bg.child_cpu
    return result


def rounds(contenders: list[str], n: int):  # type: ignore[no-untyped-def]
    """Round r runs every contender once, in order, reversed on odd rounds."""
    for r in range(n):
        yield r, (contenders if r % 2 == 0 else contenders[::-1])


# ---- results -----------------------------------------------------------------------------
@dataclass
class Samples:
    """Every measurement of one group: ``runs[who]`` is a list (one per round) of results."""

    group: str
    runs: dict[str, list[dict]] = field(default_factory=dict)
    note: str = ""

    def add(self, who: str, result: dict) -> None:
        self.runs.setdefault(who, []).append(result)

    def ok(self, who: str) -> list[dict]:
        return [r for r in self.runs.get(who, []) if "error" not in r]

    def errors(self, who: str) -> list[str]:
        return [r["error"] for r in self.runs.get(who, []) if "error" in r]

    def median(self, who: str, key: str = "time") -> float | None:
        values = [r[key] for r in self.ok(who) if r.get(key) is not None]
        return statistics.median(values) if values else None

    def pair_ratios(self, who: str, ref: str, key: str = "time") -> list[float]:
        """Per-round ratios (same round, so run next to each other)."""
        out = []
        for a, b in zip(self.runs.get(who, []), self.runs.get(ref, []), strict=False):
            if "error" not in a and "error" not in b and b.get(key):
                out.append(a[key] / b[key])
        return out


@dataclass
class Row:
    bench: str
    what: str
    ratio: float | None
    measured: str
    goal: str
    verdict: str
    spread: str = ""
    cpu_ratio: float | None = None


def fmt_time(s: float | None) -> str:
    return "—" if s is None else (f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s")


def fmt_mem(b: float | None) -> str:
    return "—" if b is None else f"{b / MiB:.0f} MiB"


def ratio_row(
    s: Samples,
    bench: str,
    who: str,
    ref: str,
    key: str,
    limit: float | None,
    fmt: Callable[[float | None], str],
    issue: str = "",
) -> Row:
    a, b = s.median(who, key), s.median(ref, key)
    what = f"{NAMES[who]} / {NAMES[ref]}"
    if a is None or b is None:
        errs = s.errors(who) or s.errors(ref)
        why = errs[0] if errs else (s.note or "not measured")
        return Row(bench, what, None, why[:90], f"≤ {limit:.2f}×" if limit else "—", "SKIP")
    ratio = a / b
    pairs = s.pair_ratios(who, ref, key)
    spread = f"{min(pairs):.2f}–{max(pairs):.2f}" if len(pairs) > 1 else ""
    measured = f"{fmt(a)} vs {fmt(b)}"
    cpu_ratio = None
    if key == "time":
        ca, cb = s.median(who, "cpu"), s.median(ref, "cpu")
        cpu_ratio = ca / cb if ca is not None and cb else None
    if limit is None:
        return Row(bench, what, ratio, measured, issue or "—", "info", spread, cpu_ratio)
    return Row(
        bench,
        what,
        ratio,
        measured,
        f"≤ {limit:.2f}×",
        "PASS" if ratio <= limit else "FAIL",
        spread,
        cpu_ratio,
    )


# ---- the groups --------------------------------------------------------------------------
def _bench_reads(group: str, contenders: list[str], data: dict, n: int) -> Samples:
    """Steady-state reads of level 0 by ``contenders``, ``n`` alternating rounds."""
    s = Samples(group)
    for _, order in rounds(contenders, n):
        for who in order:
            s.add(
                who,
                run_worker({"mode": "read", "who": who, "path": data["source"], "reads": READS}),
            )
    return s


def bench_read(data: dict, n: int) -> Samples:
    return _bench_reads("read", ["zarr", "ours", "ngff", "omezarr", "xrzarr"], data, n)


def bench_sharded(data: dict, n: int) -> Samples:
    """The same steady-state read, of the sharded copy (a shard per channel and level)."""
    return _bench_reads("sharded", ["zarr", "ours", "ngff"], {**data, "source": data["sharded"]}, n)


def bench_remote(data: dict, n: int) -> Samples:
    """Level 0 read over HTTP (20 ms a request) and from S3 (moto's server), ours and zarr's.

    Both contenders read from the same servers in the same run. ``SERVERS == "process"``
    (the default): each server in its own process, an asyncio HTTP server that sends files
    with ``sendfile`` and moto's standalone server, their CPU time recorded per read;
    ``"inline"``: the servers of sessions 1-4, Python's threaded ``http.server`` and moto's
    threaded server inside this process.
    """
    s = Samples("remote")
    folder = Path(data["folder"])
    name = Path(data["source"]).name
    inline = SERVERS == "inline"
    http = (
        DelayedHTTPServer(folder, HTTP_DELAY) if inline else HTTPServerProcess(folder, HTTP_DELAY)
    )
    sharded = Path(data["sharded"]).name  # a shard per channel and level
    with http as server:
        for store, prefix in ((name, "http"), (sharded, "shttp")):
            for _, order in rounds(["zarr", "ours"], n):
                for who in order:
                    server.reset()
                    spec = {"mode": "remote", "who": who, "url": f"{server.url}/{store}"}
                    result = run_worker({**spec, "reads": READS}, server=None if inline else server)
                    if "error" not in result:
                        snap = server.snapshot()
                        chunks = [p for p in snap["paths"] if not p.endswith(METADATA)]
                        result["requests"] = snap["total"] / result["reads"]
                        result["chunk_requests"] = len(chunks) / result["reads"]
                    s.add(f"{prefix}_{who}", result)
    try:
        sys.path.insert(0, str(HERE.parent))
        from tests.servers import S3_ENV, S3Server, patched_env, s3_server, upload_tree
    except ImportError as err:  # moto or the tests folder missing
        s.note = f"S3 not measured: {err}"
        return s
    with contextlib.ExitStack() as stack:
        if inline:
            s3 = stack.enter_context(s3_server())
            process = None
        else:
            stack.enter_context(patched_env(S3_ENV))
            process = stack.enter_context(S3ServerProcess())
            s3 = S3Server(endpoint_url=process.endpoint_url)
        s3.make_bucket("bench")
        upload_tree(s3.filesystem(), data["source"], f"bench/{name}")
        # s3fs asks for an object's size before every read unless max_concurrency is 1
        # (what our open_store sets): both get the same options, so the same requests.
        options = {**s3.storage_options, "max_concurrency": 1}
        # ours twice: as a user gets it (chunks through obstore where the options map, as
        # here), and with XARRAY_OME_ZARR_OBSTORE=0 (chunks through s3fs, as before)
        for _, order in rounds(["zarr", "ours", "ours_s3fs"], n):
            for who in order:
                spec = {
                    "mode": "remote",
                    "who": who.removesuffix("_s3fs"),
                    "url": f"s3://bench/{name}",
                }
                spec.update(storage_options=options, reads=READS)
                if who == "ours_s3fs":
                    spec["env"] = {"XARRAY_OME_ZARR_OBSTORE": "0"}
                s.add(f"s3_{who}", run_worker(spec, server=process))
    return s


def bench_chunks(data: dict, n: int) -> Samples:
    return _bench_reads("chunks", ["zarr", "ours_dask"], data, n)


def compile_ours() -> None:
    """Byte-compile xarray_ome_zarr as an installed package would be (``pip install`` does),
    so no fresh process compiles it from source (with ``PYTHONDONTWRITEBYTECODE`` set, or a
    source tree never imported, every process would: about 28 modules)."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("xarray_ome_zarr")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            compileall.compile_dir(folder, quiet=1)


def bench_fresh(data: dict, n: int) -> Samples:
    s = Samples("fresh")
    compile_ours()  # the peers' installed modules are byte-compiled too
    run_fresh("zarr", data["source"])  # one untimed run: the files are in the page cache
    for _, order in rounds(["zarr", "ours", "ngff"], n):
        for who in order:
            s.add(who, run_fresh(who, data["source"]))
    return s


def bench_http(data: dict, n: int) -> Samples:
    s = Samples("http")
    folder = Path(data["folder"])
    names = {"cons": Path(data["consolidated"]).name, "": Path(data["source"]).name}
    with DelayedHTTPServer(folder, HTTP_DELAY) as server:
        contenders = ["ours", "ngff", "omezarr", "ours_level0", "ours_cons", "ngff_cons"]
        for _, order in rounds(contenders, n):
            for who in order:
                store = names["cons" if who.endswith("_cons") else ""]
                server.reset()
                result = run_worker({"mode": "http", "who": who, "url": f"{server.url}/{store}"})
                snap = server.snapshot()
                result["requests"] = snap["total"]
                result["requests_by_kind"] = snap["by_kind"]
                result["request_paths"] = snap["paths"]
                s.add(who, result)
    return s


def ours_can_write() -> bool:
    code = "import xarray_ome_zarr as x; x.to_ome_zarr"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def bench_write(data: dict, n: int, have_writer: bool) -> Samples:
    s = Samples("write")
    if not have_writer:
        s.note = "xarray_ome_zarr.to_ome_zarr does not exist yet"
    tmp = Path(data["folder"]) / "tmp"
    contenders = (["ours"] if have_writer else []) + ["ngff", "ngff_dask", "omezarr"]
    for r, order in rounds(contenders, n):
        for who in order:
            dst = tmp / f"write-{who}-{r}.ome.zarr"
            shutil.rmtree(dst, ignore_errors=True)
            result = run_worker(
                {"mode": "write", "who": who, "path": data["source"], "dst": str(dst)}
            )
            if "output" in result:
                result["bytes"] = result["output"]["bytes"]
            s.add(who, result)
            shutil.rmtree(dst, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return s


def bench_lazy(data: dict, have_writer: bool) -> Samples:
    s = Samples("lazy")
    if not have_writer:
        s.note = "xarray_ome_zarr.to_ome_zarr does not exist yet"
        return s
    tmp = Path(data["folder"]) / "tmp"
    dst = tmp / "lazy.ome.zarr"
    shutil.rmtree(dst, ignore_errors=True)
    s.add("ours", run_worker({"mode": "lazy", "dst": str(dst), **data["lazy"]}))
    shutil.rmtree(tmp, ignore_errors=True)
    return s


# ---- the table ---------------------------------------------------------------------------
def table_rows(res: dict[str, Samples], data: dict, quick: bool = False) -> list[Row]:
    rows: list[Row] = []
    if s := res.get("read"):
        b = "read level 0 `.values`, steady state"
        rows.append(ratio_row(s, b, "ours", "zarr", "time", 1.10, fmt_time))
        rows.append(ratio_row(s, b + ", peak RSS growth", "ours", "zarr", "peak", 1.10, fmt_mem))
        for who, t_issue, m_issue in (
            ("ngff", "1.28", "1.74"),
            ("omezarr", "1.33", "1.67"),
            ("xrzarr", "1.34", "1.73"),
        ):
            rows.append(ratio_row(s, b, who, "zarr", "time", None, fmt_time, f"issue: {t_issue}×"))
            rows.append(
                ratio_row(
                    s,
                    b + ", peak RSS growth",
                    who,
                    "zarr",
                    "peak",
                    None,
                    fmt_mem,
                    f"issue: {m_issue}×",
                )
            )
    if s := res.get("sharded"):
        b = "read sharded level 0 `.values`, steady state"
        rows.append(ratio_row(s, b, "ours", "zarr", "time", 0.80, fmt_time))
        rows.append(ratio_row(s, b + ", peak RSS growth", "ours", "zarr", "peak", 0.80, fmt_mem))
        rows.append(ratio_row(s, b, "ours", "ngff", "time", 1.00, fmt_time))
        rows.append(ratio_row(s, b, "ngff", "zarr", "time", None, fmt_time))
    if s := res.get("chunks"):
        b = "read level 0 `chunks={}` + `.compute()`, steady state"
        rows.append(ratio_row(s, b, "ours_dask", "zarr", "time", 1.20, fmt_time))
        rows.append(
            ratio_row(s, b + ", peak RSS growth", "ours_dask", "zarr", "peak", 1.20, fmt_mem)
        )
    if s := res.get("remote"):
        for where, label in (
            ("http", f"over HTTP, {HTTP_DELAY * 1000:.0f} ms/request"),
            ("s3", "from S3 (moto server)"),
            ("s3_ours_s3fs", "from S3 (moto server), chunks through s3fs"),
            ("shttp", f"sharded, over HTTP, {HTTP_DELAY * 1000:.0f} ms/request"),
        ):
            b = f"read level 0 {label}"
            ours = f"{where}_ours" if not where.endswith("_s3fs") else where
            where = where.split("_")[0]
            limit = 0.70 if where != "shttp" and ours.endswith("_ours") else None  # the goal
            row = ratio_row(s, b, ours, f"{where}_zarr", "time", limit, fmt_time)
            qa, qb = s.median(ours, "requests"), s.median(f"{where}_zarr", "requests")
            ca = s.median(ours, "chunk_requests")
            cb = s.median(f"{where}_zarr", "chunk_requests")
            if qa is not None and qb is not None:
                row.measured += (
                    f"; {qa:.0f} vs {qb:.0f} requests a read ({ca:.0f} vs {cb:.0f} for chunks)"
                )
            sa, sb = (
                s.median(ours, "server_cpu"),
                s.median(f"{where}_zarr", "server_cpu"),
            )
            ua, ub = s.median(ours, "cpu"), s.median(f"{where}_zarr", "cpu")
            if sa is not None and sb is not None and ua is not None and ub is not None:
                row.measured += (
                    f"; CPU a read: client {fmt_time(ua)} vs {fmt_time(ub)}, "
                    f"server {fmt_time(sa)} vs {fmt_time(sb)}"
                )
            rows.append(row)
    if s := res.get("fresh"):
        b = "fresh process: import, open, read level 0"
        rows.append(ratio_row(s, b, "ours", "ngff", "time", 0.70, fmt_time))
        rows.append(ratio_row(s, b, "zarr", "ngff", "time", None, fmt_time, "issue: ~0.3–0.4×"))
    if s := res.get("http"):
        b = f"open the 3-level image over HTTP, {HTTP_DELAY * 1000:.0f} ms/request"
        for who, ref, limit in (
            ("ours", "ngff", 0.60),
            ("omezarr", "ngff", None),
            ("ours_level0", "ngff", None),
            ("ours_cons", "ngff_cons", None),
        ):
            row = ratio_row(s, b, who, ref, "time", limit, fmt_time)
            qa, qb = s.median(who, "requests"), s.median(ref, "requests")
            if qa is not None and qb is not None:
                row.measured += f"; {qa:.0f} vs {qb:.0f} requests"
            rows.append(row)
    if s := res.get("write"):
        b = "write a 3-level pyramid (levels 2× and 4×, block mean)"
        rows.append(ratio_row(s, b, "ours", "ngff", "time", 0.60, fmt_time))
        rows.append(ratio_row(s, b, "ours", "ngff_dask", "time", 0.60, fmt_time))
        rows.append(ratio_row(s, b, "ours", "omezarr", "time", 0.60, fmt_time))
        rows.append(ratio_row(s, b + ", output size", "ours", "ngff", "bytes", 1.05, fmt_mem))
        rows.append(ratio_row(s, b + ", peak RSS growth", "ours", "ngff", "peak", None, fmt_mem))
        rows.append(ratio_row(s, b + ", peak RSS growth", "ours", "omezarr", "peak", None, fmt_mem))
    if s := res.get("lazy"):
        nbytes = _data.ImageSpec(tuple(data["lazy"]["shape"]), ()).nbytes
        limit = nbytes / 2
        b = f"write a lazy {nbytes / GiB:.2g} GiB dask image, levels 2× and 4×"
        peak = s.median("ours", "peak")
        if peak is None:
            errs = s.errors("ours")
            rows.append(
                Row(
                    b,
                    "peak RSS growth",
                    None,
                    (errs[0] if errs else s.note)[:90],
                    f"≤ {fmt_mem(limit)}",
                    "SKIP",
                )
            )
        else:
            verdict = "PASS" if peak <= limit else "FAIL"
            if quick:
                verdict = "info (quick)"
            rows.append(
                Row(
                    b,
                    "peak RSS growth / goal",
                    peak / limit,
                    f"{fmt_mem(peak)} in {fmt_time(s.median('ours'))}",
                    f"≤ {fmt_mem(limit)}" + (" (half the image)" if quick else ""),
                    verdict,
                )
            )
    return rows


def render(rows: list[Row]) -> str:
    head = (
        "| Benchmark | Ratio | Value | Medians (ours vs reference) | Per-round range "
        "| CPU-time ratio | Goal | Result |"
    )
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        value = f"**{r.ratio:.2f}×**" if r.ratio is not None else "—"
        cpu = f"{r.cpu_ratio:.2f}×" if r.cpu_ratio is not None else ""
        lines.append(
            f"| {r.bench} | {r.what} | {value} | {r.measured} | {r.spread} | {cpu} | "
            f"{r.goal} | {r.verdict} |"
        )
    return "\n".join(lines)


def render_details(res: dict[str, Samples]) -> str:
    lines = [
        "| Group | Contender | Runs | Median time | Median CPU time | Median peak RSS growth "
        "| Other load | Notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in res.items():
        for who in s.runs:
            ok = s.ok(who)
            notes = []
            if name == "fresh" and ok:
                parts = [
                    f"{k} {fmt_time(statistics.median(r[k] for r in ok))}"
                    for k in ("import", "open", "read")
                ]
                notes.append("in-process: " + ", ".join(parts))
            if ok and ok[0].get("variant"):
                notes.append(ok[0]["variant"])
            if name == "http" and ok:
                kinds: dict[str, int] = {}
                for k, v in ok[0].get("requests_by_kind", {}).items():
                    kinds[k] = v
                notes.append(
                    f"requests {ok[0].get('requests')}: "
                    + ", ".join(f"{k}×{v}" for k, v in sorted(kinds.items()))
                )
            if name in ("write", "lazy") and ok and "output" in ok[0]:
                o = ok[0]["output"]
                notes.append(
                    f"{fmt_mem(o['bytes'])} in {o['files']} files, chunks "
                    f"{o['chunks'][0]}, shards {o['shards'][0]}, {o['codecs']}"
                )
                if "level1_max_abs_diff_from_block_mean" in o:
                    notes.append(
                        f"level 1 vs block mean: max |diff| "
                        f"{o['level1_max_abs_diff_from_block_mean']:.2f}"
                    )
            errs = s.errors(who)
            if errs:
                notes.append(f"{len(errs)} error(s): {errs[0][:120]}")
            bg = [r["background"] for r in s.runs[who] if r.get("background") is not None]
            load = f"{100 * statistics.median(bg):.0f}%" if bg else "—"
            lines.append(
                f"| {name} | {NAMES.get(who, who)} | {len(ok)} | "
                f"{fmt_time(s.median(who))} | {fmt_time(s.median(who, 'cpu'))} | "
                f"{fmt_mem(s.median(who, 'peak'))} | {load} | {'; '.join(notes)} |"
            )
    return "\n".join(lines)


def check_consistency(res: dict[str, Samples]) -> list[str]:
    """Every reader must have read the same pixels."""
    problems = []
    for name in ("read", "chunks"):
        s = res.get(name)
        if not s:
            continue
        checks = {json.dumps(r["check"]) for who in s.runs for r in s.ok(who) if "check" in r}
        if len(checks) > 1:
            problems.append(f"{name}: contenders read different data: {sorted(checks)}")
    return problems


def git_state() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE.parent, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], cwd=HERE.parent, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{rev}{' + uncommitted changes in src/' if dirty else ''}"


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in (
        "xarray-ome-zarr",
        "zarr",
        "xarray",
        "dask",
        "numpy",
        "numcodecs",
        "ngff-zarr",
        "ome-zarr",
        "fsspec",
        "aiohttp",
        "s3fs",
        "obstore",
        "moto",
    ):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_GiB": round(mem / GiB, 1) if mem else None,
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a 32 MiB image (256 MiB lazy write) and fewer repeats"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=GROUPS,
        metavar="NAME",
        help=f"run only this group (repeatable): {', '.join(GROUPS)}",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="rounds per group (default: 5 for reads and HTTP, 7 for fresh processes, "
        "3 for writes; --quick: 3, 3, 3, 2)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("XOZ_BENCH_CACHE", HERE / ".cache")),
        help="where the source images are built once (default: benchmarks/.cache)",
    )
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument(
        "--servers",
        choices=("process", "inline"),
        default="process",
        help="remote group: the HTTP and S3 servers each in its own process (asyncio + "
        "sendfile, moto's standalone server; default), or inline: Python's threaded "
        "http.server and moto's threaded server in this process (sessions 1-4)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each measurement, wait up to this long for other work on "
        "the machine to drop under a quarter of the CPUs (default: 0)",
    )
    args = parser.parse_args(argv)
    global WAIT_QUIET, SERVERS
    WAIT_QUIET = args.wait_quiet
    SERVERS = args.servers

    groups = args.only or list(GROUPS)
    n_read = args.repeat or (3 if args.quick else 5)
    n_fresh = args.repeat or (3 if args.quick else 7)
    n_http = args.repeat or (3 if args.quick else 5)
    n_write = args.repeat or (2 if args.quick else 3)

    started = time.perf_counter()
    data = _data.ensure_data(args.cache_dir, args.quick)
    mach, vers = machine(), versions()
    print(f"# xarray-ome-zarr benchmarks ({'quick' if args.quick else 'full'})")
    print(
        f"machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory_GiB']} GiB; "
        + ", ".join(f"{k} {v}" for k, v in vers.items())
    )
    print(
        f"image: uint16 {tuple(data['image']['shape'])} chunks {tuple(data['image']['chunks'])},"
        f" 3 levels, at {data['source']}"
    )
    print(
        f"source tree: {git_state()}; load average at start: {os.getloadavg()[0]:.2f}", flush=True
    )
    have_writer = ours_can_write()
    if not have_writer and ({"write", "lazy"} & set(groups)):
        print("note: xarray_ome_zarr.to_ome_zarr does not exist yet; our write rows are skipped")

    res: dict[str, Samples] = {}
    for g in groups:
        t = time.perf_counter()
        print(f"running {g} ...", end=" ", flush=True)
        if g == "read":
            res[g] = bench_read(data, n_read)
        elif g == "sharded":
            res[g] = bench_sharded(data, n_read)
        elif g == "remote":
            res[g] = bench_remote(data, n_http)
        elif g == "chunks":
            res[g] = bench_chunks(data, n_read)
        elif g == "fresh":
            res[g] = bench_fresh(data, n_fresh)
        elif g == "http":
            res[g] = bench_http(data, n_http)
        elif g == "write":
            res[g] = bench_write(data, n_write, have_writer)
        elif g == "lazy":
            res[g] = bench_lazy(data, have_writer)
        print(f"{time.perf_counter() - t:.0f} s", flush=True)

    rows = table_rows(res, data, args.quick)
    print()
    print(render(rows))
    print()
    print(render_details(res))
    for p in check_consistency(res):
        print("WARNING:", p)
    busy = [
        r["background"]
        for s in res.values()
        for rs in s.runs.values()
        for r in rs
        if r.get("background") is not None
    ]
    if busy:
        share = statistics.median(busy)
        print(
            f"\nother work on the machine during the measurements: median {100 * share:.0f}% "
            f"of the CPUs (max {100 * max(busy):.0f}%)"
            + (
                "; the timings are noisy, see the per-round ranges and CPU-time ratios"
                if share > 0.1
                else ""
            )
        )
    print(f"total {time.perf_counter() - started:.0f} s")

    record = {
        "machine": mach,
        "versions": vers,
        "data": data,
        "argv": sys.argv[1:],
        "source_tree": git_state(),
        "rows": [r.__dict__ for r in rows],
        "runs": {g: s.runs for g, s in res.items()},
    }
    out = args.json or Path(data["folder"]) / "results.json"
    out.write_text(json.dumps(record, indent=1, default=str))
    print(f"measurements written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
