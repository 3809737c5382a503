"""Where a planned write lands, and the dask computation that fills it.

The one write path of the package: :func:`make_target` turns whatever ``to_ome_zarr`` is
given (path, URL, ``.ozx`` file, zarr store or group) into a :class:`Target`, checked before
anything is written; :func:`writing` opens it, commits after success and aborts after a
failure. Targets (one job: put a finished hierarchy where it was asked for, and nothing else):

- :class:`LocalTarget`, a local directory: written beside itself, renamed into place;
- :class:`StoreTarget`, a zarr store, group or fsspec URL (``s3://``, ``memory://``...):
  written in place, the old hierarchy removed first (its metadata before its chunks);
- :class:`OzxTarget`, an ``.ozx`` file (RFC-9), local or at a URL: written into a staging
  directory, zipped and moved (or uploaded as one object) into place.

:func:`write_plan` then writes a :class:`Plan` into the target's root group: groups, arrays,
pixels (one dask task per whole chunk or shard, on the local scheduler or on a
dask.distributed cluster), every group's attributes (the root's last), and, when asked,
consolidated metadata. The plan itself is the writer's (:mod:`.writer`); the RFC-9 zip is
:mod:`.ozx`'s. Imports no xarray.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import dask
import dask.array as da
import numpy as np
import zarr
from zarr.abc.store import Store

from ._compat import cpu_count, current_client, current_scheduler, running_task_keys, sync
from .errors import OmeZarrError
from .ngff.emit import zarr_format_of
from .ozx import check_ozx_target, write_ozx
from .store import (
    describe_error,
    is_memory_store,
    is_url,
    is_zip_path,
    missing_extra,
    remembered,
    store_name,
    url_path,
)

__all__ = [
    "ArrayPlan",
    "ChunkWriter",
    "LocalTarget",
    "OzxTarget",
    "Plan",
    "StoreTarget",
    "Target",
    "clear_hierarchy",
    "distributed_client",
    "make_target",
    "pixel_writes",
    "write_plan",
    "write_to",
    "writing",
]

#: The zarr formats a target can be opened for.
ZarrFormat = Literal[2, 3]

#: How long a failed distributed write waits for tasks still writing before cleaning up.
RUNNING_TASKS_TIMEOUT = 60.0


# ---- the plan: what the writer decided --------------------------------------------------
@dataclass
class ArrayPlan:
    """One zarr array to create and fill."""

    path: str
    data: da.Array
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None
    codecs: dict[str, Any]
    fill_value: Any
    dimension_names: tuple[str, ...]
    attributes: dict[str, Any]


@dataclass
class Plan:
    """The groups (with the attributes written last) and arrays of a store."""

    version: str
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    arrays: list[ArrayPlan] = field(default_factory=list)


# ---- targets ----------------------------------------------------------------------------
class Target(Protocol):
    """Where a write goes: checked when made, touched only from :meth:`open` on."""

    name: str

    def open(self, zarr_format: ZarrFormat) -> zarr.Group:
        """The empty root group to write into."""
        ...

    def commit(self) -> None:
        """Put the finished hierarchy in place."""
        ...

    def abort(self) -> None:
        """Remove what a failed write left; the target stays as it was where possible."""
        ...


class LocalTarget:
    """A directory, written beside itself and swapped in at the end."""

    def __init__(self, path: str | os.PathLike, overwrite: bool) -> None:
        self.path = Path(path)
        self.name = os.fspath(path)
        self.tmp: Path | None = None
        if self._exists() and not overwrite:
            raise OmeZarrError(
                f"store {self.name!r}: already exists; pass overwrite=True to replace it"
            )

    def _exists(self) -> bool:
        if self.path.is_dir():
            return any(self.path.iterdir())
        return self.path.exists()

    def open(self, zarr_format: ZarrFormat) -> zarr.Group:
        """The root group of a fresh directory beside the target."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.parent / f".{self.path.name}.xoz-{uuid.uuid4().hex[:12]}"
        store = zarr.storage.LocalStore(self.tmp)
        return zarr.open_group(store, mode="w-", zarr_format=zarr_format)

    def commit(self) -> None:
        """Swap the new directory in; the old one (if any) is removed only afterwards."""
        assert self.tmp is not None
        old = None
        if self.path.exists() or self.path.is_symlink():
            old = self.path.parent / f".{self.path.name}.xoz-old-{uuid.uuid4().hex[:12]}"
            os.rename(self.path, old)
        try:
            os.rename(self.tmp, self.path)
        except OSError:
            if old is not None:
                os.rename(old, self.path)
            raise
        self.tmp = None
        if old is not None:
            _remove(old)

    def abort(self) -> None:
        """Remove the unfinished directory; the target was never touched."""
        if self.tmp is not None:
            _remove(self.tmp)
            self.tmp = None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


