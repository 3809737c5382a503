"""Turn what a user passes (path, URL, ``.ozx`` zip, store object) into a zarr store or group.

Reading: :func:`open_root` gives the root group (consolidated metadata used when present).
Writing: :func:`open_for_write` gives a store to write into and a finaliser (which zips an
``.ozx`` into place); :func:`write_ozx` zips a finished OME-Zarr directory as RFC-9 says.
Closes only what it opened itself. Imports no xarray.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import zarr
from zarr.abc.store import Store

from .errors import OmeZarrError, OmeZarrWarning

__all__ = [
    "OZX_SUFFIX",
    "OpenedStore",
    "WriteTarget",
    "check_ozx_target",
    "clear_hierarchy",
    "is_memory_store",
    "is_url",
    "is_zip_path",
    "open_for_write",
    "open_root",
    "open_store",
    "ozx_comment",
    "ozx_member_order",
    "read_ozx_comment",
    "redact_url",
    "store_name",
    "write_ozx",
]

#: The RFC-9 file extension of a zipped OME-Zarr.
OZX_SUFFIX = ".ozx"
_ZIP_SUFFIXES = (OZX_SUFFIX, ".zip")
_ROOT_KEYS = ("zarr.json", ".zgroup", ".zattrs")
_COPY_BLOCK = 1 << 22
_S3_PROTOCOLS = ("s3", "s3a")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass
class OpenedStore:
    """A root group, how to name it in messages, and how to close what we opened."""

    group: zarr.Group
    name: str
    close: Callable[[], None]


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


def _url_path(url: str) -> str:
    return urlsplit(url).path if "://" in url else url


def is_zip_path(obj: Any) -> bool:
    """Whether ``obj`` (a path or URL) names an ``.ozx`` (or ``.zip``) file."""
    if not isinstance(obj, str | os.PathLike):
        return False
    text = os.fspath(obj)
    path = _url_path(text) if is_url(text) else text
    return path.rstrip("/").lower().endswith(_ZIP_SUFFIXES)


def _local_path(obj: str | os.PathLike[str]) -> str:
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
        path = Path(_local_path(obj))
        if is_zip_path(path) and not path.is_dir():
            if not path.is_file():
                raise OmeZarrError(f"store {name!r}: no such file")
            if not zipfile.is_zipfile(path):
                raise OmeZarrError(f"store {name!r}: not a ZIP file")
            zip_store = zarr.storage.ZipStore(path, mode="r")
            return zip_store, name, functools.partial(_close_zip_store, zip_store)
        if not path.exists():
            raise OmeZarrError(f"store {name!r}: no such file or directory")
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
            store = zarr.storage.FsspecStore.from_url(
                obj, storage_options=options, read_only=read_only
            )
        except OmeZarrError:
            raise
        except Exception as err:
            raise OmeZarrError(f"store {name!r}: cannot open ({_describe(err)})") from err
        return store, name, _noop
    return obj, name, _noop


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


def _describe(err: BaseException) -> str:
    text = str(err).strip() or repr(err)
    return f"{type(err).__name__}: {text}"


def _zip_subfolder(store: Any) -> str | None:
    """The one top-level folder of a zip that holds the hierarchy, when its root does not."""
    from zarr.core.sync import sync

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
    mode: str = "r",
    consolidated: bool | None = None,
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
        Use consolidated metadata: ``None`` when present (one request for the whole
        hierarchy's metadata), ``True`` require it, ``False`` ignore it.

    Raises
    ------
    OmeZarrError
        When nothing is there, it cannot be reached, or it is not a zarr group; the message
        names the path or URL (without credentials).
    """
    name = store_name(obj, storage_options)
    close: Callable[[], None] = _noop
    try:
        if isinstance(obj, zarr.Group):
            root = obj
        else:
            store, name, close = open_store(
                obj, storage_options=storage_options, read_only=mode == "r"
            )
            root = _open_group(store, mode, consolidated, name)
        if group and group.strip("/"):
            node = root[group.strip("/")]
            if not isinstance(node, zarr.Group):
                raise OmeZarrError(f"store {name!r}, node {group!r}: is an array, not a group")
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
    except Exception as err:
        close()
        raise OmeZarrError(f"store {name!r}: cannot open ({_describe(err)})") from err
    return OpenedStore(root, name, close)


