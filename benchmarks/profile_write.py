#!/usr/bin/env python
"""Where ``to_ome_zarr`` spends its time writing a 3-level pyramid, and what would help.

    python benchmarks/profile_write.py [--quick] [--only profile|options]

- profile: a wall-clock sampler over all threads (see profile_read.py) during one
  ``to_ome_zarr(da, dst, <levels 2x and 4x>)`` of the in-memory benchmark image;
- options: the same write with other settings, each run twice in this process (best CPU and
  wall time kept), against ngff-zarr's writes of the same image: chunk shapes and codecs.

The writer already skips zarr's all-fill check of chunks that cannot be empty
(``targets.ChunkWriter``), wraps numpy pixels without copying them, and sums integer blocks
exactly in cache-sized slabs (``multiscale.mean_kernel``); the profile shows what is left.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _data  # noqa: E402
import _worker  # noqa: E402
from profile_read import Sampler, title  # noqa: E402


def size_of(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def section_profile(arr, scratch: Path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    write = _worker.writers()["ours"]
    dst = str(scratch / "profile.ome.zarr")
    write(np.ascontiguousarray(arr[:, :8, :64, :64]), dst + "-warm")
    shutil.rmtree(dst + "-warm", ignore_errors=True)
    title("to_ome_zarr of the in-memory image: where the time goes (all threads)")
    with Sampler() as s:
        c0, t0 = time.process_time(), time.perf_counter()
        write(arr, dst)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"wall {wall:.2f} s, CPU {cpu:.2f} s, output {size_of(dst) / 2**20:.0f} MiB\n")
    s.report(
        top=16,
        include=(
            "xarray_ome_zarr",
            "dask/array/core.py:from_array",
            "zarr/core/buffer/core.py:all_equal",
            "codec_pipeline",
            "dask/local.py:get_async",
            "dask/base.py:compute",
        ),
    )
    shutil.rmtree(dst, ignore_errors=True)


def section_options(arr, scratch: Path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np
    from zarr.codecs import BloscCodec, ZstdCodec

    from xarray_ome_zarr import to_ome_zarr

    title("to_ome_zarr with other settings, against ngff-zarr (best of 2, one process)")
    factors = _worker.ours_factors(str(scratch / "probe"))
    image = _worker.data_array(arr)

    def ours(**kw):  # type: ignore[no-untyped-def]
        def run(dst: str) -> None:
            to_ome_zarr(image, dst, scale_factors=factors, **kw)

        return run

    writers = _worker.writers()
    lz4 = BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=2)
    bzstd = BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle", typesize=2)
    variants = [
        ("ngff-zarr ITKWASM_BIN_SHRINK (reference)", lambda d: writers["ngff"](arr, d)),
        ("ngff-zarr DASK_BIN_SHRINK", lambda d: writers["ngff_dask"](arr, d)),
        ("ours, defaults", ours()),
        ("ours, chunks (1, 64, 128, 128)", ours(chunks={"c": 1, "z": 64, "y": 128, "x": 128})),
        ("ours, chunks (1, 64, 256, 256)", ours(chunks={"c": 1, "z": 64, "y": 256, "x": 256})),
        ("ours, zstd level 1", ours(compressor=ZstdCodec(level=1))),
        ("ours, zstd level 3 (zarr's default)", ours(compressor=ZstdCodec(level=3))),
        ("ours, blosc lz4 bitshuffle", ours(compressor=lz4)),
        ("ours, blosc zstd-1 bitshuffle", ours(compressor=bzstd)),
    ]
    small = np.ascontiguousarray(arr[:, :8, :64, :64])
    writers["ngff"](small, str(scratch / "warm-ngff"))
    writers["ours"](small, str(scratch / "warm-ours"))
    print(f"scale_factors for ours: {factors}\n")
    print("| variant | wall (best of 2) | CPU (best of 2) | output | level-0 chunks |")
    print("|---|---|---|---|---|")
    for name, fn in variants:
        walls, cpus = [], []
        dst = str(scratch / "variant.ome.zarr")
        for _ in range(2):
            shutil.rmtree(dst, ignore_errors=True)
            c0, t0 = time.process_time(), time.perf_counter()
            fn(dst)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        out = _worker.describe_output(dst, None)
        print(
            f"| {name} | {min(walls):.2f} s | {min(cpus):.2f} s | "
            f"{out['bytes'] / 2**20:.0f} MiB | {out['chunks'][0]} |",
            flush=True,
        )
        shutil.rmtree(dst, ignore_errors=True)


def main() -> int:
    import zarr

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", action="append", choices=("profile", "options"))
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(os.environ.get("XOZ_BENCH_CACHE", HERE / ".cache"))
    )
    args = parser.parse_args()
    data = _data.ensure_data(args.cache_dir, args.quick)
    arr = zarr.open_array(data["source"] + "/0", mode="r")[...]
    scratch = Path(data["folder"]) / "tmp-profile-write"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        for section in args.only or ("profile", "options"):
            if section == "profile":
                section_profile(arr, scratch)
            else:
                section_options(arr, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
