"""Turn what a user passes (path, URL, ``.ozx`` zip, store object) into a zarr group.

Closes only what it opened itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zarr

from .errors import OmeZarrError


@dataclass
class OpenedStore:
    """A root group, how to name it in messages, and how to close what we opened."""

    group: zarr.Group
    name: str
    close: Callable[[], None]


def _noop() -> None:
    return None


def store_name(obj: Any) -> str:
    """A short readable name for a path, URL or store object."""
    if isinstance(obj, str | os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, zarr.Group):
        return f"{obj.store}"
    return f"{obj}"


def is_url(obj: Any) -> bool:
    """Whether ``obj`` is a URL string such as ``https://...`` or ``s3://...``."""
    return isinstance(obj, str) and "://" in obj and not obj.startswith("file://")


def is_zip_path(obj: Any) -> bool:
    """Whether ``obj`` names an ``.ozx`` (or ``.zip``) file."""
    return isinstance(obj, str | os.PathLike) and os.fspath(obj).lower().endswith((".ozx", ".zip"))


def open_root(
    obj: Any,
    *,
    group: str | None = None,
    storage_options: dict[str, Any] | None = None,
    mode: str = "r",
) -> OpenedStore:
    """Open the zarr group at ``obj`` (and ``group`` inside it) for reading.

    Parameters
    ----------
    obj
        A local path, ``pathlib.Path``, URL (through fsspec), ``.ozx`` file, zarr store
        object or ``zarr.Group``.
    group
        A path inside the store.
    storage_options
        Passed to fsspec for URLs.
    mode
        The zarr access mode.

    Raises
    ------
    OmeZarrError
        When nothing is there, or it is not a zarr group.
    """
    name = store_name(obj)
    close: Callable[[], None] = _noop
    try:
        if isinstance(obj, zarr.Group):
            root = obj
        else:
            store: Any = obj
            if isinstance(obj, str) and obj.startswith("file://"):
                store = obj.removeprefix("file://")
            if is_zip_path(store) and not is_url(store):
                if not Path(store).is_file():
                    raise OmeZarrError(f"store {name!r}: no such file")
                store = zarr.storage.ZipStore(os.fspath(store), mode="r")
                close = store.close
            elif isinstance(store, str | os.PathLike) and not is_url(store):
                if not Path(store).exists():
                    raise OmeZarrError(f"store {name!r}: no such file or directory")
                store = zarr.storage.LocalStore(os.fspath(store), read_only=mode == "r")
            root = zarr.open_group(store, mode=mode, storage_options=storage_options)
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
    except (OSError, ValueError, TypeError) as err:
        close()
        raise OmeZarrError(f"store {name!r}: cannot open ({type(err).__name__}: {err})") from err
    return OpenedStore(root, name, close)
