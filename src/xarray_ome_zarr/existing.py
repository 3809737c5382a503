"""Writing into an existing store: ``mode=`` and ``group=`` as xarray's ``to_zarr`` has them.

``mode`` says what may happen to what is already there (``"w-"`` create, fail if it exists;
``"w"`` replace; ``"a"`` add or append; ``"r+"`` change existing pixels only) and ``group``
where in the store the written object goes. This module resolves the two and looks at the
existing store (is it there, which OME-Zarr version and zarr format it has); adding a node
into an OME hierarchy is :mod:`.additions`'s. Imports no xarray.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zarr

from ._compat import sync
from .errors import OmeZarrError
from .ngff.emit import split_source, zarr_format_of
from .ngff.v06 import WRITTEN_VERSION, is_06
from .store import is_url, is_zip_path, local_path, open_store, store_name

__all__ = ["MODES", "ExistingStore", "look_at", "node_path", "resolve_mode"]

#: xarray's ``to_zarr`` modes that ``to_ome_zarr`` takes.
MODES = ("w-", "w", "a", "r+")


def resolve_mode(mode: str | None, overwrite: bool) -> str:
    """The write mode: ``mode`` checked, else ``"w"`` with ``overwrite`` and ``"w-"`` without.

    Raises
    ------
    OmeZarrError
        For an unknown mode, or ``overwrite=True`` with a mode other than ``"w"``.
    """
    if mode is None:
        return "w" if overwrite else "w-"
    if mode not in MODES:
        raise OmeZarrError.at(
            f"mode must be one of {', '.join(repr(m) for m in MODES)}, got {mode!r}", key="mode"
        )
    if overwrite and mode != "w":
        raise OmeZarrError.at(
            f"overwrite=True means mode='w' (replace), which contradicts mode={mode!r}; "
            "pass one of them",
            key="mode",
        )
    return mode


def node_path(group: Any) -> str:
    """``group`` as a path inside the store, without leading or trailing ``/`` (``""``: root).

    Raises
    ------
    OmeZarrError
        For a group that is not a string, or one with ``.``/``..``/empty parts.
    """
    if group is None:
        return ""
    if not isinstance(group, str):
        raise OmeZarrError.at(
            f"group must be a path inside the store (a str), got {type(group).__name__}",
            key="group",
        )
    path = group.strip("/")
    if path and any(part in ("", ".", "..") for part in path.split("/")):
        raise OmeZarrError.at(f"group {group!r} is not a path inside the store", key="group")
    return path


@dataclass(frozen=True)
class ExistingStore:
    """What a store already holds, as far as writing into it needs to know."""

    name: str
    #: Whether anything is there at all.
    exists: bool
    #: The zarr format of the root group (``None`` when there is none).
    zarr_format: int | None = None
    #: The OME-Zarr version found at the root or, for a plain root, in the first OME
    #: group on the way to ``group`` (``None``: no OME metadata found).
    version: str | None = None


def look_at(
    store: Any, group: str, storage_options: Mapping[str, Any] | None = None
) -> ExistingStore:
    """Whether ``store`` exists, and its zarr format and OME-Zarr version (never writes)."""
    name = store_name(store, storage_options)
    if isinstance(store, zarr.Group):
        return _looked_at(store, name, group)
    if is_zip_path(store):
        exists = Path(local_path(store)).exists() if not is_url(store) else True
        return ExistingStore(name, exists)
    if isinstance(store, str | os.PathLike) and not is_url(store):
        path = Path(local_path(store))
        if not path.exists() or (path.is_dir() and not any(path.iterdir())):
            return ExistingStore(name, False)
    opened, name, close = open_store(store, storage_options=storage_options, read_only=True)
    try:
        if not isinstance(store, str | os.PathLike) or is_url(store):
            try:
                if sync(opened.is_empty("")):
                    return ExistingStore(name, False)
            except (OSError, ValueError) as err:
                raise OmeZarrError(f"store {name!r}: cannot list ({err})") from err
        try:
            root = zarr.open_group(opened, mode="r", use_consolidated=False)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
            return ExistingStore(name, True)
        except zarr.errors.ContainsArrayError:
            raise OmeZarrError.at(
                "is a zarr array, not a group: nothing can be added to it", store=name
            ) from None
        return _looked_at(root, name, group)
    finally:
        close()


def _looked_at(root: zarr.Group, name: str, group: str) -> ExistingStore:
    zarr_format = root.metadata.zarr_format
    version = _version_of(root.attrs.asdict())
    node = root
    for part in [p for p in group.split("/") if p][:-1]:
        if version is not None:
            break
        try:
            child = node[part]
        except KeyError:
            break
        if not isinstance(child, zarr.Group):
            break
        node = child
        version = _version_of(node.attrs.asdict())
    return ExistingStore(name, True, zarr_format, version)


def _version_of(attrs: Mapping[str, Any]) -> str | None:
    try:
        source = split_source(attrs)
    except OmeZarrError:
        return None
    if not source.is_ome:
        return None
    if source.version is not None:
        return str(source.version)
    return "0.4" if "ome" not in attrs else None


def version_for(asked: str | None, existing: ExistingStore, where: str) -> str:
    """The version to write into ``existing``: the store's, and ``asked`` must agree with it.

    A store without OME metadata takes ``asked`` (default 0.5) if its zarr format fits.
    """
    found = existing.version
    if is_06(found):  # 0.6rc0, 0.6.dev3/4: what is added is written in the released spelling
        found = WRITTEN_VERSION
    if found is None and existing.zarr_format is not None:
        found = None if asked is not None else ("0.4" if existing.zarr_format == 2 else "0.5")
    if found is not None and asked is not None and asked != found:
        raise OmeZarrError.at(
            f"holds OME-Zarr {found}, so what is added is written as {found}; version={asked!r} "
            "cannot go into it (convert the store first, or leave version= out)",
            store=existing.name,
            node=where,
            key="version",
        )
    version = found or asked or "0.5"
    if existing.zarr_format is not None and zarr_format_of(version) != existing.zarr_format:
        raise OmeZarrError.at(
            f"is zarr format {existing.zarr_format}, and OME-Zarr {version} is stored in zarr "
            f"format {zarr_format_of(version)}",
            store=existing.name,
            node=where,
            key="version",
        )
    return version
