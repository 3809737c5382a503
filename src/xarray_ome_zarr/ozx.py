"""RFC-9: a whole OME-Zarr in one ZIP file (``.ozx``).

The archive comment (:func:`ozx_comment`, :func:`read_ozx_comment`), the entry order
(:func:`ozx_member_order`), the zip writer (:func:`write_ozx`), and the checks of where an
``.ozx`` may be written (:func:`check_ozx_version`, :func:`ozx_location`). Reading an ``.ozx``
is :mod:`.store`'s job (it is one more kind of store); writing one through ``to_ome_zarr`` is
:class:`.targets.OzxTarget`'s, which stages a directory and calls :func:`write_ozx`.
Imports no xarray.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import OmeZarrError
from .store import OZX_SUFFIX, describe_error, is_url, local_path, store_name

__all__ = [
    "OZX_SUFFIX",
    "OzxLocation",
    "check_ozx_target",
    "check_ozx_version",
    "ozx_comment",
    "ozx_location",
    "ozx_member_order",
    "read_ozx_comment",
    "write_ozx",
]

_COPY_BLOCK = 1 << 22
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


# ---- the archive comment and the entry order ---------------------------------------------
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


# ---- the zip writer ----------------------------------------------------------------------
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


# ---- where an .ozx may be written --------------------------------------------------------
def check_ozx_version(version: str | None, name: str) -> None:
    """Refuse a zarr v2 version: an ``.ozx`` holds zarr v3, so OME-Zarr 0.5 or later.

    Raises
    ------
    OmeZarrError
        For a version before 0.5; ``None`` (not known yet) passes.
    """
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


@dataclass(frozen=True)
class OzxLocation:
    """Where an ``.ozx`` goes: an fsspec filesystem (``None`` for a local file), the path on
    it, and whether something is there already."""

    fs: Any
    path: str
    exists: bool


def ozx_location(
    target: str | os.PathLike[str], storage_options: Mapping[str, Any] | None, name: str
) -> OzxLocation:
    """Look at where the ``.ozx`` ``target`` (a local path or a URL) would be written.

    Raises
    ------
    OmeZarrError
        When a URL's filesystem cannot be reached, or a local directory is in the way.
    """
    if is_url(target):
        import fsspec

        options = dict(storage_options or {})
        try:
            fs, remote_path = fsspec.core.url_to_fs(os.fspath(target), **options)
            return OzxLocation(fs, remote_path, bool(fs.exists(remote_path)))
        except Exception as err:
            raise OmeZarrError(f"store {name!r}: cannot open ({describe_error(err)})") from err
    local = Path(local_path(target))
    if local.is_dir():
        raise OmeZarrError(f"store {name!r}: is a directory; an .ozx target is a file")
    return OzxLocation(None, os.fspath(local), local.exists())


def check_ozx_target(
    target: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    version: str | None = None,
) -> OzxLocation:
    """Refuse an ``.ozx`` target that cannot be written, before anything is written.

    Returns
    -------
    OzxLocation
        Where the file goes.

    Raises
    ------
    OmeZarrError
        For a zarr v2 version (RFC-9 zips zarr v3, so OME-Zarr 0.5 or later), a directory
        in the way, or an existing file without ``overwrite``.
    """
    name = store_name(target, storage_options)
    check_ozx_version(version, name)
    location = ozx_location(target, storage_options, name)
    if location.exists and not overwrite:
        raise OmeZarrError(f"store {name!r}: already exists; pass overwrite=True to replace it")
    return location
