"""Consolidated metadata is a cache, not the truth.

A store's consolidated listing (zarr v3: ``consolidated_metadata`` in the root ``zarr.json``;
zarr v2: ``.zmetadata``) is a snapshot: a label image added later by another tool (as
ome-zarr-py's ``write_labels`` does, without consolidating again) is not in it. So:

- locally it buys nothing, and is not used unless asked for (:func:`reading_policy`);
- where it is used, the OME children that are added later (an image's ``labels`` group) are
  probed in the store itself (:func:`probe_member`), the root's in the same round trip as the
  root (:func:`open_with_probes`), and the store wins where they differ
  (:func:`true_labels`);
- ``validate`` lists where the listing and the store disagree (:func:`disagreements`);
- a writer that changes a store keeps the store's consolidated metadata current
  (:func:`kept_consolidated`).

Imports no xarray.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Literal

import zarr
from zarr.core.buffer import default_buffer_prototype

from ._compat import sync

__all__ = [
    "PROBED_CHILDREN",
    "disagreements",
    "is_consolidated",
    "is_local_store",
    "kept_consolidated",
    "open_with_probes",
    "probe_member",
    "probe_members",
    "reading_policy",
    "true_labels",
]

#: The children of an OME group that other tools add after the fact, probed in the store
#: whenever a consolidated listing is used.
PROBED_CHILDREN = ("labels",)
_DOCUMENTS = ("zarr.json", ".zgroup", ".zarray", ".zattrs")


def is_local_store(store: Any) -> bool:
    """Whether ``store`` reads local files (a directory, a local zip, fsspec ``file``)."""
    if isinstance(store, zarr.storage.LocalStore | zarr.storage.ZipStore):
        return True
    if isinstance(store, zarr.storage.FsspecStore):
        fs = getattr(store.fs, "sync_fs", store.fs)
        protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
        return bool({"file", "local"} & set(protocols))
    return False


def reading_policy(store: Any, consolidated: bool | None) -> bool | None:
    """zarr's ``use_consolidated`` for reading ``store``: as asked; by default (``None``)
    not locally, where reading the store itself costs nothing, and when present remotely."""
    if consolidated is None and is_local_store(store):
        return False
    return consolidated


def is_consolidated(group: zarr.Group) -> bool:
    """Whether ``group`` answers member lookups from a consolidated listing."""
    return getattr(group.metadata, "consolidated_metadata", None) is not None


def has_consolidated(root: zarr.Group) -> bool:
    """Whether the store has consolidated metadata at ``root``, read from the store itself
    (not from ``root``, which may have been opened without it)."""
    if root.metadata.zarr_format == 2:
        return bool(sync(root.store.exists(_join(root.path, ".zmetadata"))))
    fresh = zarr.open_group(root.store, path=root.path or None, mode="r", use_consolidated=None)
    return is_consolidated(fresh)


def consolidate(root: zarr.Group) -> None:
    """Write ``root``'s consolidated metadata afresh (asked for: no zarr warning that it is
    not in the v3 spec yet)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata")
        zarr.consolidate_metadata(
            root.store, path=root.path or None, zarr_format=root.metadata.zarr_format
        )


@contextlib.contextmanager
def kept_consolidated(root: zarr.Group, asked: bool = False) -> Iterator[None]:
    """Around a change to the store below ``root``: consolidate afterwards where the store
    had consolidated metadata before (looked at first: rewriting a zarr v3 group's
    attributes drops it from its document) or where ``asked``."""
    refresh = asked or has_consolidated(root)
    yield
    if refresh:
        consolidate(root)


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


async def _open_fresh(store: Any, path: str, zarr_format: Literal[2, 3] | None = None) -> Any:
    """The group at ``path`` read from the store itself, or the exception opening it.

    With ``zarr_format`` only that format's documents are asked for (``zarr.json``; or
    ``.zgroup`` and ``.zattrs``), as a group's member lookup does.
    """
    try:
        group = await zarr.api.asynchronous.open_group(
            store=store, path=path, mode="r", use_consolidated=False, zarr_format=zarr_format
        )
    except Exception as err:  # judged by the caller
        return err
    return zarr.Group(group)


