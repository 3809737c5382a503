"""Name and open what a user passes (path, URL, ``.ozx`` zip, store object) as a zarr store.

Names: :func:`store_name` (never with credentials), :func:`is_url`, :func:`is_zip_path`,
:func:`is_memory_store`. Opening: :func:`open_store` gives a zarr store, :func:`open_root` the
root group (consolidated metadata used when present, the folder of a zip that holds the
hierarchy one level down). Closes only what it opened itself. Writing goes through
:mod:`.targets`; the RFC-9 zip format is :mod:`.ozx`. Imports no xarray.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import warnings
import weakref
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import zarr
from zarr.abc.store import Store

from ._compat import close_filesystem_sessions, sync
from .consolidated import is_consolidated, open_with_probes, reading_policy
from .errors import OmeZarrError, OmeZarrWarning

__all__ = [
    "OZX_SUFFIX",
    "OpenedStore",
    "close_remote_sessions",
    "describe_error",
    "fsspec_protocols",
    "is_memory_store",
    "is_url",
    "is_zip_path",
    "local_path",
    "open_root",
    "open_store",
    "redact_url",
    "remembered",
    "store_name",
    "url_path",
]

#: The RFC-9 file extension of a zipped OME-Zarr.
OZX_SUFFIX = ".ozx"
_ZIP_SUFFIXES = (OZX_SUFFIX, ".zip")
_ROOT_KEYS = ("zarr.json", ".zgroup", ".zattrs")
_S3_PROTOCOLS = ("s3", "s3a")
#: zarr's access modes.
AccessMode = Literal["r", "r+", "a", "w", "w-"]


@dataclass
class OpenedStore:
    """A root group, how to name it in messages, and how to close what we opened."""

    group: zarr.Group
    name: str
    close: Callable[[], None]
    #: Children probed in the store itself beside a consolidated root, by their path in the
    #: store (see :mod:`.consolidated`).
    probes: dict[str, Any] = field(default_factory=dict)


def _noop() -> None:
    return None


# ---- names and kinds ---------------------------------------------------------------------
def redact_url(url: str) -> str:
    """``url`` without credentials: no ``user:password@`` and no query string values."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1] if "@" in parts.netloc else parts.netloc
    query = "..." if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def store_name(obj: Any, storage_options: Mapping[str, Any] | None = None) -> str:
    """A short readable name for a path, URL or store object (never with credentials)."""
    if isinstance(obj, str) and is_url(obj):
        if obj.startswith("reference://") and storage_options:
            fo = storage_options.get("fo")
            if isinstance(fo, str | os.PathLike):
                return f"reference://{redact_url(os.fspath(fo))}"
        return redact_url(obj)
    if isinstance(obj, str | os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, zarr.Group):
        return store_name(obj.store)
    if isinstance(obj, zarr.storage.FsspecStore):
        with contextlib.suppress(Exception):
            return redact_url(obj.fs.unstrip_protocol(obj.path))
    if isinstance(obj, zarr.storage.LocalStore):
        return os.fspath(obj.root)
    return f"{obj}"


def is_url(obj: Any) -> bool:
    """Whether ``obj`` is a URL string such as ``https://...`` or ``s3://...``."""
    return isinstance(obj, str) and "://" in obj and not obj.startswith("file://")


def url_path(url: str) -> str:
    """The path part of a URL (``url`` itself when it is none): after the host for
    ``http(s)://``; everything after the protocol for fsspec's others (``memory://name.ozx``,
    ``s3://bucket/key``), which have no host: their first name is part of the path."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    return parts.path if parts.scheme in ("http", "https") else parts.netloc + parts.path


def is_zip_path(obj: Any) -> bool:
    """Whether ``obj`` (a path or URL) names an ``.ozx`` (or ``.zip``) file."""
    if not isinstance(obj, str | os.PathLike):
        return False
    text = os.fspath(obj)
    path = url_path(text) if is_url(text) else text
    return path.rstrip("/").lower().endswith(_ZIP_SUFFIXES)


def local_path(obj: str | os.PathLike[str]) -> str:
    """A local path or ``file://`` URL as a path."""
    text = os.fspath(obj)
    return text.removeprefix("file://")


