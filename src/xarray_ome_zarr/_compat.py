"""Every private (or undocumented) zarr, dask, distributed and xarray API the package uses.

Each is feature-checked where it is looked up, has a public fallback, and says why it is
worth the risk (a measured gain, or no public API for the job).
``tests/unit/test_06_compat.py`` asserts that on the installed versions every private path is
really taken (the ``HAS_*`` flags and ``has_*()`` checks are true) and gives the same results
as its fallback, so a zarr or dask release that moves one of them fails the suite loudly
instead of silently making the package slower or less careful. The fallbacks keep the
package working (more slowly, or more cautiously) on versions where a private path is gone.

Documented for backend authors, so not here: ``xarray.core.indexing`` (the explicit indexing
adapter, ``LazilyIndexedArray``) and ``xarray.backends.BackendArray``/``BackendEntrypoint``.
Imports only zarr and numpy; dask, distributed and xarray only when asked.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import itertools
import json
import os
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import zarr

__all__ = [
    "HAS_ARRAY_WITH_SHAPE",
    "HAS_ASYNC_GETITEM",
    "HAS_CODEC_PIPELINE",
    "HAS_SHARDING_LAYOUT",
    "HAS_SHARED_ARRAY_METADATA",
    "HAS_SYNC_DECODE",
    "HAS_V2_CODEC",
    "HAS_ZARR_SYNC",
    "ShardLayout",
    "V2Codec",
    "array_with_shape",
    "block_slices",
    "client_of_scheduler",
    "close_filesystem_sessions",
    "codec_pipeline",
    "cpu_count",
    "current_client",
    "current_scheduler",
    "datatree_from_dict",
    "fetch_members",
    "has_dask_block_slices",
    "has_dask_cpu_count",
    "has_dask_get_scheduler",
    "has_datatree_from_dict",
    "has_running_tasks",
    "has_variable_data",
    "in_memory_numpy",
    "running_task_keys",
    "shard_layout",
    "sync",
    "sync_decoder",
]

T = TypeVar("T")


# ---- zarr: running a store's coroutines from synchronous code ------------------------------
# Why: zarr's stores are async only, and an fsspec store's sessions live on zarr's own event
# loop; zarr has no public "run this coroutine on your loop". The fallback runs the coroutine
# on a private loop in a worker thread: enough for local, memory and zip stores.
_zarr_sync: Callable[..., Any] | None
try:
    from zarr.core.sync import sync as _zarr_sync

    HAS_ZARR_SYNC = True
except ImportError:  # pragma: no cover - only on a zarr without it
    _zarr_sync = None
    HAS_ZARR_SYNC = False


def _sync_in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Public fallback: run ``coroutine`` on a fresh event loop in a new thread."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = asyncio.run(coroutine)
        except BaseException as err:  # re-raised in the caller's thread
            result["error"] = err

    thread = threading.Thread(target=run, name="xoz-sync")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]  # type: ignore[no-any-return]


def sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a zarr store coroutine to completion (on zarr's event loop when zarr allows it)."""
    if _zarr_sync is not None:
        return _zarr_sync(coroutine)  # type: ignore[no-any-return]
    return _sync_in_thread(coroutine)  # pragma: no cover


# ---- fsspec: closing an asynchronous filesystem's HTTP sessions ----------------------------
# Why: zarr makes its fsspec filesystems with ``asynchronous=True``, and s3fs and fsspec's
# HTTPFileSystem close the aiohttp sessions of such instances only when asked (their finalizer
# is for synchronous ones), with no public call for it: s3fs keeps the client it opened in
# ``_s3creator`` (an async context manager; its docs ask the caller to close the session),
# fsspec's HTTP filesystem its session in ``_session``. Left open, aiohttp prints "Unclosed
# client session" when the instance is collected. After closing, both open new sessions on
# their next call (``_s3``/``_session`` reset), so an instance fsspec caches stays usable.
# Other filesystems are left as they are.
async def close_filesystem_sessions(fs: Any) -> None:
    """Close the HTTP sessions of an asynchronous fsspec filesystem (s3fs, fsspec's HTTP)."""
    creator = getattr(fs, "_s3creator", None)
    if creator is not None and hasattr(creator, "__aexit__"):
        fs._s3, fs._s3creator = None, None
        await creator.__aexit__(None, None, None)
    session = getattr(fs, "_session", None)
    if session is not None and hasattr(session, "close"):
        fs._session = None
        await session.close()


