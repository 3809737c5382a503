"""One walk of an OME-Zarr hierarchy, shared by the reader and ``validate``.

The walk opens each group and array once (members of a group together, in one round trip),
parses each node's metadata once, and applies the structural rules of the spec in one place:
arrays where the datasets point, ranks and ``dimension_names`` equal to the axes, integer
label images, levels that shrink, transforms with one value per axis, and the groups that
labels, plates, wells and collections name. What it finds goes to a ``Findings``: the
reader's raises at the first error (``collect=False``), ``validate``'s lists every problem.
Imports no xarray.
"""

from __future__ import annotations

import functools
import itertools
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import zarr

from . import _compat
from .consolidated import is_consolidated, probe_members, true_labels
from .errors import OmeZarrError, OmeZarrWarning
from .level_lengths import UNEVEN_LEVELS, trimmed_axes, trimmed_shape
from .ngff.model import Level, Multiscale, NodeMeta, Plate, Transform, WellRef
from .ngff.parse import (
    MISSING_TRANSFORMS,
    Deviate,
    ParseMemo,
    parse_node,
    split_attributes,
    tolerated,
)
from .ngff.schema import SCHEMA_VERSIONS, SchemaProblem, kinds_for, schema_problems
from .ngff.v06 import (
    DEV_VERSIONS,
    SPELLING_RULE,
    dangling_scene_references,
    is_06,
    normalise_spelling,
    scene_image_paths,
)
from .node_attrs import (
    GROUP_ATTRS,
    NESTED_COPY_RULE,
    nested_copy_message,
    written_by_xarray_hint,
)
from .pyramid_state import MARKER_KEY, stale_from, stale_message
from .pyramid_state import RULE as PYRAMID_INCOMPLETE
from .store import corrupt_document
from .transforms import level_geometry

Severity = Literal["error", "warning"]

#: Most subtrees (label images, wells, fields, series) read at once: each mostly waits on
#: the network, so a hierarchy costs about one round trip per level of depth, not per node.
MAX_CONCURRENT_NODES = 16
#: The key of a problem with the node's document as a whole.
ROOT_KEY = "<root>"
#: Rule ids of the deviations the walk itself finds (the parser finds the others).
BROKEN_NODE = "broken-node"
#: A scene transform naming a coordinate system its image does not have.
SCENE_REFERENCE = "v06-scene-reference"
LABEL_DTYPE = "label-dtype"
DIMENSION_NAMES_MISSING = "dimension-names-missing"
LABEL_LEVELS = "label-levels"


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
    rule
        The id of a deviation the reader accepts with a warning (``docs/errors.md``), the
        same as on that ``OmeZarrWarning``; ``None`` for other problems.
    """

    node: str
    key: str
    message: str
    severity: Severity = "error"
    rule: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The problem as ``validate --json`` prints it."""
        return {
            "severity": self.severity,
            "node": self.node,
            "key": self.key,
            "message": self.message,
            "rule": self.rule,
        }

    def __str__(self) -> str:
        rule = f" [{self.rule}]" if self.rule else ""
        return f"{self.severity} {self.node} {self.key}: {self.message}{rule}"


def join(node: str, path: str) -> str:
    """The node ``path`` below ``node``, without leading or trailing ``/``."""
    return f"{node.strip('/')}/{path.strip('/')}".strip("/")


def fetch_members(group: zarr.Group, paths: Sequence[str]) -> list[Any]:
    """Open several members of ``group`` at once: one round trip's latency over a network.

    Each result is a ``zarr.Array``, a ``zarr.Group``, or the exception opening it raised
    (``KeyError`` for a missing member, others for unreadable metadata; a metadata
    document that is not valid JSON is a :class:`CorruptDocument` naming it).
    """
    if not paths:
        return []
    members = _compat.fetch_members(group, paths)
    return [_named_if_corrupt(group, p, m) for p, m in zip(paths, members, strict=True)]


def fetch_members_of(requests: Sequence[tuple[zarr.Group, str]]) -> list[Any]:
    """``fetch_members`` for members of several groups, all in one round trip."""
    if not requests:
        return []
    members = _compat.fetch_members_of(requests)
    return [_named_if_corrupt(g, p, m) for (g, p), m in zip(requests, members, strict=True)]


class CorruptDocument(ValueError):
    """A member's metadata document that is not valid JSON: its key and the JSON position."""


def _named_if_corrupt(group: zarr.Group, path: str, member: Any) -> Any:
    """``member``, or where it failed on invalid JSON, the error naming the document."""
    if not isinstance(member, ValueError) or isinstance(member, OmeZarrError):
        return member
    prefix = f"{group.path.strip('/')}/{path.strip('/')}".strip("/")
    found = corrupt_document(group.store, prefix)
    if found is None:
        return member
    key, err = found
    return CorruptDocument(f"{key!r} is not valid JSON ({err})")


def _is_missing(err: Exception, path: str) -> bool:
    """Whether opening ``path`` failed because nothing is there."""
    if isinstance(err, FileNotFoundError):
        return True
    if not isinstance(err, KeyError) or not err.args:
        return False
    said = str(err.args[0])
    # zarr's lookup in a consolidated listing says "'labels' not found in consolidated metadata."
    return said.strip("/") == path or said.startswith(f"{path.strip('/')!r} not found")


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
    return "/".join(str(p) for p in path) or ROOT_KEY


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


