#!/usr/bin/env python
"""Plates (issue 16): opening HCS plates, ours against ome-zarr-py's plate reader.

    python benchmarks/plates.py            # 384-well plate locally, 96-well plate over HTTP
    python benchmarks/plates.py --quick    # the 96-well plate for both, fewer rounds

Contenders, each in its own fresh process per round (taking turns, the order reversed every
other round); each process opens once to warm up (imports, engine discovery, the OS's file
cache), then times ``--opens`` opens and reports their median wall and CPU time:

- ``tree``: ``xr.open_datatree(plate, engine="ome-zarr")``: every well, field and level
  as nodes with lazy arrays and coordinates;
- ``tree_nodefault``: ``xoz.open_ome_datatree(plate)``, the same with
  ``create_default_indexes=False`` (its default): every node already has its indexes, so the
  result is identical; it skips xarray's second pass over the tree (``map_over_datasets``
  and ``DataTree.from_dict`` again), which costs more than our open;
- ``view``: ``xr.open_dataset(plate, engine="ome-zarr", level=0)``: the plate view;
- ``omezarr``: ome-zarr-py 0.18's plate reader, ``list(Reader(parse_url(plate))())``: it
  parses the plate, the first well and field, and builds the plate node's lazy dask pyramid
  (every level of the first field of every well stitched into one array per level; other
  fields are not opened). What it reads is less than ``tree``'s, about what ``view`` reads.

Over HTTP the plate is served by ``_http.DelayedHTTPServer`` (20 ms per request; since session
6 a 404 keeps its connection open, as real servers do, where ``http.server`` closed it); the tree
is also opened from a consolidated copy, and request counts and waves are reported. A ratio
is the median of ours over the median of ome-zarr-py's, from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _http import DelayedHTTPServer  # noqa: E402
from _plate_data import ensure_plates  # noqa: E402

WORKER = r"""
import json, statistics, sys, time, warnings
warnings.simplefilter("ignore")
who, target, opens = sys.argv[1], sys.argv[2], int(sys.argv[3])
import xarray as xr
if who == "omezarr":
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    def open_it():
        return list(Reader(parse_url(target))())
elif who == "tree_nodefault":
    def open_it():
        import xarray_ome_zarr as xoz
        return xoz.open_ome_datatree(target)
elif who == "view":
    def open_it():
        return xr.open_dataset(target, engine="ome-zarr", level=0)
else:
    def open_it():
        return xr.open_datatree(target, engine="ome-zarr")
open_it()
if opens == 0:  # one open only (request counts)
    print("{}")
    sys.exit(0)
walls, cpus = [], []
for _ in range(opens):
    w, c = time.perf_counter(), time.process_time()
    open_it()
    walls.append(time.perf_counter() - w)
    cpus.append(time.process_time() - c)
print(json.dumps({"wall": statistics.median(walls), "cpu": statistics.median(cpus)}))
"""


def measure(who: str, target: str, opens: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", WORKER, who, target, str(opens)],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ),
    )
    if out.returncode != 0:
        raise RuntimeError(f"{who} on {target} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def requests_of(server: DelayedHTTPServer, who: str, target: str) -> dict:
    """Request count and waves of one open in a fresh process."""
    server.reset()
    subprocess.run(
        [sys.executable, "-c", WORKER, who, target, "0"], check=True, capture_output=True
    )
    snap = server.snapshot()
    return {"requests": snap["total"], "waves": snap["waves"]}


def run_group(title: str, targets: dict[str, str], rounds: int, opens: int) -> list[str]:
    samples: dict[str, list[dict]] = {who: [] for who in targets}
    order = list(targets)
    for r in range(rounds):
        for who in order if r % 2 == 0 else order[::-1]:
            samples[who].append(measure(who, targets[who], opens))
            print(f"  {title} round {r + 1} {who}: {samples[who][-1]}", flush=True)
    med = {
        who: {k: statistics.median(s[k] for s in got) for k in ("wall", "cpu")}
        for who, got in samples.items()
    }
    ref = med["omezarr"]
    lines = [
        f"### {title}",
        "",
        "| contender | wall | CPU | wall ratio | CPU ratio |",
        "|---|---|---|---|---|",
    ]
    for who, m in med.items():
        lines.append(
            f"| {who} | {m['wall']:.3f} s | {m['cpu']:.3f} s | "
            f"{m['wall'] / ref['wall']:.2f}× | {m['cpu'] / ref['cpu']:.2f}× |"
        )
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the 96-well plate, fewer rounds")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--opens", type=int, default=3, help="timed opens per process")
    parser.add_argument("--cache-dir", default=os.environ.get("XOZ_BENCH_CACHE", HERE / ".cache"))
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    plates = ensure_plates(Path(args.cache_dir))
    local = plates["plate-96" if args.quick else "plate-384"]
    report = [f"plates benchmark ({'quick' if args.quick else 'full'}), {rounds} rounds", ""]
    report += run_group(
        f"local {Path(local).name}",
        {"tree": local, "tree_nodefault": local, "view": local, "omezarr": local},
        rounds,
        args.opens,
    )
    folder = Path(plates["plate-96"]).parent
    # a 404 (every labels probe) keeps its connection, as real servers do; http.server's
    # own send_error closes it, so each probe cost both contenders a new connection
    with DelayedHTTPServer(folder, delay=0.020, keep_alive_on_404=True) as server:
        url = f"{server.url}/plate-96.ome.zarr"
        cons = f"{server.url}/plate-96-consolidated.ome.zarr"
        targets = {"tree": url, "tree_nodefault": url, "view": url, "omezarr": url}
        report += run_group("HTTP (20 ms) plate-96", targets, rounds, 1)
        report += run_group(
            "HTTP (20 ms) plate-96, ours consolidated",
            {"tree": cons, "omezarr": url},
            rounds,
            1,
        )
        counts = {
            "tree": requests_of(server, "tree", url),
            "tree, consolidated": requests_of(server, "tree", cons),
            "view": requests_of(server, "view", url),
            "omezarr": requests_of(server, "omezarr", url),
        }
    report += ["### HTTP requests of one open (plate-96)", ""]
    report += [
        f"- {who}: {c['requests']} requests in {c['waves']} waves" for who, c in counts.items()
    ]
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