# ---- zarr: writing chunks beyond an array's stored shape --------------------------------
# Why: an append writes the new chunks before the arrays' shapes grow, so a reader never
# sees a shape whose chunks are not there yet (docs/recipes/streaming.md). zarr writes
# chunks only inside the shape it knows, and changes the stored shape only through
# ``resize``; an array object with the grown shape in memory (``metadata.update_shape``,
# ``Array._async_array``: private) writes them while the stored document keeps the old
# shape. The fallback (``None``) makes the caller resize first: the new region then reads
# as fill values until its chunks are written.
HAS_ARRAY_WITH_SHAPE = (
    "_async_array" in getattr(zarr.Array, "__dataclass_fields__", {})
    and hasattr(zarr.core.metadata.ArrayV3Metadata, "update_shape")
    and hasattr(zarr.core.metadata.ArrayV2Metadata, "update_shape")
)


def array_with_shape(array: zarr.Array[Any], shape: Sequence[int]) -> zarr.Array[Any] | None:
    """``array`` seen with another shape, its stored metadata untouched (writes go to the
    same chunk keys); ``None`` when this zarr cannot (the caller resizes first)."""
    if not HAS_ARRAY_WITH_SHAPE:
        return None  # pragma: no cover
    from zarr.core.array import AsyncArray

    inner = array._async_array
    grown = AsyncArray(inner.metadata.update_shape(tuple(shape)), inner.store_path, inner.config)
    return zarr.Array(grown)


# ---- zarr: opening several members of a group at once --------------------------------------
# Why: ``Group.__getitem__`` opens one member per round trip; the async group opens all the
# levels of an image (and the ``labels`` probe) together, so an open over HTTP costs one
# wave of requests instead of one per level (docs/benchmarks.md, "Opening over HTTP": 2
# waves where the peers need 4-5). ``Group._async_group`` is private; the fallback opens the
# members one after another with the public ``group[path]``.
HAS_ASYNC_GETITEM = (
    "_async_group" in getattr(zarr.Group, "__dataclass_fields__", {})
    and hasattr(zarr.AsyncGroup, "getitem")
    and HAS_ZARR_SYNC
)


def _fetch_members_async(requests: Sequence[tuple[zarr.Group, str]]) -> list[Any]:
    async def one(group: zarr.Group, path: str) -> Any:
        try:
            if _reads_documents(group):
                return await _document_of(group, path)
            member = await group._async_group.getitem(path)
        except Exception as err:  # reported with its key by the caller
            return err
        return zarr.Array(member) if isinstance(member, zarr.AsyncArray) else zarr.Group(member)

    async def every() -> list[Any]:
        return list(await asyncio.gather(*(one(g, p) for g, p in requests)))

    found = sync(every())
    built = MemberBuilder()
    pairs = zip(requests, found, strict=True)
    return [built.member(*r, f) if isinstance(f, bytes) else f for r, f in pairs]


# ---- zarr: one parse of each distinct array document ---------------------------------------
# Why: a plate's arrays have a handful of distinct ``zarr.json`` documents (every field's
# level 0 is the same document), and zarr's member lookup parses each one and builds its
# ``AsyncArray`` and codec pipeline anew, on its one event-loop thread: 0.13 s of CPU for the
# 576 arrays of a 96-well plate, a tenth of its open over HTTP (docs/benchmarks.md, "Plates").
# Here the members' ``zarr.json`` documents of a zarr v3 group are fetched with the store's
# public ``get`` (the one request zarr's lookup makes), the bytes come back to the calling
# thread, and each distinct array document is parsed by zarr once per call
# (``zarr.core.group._build_metadata_v3``, private: what the lookup calls). Every array of a
# document gets its own copy of the metadata, with its own attributes and other mutable parts
# (zarr updates an array's attributes in place), and shares the frozen codec pipeline made from
# the same codecs (the private ``AsyncArray`` fields, set as its ``__init__`` sets them).
# Groups are parsed each on its own (their documents differ; it costs little). zarr v2 groups
# and consolidated listings go through zarr's lookup. ``tests/unit/test_06_compat.py`` compares
# the members with the lookup's. Fallback: zarr's lookup for every member.
_build_metadata_v3: Callable[[Any], Any] | None
try:
    from zarr.core.group import _build_metadata_v3
except ImportError:  # pragma: no cover - only on a zarr without it
    _build_metadata_v3 = None

HAS_SHARED_ARRAY_METADATA = (
    HAS_ASYNC_GETITEM
    and _build_metadata_v3 is not None
    and [f.name for f in dataclasses.fields(zarr.AsyncArray)]
    == ["metadata", "store_path", "codec_pipeline", "config"]
    and dataclasses.is_dataclass(zarr.core.metadata.ArrayV3Metadata)
)