class Findings:
    """Where the walk reports what it finds.

    Parameters
    ----------
    store_name
        Names the store in messages.
    collect
        ``True`` (``validate``): list every problem in ``problems``. ``False`` (the reader):
        raise an ``OmeZarrError`` naming store, node and key at the first error.
    strict
        The reader's ``strict=True``: refuse the deviations liberal reading accepts.
    """

    def __init__(self, store_name: str, *, collect: bool, strict: bool = False) -> None:
        self.store_name = store_name
        self.collect = collect
        self.strict = strict
        self.problems: list[Problem] = []
        self._seen: set[Problem] = set()
        self._error_keys: set[tuple[str, str]] = set()

    def where(self, node: str) -> str:
        """Name a node of this store for messages."""
        return f"store {self.store_name!r}, node {'/' + node.strip('/')!r}"

    def exception(self, node: str, key: str, message: str) -> OmeZarrError:
        """The error the reader raises for a problem."""
        return OmeZarrError.at(
            message, store=self.store_name, node=node, key=None if key == ROOT_KEY else key
        )

    def error(self, node: str, key: str, message: str, cause: BaseException | None = None) -> None:
        """A problem that makes the store invalid: listed, or raised at once."""
        if not self.collect:
            raise self.exception(node, key, message) from cause
        self.add(node, key, message, "error")

    def deviation(self, node: str, key: str, message: str, rule: str) -> None:
        """A deviation from the spec that peers read and the geometry survives: a warning
        when reading, refused with ``strict=True``, an error for ``validate``."""
        if self.collect:
            self.add(node, key, message, "error", rule)
        elif self.strict:
            hint = f" (rule {rule}: read with a warning unless strict=True)"
            raise OmeZarrError.at(
                message + hint, store=self.store_name, node=node, key=key, rule=rule
            )
        else:
            hint = f" [rule {rule}; strict=True refuses it]"
            warnings.warn(
                OmeZarrWarning.at(
                    message + hint, store=self.store_name, node=node, key=key, rule=rule
                ),
                stacklevel=2,
            )

    def notice(self, node: str, key: str, message: str, rule: str) -> None:
        """Something about the store that is not against the spec but that a reader should
        know (an incomplete pyramid): a warning when reading, listed by ``validate`` as a
        warning; ``strict`` does not refuse it."""
        if self.collect:
            self.add(node, key, message, "warning", rule)
        else:
            warnings.warn(
                OmeZarrWarning.at(
                    f"{message} [rule {rule}]", store=self.store_name, node=node, key=key, rule=rule
                ),
                stacklevel=2,
            )

    def broken(self, node: str, key: str, child: str, err: OmeZarrError) -> None:
        """A child node (label image, well, field, series) that cannot be read: left out
        with a warning when reading, so the rest of the tree opens; ``strict`` raises."""
        if self.collect or self.strict:
            raise err
        message = f"{'/' + child.strip('/')!r} cannot be read and is left out: {err}"
        self.deviation(node, key, message, BROKEN_NODE)

    def add(
        self, node: str, key: str, message: str, severity: Severity, rule: str | None = None
    ) -> None:
        """List a problem once."""
        problem = Problem("/" + node.strip("/"), key, message, severity, rule)
        if problem not in self._seen:
            self._seen.add(problem)
            self.problems.append(problem)
            if severity == "error":
                self._error_keys.add((problem.node, key))

    def has_error(self, node: str, key: str) -> bool:
        """Whether an error at exactly ``key`` of ``node`` is listed."""
        return ("/" + node.strip("/"), key) in self._error_keys

    def reported(self, node: str, key: str) -> bool:
        """Whether an error at (or around) ``key`` of ``node`` is listed."""
        node = "/" + node.strip("/")
        return any(
            p.node == node and p.severity == "error" and _related(p.key, key) for p in self.problems
        )

    @staticmethod
    def split(err: OmeZarrError) -> tuple[str, str]:
        """(key, message) of a parser or geometry error, from its fields."""
        return err.key or ROOT_KEY, err.reason


def first_multiscale(meta: NodeMeta, where: str) -> Multiscale:
    """The image's first multiscale, the one the spec says to read by default; a warning
    names the others, which are neither read nor written back."""
    first, *others = meta.multiscales
    if others:
        names = [m.name for m in others]
        warnings.warn(
            f"{where}: the group holds {len(meta.multiscales)} multiscales; "
            f"only the first ({first.name!r}) is read, and a rewrite keeps only it "
            f"(not read: {names})",
            OmeZarrWarning,
            stacklevel=3,
        )
    return first


@dataclass
class Node:
    """One OME group reached by the walk.

    ``levels`` are the arrays of the first multiscale's levels, in level order (images
    only); ``children`` the OME groups below, by path relative to this node, in the order
    the metadata lists them.
    """

    path: str
    group: zarr.Group
    meta: NodeMeta | None
    levels: tuple[zarr.Array, ...] = ()
    children: dict[str, Node] = field(default_factory=dict)
    #: the levels' shapes as read: a lower level that an append has grown before level 0
    #: is trimmed to what level 0 allows (:mod:`.level_lengths`)
    shapes: tuple[tuple[int, ...], ...] = ()