def _fsspec_protocols(store: Any) -> tuple[str, ...]:
    """The protocols of an fsspec-backed zarr store's filesystem; none for other stores."""
    if not isinstance(store, zarr.storage.FsspecStore):
        return ()
    fs = getattr(store.fs, "sync_fs", store.fs)
    return fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)


def _is_zip_store(store: Any) -> bool:
    """Whether ``store`` reads a zip: zarr's ``ZipStore`` or fsspec's zip filesystem."""
    if isinstance(store, zarr.storage.ZipStore):
        return True
    return "zip" in _fsspec_protocols(store)


def _open_group(store: Any, mode: str, consolidated: bool | None, name: str) -> zarr.Group:
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


# ---- .ozx (RFC-9) ------------------------------------------------------------------------
def ozx_comment(version: str) -> bytes:
    """The RFC-9 ZIP archive comment: UTF-8 JSON naming the OME-Zarr version.

    ``{"ome": {"version": ..., "zipFile": {"centralDirectory": {"jsonFirst": true}}}}``;
    ``jsonFirst`` says the ``zarr.json`` entries come first, breadth-first (as ngff-zarr and
    the ``ozx`` tool write it).
    """
    document = {"ome": {"version": version, "zipFile": {"centralDirectory": {"jsonFirst": True}}}}
    return json.dumps(document).encode("utf-8")


