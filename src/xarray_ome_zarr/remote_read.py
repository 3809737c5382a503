"""Read the chunks of a remote zarr array, sharded or not, with fetches and decodes overlapped.

zarr-python reads a selection over a network ``async.concurrency`` (10) chunks at a time, each
one fetched and then decoded before its slot takes the next chunk, so the network waits while
chunks decode and the cores wait while chunks travel. Here every chunk the selection touches is
requested at once through the store's own (public) async ``get`` on zarr's event loop, at most
:data:`CONCURRENCY` in flight, and each chunk is decoded on the shared read pool of
:mod:`.direct_read` the moment it arrives, into its part of the output, while the others are
still on the way. One request per chunk, as zarr makes: the request count does not change.

A sharded array (``sharding_indexed``) is read with zarr's requests too, all in flight at once:
a shard the selection covers whole is one GET, its index decoded once from its bytes and its
inner chunks decoded on the pool from slices of them; a shard it covers in part gets one ranged
GET for its index (at the start or the end), then one ranged GET for each stored inner chunk
the selection touches. A missing shard or inner chunk reads as the fill value, as zarr reads it.

An fsspec store on s3fs has its chunk requests made through obstore instead where its options
map exactly (:mod:`.s3_obstore`): the same requests, less client CPU.

Used for stores that talk to a network (fsspec's, obstore's); local files have
:mod:`.direct_read`. A layout zarr must decode, or a selection with a step, goes through zarr
as before (:meth:`StoreReader.of` or :meth:`StoreReader.read` give ``None``).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from ._compat import sync
from .direct_read import (
    MISSING,
    ChunkReadError,
    Decode,
    DecodeInto,
    ShardFormat,
    chunk_decoder_into,
    fill_value,
    overlap,
    read_pool,
    selection_bounds,
    stored_layout,
)
from .s3_obstore import chunk_store
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
    #: The chunk shape, or for a sharded array the shard shape (one stored object each).
    chunks: tuple[int, ...]
    fill: Any
    decode: Decode
    #: For a sharded array: how its shards hold the inner chunks.
    shards: ShardFormat | None = None
    #: ``decode`` into a reused buffer (or straight into the result), where the codecs allow.
    decode_into: DecodeInto | None = None
    #: The dtype the chunks decode to.
    dtype: np.dtype | None = None

    @classmethod
    def of(cls, array: zarr.Array) -> StoreReader | None:
        """A reader for ``array``, or ``None`` when zarr must read it."""
        try:
            store = array.store_path.store
            if not _is_network_store(store):
                return None
            if np.dtype(array.dtype).kind not in "biufc" or array.ndim == 0:
                return None
            layout = stored_layout(array)
            if layout is None:
                return None
            chunks, decode, shards = layout
            into = chunk_decoder_into(array) if shards is None else shards.decode_inner_into
        except Exception:  # an optimisation only: whatever it does not know, zarr reads
            return None
        prefix = array.store_path.path.strip("/")
        twin = chunk_store(store)  # s3fs's chunk requests through obstore, where exact
        if twin is not None:
            store, root = twin
            prefix = "/".join(p for p in (root, prefix) if p)
        fill = fill_value(array)
        shape = tuple(array.shape)
        dtype = np.dtype(array.dtype)
        return cls(store, prefix, array.metadata, shape, chunks, fill, decode, shards, into, dtype)

    def chunk_key(self, coords: Sequence[int]) -> str:
        """The chunk's (or shard's) key in the store."""
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
            sync(_Read(self, out, bounds).run(list(itertools.product(*grid))))
        drop = tuple(i for i, k in enumerate(key) if not isinstance(k, slice))
        return out.squeeze(axis=drop) if drop else out


class _Read:
    """One read: its requests, at most :data:`CONCURRENCY` at once, each chunk decoded into
    ``out`` on the read pool the moment its bytes arrive."""

    def __init__(
        self, reader: StoreReader, out: np.ndarray, bounds: Sequence[tuple[int, int]]
    ) -> None:
        from zarr.buffer import default_buffer_prototype

        self.reader, self.out, self.bounds = reader, out, bounds
        self.prototype = default_buffer_prototype()
        self.limit = asyncio.Semaphore(CONCURRENCY)
        self.pool = read_pool()

    async def run(self, tiles: list[tuple[int, ...]]) -> None:
        """Read the chunks (or shards) at ``tiles`` into ``out``."""
        try:
            async with asyncio.TaskGroup() as group:  # the first failure cancels the rest
                self.group = group
                one = self.chunk if self.reader.shards is None else self.shard
                for coords in tiles:
                    group.create_task(one(coords))
        except BaseExceptionGroup as failures:
            raise _first(failures) from None

    async def fetch(self, key: str, byte_range: Any = None) -> np.ndarray | None:
        """The stored bytes at ``key`` (``byte_range`` of them), ``None`` when not stored."""
        try:
            found = await self.reader.store.get(key, self.prototype, byte_range)
        except Exception as err:  # a failed request: named by its key
            raise ChunkReadError(f"chunk {key!r}: {type(err).__name__}: {err}") from err
        return None if found is None else found.as_numpy_array()

    async def decode_into(
        self, chunks: Sequence[int], coords: tuple[int, ...], data: Any, name: str
    ) -> None:
        """Decode one chunk's bytes on the pool into its part of ``out``."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.pool, self._decode_into, chunks, coords, data, name)

    def _decode_into(
        self, chunks: Sequence[int], coords: tuple[int, ...], data: Any, name: str
    ) -> None:
        """Decode one chunk into its part of ``out``: straight into it where that part is the
        whole chunk and contiguous, else into this thread's scratch buffer (fresh memory for
        every chunk costs page faults) and copied from there; else the allocating decode."""
        target, source = overlap(self.bounds, chunks, coords)
        region = self.out[target]
        into = self.reader.decode_into
        try:
            chunk = None
            straight = region.shape == tuple(chunks) and region.flags.c_contiguous
            whole = straight and region.dtype == self.reader.dtype
            if (
                into is not None
                and whole
                and into(data, region.reshape(-1).view(np.uint8)) is not None
            ):
                return
            if into is not None:
                chunk = into(data, _scratch(region.dtype.itemsize * math.prod(chunks)))
            if chunk is None:
                chunk = self.reader.decode(data)
            if chunk.shape != tuple(chunks):
                raise ValueError(f"decoded to shape {chunk.shape}, not {tuple(chunks)}")
        except Exception as err:  # any codec failure: named by its chunk
            raise ChunkReadError(f"{name}: {type(err).__name__}: {err}") from err
        region[...] = chunk[source]

    def fill(self, chunks: Sequence[int], coords: tuple[int, ...]) -> None:
        """The part of ``out`` of a chunk that is not stored: the fill value."""
        self.out[overlap(self.bounds, chunks, coords)[0]] = self.reader.fill

    async def chunk(self, coords: tuple[int, ...]) -> None:
        """One chunk of an unsharded array: one GET, then its decode."""
        key = self.reader.chunk_key(coords)
        async with self.limit:
            data = await self.fetch(key)
            if data is None:
                self.fill(self.reader.chunks, coords)
            else:
                await self.decode_into(self.reader.chunks, coords, data, f"chunk {key!r}")

    async def shard(self, coords: tuple[int, ...]) -> None:
        """One shard: one GET of the whole shard where the selection covers all its inner
        chunks, else one ranged GET of its index and one of each stored inner chunk touched
        (zarr's requests)."""
        from zarr.abc.store import RangeByteRequest, SuffixByteRequest

        shards = self.reader.shards
        assert shards is not None
        key = self.reader.chunk_key(coords)
        touched = shards.touched(self.bounds, coords)
        whole = len(touched) == math.prod(shards.chunks_per_shard)
        async with self.limit:
            if whole:
                data = await self.fetch(key)
            else:
                size = shards.index_size
                at = RangeByteRequest(0, size) if shards.index_at_start else SuffixByteRequest(size)
                data = await self.fetch(key, at)
        if data is None:  # no shard stored
            self.fill(self.reader.chunks, coords)
            return
        try:
            index = shards.index_of(data) if whole else shards.parse_index(data, None)
        except Exception as err:  # too short, corrupt: named by its key
            raise ChunkReadError(
                f"shard {key!r}: cannot read its index: {type(err).__name__}: {err}"
            ) from err
        for chunk in touched:
            offset, length = (int(v) for v in index[shards.slot(chunk)])
            name = f"shard {key!r}, inner chunk {chunk}"
            if offset == MISSING:
                self.fill(shards.inner_chunks, chunk)
            elif whole:
                part = data[offset : offset + length]
                self.group.create_task(self.decode_into(shards.inner_chunks, chunk, part, name))
            else:
                span = RangeByteRequest(offset, offset + length)
                self.group.create_task(self.inner(key, span, chunk, name))

    async def inner(self, key: str, span: Any, chunk: tuple[int, ...], name: str) -> None:
        """One inner chunk of a shard: its byte range, then its decode."""
        shards = self.reader.shards
        assert shards is not None
        async with self.limit:
            data = await self.fetch(key, span)
            if data is None or len(data) != span.end - span.start:
                got = "nothing" if data is None else f"{len(data)} bytes"
                raise ChunkReadError(f"{name}: {got} where the index gives {span}")
            await self.decode_into(shards.inner_chunks, chunk, data, name)


_SCRATCH = threading.local()


def _scratch(nbytes: int) -> np.ndarray:
    """This thread's reused buffer of ``nbytes`` bytes (one per read-pool thread)."""
    buffer: np.ndarray | None = getattr(_SCRATCH, "buffer", None)
    if buffer is None or buffer.nbytes != nbytes:
        buffer = _SCRATCH.buffer = np.empty(nbytes, dtype=np.uint8)
    return buffer


def _first(failures: BaseExceptionGroup) -> BaseException:
    """The first error of a task group's failures (groups may nest)."""
    first = failures.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first
