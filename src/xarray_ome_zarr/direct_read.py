"""Read the chunks of a local zarr array directly, sharded or not.

zarr-python reads every selection through its event loop: each chunk's file read and decode
hop between threads, and two cores spend a third of their time on that machinery rather than
on decoding (``docs/benchmarks.md``). For the common case (a directory store, a regular chunk
grid, no sharding, no array-to-array codec, a numeric dtype) this module reads the chunk files
itself and decodes them with the array's own codecs, synchronously: in the calling thread for
one chunk (a dask task), on a small shared thread pool for many (``.values``).

A sharded zarr v3 array (``sharding_indexed``) is read the same way, shard file by shard file:
the shard's index is read (one small read at its start or end) and decoded once, then only the
inner chunks the selection touches are read as byte ranges of the file and decoded straight
into their part of the output, on the thread pool. Locally that is as fast as one read of the
whole shard and holds one inner chunk per thread instead of whole compressed shards. A missing
shard file or inner chunk (``2**64 - 1`` in the index) reads as the fill value, as zarr reads it.

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

from ._compat import V2Codec, codec_pipeline, shard_layout, sync_decoder

#: Decodes one chunk's stored bytes (``bytes`` or a uint8 array) into an array.
Decode = Callable[[Any], np.ndarray]

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def read_pool() -> ThreadPoolExecutor:
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


def _chain_decoder(codecs: Sequence[Any], spec: Any) -> Decode | None:
    """A decode of one chunk's bytes through ``codecs`` (zarr v3: one array-to-bytes codec,
    ``bytes``, then bytes-to-bytes codecs) into an array of ``spec``'s shape; ``None`` for
    chains that are not that, or codecs without a synchronous decode."""
    from zarr.abc.codec import ArrayBytesCodec, BytesBytesCodec
    from zarr.buffer import default_buffer_prototype
    from zarr.codecs import BytesCodec

    if not codecs or not isinstance(codecs[0], ArrayBytesCodec):
        return None  # an array-to-array codec first (transpose...): zarr reads it
    serializer, compressors = codecs[0], codecs[1:]
    if not isinstance(serializer, BytesCodec):
        return None  # nested sharding, or another serializer
    if not all(isinstance(c, BytesBytesCodec) for c in compressors):
        return None
    decoders = [sync_decoder(c) for c in reversed(compressors)]
    deserialize = sync_decoder(serializer)
    if deserialize is None or any(d is None for d in decoders):
        return None
    decompressors = [d for d in decoders if d is not None]
    prototype = default_buffer_prototype()

    def decode(data: bytes) -> np.ndarray:
        buffer = prototype.buffer.from_bytes(data)
        for decompress in decompressors:
            buffer = decompress(buffer, spec)
        return deserialize(buffer, spec).as_numpy_array()  # type: ignore[no-any-return]

    return decode


#: Decodes one chunk's stored bytes into a scratch buffer of exactly the chunk's bytes (a
#: C-contiguous uint8 array) and gives the chunk as a view of it; ``None`` when it cannot
#: here (the stored size is not the chunk's), and then :data:`Decode` decodes it.
DecodeInto = Callable[[Any, np.ndarray], "np.ndarray | None"]

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def zstd_content_size(data: Any) -> int | None:
    """The decompressed size a zstd frame's header declares (RFC 8878, 3.1.1.1), ``None``
    where the header does not say or ``data`` is not a zstd frame."""
    head = bytes(memoryview(data).cast("B")[:18])
    if len(head) < 6 or head[:4] != _ZSTD_MAGIC:
        return None
    descriptor = head[4]
    if descriptor & 0x08:  # a reserved bit: not a frame this reads
        return None
    single_segment = bool(descriptor & 0x20)
    start = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[descriptor & 0x03]
    size = (1 if single_segment else 0, 2, 4, 8)[descriptor >> 6]
    if size == 0 or len(head) < start + size:
        return None
    value = int.from_bytes(head[start : start + size], "little")
    return value + 256 if size == 2 else value


def blosc_content_size(data: Any) -> int | None:
    """The decompressed size in a blosc (1.x) buffer's 16-byte header, ``None`` where
    ``data`` is too short to hold one."""
    head = bytes(memoryview(data).cast("B")[:16])
    if len(head) < 16:
        return None
    return int.from_bytes(head[4:8], "little")


def _numcodecs_into(compressor: Any, dtype: np.dtype, shape: tuple[int, ...]) -> DecodeInto | None:
    """A :data:`DecodeInto` for a numcodecs zstd or blosc compressor over C-ordered chunks of
    ``dtype`` and ``shape``: the stored size is checked against the chunk's before decoding."""
    import numcodecs

    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if isinstance(compressor, numcodecs.Zstd):
        sized: Callable[[Any], int | None] = zstd_content_size
    elif isinstance(compressor, numcodecs.Blosc):
        sized = blosc_content_size
    else:
        return None
    decoder = type(compressor)()  # decoding needs none of the compression settings

    def decode_into(data: Any, scratch: np.ndarray) -> np.ndarray | None:
        if sized(data) != nbytes or scratch.nbytes != nbytes:
            return None
        decoder.decode(data, out=scratch)
        return scratch.view(dtype).reshape(shape)

    return decode_into