def read_ozx_comment(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON document in an ``.ozx`` file's ZIP comment, or ``None`` if there is none.

    Lenient: a trailing NUL (as an early RFC-9 draft asked for) is accepted.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            raw = archive.comment
    except (OSError, zipfile.BadZipFile) as err:
        raise OmeZarrError(f"store {os.fspath(path)!r}: not a readable ZIP file ({err})") from err
    try:
        document = json.loads(raw.rstrip(b"\x00").decode("utf-8")) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return document if isinstance(document, dict) else None


def ozx_member_order(names: Iterable[str]) -> list[str]:
    """RFC-9 entry order: root ``zarr.json``, other ``zarr.json`` breadth-first, the rest.

    Within a depth, and among the other files, names sort lexicographically.
    """
    names = list(dict.fromkeys(n.replace(os.sep, "/") for n in names))
    metadata = [n for n in names if n.rsplit("/", 1)[-1] == "zarr.json"]
    metadata.sort(key=lambda n: (n.count("/"), n))
    rest = sorted(n for n in names if n.rsplit("/", 1)[-1] != "zarr.json")
    return metadata + rest


def _version_of(source: Path) -> str | None:
    try:
        document = json.loads((source / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ome = (document.get("attributes") or {}).get("ome") if isinstance(document, dict) else None
    version = ome.get("version") if isinstance(ome, dict) else None
    return version if isinstance(version, str) else None


def write_ozx(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    version: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Zip the OME-Zarr directory ``source`` into the RFC-9 file ``target`` (``.ozx``).

    Entries are stored (no ZIP compression: zarr's codecs compress), with ZIP64 headers,
    the root ``zarr.json`` first and the other ``zarr.json`` breadth-first right after it,
    and the archive comment ``{"ome": {"version": ...}}``. Entries carry a fixed timestamp,
    so the same hierarchy always gives the same bytes. The zip is written next to ``target``
    and moved into place at the end, so ``target`` is never half written.

    Parameters
    ----------
    source
        A directory holding a zarr v3 OME-Zarr hierarchy (``zarr.json`` at its root).
    target
        The ``.ozx`` file to write.
    version
        The OME-Zarr version for the comment; by default the root's ``ome.version``.
    overwrite
        Replace an existing ``target``.

    Returns
    -------
    Path
        ``target``.

    Raises
    ------
    OmeZarrError
        When ``source`` has no root ``zarr.json`` (RFC-9 needs zarr v3, so OME-Zarr >= 0.5),
        no version is known, or ``target`` exists and ``overwrite`` is false.
    """
    source, target = Path(source), Path(target)
    if not (source / "zarr.json").is_file():
        raise OmeZarrError(
            f"store {os.fspath(source)!r}: no zarr.json at the root; an .ozx holds a zarr v3 "
            "hierarchy (OME-Zarr 0.5 or later)"
        )
    version = version or _version_of(source)
    if not version:
        raise OmeZarrError(
            f"store {os.fspath(source)!r}, node '/': zarr.json has no attributes.ome.version; "
            "pass version="
        )
    if target.exists() and not overwrite:
        raise OmeZarrError(f"store {os.fspath(target)!r}: exists; pass overwrite=True")
    if target.is_dir():
        raise OmeZarrError(f"store {os.fspath(target)!r}: is a directory, not a file")
    files = [p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()]
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".partial", dir=target.parent
    )
    os.close(handle)
    try:
        with zipfile.ZipFile(
            partial, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True
        ) as archive:
            for member in ozx_member_order(files):
                # fixed timestamp and mode: the same hierarchy always zips to the same bytes
                info = zipfile.ZipInfo(member, date_time=_ZIP_EPOCH)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_STORED
                with (
                    open(source / member, "rb") as src,
                    archive.open(info, mode="w", force_zip64=True) as dst,
                ):
                    shutil.copyfileobj(src, dst, _COPY_BLOCK)
            archive.comment = ozx_comment(version)
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    return target


# ---- opening for writing -----------------------------------------------------------------
@dataclass
class WriteTarget:
    """Where a writer puts an OME-Zarr: a store, a path in it, and what to do at the end.

    Write arrays and metadata into ``store`` under ``path`` (e.g.
    ``zarr.open_group(target.store, path=target.path, mode="w", zarr_format=3)``), then
    call :meth:`finalise` once everything is written (it zips an ``.ozx`` into place), or
    :meth:`abort` on failure (it removes staging files; an existing target stays as it was
    for ``.ozx``; a directory or bucket prefix keeps what was written so far).
    """

    store: Any
    name: str
    path: str = ""
    _finalise: Callable[[], None] = field(default=_noop, repr=False)
    _cleanup: Callable[[], None] = field(default=_noop, repr=False)
    _done: bool = field(default=False, repr=False)

    def finalise(self) -> None:
        """Finish the write (zip and move an ``.ozx`` into place); call once, after success."""
        if self._done:
            return
        self._done = True
        try:
            self._finalise()
        finally:
            self._cleanup()

    def abort(self) -> None:
        """Clean up after a failed write (staging files only); safe to call twice."""
        if self._done:
            return
        self._done = True
        self._cleanup()

    def __enter__(self) -> WriteTarget:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.finalise()
        else:
            self.abort()


_V2_V3_ROOT = ("zarr.json", ".zgroup", ".zarray", ".zattrs")
#: The documents that make a zarr node; an OME image is one while its group's are there.
METADATA_KEYS = ("zarr.json", ".zattrs", ".zgroup", ".zarray", ".zmetadata")


def _store_has_content(store: Any, path: str) -> bool:
    from zarr.core.sync import sync

    prefix = f"{path.strip('/')}/" if path.strip("/") else ""

    async def check() -> bool:
        for key in _V2_V3_ROOT:
            if await store.exists(prefix + key):
                return True
        return False

    return bool(sync(check()))


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
    from zarr.core.sync import sync

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


def is_memory_store(store: Any) -> bool:
    """Whether ``store`` keeps its data in this process's memory (zarr's ``MemoryStore``, an
    fsspec ``memory://`` store): other processes writing to it write to copies."""
    if isinstance(store, zarr.Group):
        store = store.store
    if isinstance(store, zarr.storage.MemoryStore):
        return True
    return "memory" in _fsspec_protocols(store)


def open_for_write(
    target: Any,
    *,
    storage_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    version: str | None = None,
) -> WriteTarget:
    """A store to write an OME-Zarr into, for a path, URL, ``.ozx`` file or store object.

    - a local directory or a URL (``s3://``, any writable fsspec filesystem): written in
      place; with ``overwrite=True`` what was there is removed first;
    - an ``.ozx`` file (local or at a URL): written to a local staging directory, zipped by
      :func:`write_ozx` at :meth:`WriteTarget.finalise` and moved (or uploaded) into place;
    - a zarr store object or ``zarr.Group``: written into it.

    Parameters
    ----------
    target
        Where to write.
    storage_options
        fsspec options for URLs.
    overwrite
        Replace an existing hierarchy; without it an existing one is an error and is not
        touched.
    version
        The OME-Zarr version to be written, when known: ``.ozx`` needs 0.5 or later.

    Raises
    ------
    OmeZarrError
        When the target exists and ``overwrite`` is false, an ``.ozx`` is asked for a
        zarr v2 version, or the target cannot be reached.
    """
    options = dict(storage_options or {})
    name = store_name(target, options)
    if is_zip_path(target):
        _check_ozx_version(version, name)
        return _ozx_write_target(target, options, overwrite, name)
    if isinstance(target, zarr.Group):
        store, path = target.store, target.path
    elif isinstance(target, str | os.PathLike) and not is_url(target):
        local = Path(_local_path(target))
        if local.exists() and not overwrite and (local.is_file() or any(local.iterdir())):
            raise OmeZarrError(f"store {name!r}: exists and is not empty; pass overwrite=True")
        if local.is_file():
            local.unlink()
        local.mkdir(parents=True, exist_ok=True)
        store, path = zarr.storage.LocalStore(local, read_only=False), ""
    elif isinstance(target, str):
        try:
            store = zarr.storage.FsspecStore.from_url(
                target, storage_options=options, read_only=False
            )
        except Exception as err:
            raise OmeZarrError(f"store {name!r}: cannot open ({_describe(err)})") from err
        path = ""
    else:
        store, path = target, ""
    try:
        if overwrite:
            clear_hierarchy(store, path)
        elif _store_has_content(store, path):
            raise OmeZarrError(f"store {name!r}: a zarr hierarchy exists; pass overwrite=True")
    except OmeZarrError:
        raise
    except Exception as err:
        raise OmeZarrError(f"store {name!r}: cannot write ({_describe(err)})") from err
    return WriteTarget(store=store, name=name, path=path)


def _check_ozx_version(version: str | None, name: str) -> None:
    if version is not None and _version_tuple(version) < (0, 5):
        raise OmeZarrError(
            f"store {name!r}: an .ozx holds zarr v3, so OME-Zarr 0.5 or later; "
            f"version {version!r} cannot be zipped"
        )


def _version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return (0, 0)


def _ozx_location(
    target: str | os.PathLike[str], options: Mapping[str, Any], name: str
) -> tuple[Any, str, bool]:
    """(fsspec filesystem or None for a local file, path, whether something is there)."""
    if is_url(target):
        import fsspec

        try:
            fs, remote_path = fsspec.core.url_to_fs(os.fspath(target), **options)
            return fs, remote_path, bool(fs.exists(remote_path))
        except Exception as err:
            raise OmeZarrError(f"store {name!r}: cannot open ({_describe(err)})") from err
    local = Path(_local_path(target))
    if local.is_dir():
        raise OmeZarrError(f"store {name!r}: is a directory; an .ozx target is a file")
    return None, os.fspath(local), local.exists()


def check_ozx_target(
    target: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    version: str | None = None,
) -> None:
    """Refuse an ``.ozx`` target that cannot be written, before anything is written.

    Raises
    ------
    OmeZarrError
        For a zarr v2 version (RFC-9 zips zarr v3, so OME-Zarr 0.5 or later), a directory
        in the way, or an existing file without ``overwrite``.
    """
    name = store_name(target, storage_options)
    _check_ozx_version(version, name)
    _, _, exists = _ozx_location(target, dict(storage_options or {}), name)
    if exists and not overwrite:
        raise OmeZarrError(f"store {name!r}: already exists; pass overwrite=True to replace it")


def _ozx_write_target(
    target: str | os.PathLike[str], options: dict[str, Any], overwrite: bool, name: str
) -> WriteTarget:
    fs, location, exists = _ozx_location(target, options, name)
    if exists and not overwrite:
        raise OmeZarrError(f"store {name!r}: already exists; pass overwrite=True to replace it")
    staging_parent = None
    if fs is None:
        staging_parent = Path(location).parent
        staging_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{Path(_url_path(os.fspath(target))).name}.", dir=staging_parent)
    )
    store = zarr.storage.LocalStore(staging / "root", read_only=False)

    def finalise() -> None:
        root = staging / "root"
        if fs is not None:
            zipped = write_ozx(root, staging / "archive.ozx")
            try:
                fs.put_file(os.fspath(zipped), location)  # one object: replaced whole or not
            except Exception as err:
                raise OmeZarrError(f"store {name!r}: cannot upload ({_describe(err)})") from err
        else:
            write_ozx(root, location, overwrite=True)

    def cleanup() -> None:
        shutil.rmtree(staging, ignore_errors=True)

    return WriteTarget(store=store, name=name, path="", _finalise=finalise, _cleanup=cleanup)
