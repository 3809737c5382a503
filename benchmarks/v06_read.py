#!/usr/bin/env python
"""Opening and reading an OME-Zarr 0.6 image written by ngff-zarr: xarray-ome-zarr against
ngff-zarr's own reader (issue 14, the comparison page's 0.6 row).

    python benchmarks/v06_read.py            # 64 x 1024 x 1024 uint16 (128 MiB), 7 rounds
    python benchmarks/v06_read.py --quick    # 32 x 512 x 512 (16 MiB), 5 rounds (~1-2 min)

The image: z/y/x uint16, chunks 32 x 256 x 256, two levels, written once by ngff-zarr 0.50
(``to_ngff_zarr(..., version="0.6")``) with a second coordinate system ("world") and a
multiscale-level transform to it, into ``benchmarks/.cache/v06-<full|quick>/``.

Contenders, each measurement in its own fresh Python process (imports done before timing):
- ``open``: open the image lazily, level 0 (ours: ``xr.open_dataset(path,
  engine="ome-zarr")``, which checks the document against the spec's JSON schema every time;
  ngff-zarr: ``from_ngff_zarr(path)``, which does not unless ``validate=True``, measured
  too); no pixel read;
- ``read``: open and read every pixel of level 0 (ours: ``.values``; ngff-zarr:
  ``images[0].data.compute()``); each process reads once to warm up, then times 3 reads
  (its figure is their median).
Rounds alternate who goes first; a ratio is the median of ours over the median of
ngff-zarr's, from the same run. The script prints the load of the machine during the run:
on a shared machine the absolute times move, the ratios much less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

WORKER = r"""
import json, statistics, sys, time
path, who, what = sys.argv[1:4]
import numpy as np
if who == "ours":
    import xarray as xr
    import xarray_ome_zarr  # noqa: F401
    def open_():
        return xr.open_dataset(path, engine="ome-zarr")
    def read():
        return open_()["img"].values
else:
    import ngff_zarr as nz
    validate = who == "ngff_validate"
    def open_():
        return nz.from_ngff_zarr(path, validate=validate)
    def read():
        return np.asarray(open_().images[0].data.compute())
run = open_ if what == "open" else read
first = run()  # warm-up (and the pixels' checksum)
check = int(np.asarray(first).sum()) if what == "read" else 0
times = []
for _ in range(3):
    t0 = time.perf_counter()
    run()
    times.append(time.perf_counter() - t0)
print("@@" + json.dumps({"time": statistics.median(times), "check": check}))
"""


def build(cache: Path, quick: bool) -> Path:
    """ngff-zarr's 0.6 image (built once per size)."""
    shape = (32, 512, 512) if quick else (64, 1024, 1024)
    path = cache / "image-0.6.ome.zarr"
    stamp = cache / "params.json"
    params = {"shape": shape, "chunks": [32, 256, 256], "version": "0.6"}
    if path.exists() and stamp.exists() and json.loads(stamp.read_text()) == params:
        return path
    import ngff_zarr as nz
    import numpy as np
    from ngff_zarr.v06 import zarr_metadata as m6

    rng = np.random.default_rng(0)
    z, y, x = np.meshgrid(*(np.linspace(0, 6, n) for n in shape), indexing="ij")
    data = (20000 + 10000 * np.sin(x + y) * np.cos(z) + rng.normal(0, 100, shape)).astype("uint16")
    image = nz.to_ngff_image(
        data,
        dims=["z", "y", "x"],
        scale={"z": 2.0, "y": 0.5, "x": 0.5},
        translation={"z": 1.0, "y": 10.0, "x": 20.0},
        name="img",
        axes_units={"z": "micrometer", "y": "micrometer", "x": "micrometer"},
    )
    multiscales = nz.to_multiscales(
        image,
        scale_factors=[{"z": 1, "y": 2, "x": 2}],
        chunks=tuple(params["chunks"]),
        method=nz.Methods.ITKWASM_BIN_SHRINK,
    )
    meta = multiscales.metadata
    meta.coordinateSystems.append(
        m6.CoordinateSystem(
            name="world",
            axes=[m6.Axis(name=d, type="space", unit="millimeter") for d in ("z", "y", "x")],
        )
    )
    meta.coordinateTransformations = [
        m6.Scale(
            scale=[0.001, 0.001, 0.001],
            input=m6.CoordinateSystemIdentifier(name=meta.coordinateSystems[0].name),
            output=m6.CoordinateSystemIdentifier(name="world"),
        )
    ]
    cache.mkdir(parents=True, exist_ok=True)
    nz.to_ngff_zarr(str(path), multiscales, version="0.6")
    stamp.write_text(json.dumps(params))
    return path


def measure(path: Path, who: str, what: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(path), who, what],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    for line in done.stdout.splitlines():
        if line.startswith("@@"):
            return json.loads(line[2:])
    raise RuntimeError(f"{who} {what} failed:\n{done.stdout}\n{done.stderr}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="16 MiB image, 5 rounds")
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default 7; quick 5)")
    parser.add_argument("--cache-dir", type=Path, default=HERE / ".cache")
    args = parser.parse_args(argv)
    rounds = args.repeat or (5 if args.quick else 7)
    cache = args.cache_dir / ("v06-quick" if args.quick else "v06-full")
    path = build(cache, args.quick)
    load_before = os.getloadavg()[0]
    results: dict[tuple[str, str], list[dict]] = {}
    for what in ("open", "read"):
        contenders = ("ours", "ngff", "ngff_validate") if what == "open" else ("ours", "ngff")
        for n in range(rounds):
            order = contenders if n % 2 == 0 else contenders[::-1]
            for who in order:
                results.setdefault((who, what), []).append(measure(path, who, what))
    load_after = os.getloadavg()[0]
    checks = {r["check"] for (_, what), rs in results.items() if what == "read" for r in rs}
    if len(checks) != 1:
        print(f"WARNING: the two readers' pixels differ (checksums {sorted(checks)})")
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    print(
        f"OME-Zarr 0.6 image written by ngff-zarr ({size / 2**20:.1f} MiB on disk), "
        f"{rounds} rounds, medians; load average {load_before:.1f} before, "
        f"{load_after:.1f} after, on {os.cpu_count()} CPUs ({time.strftime('%Y-%m-%d %H:%M')})"
    )
    print()
    print("| | xarray-ome-zarr | ngff-zarr | ratio (ours / ngff-zarr) | per-round ratios |")
    print("|---|---|---|---|---|")
    rows = (
        ("open", "ngff", "open (lazy, level 0)"),
        ("open", "ngff_validate", "open, ngff-zarr with `validate=True`"),
        ("read", "ngff", "open + read level 0"),
    )
    for what, ref, label in rows:
        ours = [r["time"] for r in results["ours", what]]
        ngff = [r["time"] for r in results[ref, what]]
        pairs = [a / b for a, b in zip(ours, ngff, strict=True)]
        print(
            f"| {label} | {statistics.median(ours) * 1e3:.1f} ms | "
            f"{statistics.median(ngff) * 1e3:.1f} ms | "
            f"{statistics.median(ours) / statistics.median(ngff):.2f} | "
            f"{min(pairs):.2f}-{max(pairs):.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