#: The documents that make a zarr node; an OME image is one while its group's are there.
METADATA_KEYS = ("zarr.json", ".zattrs", ".zgroup", ".zarray", ".zmetadata")


def clear_hierarchy(store: Any, path: str = "") -> None:
    """Remove everything under ``path`` in ``store``, the metadata documents first.

    The root's documents go first (consolidated metadata before the rest), then those of
    the groups and arrays below, breadth-first, then every chunk. An interrupted removal
    therefore leaves either the old hierarchy whole or chunks that no metadata names: never
    a mix that opens as an image.

    Raises
    ------
    OmeZarrError
        When the store cannot delete.
    """
    path = path.strip("/")
    if not store.supports_deletes:
        raise OmeZarrError(f"store {store_name(store)!r}: cannot delete, so cannot overwrite")

    async def metadata_keys() -> list[str]:
        prefix = f"{path}/" if path else ""
        keys = [k async for k in store.list_prefix(prefix)]
        return [k for k in keys if k.rsplit("/", 1)[-1] in METADATA_KEYS]

    def order(key: str) -> tuple[int, bool]:
        return key.count("/"), not key.endswith(".zmetadata")

    for key in sorted(sync(metadata_keys()), key=order):
        sync(store.delete(key))
    if path:
        sync(store.delete_dir(path))
    elif isinstance(store, zarr.storage.LocalStore):
        sync(store.clear())  # keeps the directory itself
    else:
        sync(store.delete_dir(""))  # fsspec: one bulk delete (clear() deletes one by one)


class StoreTarget:
    """A zarr store object (or an fsspec URL): old OME metadata removed first when replacing."""

    def __init__(
        self, store: Any, path: str, name: str, overwrite: bool, group: zarr.Group | None = None
    ) -> None:
        self.store, self.path, self.name = store, path.strip("/"), name
        try:
            if group is not None:  # a group just created to write into counts as empty
                self.empty = not group.attrs.asdict() and next(group.keys(), None) is None
            else:
                self.empty = sync(store.is_empty(self.path))
        except (OSError, ValueError) as err:
            raise OmeZarrError(f"store {name!r}: cannot list ({err})") from err
        if not self.empty and not overwrite:
            raise OmeZarrError(f"store {name!r}: is not empty; pass overwrite=True to replace it")
        if is_memory_store(store):
            _check_workers_share_memory(name)

    def open(self, zarr_format: ZarrFormat) -> zarr.Group:
        """The root group, the old content gone (its metadata first, the root's first)."""
        if not self.empty:
            if not self.store.supports_deletes:
                raise OmeZarrError(f"store {self.name!r}: cannot delete, so cannot overwrite")
            clear_hierarchy(self.store, self.path)
        return zarr.open_group(
            self.store, path=self.path or None, mode="w", zarr_format=zarr_format
        )

    def commit(self) -> None:
        """Nothing to do: the metadata written last completes the image."""

    def abort(self) -> None:
        """Remove what was written (best effort); it never carried OME metadata."""
        with contextlib.suppress(Exception):  # cleanup must not hide the original error
            sync(self.store.delete_dir(self.path))