def _reads_documents(group: zarr.Group) -> bool:
    """Whether members of ``group`` are looked up by their ``zarr.json`` documents here."""
    metadata = group.metadata
    return (
        HAS_SHARED_ARRAY_METADATA
        and metadata.zarr_format == 3
        and getattr(metadata, "consolidated_metadata", None) is None
    )


async def _document_of(group: zarr.Group, path: str) -> bytes:
    """The bytes of member ``path``'s ``zarr.json`` (``KeyError`` as zarr's lookup when
    there is none)."""
    from zarr.buffer import default_buffer_prototype

    store_path = group._async_group.store_path / path
    found = await (store_path / "zarr.json").get(prototype=default_buffer_prototype())
    if found is None:
        raise KeyError(path)
    return found.to_bytes()


class MemberBuilder:
    """Builds members from their ``zarr.json`` bytes, parsing each distinct array document
    once (see above); not shared between threads."""

    def __init__(self) -> None:
        #: per distinct array document: the array built from it, and its metadata's
        #: mutable parts (names of the fields each array gets its own copy of)
        self._arrays: dict[bytes, tuple[Any, tuple[str, ...]]] = {}

    def member(self, group: zarr.Group, path: str, document: bytes) -> Any:
        """The ``zarr.Array`` or ``zarr.Group`` at ``path`` of ``group``, or the exception
        zarr's lookup would have raised parsing ``document``."""
        store_path = group._async_group.store_path / path
        try:
            known = self._arrays.get(document)
            if known is None:
                assert _build_metadata_v3 is not None
                metadata = _build_metadata_v3(json.loads(document))
                if not isinstance(metadata, zarr.core.metadata.ArrayV3Metadata):
                    return zarr.Group(zarr.AsyncGroup(metadata, store_path=store_path))
                template = zarr.AsyncArray(metadata, store_path)
                known = self._arrays[document] = (template, _mutable_fields(metadata))
        except Exception as err:  # reported with its key by the caller
            return err
        template, mutable = known
        metadata = copy.copy(template.metadata)
        for name in mutable:
            object.__setattr__(metadata, name, copy.deepcopy(getattr(template.metadata, name)))
        array = copy.copy(template)
        object.__setattr__(array, "metadata", metadata)
        object.__setattr__(array, "store_path", store_path)
        return zarr.Array(array)


def _mutable_fields(metadata: Any) -> tuple[str, ...]:
    """The fields of a frozen metadata object that hold dicts or lists (its attributes)."""

    def mutable(value: Any) -> bool:
        if isinstance(value, tuple):
            return any(mutable(v) for v in value)
        return isinstance(value, dict | list)

    return tuple(f.name for f in dataclasses.fields(metadata) if mutable(getattr(metadata, f.name)))


def _fetch_members_one_by_one(group: zarr.Group, paths: Sequence[str]) -> list[Any]:
    """Public fallback: ``group[path]`` for each path in turn."""
    members: list[Any] = []
    for path in paths:
        try:
            members.append(group[path])
        except Exception as err:  # reported with its key by the caller
            members.append(err)
    return members


def fetch_members(group: zarr.Group, paths: Sequence[str]) -> list[Any]:
    """Open the members ``paths`` of ``group``: each a ``zarr.Array``, a ``zarr.Group``, or the
    exception opening it raised (``KeyError`` for a missing member)."""
    return fetch_members_of([(group, path) for path in paths])


def fetch_members_of(requests: Sequence[tuple[zarr.Group, str]]) -> list[Any]:
    """``fetch_members`` for members of several groups at once (``(group, path)`` pairs)."""
    if HAS_ASYNC_GETITEM:
        return _fetch_members_async(requests)
    out: list[Any] = []  # pragma: no cover
    for group, path in requests:  # pragma: no cover
        out += _fetch_members_one_by_one(group, [path])
    return out  # pragma: no cover


# ---- zarr: decoding a chunk synchronously (direct_read) ------------------------------------
# Why: reading local chunk files and decoding them in plain threads, without zarr's event
# loop, reads a level in about 0.8x of zarr-python's wall time and 0.87x of its CPU time
# (docs/benchmarks.md, "direct chunk reads"); zarr has no public synchronous decode of one
# chunk. The codec pipeline (``AsyncArray.codec_pipeline``), the codecs' ``_decode_sync`` and
# zarr's ``V2Codec`` are private; without them direct_read declines and zarr reads the chunks.
HAS_CODEC_PIPELINE = "codec_pipeline" in getattr(zarr.AsyncArray, "__dataclass_fields__", {})