def _chain_decoder_into(codecs: Sequence[Any], spec: Any) -> DecodeInto | None:
    """A :data:`DecodeInto` for zarr v3 chains of ``bytes`` (native order) and one zstd or
    blosc compressor; ``None`` for any other chain."""
    import sys

    from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec

    if len(codecs) != 2 or not isinstance(codecs[0], BytesCodec):
        return None
    dtype = np.dtype(spec.dtype.to_native_dtype())
    endian = getattr(codecs[0].endian, "value", codecs[0].endian)
    if dtype.itemsize > 1 and endian != sys.byteorder:
        return None
    if getattr(spec, "order", "C") != "C":
        return None
    import numcodecs

    compressor = codecs[1]
    if isinstance(compressor, ZstdCodec):
        return _numcodecs_into(numcodecs.Zstd(), dtype, tuple(spec.shape))
    if isinstance(compressor, BloscCodec):
        return _numcodecs_into(numcodecs.Blosc(), dtype, tuple(spec.shape))
    return None


def _decoder_into(codecs: Sequence[Any], spec: Any) -> DecodeInto | None:
    try:
        return _chain_decoder_into(codecs, spec)
    except Exception:  # an optimisation only
        return None


def chunk_decoder_into(array: zarr.Array) -> DecodeInto | None:
    """A :data:`DecodeInto` for one (unsharded) chunk of ``array``, or ``None``."""
    try:
        pipeline = codec_pipeline(array)
        if pipeline is None or pipeline.array_array_codecs:
            return None
        if array.metadata.zarr_format == 3:
            codecs = (pipeline.array_bytes_codec, *pipeline.bytes_bytes_codecs)
            return _chain_decoder_into(codecs, _chunk_spec(array))
        codec = pipeline.array_bytes_codec
        if V2Codec is None or not isinstance(codec, V2Codec) or codec.filters:
            return None
        if getattr(array.metadata, "order", "C") != "C" or codec.compressor is None:
            return None
        dtype = np.dtype(array.dtype)
        if not dtype.isnative:
            return None
        return _numcodecs_into(codec.compressor, dtype, tuple(int(c) for c in array.chunks))
    except Exception:  # an optimisation only
        return None


def _v3_decoder(array: zarr.Array) -> Decode | None:
    pipeline = codec_pipeline(array)
    if pipeline is None or pipeline.array_array_codecs:
        return None
    codecs = (pipeline.array_bytes_codec, *pipeline.bytes_bytes_codecs)
    return _chain_decoder(codecs, _chunk_spec(array))


def _chunk_spec(array: zarr.Array) -> Any:
    """The spec zarr decodes one chunk (a whole shard, for a sharded array) with."""
    from zarr.buffer import default_buffer_prototype

    prototype = default_buffer_prototype()
    return array.metadata.get_chunk_spec((0,) * array.ndim, array.config, prototype)


def chunk_decoder(array: zarr.Array) -> Decode | None:
    """The decode of one (unsharded) chunk's bytes of ``array`` into an array of the chunk's
    shape, or ``None`` when zarr must decode it."""
    return _v3_decoder(array) if array.metadata.zarr_format == 3 else _v2_decoder(array)


#: An inner chunk's offset and length in the shard index when the chunk is not stored.
MISSING = 2**64 - 1