class OzxTarget:
    """An ``.ozx`` file (RFC-9), local or at a URL: written into a staging directory, zipped
    and moved or uploaded into place at the end, so an existing file is replaced whole or not
    at all."""

    def __init__(
        self,
        location: str | os.PathLike,
        storage_options: Mapping[str, Any] | None,
        overwrite: bool,
        version: str,
    ) -> None:
        self.location, self.overwrite, self.version = location, overwrite, version
        self.storage_options = dict(storage_options or {})
        self.name = store_name(location, self.storage_options)
        check_ozx_target(
            location, storage_options=self.storage_options, overwrite=overwrite, version=version
        )
        self.staging: Path | None = None
        self.fs: Any = None
        self.destination = ""

    def open(self, zarr_format: ZarrFormat) -> zarr.Group:
        """The root group of a fresh staging directory (beside a local target)."""
        where = check_ozx_target(  # looked at again: the plan took time
            self.location,
            storage_options=self.storage_options,
            overwrite=self.overwrite,
            version=self.version,
        )
        self.fs, self.destination = where.fs, where.path
        staging_parent = None
        if where.fs is None:
            staging_parent = Path(where.path).parent
            staging_parent.mkdir(parents=True, exist_ok=True)
        prefix = f".{Path(url_path(os.fspath(self.location))).name}."
        self.staging = Path(tempfile.mkdtemp(prefix=prefix, dir=staging_parent))
        store = zarr.storage.LocalStore(self.staging / "root", read_only=False)
        return zarr.open_group(store, mode="w-", zarr_format=zarr_format)

    def commit(self) -> None:
        """Zip the staging directory into place (one upload at a URL) and remove it."""
        assert self.staging is not None
        try:
            root = self.staging / "root"
            if self.fs is not None:
                zipped = write_ozx(root, self.staging / "archive.ozx")
                try:  # one object: replaced whole or not
                    self.fs.put_file(os.fspath(zipped), self.destination)
                except Exception as err:
                    raise OmeZarrError(
                        f"store {self.name!r}: cannot upload ({describe_error(err)})"
                    ) from err
            else:
                write_ozx(root, self.destination, overwrite=True)
        finally:
            self.abort()

    def abort(self) -> None:
        """Remove the staging directory; an existing ``.ozx`` was never touched."""
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None


def make_target(
    store: Any,
    *,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    version: str = "0.5",
) -> Target:
    """A target for a path, URL, ``.ozx`` file, zarr store or zarr group.

    Parameters
    ----------
    store
        Where to write: a local directory (staged beside itself and renamed into place), an
        ``.ozx`` file, local or at a URL (staged, zipped, moved or uploaded into place), an
        fsspec URL (``s3://``, ``memory://``...), a zarr store or a ``zarr.Group`` (written
        in place).
    overwrite
        Replace what is there; without it an existing hierarchy is an error, untouched.
    storage_options
        fsspec options, for URLs only.
    version
        The OME-Zarr version to be written (an ``.ozx`` needs 0.5 or later).

    Raises
    ------
    OmeZarrError
        For an existing target without ``overwrite``, ``storage_options`` for a local path,
        an ``.ozx`` of a zarr v2 version, a store the cluster's workers cannot reach, or an
        object that is no store.
    """
    name = store_name(store, storage_options)
    if isinstance(store, str) and store.startswith("file://"):
        store = store.removeprefix("file://")
    if storage_options and not is_url(store):
        raise OmeZarrError(f"store {name!r}: storage_options only apply to URLs")
    if is_zip_path(store):
        return OzxTarget(store, storage_options, overwrite, version)
    if isinstance(store, str | os.PathLike) and not is_url(store):
        return LocalTarget(store, overwrite)
    if is_url(store):
        try:
            fs_store = remembered(
                zarr.storage.FsspecStore.from_url(
                    store, storage_options=dict(storage_options or {}), read_only=False
                )
            )
        except ImportError as err:
            raise missing_extra(err, store, name) from err
        except (OSError, ValueError, TypeError) as err:
            raise OmeZarrError(f"store {name!r}: cannot open ({err})") from err
        return StoreTarget(fs_store, "", name, overwrite)
    if isinstance(store, zarr.Group):
        return StoreTarget(store.store, store.path, name, overwrite, group=store)
    if isinstance(store, Store):
        return StoreTarget(store, "", name, overwrite)
    raise OmeZarrError(f"cannot write to a {type(store).__name__}; pass a path, URL or zarr store")


# ---- writing ----------------------------------------------------------------------------
def write_to(
    target: Target, plan: Plan, *, progress: bool = False, consolidated: bool = False
) -> None:
    """Open ``target``, write ``plan`` into it and commit; abort when anything fails."""
    with writing(target, zarr_format_of(plan.version)) as root:
        write_plan(plan, root, progress=progress, consolidated=consolidated)


@contextlib.contextmanager
def writing(target: Target, zarr_format: ZarrFormat) -> Iterator[zarr.Group]:
    """The root group of ``target`` to write into; committed when the block succeeds, aborted
    (what was written removed, an existing target left as it was where possible) when it
    raises."""
    try:
        root = target.open(zarr_format)
    except OSError as err:
        raise _write_error(target, err) from err
    try:
        yield root
    except Exception as err:
        staged = _staging_path(target)
        target.abort()
        if staged is not None and staged in str(err):
            raise _write_error(target, err, staged) from err
        raise
    except BaseException:
        target.abort()
        raise
    target.commit()