try:
    from zarr.codecs import BytesCodec as _BytesCodec

    HAS_SYNC_DECODE = hasattr(_BytesCodec, "_decode_sync")
except ImportError:  # pragma: no cover
    HAS_SYNC_DECODE = False

V2Codec: Any
try:
    from zarr.codecs._v2 import V2Codec

    HAS_V2_CODEC = True
except ImportError:  # pragma: no cover
    V2Codec = None
    HAS_V2_CODEC = False


def codec_pipeline(array: zarr.Array[Any]) -> Any | None:
    """The codec pipeline of ``array``, or ``None`` when zarr does not expose one."""
    if not HAS_CODEC_PIPELINE:
        return None  # pragma: no cover
    async_array = getattr(array, "_async_array", None)
    return getattr(async_array, "codec_pipeline", None)


def sync_decoder(codec: Any) -> Callable[[Any, Any], Any] | None:
    """``codec``'s synchronous decode of one chunk buffer, or ``None`` when it has none."""
    decode = getattr(codec, "_decode_sync", None)
    return decode if callable(decode) else None


# ---- zarr: the layout of a sharded array (direct_read) -------------------------------------
# Why: a sharded level read through zarr holds whole shards of compressed bytes and decodes
# through its event loop; reading the shard index and the inner chunks' byte ranges from the
# file and decoding them in plain threads reads the benchmark's sharded level in about 0.75x
# of zarr-python's time and 0.6x of its memory (docs/benchmarks.md, "Sharded reads").
# ``ShardingCodec`` is public, but the inner chunks' spec (``_get_chunk_spec``), the index's
# spec (``_get_index_chunk_spec``) and its encoded size (``_shard_index_size``) are private.
# Fallback: ``None``, and zarr reads the shards.
try:
    from zarr.codecs import ShardingCodec as _ShardingCodec

    HAS_SHARDING_LAYOUT = all(
        hasattr(_ShardingCodec, name)
        for name in ("_get_chunk_spec", "_get_index_chunk_spec", "_shard_index_size")
    ) and {"chunk_shape", "codecs", "index_codecs", "index_location"} <= set(
        getattr(_ShardingCodec, "__dataclass_fields__", {})
    )
except ImportError:  # pragma: no cover
    _ShardingCodec = None  # type: ignore[assignment, misc]
    HAS_SHARDING_LAYOUT = False


@dataclass(frozen=True)
class ShardLayout:
    """What reading one shard file needs: its inner chunks' codecs and its index's."""

    #: The shape of an inner chunk, and how many of them a shard holds per axis.
    inner_chunks: tuple[int, ...]
    chunks_per_shard: tuple[int, ...]
    #: The inner chunks' codecs and the spec an inner chunk decodes with.
    inner_codecs: tuple[Any, ...]
    inner_spec: Any
    #: The index's codecs, its spec, its encoded size, and where it sits.
    index_codecs: tuple[Any, ...]
    index_spec: Any
    index_size: int
    index_at_start: bool