class Walker:
    """Walks the hierarchy below an opened group, reporting to ``findings``.

    Parameters
    ----------
    findings
        Raises (the reader) or collects (``validate``).
    validate
        Check each node against the spec's schemas (the reader's ``validate=``).
    strict
        Also apply the spec's strict schemas when collecting (``validate(strict=True)``).

    With ``findings.collect`` the walk is thorough: every multiscale, not only the first;
    metadata that does not parse is reported and the walk goes on where it can. With
    ``metadata_only`` no member a document names is opened (the spec's hierarchy cases hold
    the root document only). Subclasses
    add checks the reader does not need through ``check_array`` and ``check_image``.
    """

    def __init__(
        self,
        findings: Findings,
        *,
        validate: bool = True,
        strict: bool = False,
        metadata_only: bool = False,
    ) -> None:
        self.findings = findings
        self.validate = validate
        self.strict = strict
        #: Judge the documents alone: no array or group they name is opened or required.
        self.metadata_only = metadata_only
        #: ``labels`` groups probed in the store beside a consolidated root, by store path
        self.probes: dict[str, Any] = {}
        #: Members fetched ahead of the walk (a plate's fields and their levels, all wells
        #: in one round trip), by store path; each is taken once by ``fetch``.
        self.prefetched: dict[str, Any] = {}
        #: Open one level of each image, and no labels (the plate view): a function giving
        #: the level's index in a multiscale (``node`` names it in errors), else ``None``.
        self.one_level: Callable[[Multiscale, str], int] | None = None
        #: The level asked for, as given (an int or a path), for fetching ahead of the walk.
        self.level_hint: int | str | None = None
        #: Walk subtrees one after the other (everything they need was fetched ahead).
        self.sequential = False
        #: Documents parsed with nothing to say, reused for equal ones (a plate's fields).
        self.parse_memo = ParseMemo()

    def fetch(self, group: zarr.Group, paths: Sequence[str]) -> list[Any]:
        """``fetch_members(group, paths)``, taking what was fetched ahead of the walk."""
        keys = [join(group.path, path) for path in paths]
        if self.prefetched and all(key in self.prefetched for key in keys):
            return [self.prefetched.pop(key) for key in keys]
        return fetch_members(group, paths)

    @property
    def thorough(self) -> bool:
        """Whether every problem is wanted (``validate``), not only the first."""
        return self.findings.collect

    def where(self, node: str) -> str:
        """Name a node of the store for messages."""
        return self.findings.where(node)

    # ---- metadata -----------------------------------------------------------------
    def metadata(self, group: zarr.Group, node: str) -> NodeMeta | None:
        """Parse a group's OME metadata; ``None`` (with the problems listed) when it does
        not parse. The reader's parse raises instead."""

        def deviate(key: str, message: str, rule: str) -> None:
            accepted.append(key)
            if rule != MISSING_TRANSFORMS:  # said with the geometry used, once shapes are known
                self.findings.deviation(node, key, message, rule)

        accepted: list[str] = []
        if not self.thorough:
            attrs = group.attrs.asdict()
            where = self.where(node)
            return parse_node(
                attrs, where, validate=self.validate, deviate=deviate, memo=self.parse_memo
            )
        try:
            attrs = group.attrs.asdict()
        except Exception as err:
            name = type(err).__name__
            self.findings.add(
                node, ROOT_KEY, f"cannot read the attributes ({name}: {err})", "error"
            )
            return None
        meta, parse_problem = self._parse(attrs, node, deviate)
        version = meta.version if meta is not None else _declared_version(attrs)
        schema_keys = self._schema(attrs, version, node, accepted)
        if parse_problem is not None:
            key, message = parse_problem
            if not any(_related(key, k) for k in schema_keys):
                self.findings.error(node, key, message)
        return meta

    def _parse(
        self, attrs: Mapping, node: str, deviate: Deviate
    ) -> tuple[NodeMeta | None, tuple[str, str] | None]:
        """The parsed metadata, or the parser's (key, message); its warnings listed."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                where = self.where(node)
                meta = parse_node(attrs, where, validate=False, deviate=deviate)
                problem = None
            except OmeZarrError as err:
                meta, problem = None, self.findings.split(err)
        for w in caught:
            if issubclass(w.category, OmeZarrWarning):
                text = str(w.message).removeprefix(f"{self.where(node)}: ")
                self.findings.add(node, ROOT_KEY, text, "warning")
        return meta, problem

    def _schema(
        self, attrs: Mapping, version: str | None, node: str, accepted: Sequence[str]
    ) -> list[str]:
        """List the spec schemas' problems (those of ``accepted`` deviations are listed
        with their rule already); return the keys of those listed."""
        if version not in SCHEMA_VERSIONS:
            return []
        try:
            document = split_attributes(attrs)[1]
        except OmeZarrError:
            return []
        keys = []
        if is_06(version):  # checked in the 0.6 spelling; the 0.6.dev one reported once
            document, found = normalise_spelling(document)
            attrs = {**attrs, "ome": document}
            for key, message in found if version not in DEV_VERSIONS else ():
                self.findings.add(node, key, f"{message} (the 0.6 text)", "error", SPELLING_RULE)
                keys.append(key)
        for kind in kinds_for(document, version, strict=self.strict):
            for p in schema_problems(attrs, version, kind):
                if tolerated(p, accepted):
                    continue
                severity: Severity = "warning" if p.in_omero and not self.strict else "error"
                key = _document_key(p)
                self.findings.add(node, key, f"{p.message} ({version} {kind} schema)", severity)
                keys.append(key)
        return keys

    # ---- dispatch -----------------------------------------------------------------
    def walk(self, group: zarr.Group, node: str = "", role: str = "") -> Node | None:
        """The node at ``group`` and everything below it; ``role`` says who pointed at it
        (``""`` for the opened group, ``"labels"``, ``"label"``, ``"well"``, ``"field"``,
        ``"series"``)."""
        return self.dispatch(group, self.metadata(group, node), node, role)

    def dispatch(
        self, group: zarr.Group, meta: NodeMeta | None, node: str, role: str
    ) -> Node | None:
        """Walk below a node whose metadata is parsed (``None``: it did not parse)."""
        if meta is None:
            if role != "labels":
                self.optional_labels(group, node)
            return None
        out = Node(node, group, meta)
        if meta.is_image:
            self.image(out, label=role == "label")
        elif meta.labels is not None:
            self.labels(out)
        elif meta.plate is not None:
            self.plate(out)
        elif meta.well is not None:
            self.well(out)
        elif meta.bioformats2raw_layout is not None:
            self.collection(out)
        elif meta.image_label is not None:
            if self.thorough:
                msg = "image-label metadata without a multiscale image"
                self.findings.add(node, "multiscales", msg, "warning")
        elif not meta.is_ome and role == "labels":
            if self.thorough:
                msg = "a 'labels' group without a labels list: its label images cannot be found"
                self.findings.add(node, "labels", msg, "warning")
        elif not meta.is_ome:
            hint = written_by_xarray_hint(group.attrs.asdict())
            self.findings.error(node, ROOT_KEY, f"no OME-Zarr metadata in this group{hint}")
        if meta.scene is not None:
            self.scene(out)
        return out

    def run(self, jobs: Sequence[tuple[str, Callable[[], Node | None]]]) -> dict[str, Node]:
        """Walk independent subtrees, at once when reading; results in job order.

        The first failing job in job order raises, so errors do not depend on timing.
        Collecting walks one subtree after the other, so problems come in hierarchy order.
        """
        if self.thorough or self.sequential or len(jobs) <= 1:
            results = [(path, job()) for path, job in jobs]
        else:
            with ThreadPoolExecutor(max_workers=min(MAX_CONCURRENT_NODES, len(jobs))) as pool:
                futures = [(path, pool.submit(job)) for path, job in jobs]
                results = [(path, future.result()) for path, future in futures]
        return {path: child for path, child in results if child is not None}

    def guard(
        self, node: str, key: str, path: str, method: Callable[..., Node | None], *args: Any
    ) -> Callable[[], Node | None]:
        """``method(*args)``, the walk of one child at ``path`` of ``node`` (named by ``key``),
        to run later: when reading, a child that cannot be read is left out with a warning
        (rule ``broken-node``) unless ``strict``."""

        def job() -> Node | None:
            try:
                return method(*args)
            except OmeZarrError as err:
                self.findings.broken(node, key, join(node, path), err)
                return None

        return job

    def member_group(self, member: Any, path: str, node: str, key: str) -> zarr.Group | None:
        """``member`` as fetched by ``fetch_members``, or ``None`` with the reason reported.

        A path the schema already refused is not followed.
        """
        if self.findings.has_error(node, key):
            return None
        if isinstance(member, Exception):
            if _is_missing(member, path):
                message = f"{path!r} names no group in the store"
            elif isinstance(member, CorruptDocument):
                message = f"cannot read group {path!r}: {member}"
            else:
                message = f"cannot read group {path!r} ({type(member).__name__}: {member})"
            self.findings.error(node, key, message, cause=member)
            return None
        if not isinstance(member, zarr.Group):
            self.findings.error(node, key, f"{path!r} is an array, not a group")
            return None
        return member

    # ---- images -------------------------------------------------------------------
    def image(self, out: Node, *, label: bool) -> None:
        """An image's levels (every multiscale's when thorough) and its ``labels`` group,
        fetched in one round trip."""
        meta, group, node = out.meta, out.group, out.path
        assert meta is not None
        label = label or meta.image_label is not None
        attributes = group.attrs.asdict()
        stale = stale_from(attributes)
        if stale is not None:
            self.findings.notice(node, MARKER_KEY, stale_message(stale), PYRAMID_INCOMPLETE)
        copied = nested_copy_message(attributes)
        if copied is not None:
            self.findings.notice(node, GROUP_ATTRS, copied, NESTED_COPY_RULE)
        if self.one_level is not None and not self.thorough and not self.metadata_only:
            multiscale = first_multiscale(meta, self.where(node))
            index = self.one_level(multiscale, node)
            array, out.meta, shape = self.level_of(group, meta, index, node, label)
            if array is not None:
                out.levels, out.shapes = (array,), (shape,)
            return
        if self.thorough:
            multiscales: tuple[Multiscale, ...] = meta.multiscales
        else:
            multiscales = (first_multiscale(meta, self.where(node)),)
        if self.metadata_only:
            for m, multiscale in enumerate(multiscales):
                for i in range(len(multiscale.levels)):
                    self.check_geometry(multiscale, m, i, node)
                self.check_image(meta, multiscale, m, {}, node)
            return
        paths = [lv.path for m in multiscales for lv in m.levels]
        probed = self.probes.get(join(group.path, "labels"))
        if probed is not None and not is_consolidated(group):
            # the probe beside the root asked the store what this lookup would ask
            members, labels = self.fetch(group, paths), probed
        else:
            *members, labels = self.fetch(group, [*paths, "labels"])
        if not label:  # a consolidated listing may miss labels added later
            labels = true_labels(group, labels, probed)
        start = 0
        for m, multiscale in enumerate(multiscales):
            count = len(multiscale.levels)
            arrays, multiscale, shapes = self.levels(
                meta, multiscale, m, members[start : start + count], node, label
            )
            start += count
            if m == 0:
                out.levels = tuple(arrays.values())
                out.shapes = tuple(shapes[i] for i in arrays)
                out.meta = meta = with_first_multiscale(meta, multiscale)
            self.check_image(meta, multiscale, m, arrays, node)
        if isinstance(labels, Exception) and not _is_missing(labels, "labels"):
            # a labels group that is there but unreadable is reported, never taken for none
            try:
                self.member_group(labels, "labels", node, "labels")
            except OmeZarrError as err:
                self.findings.broken(node, "labels", join(node, "labels"), err)
        if isinstance(labels, zarr.Group):
            child = self.walk(labels, join(node, "labels"), role="labels")
            if child is not None:
                out.children["labels"] = child
                self.check_label_levels(out, child)

    def level_of(
        self, group: zarr.Group, meta: NodeMeta, index: int, node: str, label: bool = False
    ) -> tuple[zarr.Array | None, NodeMeta, tuple[int, ...]]:
        """The checked array of one level of the image at ``group`` (one round trip), the
        metadata with the level's transforms filled in where the store has none, and the
        level's shape as read (trimmed to what level 0 allows, rule ``uneven-levels``)."""
        multiscale = meta.multiscales[0]
        key = f"multiscales/0/datasets/{index}/path"
        paths = [multiscale.levels[index].path]
        if index != 0:  # its shape bounds the level's (and gives its geometry when missing)
            paths.append(multiscale.levels[0].path)
        member, *first = self.fetch(group, paths)
        array = self.level_array(member, paths[0], node, key)
        if array is None:
            return None, meta, ()
        self.check_level(array, meta, multiscale, index, key, node, label=label)
        shapes = {index: tuple(array.shape)}
        if first and isinstance(first[0], zarr.Array):
            shapes[0] = tuple(first[0].shape)
            shapes[index] = self.trim_level(shapes[index], shapes[0], multiscale, 0, index, node)
        if lacks_transforms(multiscale):
            multiscale = self.complete_transforms(multiscale, 0, shapes, node)
        self.check_geometry(multiscale, 0, index, node)
        return array, with_first_multiscale(meta, multiscale), shapes[index]

    def check_label_levels(self, image: Node, labels: Node) -> None:
        """Each label image has as many levels as its image (rule ``label-levels``)."""
        assert image.meta is not None
        count = len(image.meta.multiscales[0].levels)
        for label in labels.children.values():
            if label.meta is None or not label.meta.is_image:
                continue
            found = len(label.meta.multiscales[0].levels)
            if found != count:
                message = (
                    f"the label image has {found} levels, its image {count}; a label image "
                    "must have as many levels as its image (each level keeps its own geometry)"
                )
                self.findings.deviation(label.path, "multiscales/0/datasets", message, LABEL_LEVELS)

    def optional_labels(self, group: zarr.Group, node: str) -> None:
        """Walk the ``labels`` group below a node whose metadata did not parse."""
        (labels,) = fetch_members(group, ["labels"])
        if isinstance(labels, zarr.Group):
            self.walk(labels, join(node, "labels"), role="labels")

    def levels(
        self,
        meta: NodeMeta,
        multiscale: Multiscale,
        m: int,
        members: Sequence[Any],
        node: str,
        label: bool,
    ) -> tuple[dict[int, zarr.Array], Multiscale, dict[int, tuple[int, ...]]]:
        """The arrays of one multiscale's levels, by index, each checked; levels shrink.

        Returns the multiscale too, with the transforms of 0.4 levels that have none filled
        in from the shapes (``complete_transforms``), and the levels' shapes as read (a
        lower level longer than level 0 allows trimmed, rule ``uneven-levels``).
        """
        arrays = {}
        for i, member in enumerate(members):
            key = f"multiscales/{m}/datasets/{i}/path"
            array = self.level_array(member, multiscale.levels[i].path, node, key)
            if array is not None:
                arrays[i] = array
        shapes = {i: tuple(array.shape) for i, array in arrays.items()}
        for i in shapes:
            if i and 0 in shapes:
                shapes[i] = self.trim_level(shapes[i], shapes[0], multiscale, m, i, node)
        self.check_shapes(shapes, m, node)
        for i, array in arrays.items():
            key = f"multiscales/{m}/datasets/{i}/path"
            self.check_level(array, meta, multiscale, i, key, node, label=label)
        multiscale = self.complete_transforms(multiscale, m, shapes, node)
        for i in range(len(multiscale.levels)):
            self.check_geometry(multiscale, m, i, node)
        return arrays, multiscale, shapes

    def trim_level(
        self,
        shape: tuple[int, ...],
        shape0: tuple[int, ...],
        multiscale: Multiscale,
        m: int,
        index: int,
        node: str,
    ) -> tuple[int, ...]:
        """A lower level's shape trimmed to what level 0 allows (an append under way or
        interrupted grows the lower levels first), with a warning (rule ``uneven-levels``)."""
        try:
            scale0, _ = level_geometry(multiscale, 0)
            scale, _ = level_geometry(multiscale, index)
        except OmeZarrError:
            return shape  # reported by check_geometry
        if not len(shape) == len(shape0) == len(scale) == len(scale0):
            return shape  # reported by check_level
        trimmed = trimmed_shape(shape, shape0, scale.tolist(), scale0.tolist())
        if trimmed == shape:
            return shape
        names = [a.name for a in multiscale.axes]
        path = multiscale.levels[index].path
        message = (
            f"level {index} ({path!r}) has shape {_shape_text(shape)}, longer along "
            f"{trimmed_axes(shape, trimmed, names)} than level 0 {_shape_text(shape0)} allows: "
            "an append is under way or was interrupted (level 0 grows last); read as "
            f"{_shape_text(trimmed)}, the image as it was before that append"
        )
        key = f"multiscales/{m}/datasets/{index}/path"
        self.findings.deviation(node, key, message, UNEVEN_LEVELS)
        return trimmed

    def complete_transforms(
        self, multiscale: Multiscale, m: int, shapes: Mapping[int, tuple[int, ...]], node: str
    ) -> Multiscale:
        """Fill in the transforms of 0.4 levels stored without any, from their shapes.

        Level 0 without transforms is at scale 1, translation 0; a lower level without
        them is level 0 downsampled by its shape ratio to level 0, axis by axis, by the
        pixel-centre rule. Said in a warning (rule ``missing-transforms``).
        """
        missing = [i for i, lv in enumerate(multiscale.levels) if _lacks_transforms(multiscale, lv)]
        if not missing or 0 not in shapes:
            return multiscale
        ndim = len(multiscale.axes)
        if 0 in missing:
            s0, t0 = np.ones(ndim), np.zeros(ndim)
        else:
            s0, t0 = _dataset_geometry(multiscale.levels[0], ndim)
        levels = list(multiscale.levels)
        said = []
        for i in missing:
            if i not in shapes or len(shapes[i]) != ndim or len(shapes[0]) != ndim:
                continue
            factors = np.array([_factor(a, b) for a, b in zip(shapes[0], shapes[i], strict=True)])
            scale, translation = factors * s0, t0 + (factors - 1) / 2 * s0
            levels[i] = _level_with(levels[i], scale, translation)
            said.append(f"level {i}: scale {_numbers(scale)}, translation {_numbers(translation)}")
        message = (
            f"datasets {missing} have no coordinateTransformations (vizarr reads them); "
            "read with level 0 at scale 1 and each lower level at its shape ratio to level 0 "
            f"by the pixel-centre rule ({'; '.join(said)})"
        )
        key = f"multiscales/{m}/datasets/{missing[0]}/coordinateTransformations"
        self.findings.deviation(node, key, message, MISSING_TRANSFORMS)
        return replace(multiscale, levels=tuple(levels))

    def level_array(self, member: Any, path: str, node: str, key: str) -> zarr.Array | None:
        """``member`` as fetched by ``fetch_members``, or ``None`` with the reason reported."""
        if isinstance(member, Exception):
            if _is_missing(member, path):
                message = f"{path!r} names no array in the store"
            elif isinstance(member, CorruptDocument):
                message = f"cannot read the metadata of array {path!r}: {member}"
            else:
                name = type(member).__name__
                message = f"cannot read the metadata of array {path!r} ({name}: {member})"
            self.findings.error(node, key, message, cause=member)
            return None
        if not isinstance(member, zarr.Array):
            self.findings.error(node, key, f"{path!r} is a group, not an array")
            return None
        return member

    def check_level(
        self,
        array: zarr.Array,
        meta: NodeMeta,
        multiscale: Multiscale,
        index: int,
        key: str,
        node: str,
        *,
        label: bool,
    ) -> None:
        """One level's array against its metadata: rank, dimension names, label dtype."""
        path = multiscale.levels[index].path
        dims = level_dims(meta, multiscale, array.ndim)
        if array.ndim != len(dims):
            self.findings.error(
                node,
                key,
                f"array {path!r} has {array.ndim} dimensions but the multiscale has "
                f"{len(dims)} axes {list(dims)}",
            )
        names = getattr(array.metadata, "dimension_names", None)
        if names is not None and tuple(names) != tuple(dims):
            self.findings.error(
                node,
                key,
                f"array {path!r} has dimension_names {list(names)}, which differ from the "
                f"axes {list(dims)}",
            )
        elif names is None and (meta.version == "0.5" or is_06(meta.version)):
            message = (
                f"array {path!r} has no dimension_names (0.5 needs them); the axes name the dims"
            )
            self.findings.deviation(node, key, message, DIMENSION_NAMES_MISSING)
        if label or meta.image_label is not None:
            self.check_label_dtype(array, path, key, node)
        self.check_array(array, path, key, node)

    def check_label_dtype(self, array: zarr.Array, path: str, key: str, node: str) -> None:
        """Label images hold integers."""
        try:
            dtype = np.dtype(array.dtype)
        except Exception:
            return  # reported as unreadable metadata
        if dtype.kind not in "iu":
            message = f"label image {path!r} has dtype {array.dtype}; labels must be integers"
            self.findings.deviation(node, key, message, LABEL_DTYPE)

    def check_shapes(self, shapes: Mapping[int, tuple[int, ...]], m: int, node: str) -> None:
        """Each level's shape is at most the previous level's, axis by axis."""
        previous: tuple[int, tuple[int, ...]] | None = None
        for i, shape in shapes.items():
            if previous is not None and len(previous[1]) == len(shape):
                j, before = previous
                if any(b > a for a, b in zip(before, shape, strict=True)):
                    self.findings.error(
                        node,
                        f"multiscales/{m}/datasets/{i}",
                        f"level {i} has shape {_shape_text(shape)}, larger than level {j} "
                        f"{_shape_text(before)}; levels must go from highest to lowest resolution",
                    )
            previous = (i, shape)

    def check_geometry(self, multiscale: Multiscale, m: int, index: int, node: str) -> None:
        """A level's transforms have one value per axis."""
        try:
            level_geometry(multiscale, index)
        except OmeZarrError as err:
            key, message = self.findings.split(err)
            self.findings.error(
                node, key.replace("multiscales/0/", f"multiscales/{m}/", 1), message
            )

    def check_array(self, array: zarr.Array, path: str, key: str, node: str) -> None:
        """More checks of one level's array (none here; ``validate`` adds some)."""

    def check_image(
        self,
        meta: NodeMeta,
        multiscale: Multiscale,
        m: int,
        arrays: Mapping[int, zarr.Array],
        node: str,
    ) -> None:
        """More checks of one multiscale (none here; ``validate`` adds some)."""

    # ---- labels, plates, wells, collections -----------------------------------------
    def scene(self, out: Node) -> None:
        """A 0.6 scene: the images its transforms reference by path, named by that path."""
        assert out.meta is not None and out.meta.scene is not None
        if self.metadata_only:
            return
        paths = list(scene_image_paths(out.meta.scene))
        members = fetch_members(out.group, paths)
        key = "scene/coordinateTransformations"
        jobs = [
            (path, functools.partial(self.scene_image, member, path, key, out.path))
            for path, member in zip(paths, members, strict=True)
        ]
        out.children.update(self.run(jobs))
        self.scene_references(out)

    def scene_references(self, out: Node) -> None:
        """Each system a scene's transform names in one of its images exists there."""
        assert out.meta is not None and out.meta.scene is not None

        def systems_of(path: str) -> list[str] | None:
            child = out.children.get(path)
            if child is None or child.meta is None:
                return None
            return [cs.name for ms in child.meta.multiscales for cs in ms.coordinate_systems]

        for key, path, name, names in dangling_scene_references(out.meta.scene, systems_of):
            self.findings.deviation(
                out.path,
                key,
                f"names the coordinate system {name!r} of the image {path!r}, which has "
                f"{', '.join(map(repr, names))}: the transform joins nothing",
                SCENE_REFERENCE,
            )

    def scene_image(self, member: Any, path: str, key: str, node: str) -> Node | None:
        """One image a scene references."""
        group = self.member_group(member, path, node, key)
        if group is None:
            return None
        child_node = join(node, path)
        meta = self.metadata(group, child_node)
        if meta is not None and not meta.is_image:
            self.findings.error(child_node, "multiscales", "a scene's image must be a multiscale")
            return None
        return self.dispatch(group, meta, child_node, "image")

    def labels(self, out: Node) -> None:
        """Every label image a labels list names."""
        assert out.meta is not None
        if self.metadata_only:
            return
        names = list(out.meta.labels or ())
        members = fetch_members(out.group, names)
        jobs = [
            (name, self.guard(out.path, f"labels/{i}", name, self.label, member, name, i, out.path))
            for i, (name, member) in enumerate(zip(names, members, strict=True))
        ]
        out.children.update(self.run(jobs))

    def label(self, member: Any, name: str, i: int, node: str) -> Node | None:
        """One label image a labels list names."""
        group = self.member_group(member, name, node, f"labels/{i}")
        if group is None:
            return None
        child_node = join(node, name)
        meta = self.metadata(group, child_node)
        if meta is not None and not meta.is_image:
            self.findings.error(child_node, "multiscales", "a label must be a multiscale image")
            return None
        return self.dispatch(group, meta, child_node, "label")

    def plate(self, out: Node) -> None:
        """Every well of a plate, and each well's fields."""
        assert out.meta is not None
        if self.metadata_only:
            return
        plate = out.meta.plate
        if plate is None or not isinstance(plate.raw.get("wells"), list):
            self.findings.error(out.path, "plate/wells", "must be a list")
            return
        paths: list[tuple[int, str]] = []
        for i, well in enumerate(plate.wells):
            path = well.path
            if path is None:
                if not self.findings.reported(out.path, f"plate/wells/{i}"):
                    self.findings.error(out.path, f"plate/wells/{i}/path", "must be a string")
                continue
            if self.thorough and out.meta.version in _V2_VERSIONS:
                self.check_well_path_04(plate, well, i, out.path)
            paths.append((i, path))
        members = fetch_members(out.group, [path for _, path in paths])
        complete = self.prefetch_wells(members)
        jobs = [
            (
                path,
                self.guard(
                    out.path,
                    f"plate/wells/{i}/path",
                    path,
                    self.plate_well,
                    member,
                    path,
                    i,
                    out.path,
                ),
            )
            for (i, path), member in zip(paths, members, strict=True)
        ]
        # with every member fetched ahead, walking the wells is parsing only: threads would
        # only contend for the interpreter (and the pools cost more than the work)
        before, self.sequential = self.sequential, self.sequential or complete
        try:
            out.children.update(self.run(jobs))
        finally:
            self.sequential = before

    def plate_well(self, member: Any, path: str, i: int, node: str) -> Node | None:
        """One well a plate names."""
        group = self.member_group(member, path, node, f"plate/wells/{i}/path")
        if group is None:
            return None
        child_node = join(node, path)
        meta = self.metadata(group, child_node)
        if meta is not None and meta.well is None:
            self.findings.error(child_node, "well", "a plate's well needs well metadata")
            return None
        return self.dispatch(group, meta, child_node, "well")

    def prefetch_wells(self, wells: Sequence[Any]) -> bool:
        """Fetch the fields of every well, then the levels and ``labels`` groups of every
        field (probed in the store too where a consolidated listing answers), all wells at
        once: a plate costs a few round trips and event-loop calls, not a few per well.

        Only a head start: the walk takes these members where it would have fetched them
        (``fetch``) and judges them as always; paths it cannot find in a document here are
        fetched by the walk itself. Returns whether nothing is left to fetch below the
        wells (no field has a ``labels`` group to walk).
        """
        if self.metadata_only:
            return False
        fields = [
            (well, path)
            for well in wells
            if isinstance(well, zarr.Group)
            for path in _listed_paths(well, "well", "images")
        ]
        found = fetch_members_of(fields)
        images = [f for f in found if isinstance(f, zarr.Group)]
        if self.one_level is not None:  # one level of each, no labels
            picked = (_picked(_level_paths(image), self.level_hint) for image in images)
            pairs = zip(images, picked, strict=True)
            levels = [(image, path) for image, paths in pairs for path in paths]
            self.keep_ahead([*fields, *levels], [*found, *fetch_members_of(levels)])
            return True
        levels = [(image, path) for image in images for path in (*_level_paths(image), "labels")]
        probed = [image for image in images if is_consolidated(image)]
        if probed:
            paths = [join(image.path, "labels") for image in probed]
            fmt = probed[0].metadata.zarr_format
            found_labels = probe_members(probed[0].store, paths, fmt)
            self.probes.update(zip(paths, found_labels, strict=True))
        found_levels = fetch_members_of(levels)
        self.keep_ahead([*fields, *levels], [*found, *found_levels])
        labels = [m for (_, p), m in zip(levels, found_levels, strict=True) if p == "labels"]
        labels += [self.probes.get(join(image.path, "labels")) for image in probed]
        return not any(isinstance(m, zarr.Group) for m in labels)

    def keep_ahead(self, requests: Sequence[tuple[zarr.Group, str]], members: list[Any]) -> None:
        """Keep members fetched ahead of the walk for :meth:`fetch`, by store path."""
        for (group, path), member in zip(requests, members, strict=True):
            self.prefetched[join(group.path, path)] = member

    def check_well_path_04(self, plate: Plate, well: WellRef, i: int, node: str) -> None:
        """0.4 well paths: the suite accepts column-first ones, so only warn."""
        if well.row_index is None or well.column_index is None:
            return
        expected = plate.expected_path(well)
        if expected is None:
            self.findings.add(
                node, f"plate/wells/{i}", "rowIndex or columnIndex out of range", "warning"
            )
            return
        if well.path != expected:
            self.findings.add(
                node,
                f"plate/wells/{i}/path",
                f"{well.path!r} is not '<row>/<column>' = {expected!r} "
                "(accepted in 0.4, refused from 0.5 on)",
                "warning",
            )

    def well(self, out: Node) -> None:
        """Every field of view a well names."""
        assert out.meta is not None
        if self.metadata_only:
            return
        node = out.path
        images = out.meta.well.images if out.meta.well is not None else None
        if not images:
            if not self.findings.reported(node, "well/images"):
                self.findings.error(node, "well/images", "must list at least one image")
            return
        paths: list[tuple[int, str]] = []
        for j, image in enumerate(images):
            path = image.path
            if path is None:
                if not self.findings.reported(node, f"well/images/{j}"):
                    self.findings.error(node, f"well/images/{j}/path", "must be a string")
                continue
            paths.append((j, path))
        members = self.fetch(out.group, [path for _, path in paths])
        jobs = [
            (
                path,
                self.guard(node, f"well/images/{j}/path", path, self.field, member, path, j, node),
            )
            for (j, path), member in zip(paths, members, strict=True)
        ]
        out.children.update(self.run(jobs))

    def field(self, member: Any, path: str, j: int, node: str) -> Node | None:
        """One field of view a well names."""
        group = self.member_group(member, path, node, f"well/images/{j}/path")
        if group is None:
            return None
        child_node = join(node, path)
        meta = self.metadata(group, child_node)
        if meta is not None and not meta.is_image:
            message = "a well's field must be a multiscale image"
            self.findings.error(child_node, "multiscales", message)
            return None
        return self.dispatch(group, meta, child_node, "field")

    def collection(self, out: Node) -> None:
        """A bioformats2raw collection: the ``OME`` group's series list and each series."""
        if self.metadata_only:
            return
        node, group = out.path, out.group
        (ome,) = fetch_members(group, ["OME"])
        series: tuple[str, ...] | None = None
        ome_node = join(node, "OME")
        if isinstance(ome, zarr.Group):
            ome_meta = self.metadata(ome, ome_node)
            series = ome_meta.series if ome_meta is not None else None
            out.children["OME"] = Node(ome_node, ome, ome_meta)
        if series is None:
            series = tuple(_numbered_groups(group))
            if not series and self.thorough:
                msg = "no series group '0' in the collection"
                self.findings.error(node, "bioformats2raw.layout", msg)
            owner, keys = node, ["bioformats2raw.layout"] * len(series)
        else:
            owner, keys = ome_node, [f"series/{i}" for i in range(len(series))]
        members = fetch_members(group, list(series))
        jobs = [
            (path, self.guard(owner, key, path, self.series, member, path, key, owner, node))
            for path, key, member in zip(series, keys, members, strict=True)
        ]
        out.children.update(self.run(jobs))

    def series(self, member: Any, path: str, key: str, owner: str, node: str) -> Node | None:
        """One series of a collection; the reader reads images and plates only."""
        group = self.member_group(member, path, owner, key)
        if group is None:
            return None
        child_node = join(node, path)
        meta = self.metadata(group, child_node)
        if not self.thorough and not (meta is not None and (meta.is_image or meta.plate)):
            return None
        return self.dispatch(group, meta, child_node, "series")


