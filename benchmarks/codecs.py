#!/usr/bin/env python
"""Compression ratio and speed of candidate codecs on the benchmark image, chunk by chunk.

    python benchmarks/codecs.py [--quick] [--chunk 1,64,128,128]

Evidence for the writer's default codec: every codec compresses and decompresses the same
chunks of level 0 of the benchmark image in one thread, timed in CPU seconds (so other work
on the machine barely moves the figures). Speeds are MiB of raw pixels per CPU second; the
ratio is raw bytes over compressed bytes. zarr-python 3 runs these same numcodecs
implementations (its ``ZstdCodec`` and ``BloscCodec`` wrap them).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _data  # noqa: E402


def candidates() -> list[tuple[str, object]]:
    from numcodecs import LZ4, Blosc, GZip, Zstd

    Blosc.use_threads = False
    out: list[tuple[str, object]] = [
        ("zstd level 0 (= 3; zarr-python's default)", Zstd(level=0)),
        ("zstd level 1", Zstd(level=1)),
        ("zstd level 2", Zstd(level=2)),
        ("zstd level 3", Zstd(level=3)),
        ("zstd level 5", Zstd(level=5)),
        ("lz4", LZ4()),
        ("gzip level 1", GZip(level=1)),
    ]
    for cname in ("zstd", "lz4"):
        for clevel in (1, 3, 5) if cname == "zstd" else (5,):
            for shuffle, sname in (
                (Blosc.SHUFFLE, "shuffle"),
                (Blosc.BITSHUFFLE, "bitshuffle"),
                (Blosc.NOSHUFFLE, "noshuffle"),
            ):
                out.append(
                    (
                        f"blosc {cname} clevel {clevel} {sname}",
                        Blosc(cname=cname, clevel=clevel, shuffle=shuffle, typesize=2),
                    )
                )
    return out


def main() -> int:
    import numpy as np
    import zarr

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--chunk", default="1,64,128,128", help="chunk shape (c,z,y,x)")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(os.environ.get("XOZ_BENCH_CACHE", HERE / ".cache"))
    )
    parser.add_argument(
        "--max-mib",
        type=float,
        default=64,
        help="compress at most this many MiB of chunks per codec",
    )
    args = parser.parse_args()
    data = _data.ensure_data(args.cache_dir, args.quick)
    image = zarr.open_array(data["source"] + "/0", mode="r")[...]
    chunk = tuple(int(c) for c in args.chunk.split(","))
    chunks = []
    budget = args.max_mib * 2**20
    for c in range(0, image.shape[0], chunk[0]):
        for z in range(0, image.shape[1], chunk[1]):
            for y in range(0, image.shape[2], chunk[2]):
                for x in range(0, image.shape[3], chunk[3]):
                    block = np.ascontiguousarray(
                        image[
                            c : c + chunk[0], z : z + chunk[1], y : y + chunk[2], x : x + chunk[3]
                        ]
                    )
                    chunks.append(block)
                    budget -= block.nbytes
                    if budget <= 0:
                        break
                if budget <= 0:
                    break
            if budget <= 0:
                break
        if budget <= 0:
            break
    raw = sum(b.nbytes for b in chunks)
    print(
        f"{len(chunks)} chunks {chunk} of level 0 ({raw / 2**20:.0f} MiB), one thread, "
        "CPU seconds\n"
    )
    print("| codec | ratio | compress MiB/s | decompress MiB/s |")
    print("|---|---|---|---|")
    for name, codec in candidates():
        t0 = time.process_time()
        encoded = [codec.encode(b) for b in chunks]
        enc = time.process_time() - t0
        size = sum(len(e) for e in encoded)
        t0 = time.process_time()
        for e in encoded:
            codec.decode(e)
        dec = time.process_time() - t0
        print(
            f"| {name} | {raw / size:.3f} | {raw / 2**20 / enc:.0f} | {raw / 2**20 / dec:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
