#!/usr/bin/env python
"""Filling a plane region by region from 2 processes vs 1 (issue 15).

    python benchmarks/fill.py            # 16384 x 16384 uint16 plane, 1024 x 1024 tiles
    python benchmarks/fill.py --quick    # 8192 x 8192, same tiles (about a minute)

A template (``compute=False``: 5 levels, chunks of 256, no pixels) is written, then every
tile with ``to_ome_zarr(tile, store, region="auto")``, either by one process or by two at
once (tiles dealt alternately). Each contender runs in fresh processes; they take turns
round after round (the order reversed every other round) and the ratio is the median of the
two-process wall times over the median of the one-process ones. Wall time runs from the
moment every worker has imported the package to the last tile written; CPU time is the sum
over the workers (user + system). After each fill every level is checked to equal
``to_multiscale`` of the whole plane (once per contender, outside the timing).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TILE = 1024
PIXEL = 0.5
FACTORS = [2, 2, 2, 2]


def tile_pixels(row: int, col: int) -> np.ndarray:
    """A tile's pixels: a smooth pattern plus noise (cheap, the same in every run)."""
    rng = np.random.default_rng(row * 1000 + col)
    y = np.arange(TILE, dtype=np.float32)[:, None] + row * TILE
    x = np.arange(TILE, dtype=np.float32)[None, :] + col * TILE
    smooth = 2000 + 1000 * np.sin(y / 300) * np.cos(x / 500)
    return (smooth + rng.normal(0, 100, (TILE, TILE))).astype("uint16")


def tile_image(row: int, col: int):
    import xarray_ome_zarr as xoz

    return xoz.image(
        tile_pixels(row, col),
        scale={"y": PIXEL, "x": PIXEL},
        translation={"y": row * TILE * PIXEL, "x": col * TILE * PIXEL},
        units="micrometer",
    )


def write_template(path: str, size: int) -> None:
    import dask.array as da

    import xarray_ome_zarr as xoz

    plane = xoz.image(
        da.zeros((size, size), dtype="uint16", chunks=4096),
        scale={"y": PIXEL, "x": PIXEL},
        units="micrometer",
    )
    xoz.to_ome_zarr(plane, path, scale_factors=FACTORS, compute=False)


def worker(args: tuple[str, list[tuple[int, int]], object, object]) -> dict[str, float]:
    """Write ``tiles`` into ``path`` once every worker is ready; report times."""
    path, tiles, barrier, _ = args
    import xarray_ome_zarr as xoz
    import xarray_ome_zarr.regions  # noqa: F401  the import is not timed

    tile_image(0, 0)  # warm numpy and the builder
    barrier.wait()  # type: ignore[attr-defined]
    start = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    for row, col in tiles:
        xoz.to_ome_zarr(tile_image(row, col), path, region="auto")
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    end = time.perf_counter()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {"start": start, "end": end, "cpu": cpu}


def fill(path: str, size: int, processes: int) -> dict[str, float]:
    """Template, then every tile from ``processes`` fresh processes; (wall, cpu)."""
    n = size // TILE
    tiles = [(r, c) for r in range(n) for c in range(n)]
    write_template(path, size)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(processes)
        jobs = [(path, tiles[i::processes], barrier, None) for i in range(processes)]
        with context.Pool(processes) as pool:
            results = pool.map(worker, jobs)
    # perf_counter is CLOCK_MONOTONIC on Linux: comparable across processes of one machine
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {"wall": wall, "cpu": sum(r["cpu"] for r in results)}


def check(path: str, size: int) -> None:
    """Every level equals ``to_multiscale`` of the whole plane."""
    import dask.array as da
    import xarray as xr

    import xarray_ome_zarr as xoz

    n = size // TILE
    rows = [
        da.concatenate(
            [da.from_delayed(_delayed_tile(r, c), (TILE, TILE), "uint16") for c in range(n)], axis=1
        )
        for r in range(n)
    ]
    whole = xoz.image(
        da.concatenate(rows, axis=0), scale={"y": PIXEL, "x": PIXEL}, units="micrometer"
    )
    expected = xoz.to_multiscale(whole, FACTORS)
    stored = xr.open_datatree(path, engine="ome-zarr")
    for k in range(len(FACTORS) + 1):
        level = f"scale{k}"
        got = stored[level]["image"].data
        want = expected[level]["image"].data
        if not bool(da.all(da.from_array(got, chunks=4096) == want).compute()):
            raise SystemExit(f"{level} differs from to_multiscale of the whole plane")


def _delayed_tile(row: int, col: int):
    import dask

    return dask.delayed(tile_pixels)(row, col)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="an 8192 x 8192 plane")
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default 3; quick 2)")
    parser.add_argument("--dir", default=None, help="where the stores go (default: a temp dir)")
    parser.add_argument("--json", default=None, help="write every measurement here")
    options = parser.parse_args()
    size = 8192 if options.quick else 16384
    repeat = options.repeat or (2 if options.quick else 3)
    base = Path(options.dir or tempfile.mkdtemp(prefix="xoz-fill-"))
    base.mkdir(parents=True, exist_ok=True)
    runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    checked: set[int] = set()
    print(
        f"plane {size} x {size} uint16, tiles {TILE} x {TILE}, {len(FACTORS) + 1} levels, "
        f"{repeat} rounds, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    try:
        for round_ in range(repeat):
            order = (1, 2) if round_ % 2 == 0 else (2, 1)
            for processes in order:
                path = str(base / f"fill-{processes}.ome.zarr")
                shutil.rmtree(path, ignore_errors=True)
                result = fill(path, size, processes)
                runs[processes].append(result)
                print(
                    f"round {round_ + 1}: {processes} process(es): wall {result['wall']:.2f} s, "
                    f"cpu {result['cpu']:.2f} s, load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
                if processes not in checked:
                    check(path, size)
                    checked.add(processes)
                    print(
                        f"  every level of the {processes}-process store equals "
                        "to_multiscale of the whole plane",
                        flush=True,
                    )
    finally:
        if options.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    one = statistics.median(r["wall"] for r in runs[1])
    two = statistics.median(r["wall"] for r in runs[2])
    cpu1 = statistics.median(r["cpu"] for r in runs[1])
    cpu2 = statistics.median(r["cpu"] for r in runs[2])
    print()
    print("| contender | wall (median) | CPU (median, all workers) |")
    print("|---|---|---|")
    print(f"| 1 process | {one:.2f} s | {cpu1:.2f} s |")
    print(f"| 2 processes | {two:.2f} s | {cpu2:.2f} s |")
    print(
        f"\nwall ratio 2 processes / 1 process: {two / one:.2f} (goal <= 0.7); "
        f"CPU ratio {cpu2 / cpu1:.2f}"
    )
    if options.json:
        Path(options.json).write_text(json.dumps({"size": size, "runs": runs}, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
