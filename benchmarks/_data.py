"""Benchmark data: the source OME-Zarr 0.5 store and a lazily generated dask image.

The store is written with zarr-python directly (not with xarray-ome-zarr's writer), so the
read benchmarks do not depend on the code under test. It is built once into the cache
directory and reused while its parameters (recorded in ``bench-params.json``) are unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

#: Bumped whenever the generated content or layout changes, to invalidate old caches.
DATA_VERSION = 1

AXES = ("c", "z", "y", "x")
SCALE0 = (1.0, 0.5, 0.2, 0.2)  # c is not scaled; z, y, x in micrometer
FACTORS = (1, 2, 4)  # level i is downsampled by FACTORS[i] along z, y and x
NOISE_SIGMA = 100.0  # gives a zstd ratio of about 1.33 (level 3), like the data


@dataclass(frozen=True)
class ImageSpec:
    """Shape and chunking of the source image."""

    shape: tuple[int, int, int, int]
    chunks: tuple[int, int, int, int]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * 2


FULL = ImageSpec(shape=(2, 64, 1024, 1024), chunks=(1, 32, 256, 256))  # 256 MiB uint16
QUICK = ImageSpec(shape=(2, 32, 512, 512), chunks=(1, 32, 256, 256))  # 32 MiB uint16

#: The lazily generated image for the out-of-core write (2 GiB uint16; --quick: 256 MiB).
LAZY_FULL = ImageSpec(shape=(2, 128, 2048, 2048), chunks=(1, 32, 512, 512))
LAZY_QUICK = ImageSpec(shape=(2, 64, 1024, 1024), chunks=(1, 32, 256, 256))


def slab(c: int, z0: int, nz: int, ny: int, nx: int, seed: int = 0) -> np.ndarray:
    """Deterministic, image-like uint16 content: a smooth pattern plus Gaussian noise."""
    rng = np.random.default_rng([seed, c, z0])
    z = np.arange(z0, z0 + nz, dtype=np.float32)[:, None, None]
    y = np.arange(ny, dtype=np.float32)[None, :, None]
    x = np.arange(nx, dtype=np.float32)[None, None, :]
    base = 800 + 400 * np.sin(x / 97.0 + c) * np.cos(y / 61.0) + 300 * np.cos(z / 13.0 + x / 211.0)
    noise = rng.standard_normal((nz, ny, nx), dtype=np.float32) * NOISE_SIGMA
    return np.clip(base + noise, 0, 65535).astype(np.uint16)


def block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Mean over f*f*f blocks of z, y, x (c kept); rounded back to uint16."""
    c, z, y, x = a.shape
    b = a.reshape(c, z // f, f, y // f, f, x // f, f).mean(axis=(2, 4, 6), dtype=np.float32)
    return np.rint(b).astype(np.uint16)


def ome_attributes(spec: ImageSpec, name: str = "image") -> dict:
    """The group's ``ome`` block (0.5) for the 3-level image."""
    datasets = []
    for i, f in enumerate(FACTORS):
        scale = [SCALE0[0]] + [s * f for s in SCALE0[1:]]
        translation = [0.0] + [(f - 1) / 2 * s for s in SCALE0[1:]]
        datasets.append(
            {
                "path": str(i),
                "coordinateTransformations": [
                    {"type": "scale", "scale": scale},
                    {"type": "translation", "translation": translation},
                ],
            }
        )
    axes = [{"name": "c", "type": "channel"}] + [
        {"name": n, "type": "space", "unit": "micrometer"} for n in AXES[1:]
    ]
    return {
        "version": "0.5",
        "multiscales": [{"name": name, "axes": axes, "datasets": datasets}],
        "omero": {
            "channels": [
                {
                    "label": label,
                    "color": color,
                    "active": True,
                    "window": {"start": 0, "end": 4000, "min": 0, "max": 65535},
                }
                for label, color in (("DAPI", "0000FF"), ("GFP", "00FF00"))
            ][: spec.shape[0]],
        },
    }


def write_source(path: Path, spec: ImageSpec) -> None:
    """Write the 3-level OME-Zarr 0.5 image with zarr-python (zstd, zarr's default codec)."""
    import zarr

    if path.exists():
        shutil.rmtree(path)
    tmp = path.with_name(path.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    root = zarr.open_group(zarr.storage.LocalStore(tmp), mode="w", zarr_format=3)
    arrays = []
    for i, f in enumerate(FACTORS):
        shape = (spec.shape[0],) + tuple(n // f for n in spec.shape[1:])
        chunks = tuple(min(c, n) for c, n in zip(spec.chunks, shape, strict=True))
        arrays.append(
            root.create_array(
                str(i), shape=shape, chunks=chunks, dtype="uint16", dimension_names=AXES
            )
        )
    c, nz = spec.shape[0], spec.shape[1]
    step = spec.chunks[1]  # whole chunks along z; divisible by every factor
    for ci in range(c):
        for z0 in range(0, nz, step):
            data = slab(ci, z0, step, spec.shape[2], spec.shape[3])
            for f, arr in zip(FACTORS, arrays, strict=True):
                part = data if f == 1 else block_mean(data[None], f)[0]
                arr[ci, z0 // f : z0 // f + part.shape[0]] = part
    root.attrs["ome"] = ome_attributes(spec)  # metadata last
    os.replace(tmp, path)


def consolidated_copy(src: Path, dst: Path) -> None:
    """A copy of ``src`` with consolidated metadata: metadata copied, chunk files hard-linked."""
    import zarr

    if dst.exists():
        shutil.rmtree(dst)
    for folder, _dirs, files in os.walk(src):
        out = dst / Path(folder).relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for name in files:
            if name == "zarr.json":
                shutil.copyfile(Path(folder) / name, out / name)
            else:
                os.link(Path(folder) / name, out / name)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "consolidated metadata is not part of zarr v3 spec"
        zarr.consolidate_metadata(zarr.storage.LocalStore(dst))


def sharded_copy(src: Path, dst: Path) -> None:
    """A copy of ``src`` whose levels are sharded: one shard per channel and level (``z, y, x``
    whole: 64x1024x1024 at level 0 of the full image), the same inner chunks and codec (zstd),
    index at the end with its crc32c (zarr's defaults). Written with zarr-python, a channel at
    a time (whole shards, no read-modify-write)."""
    import zarr

    if dst.exists():
        shutil.rmtree(dst)
    tmp = dst.with_name(dst.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    source = zarr.open_group(zarr.storage.LocalStore(src), mode="r")
    root = zarr.open_group(zarr.storage.LocalStore(tmp), mode="w", zarr_format=3)
    for i in range(len(FACTORS)):
        level = source[str(i)]
        shards = (1,) + tuple(level.shape[1:])
        array = root.create_array(
            str(i),
            shape=level.shape,
            chunks=level.chunks,
            shards=shards,
            dtype=level.dtype,
            dimension_names=AXES,
        )
        for c in range(level.shape[0]):
            array[c] = level[c]
    root.attrs["ome"] = source.attrs["ome"]
    os.replace(tmp, dst)


def ensure_data(cache: Path, quick: bool) -> dict:
    """Build (or reuse) the source stores; return their paths and parameters."""
    spec = QUICK if quick else FULL
    lazy = LAZY_QUICK if quick else LAZY_FULL
    folder = cache / ("quick" if quick else "full")
    params = {"data_version": DATA_VERSION, "image": asdict(spec), "sigma": NOISE_SIGMA}
    marker = folder / "bench-params.json"
    src = folder / "image.ome.zarr"
    cons = folder / "image-consolidated.ome.zarr"
    sharded = folder / "image-sharded.ome.zarr"
    params = json.loads(json.dumps(params))  # tuples as lists, as read back
    fresh = not (marker.is_file() and json.loads(marker.read_text()) == params and src.is_dir())
    if fresh:
        folder.mkdir(parents=True, exist_ok=True)
        if marker.exists():
            marker.unlink()
        print(f"building the source image {spec.shape} uint16 in {src} ...", flush=True)
        write_source(src, spec)
        consolidated_copy(src, cons)
        if sharded.exists():
            shutil.rmtree(sharded)
        marker.write_text(json.dumps(params))
    if not sharded.is_dir():
        print(f"building the sharded copy {sharded} ...", flush=True)
        sharded_copy(src, sharded)
    return {
        "folder": str(folder),
        "source": str(src),
        "consolidated": str(cons),
        "sharded": str(sharded),
        "image": asdict(spec),
        "lazy": asdict(lazy),
        "built": fresh,
    }


def lazy_image(spec: ImageSpec):
    """A lazily generated dask array with the same kind of content as the source image.

    Cheap to generate (a smooth pattern plus uniform integer noise of the same spread as the
    source image's), so the write benchmark measures the writer, not the generator.
    """
    import dask.array as da

    spread = int(NOISE_SIGMA * 12**0.5)  # uniform noise with the standard deviation sigma

    def block(block_info=None):
        (c0, _), (z0, z1), (y0, y1), (x0, x1) = block_info[None]["array-location"]
        rng = np.random.default_rng([2, c0, z0, y0, x0])
        y = np.arange(y0, y1, dtype=np.float32)[:, None]
        x = np.arange(x0, x1, dtype=np.float32)[None, :]
        plane = (800 + 400 * np.sin(x / 97.0 + c0) * np.cos(y / 61.0)).astype(np.uint16)
        depth = (300 + 300 * np.cos(np.arange(z0, z1, dtype=np.float32) / 13.0)).astype(np.uint16)
        out = rng.integers(0, spread, size=(z1 - z0, y1 - y0, x1 - x0), dtype=np.uint16)
        out += plane[None]
        out += depth[:, None, None]
        return out[None]

    chunks = tuple(
        tuple(min(c, n - i) for i in range(0, n, c))
        for c, n in zip(spec.chunks, spec.shape, strict=True)
    )
    return da.map_blocks(block, dtype=np.uint16, chunks=chunks, meta=np.empty((0,) * 4, np.uint16))
