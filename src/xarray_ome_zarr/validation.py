"""Check a whole OME-Zarr store and list every problem found, without stopping at the first.

The walk of the hierarchy and its structural checks are the reader's (``hierarchy``):
metadata against the specification's own JSON schemas (``ngff.schema``) and the parser
(``ngff.parse.parse_node``); arrays where the datasets point, ranks and ``dimension_names``
equal to the axes, integer label images, the groups that labels, plates and wells name,
levels that shrink. This module adds what only a validator looks at: chunk and shard
metadata (and, with ``read_chunks=True``, every chunk), units, ``omero`` channels and
colours. Only metadata is read, never a chunk, unless ``read_chunks=True``. Imports no xarray.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import zarr

from .consolidated import disagreements
from .errors import OmeZarrError
from .hierarchy import ROOT_KEY, Findings, Problem, Walker
from .ngff.emit import normalize_unit
from .ngff.model import Multiscale, NodeMeta
from .store import open_root

__all__ = ["Problem", "validate"]

_PREFIXES = [
    "yocto",
    "zepto",
    "atto",
    "femto",
    "pico",
    "nano",
    "micro",
    "milli",
    "centi",
    "deci",
    "hecto",
    "kilo",
    "mega",
    "giga",
    "tera",
    "peta",
    "exa",
    "zetta",
    "yotta",
]
#: The units the specification lists for space and time axes (UDUNITS-2 names).
UDUNITS = {
    "space": {"angstrom", "foot", "inch", "meter", "mile", "parsec", "yard"}
    | {f"{p}meter" for p in _PREFIXES},
    "time": {"day", "hour", "minute", "second"} | {f"{p}second" for p in _PREFIXES},
}

#: An omero channel colour: RRGGBB.
_HEX_COLOUR = re.compile(r"[0-9A-Fa-f]{6}")


def validate(
    store: Any,
    *,
    storage_options: dict[str, Any] | None = None,
    strict: bool = False,
    read_chunks: bool = False,
    metadata_only: bool = False,
) -> list[Problem]:
    """Every problem found in the OME-Zarr hierarchy at ``store``, in hierarchy order.

    Parameters
    ----------
    store
        A local path, URL, ``.ozx`` file, zarr store object or ``zarr.Group``.
    storage_options
        Passed to fsspec for URLs.
    strict
        Also apply the spec's strict schemas (its SHOULDs); ``omero`` problems become errors.
    read_chunks
        Also read every chunk (or shard) of every level, to find corrupt ones. Slow.
    metadata_only
        Judge the OME documents alone: the arrays and groups they name are not required
        (the spec's hierarchy test cases are a root ``zarr.json`` and nothing else). Cannot
        be combined with ``read_chunks``. A path ending in ``.json`` (a ``zarr.json``,
        ``.zattrs`` or bare attributes document) is always judged this way.

    Returns
    -------
    list of Problem
        Empty when the store is valid.

    Raises
    ------
    OmeZarrError
        When nothing readable as a zarr group is at ``store``.

    Examples
    --------
    >>> import xarray_ome_zarr as xoz
    >>> for problem in xoz.validate("cells.ome.zarr", strict=True):    # doctest: +SKIP
    ...     print(problem)        # severity, node, key, what is wrong
    >>> xoz.validate("s3://bucket/image.ome.zarr",
    ...              storage_options={"anon": True})                  # doctest: +SKIP
    []
    """
    if metadata_only and read_chunks:
        raise OmeZarrError(
            "validate: metadata_only=True judges the documents without the arrays, so it "
            "cannot read chunks (read_chunks=True)"
        )
    document = _attributes_document(store)
    if document is not None:
        group = zarr.open_group(zarr.storage.MemoryStore(), mode="w", zarr_format=3)
        group.attrs.put(document)
        findings = Findings(str(store), collect=True)
        _Checker(findings, strict=strict, read_chunks=False, metadata_only=True).walk(group)
        return findings.problems
    opened = open_root(store, storage_options=storage_options)
    try:
        findings = Findings(opened.name, collect=True)
        checker = _Checker(
            findings, strict=strict, read_chunks=read_chunks, metadata_only=metadata_only
        )
        checker.probes = opened.probes
        checker.walk(opened.group)
        if not metadata_only:
            for node, message in disagreements(opened.group.store, opened.group.path):
                findings.add(node, ROOT_KEY, message, "warning")
        return findings.problems
    finally:
        opened.close()


def _attributes_document(store: Any) -> dict[str, Any] | None:
    """The attributes in a local ``.json`` file (a ``zarr.json``, ``.zattrs`` or bare)."""
    import json
    import os

    if not isinstance(store, str | os.PathLike) or not str(store).endswith(".json"):
        return None
    if "://" in str(store) or not os.path.isfile(store):
        return None
    try:
        with open(store, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as err:
        raise OmeZarrError(f"{str(store)!r} is not a readable JSON document: {err}") from err
    if isinstance(doc, dict) and "zarr_format" in doc and isinstance(doc.get("attributes"), dict):
        doc = doc["attributes"]
    if not isinstance(doc, dict):
        raise OmeZarrError(f"{str(store)!r}: an attributes document must be a JSON object")
    return doc


class _Checker(Walker):
    """The reader's walk, collecting, plus the checks only a validator makes."""

    def __init__(
        self, findings: Findings, *, strict: bool, read_chunks: bool, metadata_only: bool = False
    ) -> None:
        super().__init__(findings, validate=True, strict=strict, metadata_only=metadata_only)
        self.read_chunks = read_chunks

    def check_array(self, array: zarr.Array, path: str, key: str, node: str) -> None:
        """Chunk and shard metadata must be readable and fit the array."""
        try:
            chunks, shards = tuple(array.chunks), array.shards
            _ = array.compressors, array.filters, np.dtype(array.dtype), array.fill_value
        except Exception as err:
            name = type(err).__name__
            message = f"array {path!r}: chunk or shard metadata unreadable ({name}: {err})"
            self.findings.error(node, key, message)
            return
        if len(chunks) != array.ndim or any(c < 1 for c in chunks):
            message = f"array {path!r}: chunk shape {chunks} does not fit the array"
            self.findings.error(node, key, message)
        elif shards is not None and any(s % c for s, c in zip(shards, chunks, strict=True)):
            message = f"array {path!r}: shards {shards} are not multiples of {chunks}"
            self.findings.error(node, key, message)
        elif self.read_chunks:
            self.check_chunks_read(array, path, key, node)

    def check_chunks_read(self, array: zarr.Array, path: str, key: str, node: str) -> None:
        """Read every chunk (or shard) of ``array``; list those that fail."""
        for region in _regions(array.shape, tuple(array.shards or array.chunks)):
            try:
                array[region]
            except Exception as err:
                where = ", ".join(f"{s.start}:{s.stop}" for s in region)
                name = type(err).__name__
                message = f"array {path!r}: cannot read [{where}] ({name}: {err})"
                self.findings.error(node, key, message)

    def check_image(
        self,
        meta: NodeMeta,
        multiscale: Multiscale,
        m: int,
        arrays: Mapping[int, zarr.Array],
        node: str,
    ) -> None:
        """Units of every multiscale; ``omero`` channels and colours once per image."""
        self.check_units(multiscale, m, node)
        if m == 0:
            if 0 in arrays:
                self.check_omero_channels(meta, multiscale, arrays[0].shape, node)
            self.check_omero_colours(meta, node)

    def _advice(self, node: str, key: str, message: str) -> None:
        """A SHOULD of the spec: a warning, an error with ``strict``."""
        self.findings.add(node, key, message, "error" if self.strict else "warning")

    def check_omero_channels(
        self, meta: NodeMeta, multiscale: Multiscale, shape: tuple[int, ...], node: str
    ) -> None:
        """The omero block names as many channels as the channel axis has (a warning)."""
        channels = meta.omero.channels if meta.omero is not None else None
        axes = [i for i, a in enumerate(multiscale.axes) if a.type == "channel"]
        if channels is None or not axes or len(shape) != len(multiscale.axes):
            return
        size = shape[axes[0]]
        if len(channels) != size:
            message = f"names {len(channels)} channels but the channel axis has {size}"
            self._advice(node, "omero/channels", message)

    def check_units(self, multiscale: Multiscale, m: int, node: str) -> None:
        """Space and time units are the UDUNITS-2 names the spec lists (a warning)."""
        for i, axis in enumerate(multiscale.axes):
            allowed = UDUNITS.get(axis.type or "")
            if axis.unit is None or allowed is None or axis.unit in allowed:
                continue
            hint = normalize_unit(axis.unit)
            suggestion = f" (did you mean {hint!r}?)" if hint in allowed else ""
            self._advice(
                node,
                f"multiscales/{m}/axes/{i}/unit",
                f"{axis.unit!r} is not a UDUNITS-2 {axis.type} unit{suggestion}",
            )

    def check_omero_colours(self, meta: NodeMeta, node: str) -> None:
        """Channel colours are six hex digits, ``RRGGBB``, without ``#`` (a warning)."""
        channels = meta.omero.channels if meta.omero is not None else None
        for i, channel in enumerate(channels or ()):
            color = channel.color
            if color is not None and not _HEX_COLOUR.fullmatch(color):
                self._advice(
                    node,
                    f"omero/channels/{i}/color",
                    f"{color!r} should be six hex digits, RRGGBB, without '#'",
                )


def _regions(shape: tuple[int, ...], grid: tuple[int, ...]) -> Iterator[tuple[slice, ...]]:
    """The selections of every grid cell (chunk or shard) of an array."""
    counts = [math.ceil(s / g) if g else 0 for s, g in zip(shape, grid, strict=True)]
    for index in itertools.product(*(range(n) for n in counts)):
        yield tuple(
            slice(i * g, min((i + 1) * g, s)) for i, g, s in zip(index, grid, shape, strict=True)
        )