def _staging_path(target: Target) -> str | None:
    """The directory a target writes into before moving it into place, if it has one."""
    staged = getattr(target, "tmp", None) or getattr(target, "staging", None)
    return os.fspath(staged) if staged is not None else None


def _write_error(target: Target, err: BaseException, staged: str | None = None) -> OmeZarrError:
    """``err`` as an OmeZarrError naming the target, never our staging directory."""
    text = str(err)
    if staged is not None:
        for hidden in (os.path.join(staged, "root"), staged):
            text = text.replace(hidden, target.name)
    return OmeZarrError.at(
        f"cannot write ({type(err).__name__}: {text})", store=target.name, node="/"
    )


def _create_array(root: zarr.Group, plan: ArrayPlan, zarr_format: int) -> zarr.Array:
    kwargs: dict[str, Any] = dict(plan.codecs)
    if zarr_format == 3:
        kwargs["dimension_names"] = list(plan.dimension_names)
        if plan.shards is not None:
            kwargs["shards"] = plan.shards
    else:
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    try:
        return root.create_array(
            plan.path,
            shape=plan.data.shape,
            dtype=plan.data.dtype,
            chunks=plan.chunks,
            fill_value=plan.fill_value,
            attributes=plan.attributes,
            config={"write_empty_chunks": True},
            **kwargs,
        )
    except (TypeError, ValueError) as err:
        raise OmeZarrError(
            f"array {plan.path!r}: zarr refused the settings ({type(err).__name__}: {err})"
        ) from err


def write_plan(
    plan: Plan,
    root: zarr.Group,
    *,
    progress: bool = False,
    consolidated: bool = False,
    compute: bool = True,
) -> None:
    """Groups, then arrays and their pixels, then every group's attributes, root last; then
    consolidated metadata when asked for. Without ``compute`` no pixel is written (the
    arrays hold their fill value)."""
    writes = pixel_writes(plan, root)
    if compute:
        compute_writes(writes, progress)
    for path in sorted(plan.groups, key=lambda p: (-p.count("/"), p)):
        group = root[path] if path else root
        group.attrs.put(plan.groups[path])
    if consolidated:
        with warnings.catch_warnings():  # asked for: no "not in the v3 spec yet" warning
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata")
            zarr.consolidate_metadata(
                root.store, path=root.path or None, zarr_format=zarr_format_of(plan.version)
            )


def pixel_writes(plan: Plan, root: zarr.Group) -> list[da.Array]:
    """Create the plan's groups (no attributes yet) and arrays; return the lazy writes.

    One dask task per block of each array's data; the plan makes every block cover whole
    chunks (whole shards when sharded), so no two tasks write the same chunk or shard. The
    tasks hold only picklable things (zarr arrays, no open file), for any dask scheduler.
    """
    zarr_format = zarr_format_of(plan.version)
    for path in sorted(plan.groups, key=lambda p: (p.count("/"), p)):
        if path:
            root.require_group(path)
    targets = [ChunkWriter(_create_array(root, a, zarr_format)) for a in plan.arrays]
    stored = da.store([a.data for a in plan.arrays], cast(Any, targets), lock=False, compute=False)
    return list(stored) if isinstance(stored, Sequence) else [stored]


class ChunkWriter:
    """Writes blocks of whole chunks into a zarr array, checking for empty chunks only when
    one can be empty.

    zarr compares every chunk with the fill value before writing it, to leave all-fill
    chunks out. Here the first pixel of every chunk (inner chunk when sharded) of a block
    is looked at: when none is the fill value, no chunk can be all fill and the block is
    written without zarr's check; otherwise zarr checks as usual. The store gets the same
    bytes either way. Picklable, for dask.distributed.
    """

    def __init__(self, array: zarr.Array) -> None:
        self.unchecked = array.with_config({"write_empty_chunks": True})
        self.checked = array.with_config({"write_empty_chunks": False})
        self.chunks = tuple(array.chunks)
        fill = array.fill_value
        self.fill = None if fill is None else np.asarray(fill, dtype=array.dtype)

    def __setitem__(self, key: Any, block: Any) -> None:
        target = self.unchecked if self.no_empty_chunk(key, block) else self.checked
        target[key] = block

    def no_empty_chunk(self, key: Any, block: Any) -> bool:
        """Whether no chunk that ``block``, written at ``key``, covers can be all fill."""
        if self.fill is None or not isinstance(block, np.ndarray):
            return False
        if not _aligned(key, self.chunks):
            return False
        firsts = block[tuple(slice(0, None, c) for c in self.chunks)]
        if self.fill.dtype.kind in "fc" and np.isnan(self.fill):
            return not np.isnan(firsts).any()
        return bool((firsts != self.fill).all())

    def __dask_tokenize__(self) -> Any:
        from dask.base import tokenize

        return ("xoz-chunk-writer", tokenize(self.checked))


