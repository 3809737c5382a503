"""Check a whole OME-Zarr store and list every problem found, without stopping at the first.

Metadata is checked against the specification's own JSON schemas (``ngff.schema``) and
by the parser (``ngff.parse.parse_node``); the structure against the metadata: arrays
where the datasets point, ranks and ``dimension_names`` equal to the axes, integer label
images, the groups that labels, plates and wells name, levels that shrink. Only metadata is
read, never a chunk, unless ``read_chunks=True``. Imports no xarray.
"""

from __future__ import annotations

import itertools
import math
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import zarr

from .errors import OmeZarrError, OmeZarrWarning
from .ngff.emit import normalize_unit
from .ngff.model import Multiscale, NodeMeta
from .ngff.parse import parse_node, split_attributes
from .ngff.schema import SCHEMA_VERSIONS, SchemaProblem, kinds_for, schema_problems
from .store import open_root
from .transforms import level_geometry

Severity = Literal["error", "warning"]

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

#: Versions stored in zarr v2, where the plate's well paths are not checked by the parser.
_V2_VERSIONS = ("0.1", "0.2", "0.3", "0.4")
#: An omero channel colour: RRGGBB.
_HEX_COLOUR = re.compile(r"[0-9A-Fa-f]{6}")


@dataclass(frozen=True)
class Problem:
    """One problem found in a store.

    Attributes
    ----------
    node
        The group the problem belongs to, ``/``-rooted (``"/"``, ``"/labels/nuclei"``).
    key
        The offending key, relative to the node's OME document (``"multiscales/0/axes"``;
        the ``ome`` wrapper of 0.5 left out), or ``"<root>"`` for the document itself.
    message
        What is wrong.
    severity
        ``"error"`` (the store is not valid OME-Zarr) or ``"warning"`` (transitional
        metadata such as ``omero`` is wrong; pixels and coordinates are not affected).
    """

    node: str
    key: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.severity} {self.node} {self.key}: {self.message}"