def probe_member(group: zarr.Group, path: str) -> Any:
    """The group ``path`` below ``group`` as the store holds it (not its cached listing):
    a ``zarr.Group`` or the exception opening it raised."""
    return sync(_open_fresh(group.store, _join(group.path, path), group.metadata.zarr_format))


def probe_members(
    store: Any, paths: list[str], zarr_format: Literal[2, 3] | None = None
) -> list[Any]:
    """The groups at ``paths`` of ``store`` as the store holds them, all in one round trip:
    each a ``zarr.Group`` or the exception opening it raised."""

    async def every() -> list[Any]:
        return list(await asyncio.gather(*(_open_fresh(store, p, zarr_format) for p in paths)))

    return sync(every())


def open_with_probes(
    open_root: Callable[[], zarr.Group], store: Any, path: str
) -> tuple[zarr.Group, dict[str, Any]]:
    """Open the root with ``open_root`` and, at the same time (one round trip), probe its
    :data:`PROBED_CHILDREN` in the store itself; the probes by child name.

    The root's zarr format is not known until it is read, so each child is probed for both
    (``zarr.json``; ``.zgroup`` and ``.zattrs``: three requests, in the same wave as the
    root's) and the answer in the root's format kept: what the root's member lookup would
    give, so the walk takes it instead of asking again when the root is not consolidated.
    """
    from concurrent.futures import ThreadPoolExecutor

    async def probes() -> list[Any]:
        paths = [_join(path, child) for child in PROBED_CHILDREN]
        asked = [_open_fresh(store, p, fmt) for p in paths for fmt in (3, 2)]
        return list(await asyncio.gather(*asked))

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(lambda: sync(probes()))
        root = open_root()
        found = pending.result()
    pick = 0 if root.metadata.zarr_format == 3 else 1
    return root, {child: found[2 * i + pick] for i, child in enumerate(PROBED_CHILDREN)}


def _is_missing(err: Any) -> bool:
    return isinstance(err, KeyError | FileNotFoundError | zarr.errors.GroupNotFoundError)


def true_labels(group: zarr.Group, listed: Any, probed: Any = None) -> Any:
    """The ``labels`` child of an image ``group`` as the store holds it.

    ``listed`` is what the group's member lookup gave (a group or an exception); ``probed``
    the store's answer when already fetched. Without a consolidated listing ``listed`` is the
    store's answer. With one, the store's ``labels`` group wins unless the listing holds the
    same document (then the listing's copy is kept, so its label images cost no request); a
    probe that failed for another reason than absence leaves the listing's answer.
    """
    if not is_consolidated(group):
        return listed
    fresh = probed if probed is not None else probe_member(group, "labels")
    if isinstance(fresh, Exception):
        return fresh if _is_missing(fresh) else listed
    if isinstance(listed, zarr.Group) and _attributes(listed) == _attributes(fresh):
        return listed
    return fresh


def _attributes(group: zarr.Group) -> dict[str, Any]:
    try:
        return dict(group.attrs.asdict())
    except Exception:
        return {}


# ---- validate ------------------------------------------------------------------------------
def _read_json(store: Any, key: str) -> Any:
    """The JSON document at ``key``, ``None`` when absent or unreadable."""

    async def get() -> Any:
        buffer = await store.get(key, prototype=default_buffer_prototype())
        return None if buffer is None else json.loads(buffer.to_bytes())

    try:
        return sync(get())
    except Exception:
        return None


def _store_documents(store: Any, prefix: str) -> dict[str, Any] | None:
    """Every group's and array's metadata documents below ``prefix``, by key relative to it
    (arrays are not listed into: their chunks can be many); ``None`` when the store cannot
    be listed (an HTTP server)."""

    async def entries(folder: str) -> list[str]:
        start = f"{folder}/" if folder else ""
        return [e.strip("/") async for e in store.list_dir(start)]

    out: dict[str, Any] = {}
    folders = [prefix]
    try:
        while folders:
            folder = folders.pop()
            names = sync(entries(folder))
            documents = {n: _read_json(store, _join(folder, n)) for n in names if n in _DOCUMENTS}
            for name, document in documents.items():
                out[_join(folder, name)[len(prefix) :].strip("/")] = document
            v3 = documents.get("zarr.json")
            if ".zarray" in documents or (isinstance(v3, dict) and v3.get("node_type") == "array"):
                continue
            if documents or folder == prefix:
                folders.extend(_join(folder, n) for n in names if n not in _DOCUMENTS)
    except Exception:
        return None
    return out