#: Versions stored in zarr v2, where the plate's well paths are not checked by the parser.
_V2_VERSIONS = ("0.1", "0.2", "0.3", "0.4")


def level_dims(meta: NodeMeta, multiscale: Multiscale, ndim: int) -> tuple[str, ...]:
    """The axis names of a level's array: 0.1-0.3 images of fewer than five dimensions
    drop the leading implied axes."""
    dims = multiscale.axis_names
    if meta.version in ("0.1", "0.2", "0.3") and len(dims) == 5 and ndim < 5:
        return dims[5 - ndim :]
    return dims


def _declared_version(attrs: Mapping) -> str | None:
    """The version the attributes state, if they can say."""
    try:
        return split_attributes(attrs)[0]
    except OmeZarrError:
        return None


def _ome_document(group: zarr.Group) -> Mapping[str, Any]:
    """The OME document of a group's attributes, or ``{}`` where there is none to read."""
    try:
        document = split_attributes(group.attrs.asdict())[1]
    except Exception:
        return {}
    return document if isinstance(document, Mapping) else {}


def _listed_paths(group: zarr.Group, block: str, key: str) -> list[str]:
    """The string ``path`` of each entry of ``document[block][key]`` (a well's images)."""
    entries = _ome_document(group).get(block)
    return _string_paths(entries.get(key) if isinstance(entries, Mapping) else None)