def validate(
    store: Any,
    *,
    storage_options: dict[str, Any] | None = None,
    strict: bool = False,
    read_chunks: bool = False,
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
    opened = open_root(store, storage_options=storage_options)
    try:
        checker = _Checker(opened.name, strict=strict, read_chunks=read_chunks)
        checker.check_node(opened.group, "")
        return checker.problems
    finally:
        opened.close()


def _join(node: str, path: str) -> str:
    return f"{node.strip('/')}/{path.strip('/')}".strip("/")


def _related(a: str, b: str) -> bool:
    """Whether one ``/``-separated key contains the other."""
    pa, pb = a.split("/"), b.split("/")
    n = min(len(pa), len(pb))
    return n > 0 and pa[:n] == pb[:n]


def _document_key(problem: SchemaProblem) -> str:
    """A schema problem's key relative to the OME document (``ome/`` of 0.5 dropped)."""
    path = problem.path
    if path and path[0] == "ome":
        path = path[1:]
    return "/".join(str(p) for p in path) or "<root>"


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


class _Checker:
    """Walks one opened store and collects problems."""

    def __init__(self, store_name: str, *, strict: bool, read_chunks: bool) -> None:
        self.store_name = store_name
        self.strict = strict
        self.read_chunks = read_chunks
        self.problems: list[Problem] = []
        self._seen: set[Problem] = set()
        self._error_keys: set[tuple[str, str]] = set()

    # ---- bookkeeping ----------------------------------------------------------------
    def where(self, node: str) -> str:
        """Name a node for parser messages (the prefix stripped again below)."""
        return f"store {self.store_name!r}, node {'/' + node.strip('/')!r}"

    def add(self, node: str, key: str, message: str, severity: Severity = "error") -> None:
        """Record a problem once."""
        problem = Problem("/" + node.strip("/"), key, message, severity)
        if problem not in self._seen:
            self._seen.add(problem)
            self.problems.append(problem)
            if severity == "error":
                self._error_keys.add((problem.node, key))

    def reported(self, node: str, key: str) -> bool:
        """Whether an error at (or around) ``key`` of ``node`` is already listed."""
        node = "/" + node.strip("/")
        return any(
            p.node == node and p.severity == "error" and _related(p.key, key) for p in self.problems
        )

    def split(self, err: OmeZarrError, node: str) -> tuple[str, str]:
        """(key, message) of a parser or geometry error."""
        text = str(err).removeprefix(f"{self.where(node)}: ")
        key, sep, message = text.partition(": ")
        if not sep or " " in key or not key:
            return "<root>", text
        return key, message

    # ---- groups and metadata --------------------------------------------------------
    def child(self, group: zarr.Group, path: str, node: str, key: str) -> zarr.Group | None:
        """The group ``path`` below ``group``, or ``None`` with the problem recorded.

        A path the schema already refused is not followed.
        """
        if ("/" + node.strip("/"), key) in self._error_keys:
            return None
        try:
            member = group[path]
        except (KeyError, FileNotFoundError) as err:
            if err.args and str(err.args[0]).endswith(path.strip("/")):
                self.add(node, key, f"{path!r} names no group in the store")
            else:
                self.add(node, key, f"cannot read group {path!r} ({type(err).__name__}: {err})")
            return None
        except Exception as err:
            self.add(node, key, f"cannot read group {path!r} ({type(err).__name__}: {err})")
            return None
        if not isinstance(member, zarr.Group):
            self.add(node, key, f"{path!r} is an array, not a group")
            return None
        return member

    def optional_child(self, group: zarr.Group, path: str) -> zarr.Group | None:
        """The group ``path`` below ``group`` if there is one."""
        try:
            member = group[path]
        except Exception:
            return None
        return member if isinstance(member, zarr.Group) else None

    def metadata(self, group: zarr.Group, node: str) -> NodeMeta | None:
        """Parse and schema-check a group's attributes; ``None`` when they do not parse."""
        try:
            attrs = group.attrs.asdict()
        except Exception as err:
            self.add(node, "<root>", f"cannot read the attributes ({type(err).__name__}: {err})")
            return None
        meta, parse_problem = self.parse(attrs, node)
        version = meta.version if meta is not None else self.declared_version(attrs)
        schema_keys = self.schema(attrs, version, node)
        if parse_problem is not None:
            key, message = parse_problem
            if not any(_related(key, k) for k in schema_keys):
                self.add(node, key, message)
        return meta

    def parse(self, attrs: Mapping, node: str) -> tuple[NodeMeta | None, tuple[str, str] | None]:
        """The parsed metadata, or the parser's (key, message); its warnings recorded."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                meta, problem = parse_node(attrs, self.where(node), validate=False), None
            except OmeZarrError as err:
                meta, problem = None, self.split(err, node)
        for w in caught:
            if issubclass(w.category, OmeZarrWarning):
                text = str(w.message).removeprefix(f"{self.where(node)}: ")
                self.add(node, "<root>", text, "warning")
        return meta, problem

    def declared_version(self, attrs: Mapping) -> str | None:
        """The version the attributes state, if they can say."""
        try:
            return split_attributes(attrs)[0]
        except OmeZarrError:
            return None

    def schema(self, attrs: Mapping, version: str | None, node: str) -> list[str]:
        """Record the spec schemas' problems; return the keys of those recorded."""
        if version not in SCHEMA_VERSIONS:
            return []
        try:
            document = split_attributes(attrs)[1]
        except OmeZarrError:
            return []
        keys = []
        for kind in kinds_for(document, version, strict=self.strict):
            for p in schema_problems(attrs, version, kind):
                severity: Severity = "warning" if p.in_omero and not self.strict else "error"
                key = _document_key(p)
                self.add(node, key, f"{p.message} ({version} {kind} schema)", severity)
                keys.append(key)
        return keys

    # ---- dispatch -------------------------------------------------------------------
    def check_node(self, group: zarr.Group, node: str, role: str = "") -> NodeMeta | None:
        """Check one group and everything below it; ``role`` says who pointed at it."""
        meta = self.metadata(group, node)
        if meta is None:
            if role != "labels":
                self.check_labels_child(group, node)
            return None
        if meta.is_image:
            self.check_image(group, meta, node, label=role == "label")
            self.check_labels_child(group, node)
        elif meta.labels is not None:
            self.check_labels(group, meta, node)
        elif meta.plate is not None:
            self.check_plate(group, meta, node)
        elif meta.well is not None:
            self.check_well(group, meta, node)
        elif meta.bioformats2raw_layout is not None:
            self.check_bf2raw(group, node)
        elif meta.image_label is not None:
            msg = "image-label metadata without a multiscale image"
            self.add(node, "multiscales", msg, "warning")
        elif not meta.is_ome and role == "labels":
            msg = "a 'labels' group without a labels list: its label images cannot be found"
            self.add(node, "labels", msg, "warning")
        elif not meta.is_ome:
            self.add(node, "<root>", "no OME-Zarr metadata in this group")
        return meta

    # ---- images ---------------------------------------------------------------------
    def check_image(self, group: zarr.Group, meta: NodeMeta, node: str, *, label: bool) -> None:
        """Every multiscale of an image: arrays, ranks, dimension names, shapes, geometry."""
        label = label or meta.image_label is not None
        for m, multiscale in enumerate(meta.multiscales):
            arrays = self.level_arrays(group, multiscale, m, node)
            self.check_shapes(arrays, m, node)
            for i, array in arrays.items():
                key = f"multiscales/{m}/datasets/{i}/path"
                self.check_array(array, meta, multiscale, multiscale.levels[i].path, key, node)
                if label:
                    self.check_label_dtype(array, key, node)
            self.check_geometry(multiscale, m, node)
            self.check_units(multiscale, m, node)
            if m == 0 and 0 in arrays:
                self.check_omero_channels(meta, multiscale, arrays[0].shape, node)
        self.check_omero_colours(meta, node)

    def level_arrays(
        self, group: zarr.Group, multiscale: Multiscale, m: int, node: str
    ) -> dict[int, zarr.Array]:
        """The arrays the levels name, by level index; missing ones recorded."""
        arrays = {}
        for i, level in enumerate(multiscale.levels):
            key = f"multiscales/{m}/datasets/{i}/path"
            array = self.array(group, level.path, node, key)
            if array is not None:
                arrays[i] = array
        return arrays

    def array(self, group: zarr.Group, path: str, node: str, key: str) -> zarr.Array | None:
        """The array at ``path``, or ``None`` with the problem recorded."""
        try:
            member = group[path]
        except (KeyError, FileNotFoundError) as err:
            if err.args and str(err.args[0]).endswith(path.strip("/")):
                self.add(node, key, f"{path!r} names no array in the store")
            else:
                self.add(node, key, f"cannot read the metadata of array {path!r} ({err!r})")
            return None
        except Exception as err:
            name = type(err).__name__
            self.add(node, key, f"cannot read the metadata of array {path!r} ({name}: {err})")
            return None
        if not isinstance(member, zarr.Array):
            self.add(node, key, f"{path!r} is a group, not an array")
            return None
        return member

    def check_array(
        self,
        array: zarr.Array,
        meta: NodeMeta,
        multiscale: Multiscale,
        path: str,
        key: str,
        node: str,
    ) -> None:
        """Rank, dimension names and chunk/shard metadata of one level's array."""
        dims = multiscale.axis_names
        if meta.version in ("0.1", "0.2", "0.3") and len(dims) == 5 and array.ndim < 5:
            dims = dims[5 - array.ndim :]
        if array.ndim != len(dims):
            self.add(
                node,
                key,
                f"array {path!r} has {array.ndim} dimensions but the multiscale has "
                f"{len(dims)} axes {list(dims)}",
            )
        names = getattr(array.metadata, "dimension_names", None)
        if names is not None and tuple(names) != tuple(dims):
            self.add(
                node,
                key,
                f"array {path!r} has dimension_names {list(names)}, which differ from the "
                f"axes {list(dims)}",
            )
        elif names is None and meta.version == "0.5":
            self.add(node, key, f"array {path!r} has no dimension_names (0.5 needs them)")
        self.check_chunking(array, path, key, node)

    def check_chunking(self, array: zarr.Array, path: str, key: str, node: str) -> None:
        """Chunk and shard metadata must be readable and fit the array."""
        try:
            chunks, shards = tuple(array.chunks), array.shards
            _ = array.compressors, array.filters, np.dtype(array.dtype), array.fill_value
        except Exception as err:
            name = type(err).__name__
            self.add(
                node, key, f"array {path!r}: chunk or shard metadata unreadable ({name}: {err})"
            )
            return
        if len(chunks) != array.ndim or any(c < 1 for c in chunks):
            self.add(node, key, f"array {path!r}: chunk shape {chunks} does not fit the array")
        elif shards is not None and any(s % c for s, c in zip(shards, chunks, strict=True)):
            self.add(node, key, f"array {path!r}: shards {shards} are not multiples of {chunks}")
        elif self.read_chunks:
            self.check_chunks_read(array, path, key, node)

    def check_chunks_read(self, array: zarr.Array, path: str, key: str, node: str) -> None:
        """Read every chunk (or shard) of ``array``; record those that fail."""
        for region in _regions(array.shape, tuple(array.shards or array.chunks)):
            try:
                array[region]
            except Exception as err:
                where = ", ".join(f"{s.start}:{s.stop}" for s in region)
                name = type(err).__name__
                self.add(node, key, f"array {path!r}: cannot read [{where}] ({name}: {err})")

    def check_label_dtype(self, array: zarr.Array, key: str, node: str) -> None:
        """Label images hold integers."""
        try:
            kind = np.dtype(array.dtype).kind
        except Exception:
            return  # reported as unreadable metadata
        if kind not in "iu":
            self.add(node, key, f"label image has dtype {array.dtype}; labels must be integers")

    def check_shapes(self, arrays: Mapping[int, zarr.Array], m: int, node: str) -> None:
        """Each level's shape is at most the previous level's, axis by axis."""
        previous: tuple[int, tuple[int, ...]] | None = None
        for i, array in arrays.items():
            shape = tuple(array.shape)
            if previous is not None and len(previous[1]) == len(shape):
                j, before = previous
                if any(b > a for a, b in zip(before, shape, strict=True)):
                    self.add(
                        node,
                        f"multiscales/{m}/datasets/{i}",
                        f"level {i} has shape {_shape_text(shape)}, larger than level {j} "
                        f"{_shape_text(before)}; levels must go from highest to lowest resolution",
                    )
            previous = (i, shape)

    def check_geometry(self, multiscale: Multiscale, m: int, node: str) -> None:
        """Every level's transforms have one value per axis."""
        for i in range(len(multiscale.levels)):
            try:
                level_geometry(multiscale, i)
            except OmeZarrError as err:
                key, message = self.split(err, node)
                self.add(node, key.replace("multiscales/0/", f"multiscales/{m}/", 1), message)

    def check_omero_channels(
        self, meta: NodeMeta, multiscale: Multiscale, shape: tuple[int, ...], node: str
    ) -> None:
        """The omero block names as many channels as the channel axis has (a warning)."""
        omero = meta.document.get("omero")
        channels = omero.get("channels") if isinstance(omero, Mapping) else None
        axes = [i for i, a in enumerate(multiscale.axes) if a.type == "channel"]
        if not isinstance(channels, list) or not axes or len(shape) != len(multiscale.axes):
            return
        size = shape[axes[0]]
        if len(channels) != size:
            self.add(
                node,
                "omero/channels",
                f"names {len(channels)} channels but the channel axis has {size}",
                "error" if self.strict else "warning",
            )

    def check_units(self, multiscale: Multiscale, m: int, node: str) -> None:
        """Space and time units are the UDUNITS-2 names the spec lists (a warning)."""
        for i, axis in enumerate(multiscale.axes):
            allowed = UDUNITS.get(axis.type or "")
            if axis.unit is None or allowed is None or axis.unit in allowed:
                continue
            hint = normalize_unit(axis.unit)
            suggestion = f" (did you mean {hint!r}?)" if hint in allowed else ""
            self.add(
                node,
                f"multiscales/{m}/axes/{i}/unit",
                f"{axis.unit!r} is not a UDUNITS-2 {axis.type} unit{suggestion}",
                "error" if self.strict else "warning",
            )

    def check_omero_colours(self, meta: NodeMeta, node: str) -> None:
        """Channel colours are six hex digits, ``RRGGBB``, without ``#`` (a warning)."""
        omero = meta.document.get("omero")
        channels = omero.get("channels") if isinstance(omero, Mapping) else None
        for i, channel in enumerate(channels if isinstance(channels, list) else ()):
            color = channel.get("color") if isinstance(channel, Mapping) else None
            if isinstance(color, str) and not _HEX_COLOUR.fullmatch(color):
                self.add(
                    node,
                    f"omero/channels/{i}/color",
                    f"{color!r} should be six hex digits, RRGGBB, without '#'",
                    "error" if self.strict else "warning",
                )

    # ---- labels, plates, wells, collections -----------------------------------------
    def check_labels_child(self, group: zarr.Group, node: str) -> None:
        """The ``labels`` group of an image, when there is one."""
        labels = self.optional_child(group, "labels")
        if labels is not None:
            self.check_node(labels, _join(node, "labels"), role="labels")

    def check_labels(self, group: zarr.Group, meta: NodeMeta, node: str) -> None:
        """Every label image a labels list names."""
        for i, name in enumerate(meta.labels or ()):
            child = self.child(group, name, node, f"labels/{i}")
            if child is None:
                continue
            child_node = _join(node, name)
            child_meta = self.check_node(child, child_node, role="label")
            if child_meta is not None and not child_meta.is_image:
                self.add(child_node, "multiscales", "a label must be a multiscale image")

    def check_plate(self, group: zarr.Group, meta: NodeMeta, node: str) -> None:
        """Every well of a plate, and each well's fields."""
        plate = meta.plate or {}
        for i, well in enumerate(plate.get("wells") or ()):
            path = well.get("path") if isinstance(well, Mapping) else None
            if not isinstance(path, str):
                continue  # reported by the schema or the parser
            if meta.version in _V2_VERSIONS:
                self.check_well_path_04(plate, well, i, node)
            child = self.child(group, path, node, f"plate/wells/{i}/path")
            if child is None:
                continue
            child_node = _join(node, path)
            child_meta = self.check_node(child, child_node, role="well")
            if child_meta is not None and child_meta.well is None:
                self.add(child_node, "well", "a plate's well needs well metadata")

    def check_well_path_04(self, plate: Mapping, well: Mapping, i: int, node: str) -> None:
        """0.4 well paths: the suite accepts column-first ones, so only warn."""
        names = {}
        for key in ("rows", "columns"):
            entries = plate.get(key) or []
            names[key] = [e.get("name") if isinstance(e, Mapping) else None for e in entries]
        row, col = well.get("rowIndex"), well.get("columnIndex")
        if not (isinstance(row, int) and isinstance(col, int)):
            return
        if not (0 <= row < len(names["rows"]) and 0 <= col < len(names["columns"])):
            self.add(node, f"plate/wells/{i}", "rowIndex or columnIndex out of range", "warning")
            return
        expected = f"{names['rows'][row]}/{names['columns'][col]}"
        if well.get("path") != expected:
            self.add(
                node,
                f"plate/wells/{i}/path",
                f"{well.get('path')!r} is not '<row>/<column>' = {expected!r} "
                "(accepted in 0.4, refused from 0.5 on)",
                "warning",
            )

    def check_well(self, group: zarr.Group, meta: NodeMeta, node: str) -> None:
        """Every field of view a well names."""
        images = (meta.well or {}).get("images")
        if not isinstance(images, list) or not images:
            if not self.reported(node, "well/images"):
                self.add(node, "well/images", "must list at least one image")
            return
        for j, image in enumerate(images):
            path = image.get("path") if isinstance(image, Mapping) else None
            if not isinstance(path, str):
                if not self.reported(node, f"well/images/{j}"):
                    self.add(node, f"well/images/{j}/path", "must be a string")
                continue
            child = self.child(group, path, node, f"well/images/{j}/path")
            if child is None:
                continue
            child_node = _join(node, path)
            child_meta = self.check_node(child, child_node, role="field")
            if child_meta is not None and not child_meta.is_image:
                self.add(child_node, "multiscales", "a well's field must be a multiscale image")

    def check_bf2raw(self, group: zarr.Group, node: str) -> None:
        """A bioformats2raw collection: the ``OME`` group's series list and each series."""
        ome = self.optional_child(group, "OME")
        series: tuple[str, ...] | None = None
        ome_node = _join(node, "OME")
        if ome is not None:
            ome_meta = self.metadata(ome, ome_node)
            series = ome_meta.series if ome_meta is not None else None
        if series is None:
            series = tuple(_numbered_groups(self, group))
            if not series:
                self.add(node, "bioformats2raw.layout", "no series group '0' in the collection")
            owner, keys = node, ["bioformats2raw.layout"] * len(series)
        else:
            owner, keys = ome_node, [f"series/{i}" for i in range(len(series))]
        for path, key in zip(series, keys, strict=True):
            child = self.child(group, path, owner, key)
            if child is not None:
                self.check_node(child, _join(node, path), role="series")


def _numbered_groups(checker: _Checker, group: zarr.Group) -> Iterator[str]:
    """``"0"``, ``"1"``, ... while such child groups exist."""
    for i in itertools.count():
        if checker.optional_child(group, str(i)) is None:
            return
        yield str(i)


def _regions(shape: tuple[int, ...], grid: tuple[int, ...]) -> Iterator[tuple[slice, ...]]:
    """The selections of every grid cell (chunk or shard) of an array."""
    counts = [math.ceil(s / g) if g else 0 for s, g in zip(shape, grid, strict=True)]
    for index in itertools.product(*(range(n) for n in counts)):
        yield tuple(
            slice(i * g, min((i + 1) * g, s)) for i, g, s in zip(index, grid, shape, strict=True)
        )