# ---- opening for reading -----------------------------------------------------------------
def open_store(
    obj: Any,
    *,
    storage_options: Mapping[str, Any] | None = None,
    read_only: bool = True,
) -> tuple[Any, str, Callable[[], None]]:
    """A zarr store (or store-like) for ``obj``, its name, and how to close what was opened.

    Parameters
    ----------
    obj
        A local path (``str``, ``pathlib.Path``, ``file://``), a URL read through fsspec
        (``http(s)://``, ``s3://``, ``gs://``, ``reference://``...), an ``.ozx`` / ``.zip``
        file (local or at a URL), or a zarr store object (returned as is).
    storage_options
        fsspec options for URLs (credentials, ``endpoint_url``, timeouts, for
        ``reference://`` the ``fo`` references file and ``remote_protocol``...). Ignored for
        local paths and store objects.
    read_only
        Open the store read-only.

    Raises
    ------
    OmeZarrError
        When a local path does not exist, or a URL's filesystem cannot be made.
    """
    name = store_name(obj, storage_options)
    options = dict(storage_options or {})
    if isinstance(obj, str | os.PathLike) and not is_url(obj):
        path = Path(local_path(obj))
        if is_zip_path(path) and not path.is_dir():
            if not path.is_file():
                raise OmeZarrError(f"store {name!r}: no such file")
            if not zipfile.is_zipfile(path):
                raise OmeZarrError(f"store {name!r}: not a ZIP file")
            zip_store = zarr.storage.ZipStore(path, mode="r")
            return zip_store, name, functools.partial(_close_zip_store, zip_store)
        if not path.exists():
            raise OmeZarrError(f"store {name!r}: no such file or directory")
        if path.is_file():
            raise OmeZarrError.at(
                "is a file, not a zarr store (a zarr store is a directory, an .ozx or .zip "
                "file, or a URL)",
                store=name,
            )
        return zarr.storage.LocalStore(path, read_only=read_only), name, _noop
    if isinstance(obj, str):
        try:
            if is_zip_path(obj):
                return _remote_zip_store(obj, options, name)
            if obj.startswith("reference://"):
                options = _reference_options(options)
            if obj.split("://", 1)[0] in _S3_PROTOCOLS and read_only:
                # s3fs >= 2025 asks for an object's size (HEAD, and a LIST when it is missing)
                # before every whole-object read unless max_concurrency is 1: up to three
                # round trips per metadata document or chunk instead of one.
                options.setdefault("max_concurrency", 1)
            store = remembered(
                zarr.storage.FsspecStore.from_url(obj, storage_options=options, read_only=read_only)
            )
        except OmeZarrError:
            raise
        except ImportError as err:
            raise missing_extra(err, obj, name) from err
        except Exception as err:
            raise OmeZarrError(f"store {name!r}: cannot open ({describe_error(err)})") from err
        return store, name, _noop
    return obj, name, _noop


def missing_extra(err: ImportError, url: str, name: str) -> OmeZarrError:
    """An fsspec filesystem that cannot load: name the extra that installs what it needs."""
    scheme = url.split("://", 1)[0]
    return OmeZarrError.at(
        f"{scheme}:// URLs need a package that is not installed ({describe_error(err)}); "
        "install it with: pip install 'xarray-ome-zarr[remote]'",
        store=name,
    )


def corrupt_document(store: Any, prefix: str = "") -> tuple[str, ValueError] | None:
    """The first metadata document of the node at ``prefix`` that is not valid JSON.

    Returns its key in the store and the JSON error (which gives the position), or ``None``
    where every document there parses (or none can be read).
    """
    from zarr.core.buffer import default_buffer_prototype

    base = prefix.strip("/")
    for document in ("zarr.json", ".zattrs", ".zgroup", ".zarray", ".zmetadata"):
        key = f"{base}/{document}" if base else document
        try:
            found = sync(store.get(key, prototype=default_buffer_prototype()))
        except Exception:
            continue
        if found is None:
            continue
        try:
            json.loads(found.to_bytes())
        except ValueError as err:
            return key, err
    return None


def _corrupt_document(store: Any, name: str) -> OmeZarrError | None:
    """The root metadata document that is not valid JSON, named with the error's position."""
    found = corrupt_document(store)
    if found is None:
        return None
    key, err = found
    return OmeZarrError.at(f"cannot open: not valid JSON ({err})", store=name, node="/", key=key)


def _reference_options(options: dict[str, Any]) -> dict[str, Any]:
    """Make an async remote filesystem of a ``reference://`` store async too, as zarr needs."""
    import fsspec

    protocol = options.get("remote_protocol")
    if not isinstance(protocol, str):
        return options
    try:
        is_async = fsspec.get_filesystem_class(protocol).async_impl
    except (ImportError, ValueError):
        return options
    remote = dict(options.get("remote_options") or {})
    if is_async and "asynchronous" not in remote:
        remote["asynchronous"] = True
        return {**options, "remote_options": remote}
    return options