def _level_paths(group: zarr.Group) -> list[str]:
    """The dataset paths of an image group's first multiscale, as stored."""
    multiscales = _ome_document(group).get("multiscales")
    if not isinstance(multiscales, list) or not multiscales:
        return []
    first = multiscales[0]
    return _string_paths(first.get("datasets") if isinstance(first, Mapping) else None)


def _string_paths(entries: Any) -> list[str]:
    """The string ``path`` of each JSON object in ``entries`` (none unless it is a list)."""
    if not isinstance(entries, list):
        return []
    paths = [e.get("path") for e in entries if isinstance(e, Mapping)]
    return [p for p in paths if isinstance(p, str)]


def level_position(paths: Sequence[str], level: Any) -> int | None:
    """The index of the level that ``level`` names among an image's dataset ``paths``: an
    int (negative ones from the end), a dataset path or ``"scaleN"``; ``None`` where it
    names none (a bool names none)."""
    count = len(paths)
    if isinstance(level, bool):
        return None
    if isinstance(level, int | np.integer):
        return int(level) % count if -count <= level < count else None
    if isinstance(level, str):
        if level.strip("/") in paths:
            return list(paths).index(level.strip("/"))
        if level.startswith("scale") and level[5:].isdigit() and int(level[5:]) < count:
            return int(level[5:])
    return None


