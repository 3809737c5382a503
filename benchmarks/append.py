#!/usr/bin/env python
"""Appending a time-lapse one time point at a time (issue 15), against zarr-python.

    python benchmarks/append.py            # 100 time points of c=2, z=16, y=x=512 uint16
    python benchmarks/append.py --quick    # 20 time points, 2 rounds

Contenders, each in its own fresh Python process, taking turns round after round (the order
reversed every other round):

- ``ours``: ``xoz.to_ome_zarr`` of the first time point with ``scale_factors=[2, 2]`` (a
  3-level OME-Zarr 0.5 store), then ``to_ome_zarr(frame, store, append_dim="t")`` for each
  other time point: every level grows, metadata kept up to date;
- ``zarr``: zarr-python appending the same level-0 data alone (``Array.append``), with the
  same chunks and codec (Blosc LZ4, bit shuffle: our default).

Reported: the median total time of each, their ratio (goal: at most 1.5), CPU time, and our
peak memory growth (kernel high-water mark, as in ``_worker.py``) over the first quarter of
the appends and over all of them: bounded by a few time points, it must not grow with the
number appended. The frames are made before the clock starts (4 distinct frames, cycled).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MiB = 2**20

WORKER = r"""
import gc, json, sys, time
import numpy as np
sys.path.insert(0, {here!r})
from _worker import PeakMemory

who, path, count, side = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
shape = (2, 16, side, side)
rng = np.random.default_rng(0)
base = (1000 + 500 * np.sin(np.arange(side) / 20.0)[None, None, None, :]).astype("uint16")
frames = [(base + rng.normal(0, 100, size=shape).clip(-900, 900)).astype("uint16")[None]
          for _ in range(4)]

if who == "ours":
    import xarray_ome_zarr as xoz
    import xarray_ome_zarr.append, xarray_ome_zarr.writer  # imported before the clock
    first = xoz.image(frames[0], dims=("t", "c", "z", "y", "x"), scale={{"t": 1.0}})

    def start():
        xoz.to_ome_zarr(first, path, scale_factors=[2, 2])

    def append(t):
        xoz.to_ome_zarr(frames[t % 4], path, append_dim="t")
else:
    import zarr
    from xarray_ome_zarr.compression import default_compressors
    from xarray_ome_zarr.chunking import default_chunks
    types = {{"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}}
    chunks = default_chunks("tczyx", (1, *shape), types, 2)
    holder = {{}}

    def start():
        holder["a"] = zarr.create_array(path, shape=(0, *shape), chunks=chunks, dtype="uint16",
                                        compressors=default_compressors(3), fill_value=0,
                                        dimension_names=list("tczyx"))
        holder["a"].append(frames[0], axis=0)

    def append(t):
        holder["a"].append(frames[t % 4], axis=0)

gc.collect()
quarter = max(2, count // 4)
c0, t0 = time.process_time(), time.perf_counter()
with PeakMemory() as early:
    start()
    for t in range(1, quarter):
        append(t)
with PeakMemory() as late:
    for t in range(quarter, count):
        append(t)
seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
print("@@RESULT " + json.dumps({{"time": seconds, "cpu": cpu, "early": early.growth,
                                 "late": late.growth, "quarter": quarter}}))
"""


def run(who: str, path: Path, count: int, side: int) -> dict:
    shutil.rmtree(path, ignore_errors=True)
    code = WORKER.format(here=str(HERE))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-c", code, who, str(path), str(count), str(side)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("@@RESULT "):
            shutil.rmtree(path, ignore_errors=True)
            return json.loads(line.removeprefix("@@RESULT "))
    raise SystemExit(f"{who} failed:\n{done.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 time points, 2 rounds")
    parser.add_argument("--count", type=int, help="time points (default 100; --quick 20)")
    parser.add_argument("--repeat", type=int, help="rounds (default 3; --quick 2)")
    parser.add_argument("--side", type=int, default=512, help="y and x size (default 512)")
    args = parser.parse_args()
    count = args.count or (20 if args.quick else 100)
    repeat = args.repeat or (2 if args.quick else 3)
    frame = 2 * 16 * args.side * args.side * 2
    print(
        f"appending {count} time points of c=2, z=16, y=x={args.side} uint16 "
        f"({frame / MiB:.0f} MiB each), {repeat} rounds; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    results: dict[str, list[dict]] = {"ours": [], "zarr": []}
    with tempfile.TemporaryDirectory(prefix="xoz-append-bench-") as tmp:
        for r in range(repeat):
            order = ["ours", "zarr"] if r % 2 == 0 else ["zarr", "ours"]
            for who in order:
                result = run(who, Path(tmp) / f"{who}.zarr", count, args.side)
                results[who].append(result)
                print(
                    f"  round {r + 1} {who:5s}: {result['time']:.2f} s "
                    f"(cpu {result['cpu']:.2f} s), peak growth "
                    f"{result['early'] / MiB:.0f} MiB (first {result['quarter']}) / "
                    f"{result['late'] / MiB:.0f} MiB (the rest)"
                )
    med = {who: statistics.median(r["time"] for r in rs) for who, rs in results.items()}
    cpu = {who: statistics.median(r["cpu"] for r in rs) for who, rs in results.items()}
    print()
    print("| | xarray-ome-zarr (3 levels) | zarr-python (level 0 alone) | ratio (goal <= 1.5) |")
    print("|---|---|---|---|")
    print(
        f"| total time, median | {med['ours']:.2f} s | {med['zarr']:.2f} s | "
        f"{med['ours'] / med['zarr']:.2f} |"
    )
    print(
        f"| CPU time, median | {cpu['ours']:.2f} s | {cpu['zarr']:.2f} s | "
        f"{cpu['ours'] / cpu['zarr']:.2f} |"
    )
    for key, what in (("early", "first quarter"), ("late", "the other three quarters")):
        ours = max(r[key] for r in results["ours"]) / MiB
        ref = max(r[key] for r in results["zarr"]) / MiB
        print(f"| peak memory growth, {what} (max) | {ours:.0f} MiB | {ref:.0f} MiB | |")
    print(f"\nframe: {frame / MiB:.0f} MiB; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