def _aligned(key: Any, chunks: Sequence[int]) -> bool:
    """Whether ``key`` is slices that start on the chunk grid, one per axis."""
    if not isinstance(key, tuple) or len(key) != len(chunks):
        return False
    return all(
        isinstance(s, slice) and s.step in (None, 1) and (s.start or 0) % c == 0
        for s, c in zip(key, chunks, strict=True)
    )


def compute_writes(stored: list[da.Array], progress: bool) -> None:
    """Run the write tasks; when one fails, wait for those still running, then raise.

    On a dask.distributed cluster (a ``Client`` is the current scheduler) the tasks run on its
    workers, with distributed's progress bar when ``progress``; otherwise on dask's local
    scheduler, with dask's ``ProgressBar``. Waiting for the running tasks matters: a task that
    writes after the caller has removed a failed write's files would leave some behind.
    """
    client = distributed_client()
    if client is not None:
        _compute_distributed(client, stored, progress)
        return
    from dask.diagnostics import ProgressBar
    from dask.threaded import get as threaded_get

    bar = ProgressBar(out=sys.stderr) if progress else contextlib.nullcontext()
    if current_scheduler(collections=stored) is not threaded_get:
        with bar:
            dask.compute(stored)
        return
    pool = ThreadPoolExecutor(dask.config.get("num_workers", None) or cpu_count())
    try:
        with bar:
            dask.compute(stored, scheduler="threads", pool=pool)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # no write outlives a failure


def distributed_client() -> Any | None:
    """The dask.distributed ``Client`` that dask computes on right now, else ``None``."""
    if "distributed" not in sys.modules:
        return None  # no client can exist without the module imported
    return current_client()


def _check_workers_share_memory(name: str) -> None:
    """Refuse a memory store that a multi-process cluster's workers would write copies of."""
    client = distributed_client()
    if client is None:
        return
    workers = client.scheduler_info().get("workers", {})
    if any(not str(address).startswith("inproc://") for address in workers):
        raise OmeZarrError(
            f"store {name!r}: lives in this process's memory, which the workers of the "
            "dask.distributed cluster cannot reach (each would write to a copy); write to a "
            "directory or an object store they all reach, or compute locally with "
            "dask.config.set(scheduler='threads')"
        )


def _compute_distributed(client: Any, stored: list[da.Array], progress: bool) -> None:
    from distributed import as_completed, futures_of
    from distributed import progress as progress_bar

    futures = futures_of(client.persist(stored))
    try:
        if progress:
            progress_bar(futures)  # a text bar until done (a widget in a notebook)
        for future in as_completed(futures):
            if future.status == "error":
                future.result()  # raises the task's exception here
    except BaseException:
        client.cancel(futures)
        _wait_until_not_running(client, {f.key for f in futures})
        raise


def _wait_until_not_running(client: Any, keys: set[Any]) -> None:
    """Wait (up to :data:`RUNNING_TASKS_TIMEOUT`) until no worker still runs one of ``keys``."""
    deadline = time.monotonic() + RUNNING_TASKS_TIMEOUT
    with contextlib.suppress(Exception):  # best effort: never hide the original error
        while time.monotonic() < deadline:
            if not any(client.run(_running_count, keys).values()):
                return
            time.sleep(0.05)


def _running_count(keys: set[Any], dask_worker: Any = None) -> int:
    """How many of ``keys`` run on this worker now (cancelled ones included); 1 when the
    worker cannot tell (so the caller waits, to be safe)."""
    running = running_task_keys(dask_worker)
    return 1 if running is None else len(running & keys)