def _close_zip_store(store: zarr.storage.ZipStore) -> None:
    if getattr(store, "_is_open", False):
        store.close()


def _close_zip_fs(zip_fs: Any) -> None:
    with contextlib.suppress(Exception):
        zip_fs.close()
        if hasattr(zip_fs.of, "__exit__"):
            zip_fs.of.__exit__(None, None, None)


def _remote_zip_store(
    url: str, options: dict[str, Any], name: str
) -> tuple[Store, str, Callable[[], None]]:
    """An ``.ozx`` at a URL, read through fsspec's zip filesystem with range requests."""
    import fsspec
    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

    protocol = url.split("://", 1)[0]
    zip_fs = fsspec.filesystem(
        "zip", fo=url, target_protocol=protocol, target_options=options, mode="r"
    )
    store = zarr.storage.FsspecStore(
        AsyncFileSystemWrapper(zip_fs, asynchronous=True), path="", read_only=True
    )

    return store, name, functools.partial(_close_zip_fs, zip_fs)


def describe_error(err: BaseException) -> str:
    """``err`` for a message: its type and text."""
    text = str(err).strip() or repr(err)
    return f"{type(err).__name__}: {text}"


def _zip_subfolder(store: Any) -> str | None:
    """The one top-level folder of a zip that holds the hierarchy, when its root does not."""

    async def listing() -> list[str]:
        return [entry async for entry in store.list_dir("")]

    try:
        entries = [e.rstrip("/") for e in sync(listing())]
    except Exception:
        return None
    if any(e in _ROOT_KEYS for e in entries):
        return None
    folders = [e for e in entries if not e.startswith("__MACOSX")]
    if len(folders) != 1:
        return None

    async def has_root(folder: str) -> bool:
        for key in _ROOT_KEYS:
            if await store.exists(f"{folder}/{key}"):
                return True
        return False

    try:
        return folders[0] if sync(has_root(folders[0])) else None
    except Exception:
        return None


def open_root(
    obj: Any,
    *,
    group: str | None = None,
    storage_options: dict[str, Any] | None = None,
    mode: AccessMode = "r",
    consolidated: bool | None = None,
    probe_children: bool = True,
) -> OpenedStore:
    """Open the zarr group at ``obj`` (and ``group`` inside it) for reading.

    Parameters
    ----------
    obj
        A local path, ``pathlib.Path``, URL (through fsspec), ``.ozx`` file (local or at a
        URL), zarr store object or ``zarr.Group``.
    group
        A path inside the store.
    storage_options
        Passed to fsspec for URLs.
    mode
        The zarr access mode.
    consolidated
        Use consolidated metadata: ``None`` when present in a remote store (one request
        for the whole hierarchy's metadata; locally it buys nothing and is not used),
        ``True`` require it, ``False`` ignore it. Where it is used, the root's ``labels``
        group is probed in the store in the same round trip (``OpenedStore.probes``): a
        consolidated listing is a cache, not the truth.
    probe_children
        Probe those children beside the root (``False`` where they are not read, as when
        opening one level of an image).

    Raises
    ------
    OmeZarrError
        When nothing is there, it cannot be reached, or it is not a zarr group; the message
        names the path or URL (without credentials).
    """
    name = store_name(obj, storage_options)
    close: Callable[[], None] = _noop
    store = None
    probes: dict[str, Any] = {}
    try:
        if isinstance(obj, zarr.Group):
            root = obj
        else:
            store, name, close = open_store(
                obj, storage_options=storage_options, read_only=mode == "r"
            )
            use_consolidated = reading_policy(store, consolidated)
            if use_consolidated is False or not probe_children:
                root = _open_group(store, mode, use_consolidated, name)
            else:  # the OME children other tools add later, probed in the same round trip
                path = (group or "").strip("/")
                root, found = open_with_probes(
                    lambda: _open_group(store, mode, use_consolidated, name), store, path
                )
                probes = {f"{path}/{child}".strip("/"): v for child, v in found.items()}
        if group and group.strip("/"):
            node = _member_group(root, group.strip("/"))
            if not isinstance(node, zarr.Group):
                parent = "/" + group.strip("/").rpartition("/")[0]
                raise OmeZarrError.at(
                    f"is an array, not a group; its image is the parent group {parent!r}",
                    store=name,
                    node=group,
                )
            root = node
    except OmeZarrError:
        close()
        raise
    except KeyError as err:
        close()
        raise OmeZarrError(f"store {name!r}: no group {group!r}") from err
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as err:
        close()
        raise OmeZarrError(f"store {name!r}: no zarr group found ({err})") from err
    except zarr.errors.ContainsArrayError as err:
        close()
        raise OmeZarrError.at(
            f"is an array, not a group; its image is the parent group {_parent_name(obj)!r}",
            store=name,
            node="/",
        ) from err
    except json.JSONDecodeError as err:
        close()
        corrupt = _corrupt_document(store, name) if store is not None else None
        raise (corrupt or OmeZarrError(f"store {name!r}: invalid JSON ({err})")) from err
    except Exception as err:
        close()
        raise OmeZarrError(f"store {name!r}: cannot open ({describe_error(err)})") from err
    return OpenedStore(root, name, close, probes)