@dataclass(frozen=True)
class ShardFormat:
    """How to find and decode the inner chunks of one shard file."""

    inner_chunks: tuple[int, ...]
    chunks_per_shard: tuple[int, ...]
    index_size: int
    index_at_start: bool
    decode_index: Decode
    decode_inner: Decode
    decode_inner_into: DecodeInto | None = None

    @classmethod
    def of(cls, array: zarr.Array) -> ShardFormat | None:
        """The format of ``array``'s shards, or ``None`` when zarr must read them."""
        layout = shard_layout(array, _chunk_spec(array))
        if layout is None:
            return None
        decode_index = _chain_decoder(layout.index_codecs, layout.index_spec)
        decode_inner = _chain_decoder(layout.inner_codecs, layout.inner_spec)
        if decode_index is None or decode_inner is None:
            return None
        return cls(
            layout.inner_chunks,
            layout.chunks_per_shard,
            layout.index_size,
            layout.index_at_start,
            decode_index,
            decode_inner,
            _decoder_into(layout.inner_codecs, layout.inner_spec),
        )

    def read_index(self, fd: int) -> np.ndarray:
        """The ``(offset, length)`` of each inner chunk of the open shard file ``fd``, its
        last axis of two; ``ValueError`` when the file cannot hold them."""
        size = os.fstat(fd).st_size
        start = self.index_start(size)
        return self.parse_index(os.pread(fd, self.index_size, start), size)

    def index_of(self, shard: Any) -> np.ndarray:
        """:meth:`parse_index` of the index inside a whole shard's bytes."""
        start = self.index_start(len(shard))
        return self.parse_index(shard[start : start + self.index_size], len(shard))

    def index_start(self, size: int) -> int:
        """Where the index begins in a shard of ``size`` bytes; ``ValueError`` when the shard
        cannot hold it."""
        if size < self.index_size:
            raise ValueError(f"{size} bytes cannot hold a shard index of {self.index_size}")
        return 0 if self.index_at_start else size - self.index_size

    def parse_index(self, raw: Any, size: int | None) -> np.ndarray:
        """The ``(offset, length)`` of each inner chunk from the index's stored bytes ``raw``;
        ``ValueError`` when they point beyond ``size`` bytes (not checked when ``None``)."""
        if len(raw) != self.index_size:
            raise ValueError(f"{len(raw)} bytes where the shard index takes {self.index_size}")
        index = self.decode_index(raw).reshape(*self.chunks_per_shard, 2)
        if size is not None:
            offsets, lengths = index[..., 0], index[..., 1]
            stored = offsets != MISSING
            if (offsets[stored] > size).any() or (lengths[stored] > size - offsets[stored]).any():
                raise ValueError("the shard index points beyond the end of the file")
        return index

    def touched(
        self, bounds: Sequence[tuple[int, int]], shard: Sequence[int]
    ) -> list[tuple[int, ...]]:
        """The inner chunks (array-wide coordinates) of the shard at ``shard`` that the
        selection ``bounds`` touches, in C order."""
        first = [i * n for i, n in zip(shard, self.chunks_per_shard, strict=True)]
        ranges = [
            range(max(start // c, f), min(-(-stop // c), f + n))
            for (start, stop), c, f, n in zip(
                bounds, self.inner_chunks, first, self.chunks_per_shard, strict=True
            )
        ]
        return list(itertools.product(*ranges))

    def slot(self, chunk: Sequence[int]) -> tuple[int, ...]:
        """The inner chunk's coordinates within its shard (its place in the index)."""
        return tuple(i % n for i, n in zip(chunk, self.chunks_per_shard, strict=True))


def stored_layout(
    array: zarr.Array,
) -> tuple[tuple[int, ...], Decode, ShardFormat | None] | None:
    """What each stored object of ``array`` is and how it decodes: ``(shape, decode,
    shards)``, the chunk shape and a chunk's decoder, or for a sharded array the shard shape,
    an inner chunk's decoder and the shards' format; ``None`` when zarr must decode them."""
    shard_shape = getattr(array, "shards", None)
    if shard_shape is None:
        decode = chunk_decoder(array)
        return None if decode is None else (tuple(int(c) for c in array.chunks), decode, None)
    shards = ShardFormat.of(array)
    if shards is None:
        return None
    return tuple(int(c) for c in shard_shape), shards.decode_inner, shards


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


def fill_value(array: zarr.Array) -> Any:
    """The value a missing chunk reads as (zarr v2's ``null``: 0, as zarr reads it)."""
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
    #: For a sharded array: how its shard files hold the inner chunks (``chunks`` is then
    #: the shard shape, one file each).
    shards: ShardFormat | None = None

    @classmethod
    def of(cls, array: zarr.Array) -> DirectReader | None:
        """A reader for ``array``, or ``None`` when zarr must read it."""
        try:
            store = array.store_path.store
            if not isinstance(store, zarr.storage.LocalStore):
                return None
            if np.dtype(array.dtype).kind not in "biufc" or array.ndim == 0:
                return None
            layout = stored_layout(array)
        except Exception:  # an optimisation only: whatever it does not know, zarr reads
            return None
        if layout is None:
            return None
        chunks, decode, shards = layout
        if shards is not None and not hasattr(os, "pread"):  # os.pread: POSIX only
            return None
        folder = Path(store.root) / array.store_path.path
        fill = fill_value(array)
        return cls(folder, array.metadata, tuple(array.shape), chunks, fill, decode, shards)

    def chunk_key(self, coords: Sequence[int]) -> str:
        """The chunk (or shard) file's key, relative to the array."""
        return self.metadata.encode_chunk_key(tuple(coords))

    def read_chunk(self, coords: Sequence[int]) -> np.ndarray | None:
        """The decoded chunk at ``coords`` of an unsharded array, or ``None`` when its file
        does not exist."""
        if self.shards is not None:
            raise TypeError("a sharded array's chunk files are shards: use read()")
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
        bounds = selection_bounds(key, self.shape)
        if bounds is None:
            return None
        out = np.empty(tuple(stop - start for start, stop in bounds), dtype=dtype)
        if out.size and self.shards is not None:
            self._read_shards(self.shards, out, bounds)
        elif out.size:
            grid = [
                range(start // c, -(-stop // c))
                for (start, stop), c in zip(bounds, self.chunks, strict=True)
            ]
            tiles = list(itertools.product(*grid))

            copy = functools.partial(self._copy_into, out, bounds)
            if len(tiles) == 1:
                copy(tiles[0])
            else:
                for _ in read_pool().map(copy, tiles):
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
        target, source = overlap(bounds, self.chunks, coords)
        chunk = self.read_chunk(coords)
        out[target] = self.fill if chunk is None else chunk[source]

    def _read_shards(
        self, shards: ShardFormat, out: np.ndarray, bounds: Sequence[tuple[int, int]]
    ) -> None:
        """Read the inner chunks of the shards the selection ``bounds`` touches into ``out``.

        Each shard's index is read and decoded once, here; the inner chunks are then read
        as byte ranges and decoded on the pool (inline when there is only one).
        """
        grid = [
            range(start // c, -(-stop // c))
            for (start, stop), c in zip(bounds, self.chunks, strict=True)
        ]
        inner = shards.inner_chunks
        jobs: list[tuple[int, str, int, int, tuple[int, ...]]] = []
        files: list[int] = []
        try:
            for coords in itertools.product(*grid):
                key = self.chunk_key(coords)
                try:
                    fd = os.open(self.folder / key, os.O_RDONLY)
                except FileNotFoundError:
                    out[overlap(bounds, self.chunks, coords)[0]] = self.fill
                    continue
                except OSError as err:
                    raise ChunkReadError(f"shard {key!r}: {type(err).__name__}: {err}") from err
                files.append(fd)
                try:
                    index = shards.read_index(fd)
                except Exception as err:  # unreadable, too short, corrupt: named by its key
                    raise ChunkReadError(
                        f"shard {key!r}: cannot read its index: {type(err).__name__}: {err}"
                    ) from err
                for chunk in shards.touched(bounds, coords):
                    offset, length = (int(v) for v in index[shards.slot(chunk)])
                    if offset == MISSING:
                        out[overlap(bounds, inner, chunk)[0]] = self.fill
                    else:
                        jobs.append((fd, key, offset, length, chunk))
            decode = functools.partial(self._decode_inner, shards, out, bounds)
            if len(jobs) == 1:
                decode(jobs[0])
            elif jobs:
                for _ in read_pool().map(decode, jobs):
                    pass
        finally:
            for fd in files:
                os.close(fd)

    def _decode_inner(
        self,
        shards: ShardFormat,
        out: np.ndarray,
        bounds: Sequence[tuple[int, int]],
        job: tuple[int, str, int, int, tuple[int, ...]],
    ) -> None:
        """Read one inner chunk's bytes from its shard file and decode it into ``out``."""
        fd, key, offset, length, coords = job
        try:
            data = os.pread(fd, length, offset)
            if len(data) != length:
                raise ValueError(f"read {len(data)} bytes of {length} at {offset}")
            chunk = shards.decode_inner(data)
            if chunk.shape != shards.inner_chunks:
                raise ValueError(f"decoded to shape {chunk.shape}, not {shards.inner_chunks}")
        except Exception as err:  # unreadable bytes, any codec failure: named by the shard
            raise ChunkReadError(
                f"shard {key!r}, inner chunk {coords}: {type(err).__name__}: {err}"
            ) from err
        target, source = overlap(bounds, shards.inner_chunks, coords)
        out[target] = chunk[source]


def overlap(
    bounds: Sequence[tuple[int, int]], chunks: Sequence[int], coords: Sequence[int]
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Where the chunk at ``coords`` meets the selection ``bounds``: the part of the output
    (``target``) and the part of the chunk (``source``)."""
    target, source = [], []
    for (start, stop), c, i in zip(bounds, chunks, coords, strict=True):
        lo, hi = max(start, i * c), min(stop, (i + 1) * c)
        target.append(slice(lo - start, hi - start))
        source.append(slice(lo - i * c, hi - i * c))
    return tuple(target), tuple(source)


def selection_bounds(key: tuple[Any, ...], shape: Sequence[int]) -> list[tuple[int, int]] | None:
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