def _picked(paths: list[str], level: int | str | None) -> list[str]:
    """The dataset path ``level`` names among ``paths`` and level 0's (its shape bounds the
    level's), when it names one (only a hint for fetching ahead: ``level_of`` fetches
    these two)."""
    index = level_position(paths, level)
    if index is None:
        return []
    return [paths[index]] if index == 0 else [paths[index], paths[0]]


def _numbered_groups(group: zarr.Group) -> list[str]:
    """``"0"``, ``"1"``, ... while such child groups exist."""
    found: list[str] = []
    for i in itertools.count():
        (member,) = fetch_members(group, [str(i)])
        if not isinstance(member, zarr.Group):
            return found
        found.append(str(i))
    return found


def _lacks_transforms(multiscale: Multiscale, level: Level) -> bool:
    """Whether a 0.4 level was stored without ``coordinateTransformations``."""
    return multiscale.version == "0.4" and not level.transforms


def lacks_transforms(multiscale: Multiscale) -> bool:
    """Whether some 0.4 level was stored without ``coordinateTransformations``."""
    return any(_lacks_transforms(multiscale, level) for level in multiscale.levels)


def _dataset_geometry(level: Level, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """A level's own (scale, translation), before the multiscale-wide transforms."""
    scale, translation = np.ones(ndim), np.zeros(ndim)
    for t in level.transforms:
        if t.values is not None and len(t.values) == ndim:
            if t.type == "scale":
                scale = np.asarray(t.values, dtype=np.float64)
            elif t.type == "translation":
                translation = np.asarray(t.values, dtype=np.float64)
    return scale, translation


def _factor(size0: int, size: int) -> float:
    """The downsampling factor from ``size0`` to ``size`` pixels: the whole factor that
    gives ``size`` (rounding up or down), else the plain ratio."""
    if size < 1:
        return 1.0
    whole = max(1, round(size0 / size))
    if size in (-(-size0 // whole), size0 // whole):
        return float(whole)
    return size0 / size


def _level_with(level: Level, scale: np.ndarray, translation: np.ndarray) -> Level:
    """``level`` with a scale and a translation."""
    s, t = [float(v) for v in scale], [float(v) for v in translation]
    transforms = (
        Transform("scale", tuple(s), {"type": "scale", "scale": s}),
        Transform("translation", tuple(t), {"type": "translation", "translation": t}),
    )
    return replace(level, transforms=transforms)


def _numbers(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{float(v):g}" for v in values) + "]"


def with_first_multiscale(meta: NodeMeta, multiscale: Multiscale) -> NodeMeta:
    """``meta`` with its first multiscale replaced (by one whose transforms are filled in)."""
    if meta.multiscales[0] is multiscale:
        return meta
    return replace(meta, multiscales=(multiscale, *meta.multiscales[1:]))
