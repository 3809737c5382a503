"""Read the chunks of a local, unsharded zarr array directly.

zarr-python reads every selection through its event loop: each chunk's file read and decode
hop between threads, and two cores spend a third of their time on that machinery rather than
on decoding (``docs/benchmarks.md``). For the common case (a directory store, a regular chunk
grid, no sharding, no array-to-array codec, a numeric dtype) this module reads the chunk files
itself and decodes them with the array's own codecs, synchronously: in the calling thread for
one chunk (a dask task), on a small shared thread pool for many (``.values``).

Anything else, or a selection with a step, goes through zarr as before
(:meth:`DirectReader.of` returns ``None``, :meth:`DirectReader.read` returns ``None``).
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ._compat import V2Codec, codec_pipeline, sync_decoder

Decode = Callable[[bytes], np.ndarray]

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The threads that read many chunks at once (created on first use, shared)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            workers = min(32, (os.cpu_count() or 1) + 2)
            _POOL = ThreadPoolExecutor(workers, thread_name_prefix="xoz-read")
        return _POOL


def _forget_pool() -> None:
    """In a forked child the pool's threads do not exist: start a new pool there."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX only; Windows has no fork
    os.register_at_fork(after_in_child=_forget_pool)


class ChunkReadError(Exception):
    """A chunk file that could not be read or decoded; names the chunk's key."""


def _v3_decoder(array: zarr.Array) -> Decode | None:
    from zarr.buffer import default_buffer_prototype
    from zarr.codecs import BytesCodec

    pipeline = codec_pipeline(array)
    if pipeline is None:
        return None
    if pipeline.array_array_codecs or not isinstance(pipeline.array_bytes_codec, BytesCodec):
        return None
    decoders = [sync_decoder(c) for c in reversed(pipeline.bytes_bytes_codecs)]
    deserialize = sync_decoder(pipeline.array_bytes_codec)
    if deserialize is None or any(d is None for d in decoders):
        return None
    decompressors = [d for d in decoders if d is not None]
    prototype = default_buffer_prototype()
    spec = array.metadata.get_chunk_spec((0,) * array.ndim, array.config, prototype)

    def decode(data: bytes) -> np.ndarray:
        buffer = prototype.buffer.from_bytes(data)
        for decompress in decompressors:
            buffer = decompress(buffer, spec)
        return deserialize(buffer, spec).as_numpy_array()  # type: ignore[no-any-return]

    return decode


def _v2_decoder(array: zarr.Array) -> Decode | None:
    from numcodecs.compat import ensure_ndarray

    pipeline = codec_pipeline(array)
    if pipeline is None or V2Codec is None:
        return None
    codec = pipeline.array_bytes_codec
    if pipeline.array_array_codecs or not isinstance(codec, V2Codec):
        return None
    dtype = np.dtype(array.dtype)
    shape = tuple(array.chunks)
    order = getattr(array.metadata, "order", "C")  # a v2 array: its metadata has one
    compressor = codec.compressor
    filters = tuple(reversed(codec.filters or ()))

    def decode(data: bytes) -> np.ndarray:
        chunk: Any = compressor.decode(data) if compressor is not None else data
        for f in filters:
            chunk = f.decode(chunk)
        flat = ensure_ndarray(chunk).reshape(-1)
        return flat.view(dtype).reshape(shape, order=order)

    return decode


def _fill_value(array: zarr.Array) -> Any:
    value = array.metadata.fill_value
    return 0 if value is None else value


@dataclass(frozen=True)
class DirectReader:
    """Reads basic selections of one zarr array from its chunk files."""

    folder: Path
    metadata: Any
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    fill: Any
    decode: Decode

    @classmethod
    def of(cls, array: zarr.Array) -> DirectReader | None:
        """A reader for ``array``, or ``None`` when zarr must read it."""
        try:
            store = array.store_path.store
            if not isinstance(store, zarr.storage.LocalStore):
                return None
            if np.dtype(array.dtype).kind not in "biufc" or array.ndim == 0:
                return None
            if getattr(array, "shards", None) is not None:
                return None
            chunks = tuple(int(c) for c in array.chunks)
            v3 = array.metadata.zarr_format == 3
            decode = _v3_decoder(array) if v3 else _v2_decoder(array)
        except Exception:  # an optimisation only: whatever it does not know, zarr reads
            return None
        if decode is None:
            return None
        folder = Path(store.root) / array.store_path.path
        return cls(folder, array.metadata, tuple(array.shape), chunks, _fill_value(array), decode)

    def chunk_key(self, coords: Sequence[int]) -> str:
        """The chunk file's key, relative to the array."""
        return self.metadata.encode_chunk_key(tuple(coords))

    def read_chunk(self, coords: Sequence[int]) -> np.ndarray | None:
        """The decoded chunk at ``coords``, or ``None`` when its file does not exist."""
        key = self.chunk_key(coords)
        try:
            chunk = self.decode((self.folder / key).read_bytes())
            if chunk.shape != self.chunks:
                raise ValueError(f"decoded to shape {chunk.shape}, not {self.chunks}")
            return chunk
        except FileNotFoundError:
            return None
        except Exception as err:  # unreadable file, any codec failure: named by its chunk
            raise ChunkReadError(f"chunk {key!r}: {type(err).__name__}: {err}") from err

    def read(self, key: tuple[Any, ...], dtype: np.dtype) -> np.ndarray | None:
        """``array[key]`` for a tuple of ints and unit-step slices; ``None`` for other keys."""
        bounds = _bounds(key, self.shape)
        if bounds is None:
            return None
        out = np.empty(tuple(stop - start for start, stop in bounds), dtype=dtype)
        if out.size:
            grid = [
                range(start // c, -(-stop // c))
                for (start, stop), c in zip(bounds, self.chunks, strict=True)
            ]
            tiles = list(itertools.product(*grid))

            copy = functools.partial(self._copy_into, out, bounds)
            if len(tiles) == 1:
                copy(tiles[0])
            else:
                for _ in _pool().map(copy, tiles):
                    pass
        drop = tuple(i for i, k in enumerate(key) if not isinstance(k, slice))
        return out.squeeze(axis=drop) if drop else out

    def _copy_into(
        self,
        out: np.ndarray,
        bounds: Sequence[tuple[int, int]],
        coords: tuple[int, ...],
    ) -> None:
        """Read the chunk at ``coords`` into its part of ``out`` (the selection ``bounds``)."""
        target, source = [], []
        for (start, stop), c, i in zip(bounds, self.chunks, coords, strict=True):
            lo, hi = max(start, i * c), min(stop, (i + 1) * c)
            target.append(slice(lo - start, hi - start))
            source.append(slice(lo - i * c, hi - i * c))
        chunk = self.read_chunk(coords)
        out[tuple(target)] = self.fill if chunk is None else chunk[tuple(source)]


def _bounds(key: tuple[Any, ...], shape: Sequence[int]) -> list[tuple[int, int]] | None:
    """``(start, stop)`` per axis for ints and unit-step slices, else ``None``."""
    if len(key) != len(shape):
        return None
    bounds = []
    for k, n in zip(key, shape, strict=True):
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            if step != 1:
                return None
            bounds.append((start, max(start, stop)))
        elif isinstance(k, int | np.integer):
            i = int(k) + n if k < 0 else int(k)
            if not 0 <= i < n:
                return None  # zarr raises its own IndexError
            bounds.append((i, i + 1))
        else:
            return None
    return bounds