def _v3_listing(root: Any) -> dict[str, Any] | None:
    """{path: zarr.json document} from a v3 root's consolidated metadata."""
    consolidated = root.get("consolidated_metadata") if isinstance(root, dict) else None
    entries = consolidated.get("metadata") if isinstance(consolidated, dict) else None
    if not isinstance(entries, dict):
        return None
    return {f"{path}/zarr.json": entry for path, entry in entries.items()}


def disagreements(store: Any, path: str = "") -> list[tuple[str, str]]:
    """Where the consolidated listing at ``path`` and the store disagree, as (node, message)
    pairs; none when there is no listing. Entries listed are compared with the documents
    the store holds; where the store can be listed, nodes missing from the listing too."""
    path = path.strip("/")
    root = _read_json(store, _join(path, "zarr.json"))
    listing = _v3_listing(root)
    where_listed = "the consolidated metadata (root zarr.json)"
    if listing is None:
        zmetadata = _read_json(store, _join(path, ".zmetadata"))
        entries = zmetadata.get("metadata") if isinstance(zmetadata, dict) else None
        if not isinstance(entries, dict):
            return []
        listing = {k: v for k, v in entries.items() if "/" in k}  # the root's own: read anyway
        where_listed = "the consolidated metadata (.zmetadata)"
    out: list[tuple[str, str]] = []
    hint = "readers that trust it miss the change; consolidate again (zarr.consolidate_metadata)"
    for key, entry in sorted(listing.items()):
        actual = _read_json(store, _join(path, key))
        node = "/" + key.rsplit("/", 1)[0]
        comparable = actual if isinstance(actual, dict) else {}
        if actual is None:
            out.append((node, f"{where_listed} lists {key!r}, which the store does not hold"))
        elif isinstance(entry, dict) and _differs(entry, comparable, key):
            out.append((node, f"{where_listed} holds an outdated {key!r}; {hint}"))
    documents = _store_documents(store, path) or {}
    unlisted = []
    for key in sorted(documents):
        node_listed = any(key.replace(".zattrs", d) in listing for d in (".zgroup", ".zarray"))
        if "/" not in key or key in listing or (key.endswith(".zattrs") and not node_listed):
            continue  # the root is read anyway; a new node is reported with its .zgroup
        unlisted.append(key.rsplit("/", 1)[0])
    for folder in unlisted:
        if any(folder.startswith(f"{other}/") for other in unlisted):
            continue  # reported with the topmost node missing from the listing
        message = f"{where_listed} does not list {folder!r}"
        below = any(other.startswith(f"{folder}/") for other in unlisted)
        out.append(
            (
                "/" + folder,
                f"{message}{' (nor what is below it)' if below else ''}, which the "
                f"store holds; {hint}",
            )
        )
    return out


def _differs(listed: dict[str, Any], actual: dict[str, Any], key: str) -> bool:
    """Whether a listed document differs from the store's where it matters: a v2 document
    as a whole (but for zarr's own ``consolidated_metadata`` stamp); a v3 ``zarr.json`` in
    its node type and attributes (zarr fills defaults into the listing)."""
    if key.endswith("zarr.json"):
        fields = ("node_type", "attributes")
        listed = {k: listed.get(k) or None for k in fields}
        actual = {k: actual.get(k) or None for k in fields}
    else:  # zarr adds an empty consolidated_metadata to the .zgroup entries it lists
        listed = {k: v for k, v in listed.items() if k != "consolidated_metadata"}
        actual = {k: v for k, v in actual.items() if k != "consolidated_metadata"}
    return json.dumps(listed, sort_keys=True) != json.dumps(actual, sort_keys=True)