def _member_group(root: zarr.Group, path: str) -> Any:
    """The member at ``path``; one a consolidated listing lacks is read from the store."""
    try:
        return root[path]
    except KeyError:
        if not is_consolidated(root):
            raise
    return zarr.open_group(
        root.store, path=f"{root.path}/{path}".strip("/"), mode="r", use_consolidated=False
    )


def _parent_name(obj: Any) -> str:
    """The parent of a path or URL, for a message that points at it."""
    text = store_name(obj).rstrip("/")
    return text.rpartition("/")[0] or "."


def fsspec_protocols(store: Any) -> tuple[str, ...]:
    """The protocols of an fsspec-backed zarr store's filesystem; none for other stores."""
    if not isinstance(store, zarr.storage.FsspecStore):
        return ()
    fs = getattr(store.fs, "sync_fs", store.fs)
    return fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)


def _is_zip_store(store: Any) -> bool:
    """Whether ``store`` reads a zip: zarr's ``ZipStore`` or fsspec's zip filesystem."""
    if isinstance(store, zarr.storage.ZipStore):
        return True
    return "zip" in fsspec_protocols(store)


def _open_group(store: Any, mode: AccessMode, consolidated: bool | None, name: str) -> zarr.Group:
    """Open the root group; in a zip whose hierarchy sits in one folder, open that folder."""
    try:
        return zarr.open_group(store, mode=mode, use_consolidated=consolidated)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        folder = _zip_subfolder(store) if _is_zip_store(store) else None
        if folder is None:
            raise
    warnings.warn(
        f"store {name!r}: the OME-Zarr root is the folder {folder!r} inside the zip, not the "
        "zip's root as RFC-9 requires; reading it anyway",
        OmeZarrWarning,
        stacklevel=4,
    )
    return zarr.open_group(store, mode=mode, path=folder, use_consolidated=consolidated)


# ---- the HTTP sessions of URL stores -------------------------------------------------------
#: The fsspec filesystems of the URL stores opened here, by id, while they live.
_REMOTE_FILESYSTEMS: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()


def remembered(store: zarr.storage.FsspecStore) -> zarr.storage.FsspecStore:
    """``store``, its filesystem remembered for :func:`close_remote_sessions`."""
    _REMOTE_FILESYSTEMS[id(store.fs)] = store.fs
    return store


def close_remote_sessions() -> None:
    """Close the HTTP sessions of the filesystems of the URL stores opened so far.

    fsspec caches a filesystem beyond the store that made it, and aiohttp prints "Unclosed
    client session" when one is collected with its sessions open; the command line calls
    this when a command ends. A filesystem used again opens new sessions.
    """
    filesystems = list(_REMOTE_FILESYSTEMS.values())
    _REMOTE_FILESYSTEMS.clear()
    for fs in filesystems:
        with contextlib.suppress(Exception):  # closing must never fail a finished command
            sync(close_filesystem_sessions(fs))


# ---- kinds of store ---------------------------------------------------------------------
def is_memory_store(store: Any) -> bool:
    """Whether ``store`` keeps its data in this process's memory (zarr's ``MemoryStore``, an
    fsspec ``memory://`` store): other processes writing to it write to copies."""
    if isinstance(store, zarr.Group):
        store = store.store
    if isinstance(store, zarr.storage.MemoryStore):
        return True
    return "memory" in fsspec_protocols(store)
