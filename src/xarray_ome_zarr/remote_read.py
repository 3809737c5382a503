"""Read the chunks of a remote (unsharded) zarr array with fetches and decodes overlapped.

zarr-python reads a selection over a network ``async.concurrency`` (10) chunks at a time, each
one fetched and then decoded before its slot takes the next chunk, so the network waits while
chunks decode and the cores wait while chunks travel. Here every chunk the selection touches is
requested at once through the store's own (public) async ``get`` on zarr's event loop, at most
:data:`CONCURRENCY` in flight, and each chunk is decoded on the shared read pool of
:mod:`.direct_read` the moment it arrives, into its part of the output, while the others are
still on the way. One request per chunk, as zarr makes: the request count does not change.

Used for stores that talk to a network (fsspec's, obstore's); local files have
:mod:`.direct_read`. A sharded array, a layout zarr must decode, or a selection with a step
goes through zarr as before (:meth:`StoreReader.of` or :meth:`StoreReader.read` give ``None``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from ._compat import sync
from .direct_read import (
    ChunkReadError,
    Decode,
    chunk_decoder,
    fill_value,
    overlap,
    read_pool,
    selection_bounds,
)
from .store import fsspec_protocols

#: Chunks fetched or being decoded at once by one read (zarr's default is 10). Each holds its
#: compressed bytes until decoded, so this also bounds the read's memory beyond its result.
CONCURRENCY = 24

#: The fsspec protocols read this way: object stores and HTTP, whose requests are independent
#: (not fsspec's zip or reference filesystems, which share one file object between threads).
NETWORK_PROTOCOLS = frozenset({"http", "https", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})


def _is_network_store(store: Any) -> bool:
    """Whether ``store`` is zarr's obstore store, or its fsspec store over a network protocol."""
    if type(store).__name__ == "ObjectStore":
        return True
    protocols = fsspec_protocols(store)
    return bool(protocols) and all(p in NETWORK_PROTOCOLS for p in protocols)


@dataclass(frozen=True)
class StoreReader:
    """Reads basic selections of one zarr array from its store, fetches and decodes overlapped."""

    store: Any
    prefix: str
    metadata: Any
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    fill: Any
    decode: Decode

    @classmethod
    def of(cls, array: zarr.Array) -> StoreReader | None:
        """A reader for ``array``, or ``None`` when zarr must read it."""
        try:
            store = array.store_path.store
            if not _is_network_store(store):
                return None
            if np.dtype(array.dtype).kind not in "biufc" or array.ndim == 0:
                return None
            if getattr(array, "shards", None) is not None:
                return None
            decode = chunk_decoder(array)
        except Exception:  # an optimisation only: whatever it does not know, zarr reads
            return None
        if decode is None:
            return None
        prefix = array.store_path.path.strip("/")
        chunks = tuple(int(c) for c in array.chunks)
        fill = fill_value(array)
        return cls(store, prefix, array.metadata, tuple(array.shape), chunks, fill, decode)

    def chunk_key(self, coords: Sequence[int]) -> str:
        """The chunk's key in the store."""
        key = self.metadata.encode_chunk_key(tuple(coords))
        return f"{self.prefix}/{key}" if self.prefix else key

    def read(self, key: tuple[Any, ...], dtype: np.dtype) -> np.ndarray | None:
        """``array[key]`` for a tuple of ints and unit-step slices; ``None`` for other keys."""
        bounds = selection_bounds(key, self.shape)
        if bounds is None:
            return None
        out = np.empty(tuple(stop - start for start, stop in bounds), dtype=dtype)
        if out.size:
            grid = [
                range(start // c, -(-stop // c))
                for (start, stop), c in zip(bounds, self.chunks, strict=True)
            ]
            sync(self._read_into(out, bounds, list(itertools.product(*grid))))
        drop = tuple(i for i, k in enumerate(key) if not isinstance(k, slice))
        return out.squeeze(axis=drop) if drop else out

    async def _read_into(
        self, out: np.ndarray, bounds: Sequence[tuple[int, int]], tiles: list[tuple[int, ...]]
    ) -> None:
        from zarr.buffer import default_buffer_prototype

        prototype = default_buffer_prototype()
        loop = asyncio.get_running_loop()
        limit = asyncio.Semaphore(CONCURRENCY)
        pool = read_pool()

        async def one(coords: tuple[int, ...]) -> None:
            key = self.chunk_key(coords)
            async with limit:
                try:
                    found = await self.store.get(key, prototype=prototype)
                except Exception as err:  # a failed request: named by its chunk
                    raise ChunkReadError(f"chunk {key!r}: {type(err).__name__}: {err}") from err
                data = None if found is None else found.as_numpy_array()
                await loop.run_in_executor(pool, self._copy_into, out, bounds, coords, key, data)

        try:
            async with asyncio.TaskGroup() as group:  # the first failure cancels the rest
                for coords in tiles:
                    group.create_task(one(coords))
        except BaseExceptionGroup as failures:
            raise _first(failures) from None

    def _copy_into(
        self,
        out: np.ndarray,
        bounds: Sequence[tuple[int, int]],
        coords: tuple[int, ...],
        key: str,
        data: np.ndarray | None,
    ) -> None:
        """Decode one chunk's bytes (``None``: not stored) into its part of ``out``."""
        target, source = overlap(bounds, self.chunks, coords)
        if data is None:
            out[target] = self.fill
            return
        try:
            chunk = self.decode(data)
            if chunk.shape != self.chunks:
                raise ValueError(f"decoded to shape {chunk.shape}, not {self.chunks}")
        except Exception as err:  # any codec failure: named by its chunk
            raise ChunkReadError(f"chunk {key!r}: {type(err).__name__}: {err}") from err
        out[target] = chunk[source]


def _first(failures: BaseExceptionGroup) -> BaseException:
    """The first error of a task group's failures (groups may nest)."""
    first = failures.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first