def shard_layout(array: zarr.Array[Any], shard_spec: Any) -> ShardLayout | None:
    """The shard layout of ``array`` (whose chunk spec is ``shard_spec``), or ``None`` when
    it is not sharded with ``sharding_indexed`` or zarr does not expose what is needed."""
    pipeline = codec_pipeline(array)
    if not HAS_SHARDING_LAYOUT or pipeline is None:
        return None
    codec = pipeline.array_bytes_codec
    if not isinstance(codec, _ShardingCodec) or pipeline.array_array_codecs:
        return None
    if pipeline.bytes_bytes_codecs:
        return None  # bytes-to-bytes codecs over whole shards: zarr reads them
    inner = tuple(int(c) for c in codec.chunk_shape)
    per_shard = tuple(int(s) // c for s, c in zip(shard_spec.shape, inner, strict=True))
    return ShardLayout(
        inner_chunks=inner,
        chunks_per_shard=per_shard,
        inner_codecs=tuple(codec.codecs),
        inner_spec=codec._get_chunk_spec(shard_spec),
        index_codecs=tuple(codec.index_codecs),
        index_spec=codec._get_index_chunk_spec(per_shard),
        index_size=int(codec._shard_index_size(per_shard)),
        index_at_start=codec.index_location.value == "start",
    )


# ---- dask / distributed: which scheduler computes, and what still runs ---------------------
# (dask and distributed are looked up lazily: importing dask.array costs about 0.5 s, and
# reading needs none of this.)
#
# Why: the writer must know whether dask computes on a dask.distributed ``Client`` (to wait
# for its tasks after a failure, to refuse a memory store its workers cannot reach) and on
# the threaded scheduler (to give it a pool that no write outlives). ``dask.base.
# get_scheduler`` is what dask itself consults but is not in ``dask.base.__all__``; the client
# is the ``__self__`` of the ``Client.get`` it returns. Fallbacks: dask's ``scheduler``
# config, and distributed's public ``default_client()``.
def _dask_get_scheduler() -> Callable[..., Any] | None:
    try:
        from dask.base import get_scheduler
    except ImportError:  # pragma: no cover
        return None
    return get_scheduler


def has_dask_get_scheduler() -> bool:
    """Whether dask has ``dask.base.get_scheduler``."""
    return _dask_get_scheduler() is not None


def current_scheduler(collections: Any = None) -> Callable[..., Any] | None:
    """The scheduler function dask would compute ``collections`` with; ``None`` when dask
    cannot say (then the caller lets ``dask.compute`` choose)."""
    get_scheduler = _dask_get_scheduler()
    if get_scheduler is None:
        return None  # pragma: no cover
    try:
        return get_scheduler(collections=collections)  # type: ignore[no-any-return]
    except (ValueError, RuntimeError):
        return None


def current_client() -> Any | None:
    """The dask.distributed ``Client`` that dask computes on right now, else ``None``."""
    if has_dask_get_scheduler():
        return client_of_scheduler(current_scheduler())
    return default_client_if_scheduler()  # pragma: no cover


def client_of_scheduler(scheduler: Any) -> Any | None:
    """The dask.distributed ``Client`` whose bound ``get`` ``scheduler`` is, else ``None``."""
    from distributed import Client

    client = getattr(scheduler, "__self__", None)
    return client if isinstance(client, Client) else None


def default_client_if_scheduler() -> Any | None:
    """Public fallback: distributed's default client, when dask's config says it computes."""
    import dask
    from distributed import default_client

    if dask.config.get("scheduler", None) != "dask.distributed":
        return None
    try:
        return default_client()  # type: ignore[no-untyped-call]
    except ValueError:
        return None


# Why: after a failed distributed write the writer cancels the tasks and must wait until no
# worker still runs one (a cancelled task keeps running, and its late write would land after
# the cleanup). Only the worker knows: ``WorkerState.all_running_tasks`` has no public
# equivalent, and the scheduler forgets cancelled tasks at once. Fallback: ``None`` ("cannot
# tell"), which the writer treats as still running, waiting out its timeout: slower, never
# less safe.
def has_running_tasks() -> bool:
    """Whether distributed's ``WorkerState`` has ``all_running_tasks``."""
    try:
        from distributed.worker_state_machine import WorkerState
    except ImportError:  # distributed is optional
        return False
    return hasattr(WorkerState, "all_running_tasks")


def running_task_keys(dask_worker: Any) -> set[Any] | None:
    """The keys of the tasks ``dask_worker`` runs now (cancelled ones included), or ``None``
    when this version of distributed does not say."""
    state = getattr(dask_worker, "state", None)
    running = getattr(state, "all_running_tasks", None)
    if running is None:
        return None
    return {task.key for task in running}


# Why: ``dask.system.CPU_COUNT`` is the CPU count dask's own threaded scheduler uses (it
# respects cgroup and affinity limits); not documented as public. Fallback: ``os.cpu_count``.
def _dask_cpu_count() -> int | None:
    try:
        from dask.system import CPU_COUNT
    except ImportError:  # pragma: no cover
        return None
    return int(CPU_COUNT)


def has_dask_cpu_count() -> bool:
    """Whether dask has ``dask.system.CPU_COUNT``."""
    return _dask_cpu_count() is not None


def cpu_count() -> int:
    """How many threads dask's threaded scheduler uses by default."""
    count = _dask_cpu_count()
    return count if count is not None else (os.cpu_count() or 1)


# Why: a dask array over views of a numpy array is built in dask's own block order, so its
# keys line up with every other dask array of the same chunks; ``dask.array.core.
# slices_from_chunks`` defines that order but ``dask.array`` does not export it. Fallback:
# the same slices, computed here.
def _dask_slices_from_chunks() -> Callable[..., Any] | None:
    try:
        from dask.array.core import slices_from_chunks
    except ImportError:  # pragma: no cover
        return None
    return slices_from_chunks


def has_dask_block_slices() -> bool:
    """Whether dask has ``dask.array.core.slices_from_chunks``."""
    return _dask_slices_from_chunks() is not None


def block_slices_here(chunks: Sequence[Sequence[int]]) -> list[tuple[slice, ...]]:
    """Public fallback: the slices of every block, in C order of the block indices."""
    per_axis = []
    for sizes in chunks:
        starts = itertools.accumulate(sizes, initial=0)
        per_axis.append([slice(s, s + n) for s, n in zip(starts, sizes, strict=False)])
    return [tuple(block) for block in itertools.product(*per_axis)]


def block_slices(chunks: Sequence[Sequence[int]]) -> list[tuple[slice, ...]]:
    """The slices of each block of a normalised ``chunks``, in dask's block order."""
    slices_from_chunks = _dask_slices_from_chunks()
    if slices_from_chunks is not None:
        return list(slices_from_chunks(chunks))
    return block_slices_here(chunks)  # pragma: no cover


# ---- xarray: a Variable's pixels, when they are already in memory --------------------------
# Why: the writer turns numpy pixels into dask blocks as views (no copy, no hash): writing
# the benchmark's in-memory pyramid took 1.28 s instead of 2.07 s (docs/benchmarks.md,
# "Writing a pyramid"). It must not load a lazily opened array to find out, and the public
# ``Variable.data`` loads one; ``Variable._data`` is the wrapped object as it is. Fallback:
# ``None``, so the writer copies through ``DataArray.chunk`` as for any other array.
def has_variable_data() -> bool:
    """Whether xarray's ``Variable`` keeps its wrapped array in ``_data`` (checked lazily:
    this module imports no xarray)."""
    import xarray

    return "_data" in getattr(xarray.Variable, "__slots__", ())


def in_memory_numpy(variable: Any) -> np.ndarray | None:
    """``variable``'s pixels when they are a numpy array in memory (never loads), else
    ``None``."""
    data = getattr(variable, "_data", None)
    return data if type(data) is np.ndarray else None


# ---- xarray: a DataTree from the datasets a backend opened ---------------------------------
# Why: xarray's own engines build their trees with ``xarray.backends.common.
# datatree_from_dict_with_io_cleanup`` (every opened dataset closed when building the tree
# fails; each node closes its dataset), so using it keeps our clean-up the same as theirs as
# xarray changes it; it is not exported by ``xarray.backends``. Fallback: the same with
# public API (``DataTree.from_dict``, ``Dataset.close``, ``set_close``).
def _xarray_datatree_from_dict() -> Callable[..., Any] | None:
    try:
        from xarray.backends.common import datatree_from_dict_with_io_cleanup
    except ImportError:  # pragma: no cover
        return None
    return datatree_from_dict_with_io_cleanup


def has_datatree_from_dict() -> bool:
    """Whether xarray has ``backends.common.datatree_from_dict_with_io_cleanup``."""
    return _xarray_datatree_from_dict() is not None


def datatree_from_dict_here(groups: Mapping[str, Any]) -> Any:
    """Public fallback: ``DataTree.from_dict``, closing the datasets when it fails."""
    from xarray import DataTree

    try:
        tree = DataTree.from_dict(groups)
    except Exception:
        for dataset in groups.values():
            dataset.close()
        raise
    for path, dataset in groups.items():
        tree[path].set_close(dataset.close)
    return tree


def datatree_from_dict(groups: Mapping[str, Any]) -> Any:
    """A DataTree of ``groups`` (path -> Dataset) that closes them when it is closed.

    The nodes may take the Datasets' variables as they are: pass Datasets made for the
    tree (the reader's), not ones a caller keeps using."""
    if has_tree_links() and _only_leaves_hold_variables(groups):
        return datatree_linked(groups)
    build = _xarray_datatree_from_dict()
    if build is not None:
        return build(groups)
    return datatree_from_dict_here(groups)  # pragma: no cover


# ---- xarray: a DataTree whose inner nodes hold no variables, linked node by node ----------
# Why: ``DataTree.from_dict`` inserts each node by path: it copies the node, walks the path
# and checks the node's alignment with every ancestor (for a 384-well plate, 3473 nodes:
# most of the CPU time of building the tree). Where no node that has children holds a
# variable (an OME hierarchy: groups hold attributes, only resolution levels hold data),
# nothing can be misaligned, inherited or shadowed, so each node is made once from its
# Dataset (the public ``DataTree(dataset)``) and linked to its parent through the private
# ``_parent``, ``_children`` and ``_name`` slots of ``TreeNode``. A node takes its Dataset's
# parts through ``DataTree._set_node_data`` where xarray has it: the public ``DataTree(ds)``
# first copies the Dataset (its indexes' variables made again), which the reader's fresh,
# unshared Datasets do not need (a fifth of our own open of a 384-well plate). ``tests/unit/
# test_06_compat.py`` compares the result with ``from_dict``'s. Fallbacks: ``from_dict``;
# ``DataTree(ds)``.
def has_tree_links() -> bool:
    """Whether xarray's tree nodes keep parent, children and name in the slots we link."""
    import xarray

    slots = {slot for cls in xarray.DataTree.__mro__ for slot in getattr(cls, "__slots__", ())}
    return {"_parent", "_children", "_name"} <= slots


def has_node_data_setter() -> bool:
    """Whether xarray's ``DataTree`` takes a Dataset's parts by ``_set_node_data``."""
    import xarray

    return callable(getattr(xarray.DataTree, "_set_node_data", None))


def node_of(dataset: Any) -> Any:
    """A parentless tree node holding ``dataset``'s variables, indexes, attrs, encoding
    and closer, without copying them: only for a Dataset nobody else holds."""
    import xarray

    if not has_node_data_setter():
        node = xarray.DataTree(dataset)
        node.set_close(dataset._close)  # as xarray's engines do: copies drop the closer
        return node
    # ``DataTree()`` would build its empty Dataset through the merging constructor
    node = xarray.DataTree(dataset_from_parts({}, {}, {}, {}))
    node._set_node_data(dataset)
    return node


def _only_leaves_hold_variables(groups: Mapping[str, Any]) -> bool:
    """Whether every path that has a path below it holds a Dataset without variables."""
    keys = {str(path).strip("/") for path in groups}
    if len(keys) != len(groups) or any(".." in k.split("/") or "." in k.split("/") for k in keys):
        return False
    inner = {k.rpartition("/")[0] for k in keys if k}
    return all(not groups_value(groups, path).variables for path in groups if _key(path) in inner)


def _key(path: Any) -> str:
    return str(path).strip("/")


def groups_value(groups: Mapping[str, Any], path: str) -> Any:
    """``groups[path]`` (a Dataset or None, as ``from_dict`` takes them)."""
    import xarray

    value = groups[path]
    return xarray.Dataset() if value is None else value


def datatree_linked(groups: Mapping[str, Any]) -> Any:
    """The tree of ``groups`` built by linking nodes (see above); each node closes its
    Dataset; groups missing between paths are empty nodes, as ``from_dict`` makes them."""
    import xarray

    nodes: dict[str, Any] = {}
    try:
        for path in groups:
            nodes[_key(path)] = node_of(groups_value(groups, path))
    except Exception:
        for dataset in groups.values():
            if dataset is not None:
                dataset.close()
        raise
    root = nodes.setdefault("", xarray.DataTree())
    for key in sorted(nodes, key=lambda k: k.count("/") if k else -1):
        if not key:
            continue
        _link(nodes, key, root)
    return root


def _link(nodes: dict[str, Any], key: str, root: Any) -> None:
    """Attach ``nodes[key]`` to its parent, making missing parents as empty nodes."""
    import xarray

    node = nodes[key]
    parent_key, _, name = key.rpartition("/")
    parent = nodes.get(parent_key)
    if parent is None:
        parent = nodes[parent_key] = xarray.DataTree()
        _link(nodes, parent_key, root)
    node._parent = parent
    node._name = name
    parent._children[name] = node


# ---- xarray: a Dataset from variables and indexes that agree by construction --------------
# Why: a plate opens thousands of small Datasets; xarray's public constructor merges and
# aligns each one's coordinates again (about half the CPU time of opening a 384-well plate
# before, docs/benchmarks.md "Plates"). ``Dataset._construct_direct`` is private; it is used
# only with parts made together (index variables made by their indexes, one data variable
# over the dims they index), and ``tests/unit/test_06_compat.py`` compares it with the public
# constructor. Fallback: ``xarray.Dataset(data_vars, coords=Coordinates(...))``.
def _dataset_construct_direct() -> Callable[..., Any] | None:
    import xarray

    construct = getattr(xarray.Dataset, "_construct_direct", None)
    return construct if callable(construct) else None


def has_dataset_construct_direct() -> bool:
    """Whether xarray's ``Dataset`` has ``_construct_direct`` (checked lazily)."""
    return _dataset_construct_direct() is not None


def dataset_from_parts_here(
    data_vars: Mapping[Any, Any],
    coord_vars: Mapping[Any, Any],
    indexes: Mapping[Any, Any],
    attrs: dict[Any, Any],
) -> Any:
    """Public fallback of :func:`dataset_from_parts`."""
    import xarray

    coords = xarray.Coordinates(dict(coord_vars), indexes=dict(indexes))
    return xarray.Dataset(dict(data_vars), coords=coords, attrs=attrs)


def dataset_from_parts(
    data_vars: Mapping[Any, Any],
    coord_vars: Mapping[Any, Any],
    indexes: Mapping[Any, Any],
    attrs: dict[Any, Any],
) -> Any:
    """The Dataset of ``data_vars`` (Variables) with coordinates ``coord_vars`` indexed by
    ``indexes`` (each index's own variables), as the public constructor makes it."""
    construct = _dataset_construct_direct()
    if construct is None:
        return dataset_from_parts_here(data_vars, coord_vars, indexes, attrs)  # pragma: no cover
    variables = {**data_vars, **coord_vars}
    dims: dict[Any, int] = {}
    for variable in variables.values():
        for dim, size in zip(variable.dims, variable.shape, strict=True):
            dims.setdefault(dim, size)
    return construct(variables, set(coord_vars), dims, attrs=attrs, indexes=dict(indexes))


# ---- xarray: no default-index pass over a tree whose every dimension is indexed -----------
# Why: after a backend's ``open_datatree``, ``xr.open_datatree`` maps
# ``_maybe_create_default_indexes`` over every node and rebuilds the whole tree with
# ``DataTree.from_dict`` (a copy, a path walk and alignment checks per node), even where no
# node needs an index: 4.2 s of CPU for a 384-well plate, more than our whole open (2.9 s),
# and the one reason ``xr.open_datatree`` took 1.4x ome-zarr-py's time where
# ``xoz.open_ome_datatree`` takes 0.53x. Our reader indexes every dimension coordinate itself
# (``reader.with_default_indexes``), so for this engine's trees the pass gives the same tree,
# and xarray has no switch a backend can set. The step that runs it,
# ``xarray.backends.api._datatree_from_backend_datatree``, is wrapped (once, when the engine
# first opens a tree) so that for the ``ome-zarr`` engine alone it runs as
# ``create_default_indexes=False`` does (no node lacks an index: the reader's guarantee, and
# ``tests/integration/test_58_plates.py`` compares the trees); every other engine's call goes
# through unchanged. Upstream, the pass could skip trees that need
# no index (pydata/xarray#9511, #11367). Fallback: nothing wrapped, xarray's pass runs (the
# same tree, slower).
_TREE_FINISHER = "_datatree_from_backend_datatree"


def _xarray_tree_finisher() -> Callable[..., Any] | None:
    """xarray's step from a backend's tree to ``open_datatree``'s, if it takes our keywords."""
    import inspect

    from xarray.backends import api

    finish = getattr(api, _TREE_FINISHER, None)
    if not callable(finish):
        return None
    finish = getattr(finish, "_xoz_unwrapped", finish)
    try:
        parameters = inspect.signature(finish).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return None
    needed = {"backend_tree", "engine", "create_default_indexes"}
    return finish if needed <= set(parameters) else None


def has_index_pass_skip() -> bool:
    """Whether xarray's ``open_datatree`` has the step that the engine's trees can skip."""
    return _xarray_tree_finisher() is not None


def skip_index_pass_for(is_this_engine: Callable[[Any], bool]) -> bool:
    """Make ``xr.open_datatree`` skip its default-index pass for trees opened by an engine
    ``is_this_engine`` accepts (xarray's ``engine`` argument), whose trees must have every
    dimension coordinate indexed already. Idempotent; ``False`` where xarray lacks the step
    (then the pass runs as before)."""
    import functools
    import inspect

    from xarray.backends import api

    finish = _xarray_tree_finisher()
    if finish is None:
        return False
    if getattr(api, _TREE_FINISHER) is not finish:
        return True  # wrapped already
    signature = inspect.signature(finish)

    @functools.wraps(finish)
    def finish_without_needless_index_pass(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        given = bound.arguments
        if given.get("create_default_indexes") and is_this_engine(given.get("engine")):
            given["create_default_indexes"] = False
        return finish(*bound.args, **bound.kwargs)

    finish_without_needless_index_pass._xoz_unwrapped = finish  # type: ignore[attr-defined]
    setattr(api, _TREE_FINISHER, finish_without_needless_index_pass)
    return True
