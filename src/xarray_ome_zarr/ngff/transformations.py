"""OME-Zarr 0.6 (RFC-5) coordinate transformations: parse, compose, invert, apply, find paths.

Imports neither xarray nor zarr. Every transform type of the spec is a small frozen class with
``apply`` (an ``(N, ndim)`` array of points in, one out), ``inverse`` and ``affine`` (the
homogeneous matrix where the transform is affine, else ``None``). Displacement and coordinate
fields, and affine or rotation parameters stored in arrays, are read through a ``loader`` only
when a point is mapped, so building a graph never reads an array.

Both spellings are read: ``input``/``output`` as a string (0.6.dev) or as a
``{"name"|"path": ...}`` object (0.6), and byDimension's ``input_axes`` (0.6.dev, on the
transform itself) or ``{"transformation", "inputAxes", "outputAxes"}`` items (0.6).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from ..errors import OmeZarrError

#: The conformance suite's tolerances for mapped points.
ABSOLUTE_TOLERANCE = 1e-6
RELATIVE_TOLERANCE = 1e-3

#: Transform types that keep every output axis a scaled, shifted copy of one input axis.
AXIS_ALIGNED_TYPES = ("identity", "scale", "translation", "mapAxis", "byDimension", "sequence")


@dataclass(frozen=True)
class FieldGrid:
    """A displacement or coordinate field as ``loader`` returns it.

    ``values`` has the field's spatial axes first and the vector axis last; a point ``p`` of
    the input space sits at index ``(p - translation) / scale`` of the grid.
    """

    values: np.ndarray
    scale: tuple[float, ...]
    translation: tuple[float, ...]


#: Reads an array stored at a path (relative to the document's group): an ``np.ndarray`` for
#: affine/rotation parameters, a :class:`FieldGrid` for displacement/coordinate fields.
Loader = Callable[[str, str], Any]


def _fail(where: str, key: str, message: str) -> OmeZarrError:
    text = f"{where}: {key}: {message}" if where else f"{key}: {message}"
    return OmeZarrError(text, key=key, reason=message)


# ------------------------------------------------------------------------------------------
# references to coordinate systems and arrays
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemRef:
    """What a transform's ``input`` or ``output`` names.

    ``name`` is a coordinate system; ``path`` the group (image) holding it, or with no
    ``name`` an array whose pixel indices are the space. Both relative to the document.
    """

    name: str | None = None
    path: str | None = None

    def key(self, prefix: str = "") -> tuple[str, str | None]:
        """The graph node: ``(group or array path from the graph root, system name)``."""
        return (_join(prefix, self.path or ""), self.name)

    def describe(self) -> str:
        """The reference as a user reads it."""
        if self.name is None:
            return f"array {self.path!r}"
        return f"{self.name!r}" + (f" of {self.path!r}" if self.path else "")


def _join(prefix: str, path: str) -> str:
    return "/".join(p for p in (prefix.strip("/"), path.strip("/")) if p)


def parse_ref(raw: Any, where: str, key: str, names: Iterable[str] = ()) -> SystemRef:
    """Read an ``input``/``output`` in either spelling.

    A bare string (0.6.dev) names a coordinate system when ``names`` holds it, or when no
    array could be meant; otherwise it is an array path (a dataset's ``"input": "s0"``).
    """
    if isinstance(raw, str):
        names = set(names)
        return SystemRef(name=raw) if raw in names or not names else SystemRef(path=raw)
    if isinstance(raw, Mapping):
        name, path = raw.get("name"), raw.get("path")
        if name is not None and not isinstance(name, str):
            raise _fail(where, f"{key}/name", f"must be a string, got {name!r}")
        if path is not None and not isinstance(path, str):
            raise _fail(where, f"{key}/path", f"must be a string, got {path!r}")
        if name is None and path is None:
            raise _fail(where, key, "needs a 'name' or a 'path'")
        return SystemRef(name=name, path=path)
    raise _fail(where, key, f"must be a string or a {{'name'|'path': ...}} object, got {raw!r}")


# ------------------------------------------------------------------------------------------
# the transform types
# ------------------------------------------------------------------------------------------


def _points(points: Any) -> np.ndarray:
    arr = np.asarray(points, dtype=float)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise OmeZarrError(f"points must be an (N, ndim) array, got shape {arr.shape}")
    return arr


def _check_width(points: np.ndarray, n: int, what: str) -> None:
    if points.shape[1] != n:
        raise OmeZarrError(f"{what} maps {n}-dimensional points, got {points.shape[1]}")


@dataclass(frozen=True)
class Transformation:
    """Base of every transform type: its ``raw`` JSON object is kept verbatim."""

    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def type(self) -> str:
        """The spec's name of this transform type."""
        return str(self.raw.get("type", type(self).__name__))

    @property
    def name(self) -> str | None:
        """The transform's ``name``, where it has one."""
        name = self.raw.get("name")
        return name if isinstance(name, str) else None

    def apply(self, points: Any, loader: Loader | None = None) -> np.ndarray:
        """Map an ``(N, ndim)`` array of points."""
        raise NotImplementedError

    def inverse(self) -> Transformation:
        """The inverse transform; ``OmeZarrError`` where the spec defines none."""
        raise OmeZarrError(f"a {self.type!r} transform has no inverse")

    def affine(self, ndim: int, loader: Loader | None = None) -> np.ndarray | None:
        """The homogeneous ``(n_out + 1, ndim + 1)`` matrix, or ``None`` if not affine.

        ``loader`` reads parameters stored in arrays; without one, such a transform is
        ``None``."""
        return None

    @property
    def invertible(self) -> bool:
        """Whether :meth:`inverse` succeeds."""
        try:
            self.inverse()
        except OmeZarrError:
            return False
        return True


@dataclass(frozen=True)
class Identity(Transformation):
    """Maps every point to itself."""

    def apply(self, points: Any, loader: Loader | None = None) -> np.ndarray:
        return _points(points).copy()

    def inverse(self) -> Transformation:
        return self

    def affine(self, ndim: int, loader: Loader | None = None) -> np.ndarray:
        return np.eye(ndim + 1)


@dataclass(frozen=True)
class Scale(Transformation):
    """Multiplies each coordinate by its factor."""

    scale: tuple[float, ...] = ()

    def apply(self, points: Any, loader: Loader | None = None) -> np.ndarray:
        pts = _points(points)
        _check_width(pts, len(self.scale), "this scale")
        out: np.ndarray = pts * np.asarray(self.scale)
        return out

    def inverse(self) -> Transformation:
        if any(s == 0 for s in self.scale):
            raise OmeZarrError(f"a scale with a zero factor has no inverse: {self.scale}")
        return Scale({"type": "scale"}, tuple(1.0 / s for s in self.scale))

    def affine(self, ndim: int, loader: Loader | None = None) -> np.ndarray:
        _check_dims(len(self.scale), ndim, "scale")
        out = np.eye(ndim + 1)
        out[:ndim, :ndim] = np.diag(self.scale)
        return out


@dataclass(frozen=True)
class Translation(Transformation):
    """Adds an offset to each coordinate."""

    translation: tuple[float, ...] = ()

    def apply(self, points: Any, loader: Loader | None = None) -> np.ndarray:
        pts = _points(points)
        _check_width(pts, len(self.translation), "this translation")
        out: np.ndarray = pts + np.asarray(self.translation)
        return out

    def inverse(self) -> Transformation:
        return Translation({"type": "translation"}, tuple(-t for t in self.translation))

    def affine(self, ndim: int, loader: Loader | None = None) -> np.ndarray:
        _check_dims(len(self.translation), ndim, "translation")
        out = np.eye(ndim + 1)
        out[:ndim, ndim] = self.translation
        return out


def _check_dims(n: int, ndim: int, what: str) -> None:
    if n != ndim:
        raise OmeZarrError(f"a {n}-dimensional {what} cannot map {ndim}-dimensional points")


@dataclass(frozen=True)
class Affine(Transformation):
    """``matrix`` is ``(n_out, n_in + 1)`` or homogeneous; or parameters stored at ``path``.

    A ``rotation`` is an affine whose matrix is square ``(n, n)`` without a translation column.
    """

    matrix: tuple[tuple[float, ...], ...] | None = None
    path: str | None = None

    def _homogeneous(self, loader: Loader | None) -> np.ndarray:
        if self.matrix is not None:
            m = np.asarray(self.matrix, dtype=float)
        else:
            if loader is None:
                raise OmeZarrError(
                    f"the {self.type} parameters are stored in the array {self.path!r}: "
                    "map points through xoz.transform_points on the store"
                )
            m = np.asarray(loader(str(self.path), "parameters"), dtype=float)
        return _to_homogeneous(m, self.type == "rotation", self.type)

    def apply(self, points: Any, loader: Loader | None = None) -> np.ndarray:
        pts = _points(points)
        m = self._homogeneous(loader)
        _check_width(pts, m.shape[1] - 1, f"this {self.type}")
        out: np.ndarray = pts @ m[:-1, :-1].T + m[:-1, -1]
        return out

    def inverse(self) -> Transformation:
        if self.matrix is None:
            return InverseOf({"type": "inverseOf"}, self)
        m = self._homogeneous(None)
        if m.shape[0] != m.shape[1]:
            raise OmeZarrError(
                f"a non-square {self.type} ({m.shape[0] - 1}x{m.shape[1]}) has no inverse"
            )
        try:
            inv = np.linalg.inv(m)
        except np.linalg.LinAlgError:
            raise OmeZarrError(f"this {self.type} is singular and has no inverse") from None
        return Affine({"type": "affine"}, tuple(tuple(r) for r in inv[:-1].tolist()))

    def affine(self, ndim: int, loader: Loader | None = None) -> np.ndarray | None:
        if self.matrix is None and loader is None:
            return None
        m = self._homogeneous(loader)
        _check_dims(m.shape[1] - 1, ndim, self.type)
        return m


def _to_homogeneous(m: np.ndarray, rotation: bool, what: str) -> np.ndarray:
    if m.ndim != 2:
        raise OmeZarrError(f"{what} parameters must be a matrix, got shape {m.shape}")
    rows, cols = m.shape
    if rotation:
        if rows != cols:
            raise OmeZarrError(f"a rotation must be square, got {rows}x{cols}")
        out = np.eye(rows + 1)
        out[:rows, :rows] = m
        return out
    if (
        rows == cols
        and rows >= 2
        and np.array_equal(m[-1, :-1], np.zeros(cols - 1))
        and m[-1, -1] == 1
    ):
        return m  # already homogeneous
    if cols < 2:
        raise OmeZarrError(f"an affine needs n_in + 1 columns, got {rows}x{cols}")
    out = np.zeros((rows + 1, cols))
    out[:rows] = m
    out[rows, cols - 1] = 1.0
    return out


@dataclass(frozen=True)
class MapAxis(Transformation):
    """Output axis ``i`` is input axis ``map_axis[i]``."""

    map_axis: tuple[int, ...] = ()

    def apply(self, points: Any, loader: Loader | None = None) -> np.ndarray:
        pts = _points(points)
        if pts.shape[1] <= max(self.map_axis, default=-1):
            raise OmeZarrError(
                f"mapAxis {list(self.map_axis)} needs more than {pts.shape[1]} input axes"
            )
        return pts[:, list(self.map_axis)]

    def inverse(self) -> Transformation:
        if sorted(self.map_axis) != list(range(len(self.map_axis))):
            raise OmeZarrError(f"mapAxis {list(self.map_axis)} is not a permutation: no inverse")
        inv = [0] * len(self.map_axis)
        for out_axis, in_axis in enumerate(self.map_axis):
            inv[in_axis] = out_axis
        return MapAxis({"type": "mapAxis"}, tuple(inv))

    def affine(self, ndim: int, loader: Loader | None = None) -> np.ndarray:
        out = np.zeros((len(self.map_axis) + 1, ndim + 1))
        for i, j in enumerate(self.map_axis):
            if j >= ndim:
                raise OmeZarrError(f"mapAxis {list(self.map_axis)} names input axis {j} of {ndim}")
            out[i, j] = 1.0
        out[-1, -1] = 1.0
        return out


@dataclass(frozen=True)
class ProjectAxis(Transformation):
    """Drops input axes and inserts zero-valued output axes."""

    dropped: tuple[int, ...] = ()
    created: tuple[int, ...] = ()

    def affine(self, ndim: int, loader: Loader | None = None) -> np.ndarray:
        kept = [j for j in range(ndim) if j not in self.dropped]
        n_out = len(kept) + len(self.created)
        out = np.zeros((n_out + 1, ndim + 1))
        source = iter(kept)
        for i in range(n_out):
            if i not in self.created:
                out[i, next(source)] = 1.0
        out[-1, -1] = 1.0
        return out

    def apply(self, points: Any, loader: Loader | None = None) -> np.ndarray:
        pts = _points(points)
        m = self.affine(pts.shape[1])
        out: np.ndarray = pts @ m[:-1, :-1].T
        return out


@dataclass(frozen=True)
class SequenceOf(Transformation):
    """The ``sequence`` type: its transforms applied in order."""

    transformations: tuple[Transformation, ...] = ()

    def apply(self, points: Any, loader: Loader | None = None) -> np.ndarray:
        pts = _points(points)
        for t in self.transformations:
            pts = t.apply(pts, loader)
        return pts

    def inverse(self) -> Transformation:
        return SequenceOf(
            {"type": "sequence"}, tuple(t.inverse() for t in reversed(self.transformations))
        )

    def affine(self, ndim: int, loader: Loader | None = None) -> np.ndarray | None:
        out = np.eye(ndim + 1)
        for t in self.transformations:
            m = t.affine(out.shape[0] - 1, loader)
            if m is None:
                return None
            out = m @ out
        return out


@dataclass(frozen=True)
class ByDimension(Transformation):
    """Each part maps the input axes ``inputs`` to the output axes ``outputs``."""

    parts: tuple[tuple[Transformation, tuple[int, ...], tuple[int, ...]], ...] = ()

    @property
    def n_out(self) -> int:
        """The number of output axes: one past the largest one named."""
        return 1 + max((max(o, default=-1) for _, _, o in self.parts), default=-1)

    def apply(self, points: Any, loader: Loader | None = None) -> np.ndarray:
        pts = _points(points)
        out = np.full((pts.shape[0], self.n_out), np.nan)
        for t, inputs, outputs in self.parts:
            if max(inputs, default=-1) >= pts.shape[1]:
                raise OmeZarrError(f"byDimension names input axes {list(inputs)} of {pts.shape[1]}")
            out[:, list(outputs)] = t.apply(pts[:, list(inputs)], loader)
        return out

    def inverse(self) -> Transformation:
        return ByDimension(
            {"type": "byDimension"}, tuple((t.inverse(), o, i) for t, i, o in self.parts)
        )

    def affine(self, ndim: int, loader: Loader | None = None) -> np.ndarray | None:
        out = np.zeros((self.n_out + 1, ndim + 1))
        out[-1, -1] = 1.0
        for t, inputs, outputs in self.parts:
            m = t.affine(len(inputs), loader)
            if m is None or m.shape[0] - 1 != len(outputs):
                return None
            for a, i in enumerate(outputs):
                for b, j in enumerate(inputs):
                    out[i, j] = m[a, b]
                out[i, -1] = m[a, -1]
        return out


@dataclass(frozen=True)
class Bijection(Transformation):
    """A transform with its inverse given explicitly."""

    forward: Transformation = field(default_factory=Identity)
    backward: Transformation = field(default_factory=Identity)

    def apply(self, points: Any, loader: Loader | None = None) -> np.ndarray:
        return self.forward.apply(points, loader)

    def inverse(self) -> Transformation:
        return Bijection({"type": "bijection"}, self.backward, self.forward)

    def affine(self, ndim: int, loader: Loader | None = None) -> np.ndarray | None:
        return self.forward.affine(ndim, loader)


@dataclass(frozen=True)
class InverseOf(Transformation):
    """The ``inverseOf`` type: the inverse of the wrapped transform."""

    of: Transformation = field(default_factory=Identity)

    def apply(self, points: Any, loader: Loader | None = None) -> np.ndarray:
        if isinstance(self.of, Affine) and self.of.matrix is None:
            m = self.of._homogeneous(loader)
            return (
                Affine({"type": "affine"}, tuple(map(tuple, m[:-1].tolist())))
                .inverse()
                .apply(points, loader)
            )
        return self.of.inverse().apply(points, loader)

    def inverse(self) -> Transformation:
        return self.of

    def affine(self, ndim: int, loader: Loader | None = None) -> np.ndarray | None:
        m = self.of.affine(ndim, loader)
        if m is None or m.shape[0] != m.shape[1]:
            return None
        return np.linalg.inv(m)


@dataclass(frozen=True)
class Field(Transformation):
    """A ``displacements`` or ``coordinates`` field stored at ``path``; read when applied."""

    path: str = ""
    interpolation: str = "linear"

    def apply(self, points: Any, loader: Loader | None = None) -> np.ndarray:
        pts = _points(points)
        if loader is None:
            raise OmeZarrError(
                f"the {self.type} field {self.path!r} is stored in the store: map points "
                "through xoz.transform_points on the store"
            )
        grid = loader(self.path, self.type)
        if not isinstance(grid, FieldGrid):
            raise OmeZarrError(f"the {self.type} field {self.path!r} could not be read")
        values = _interpolate(grid, pts, self.interpolation, f"{self.type} field {self.path!r}")
        return pts + values if self.type == "displacements" else values


def _interpolate(grid: FieldGrid, pts: np.ndarray, method: str, what: str) -> np.ndarray:
    """The field's vectors at ``pts`` (NaN outside the field's extent)."""
    try:
        from scipy import ndimage
    except ImportError:  # pragma: no cover - scipy is installed with the tests
        raise OmeZarrError(f"mapping points through the {what} needs scipy") from None
    spatial = grid.values.ndim - 1
    _check_width(pts, spatial, what)
    index = (pts - np.asarray(grid.translation)) / np.asarray(grid.scale)
    order = {"nearest": 0, "linear": 1, "cubic": 3}.get(method)
    if order is None:
        raise OmeZarrError(f"{what}: unknown interpolation {method!r}")
    shape = np.asarray(grid.values.shape[:-1])
    outside = np.any((index < -0.5) | (index > shape - 0.5), axis=1)
    out = np.stack(
        [
            ndimage.map_coordinates(
                np.asarray(grid.values[..., k], dtype=float), index.T, order=order, mode="nearest"
            )
            for k in range(grid.values.shape[-1])
        ],
        axis=1,
    )
    out[outside] = np.nan
    return out


# ------------------------------------------------------------------------------------------
# parsing one transform
# ------------------------------------------------------------------------------------------


def _numbers(raw: Any, where: str, key: str) -> tuple[float, ...]:
    if not isinstance(raw, list) or not raw or not all(_is_number(v) for v in raw):
        raise _fail(where, key, f"must be a non-empty list of numbers, got {raw!r}")
    return tuple(float(v) for v in raw)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _indices(raw: Any, where: str, key: str) -> tuple[int, ...]:
    ok = isinstance(raw, list) and all(
        (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
        or (isinstance(v, float) and v.is_integer() and v >= 0)
        for v in raw
    )
    if not ok:
        raise _fail(where, key, f"must be a list of axis indices, got {raw!r}")
    out = tuple(int(v) for v in raw)
    if len(set(out)) != len(out):
        raise _fail(where, key, f"axis indices repeat: {list(out)}")
    return out


def _matrix(raw: Any, where: str, key: str) -> tuple[tuple[float, ...], ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(r, list) for r in raw):
        raise _fail(where, key, f"must be a list of rows of numbers, got {raw!r}")
    rows = tuple(_numbers(r, where, f"{key}/{i}") for i, r in enumerate(raw))
    if len({len(r) for r in rows}) != 1:
        raise _fail(where, key, "rows differ in length")
    return rows


def parse_transformation(raw: Any, where: str = "", key: str = "") -> Transformation:
    """Parse one transform object (any type of the spec, either spelling)."""
    if not isinstance(raw, Mapping):
        raise _fail(where, key, f"must be a JSON object, got {raw!r}")
    raw = dict(raw)
    kind = raw.get("type")
    k = f"{key}/" if key else ""
    if kind == "identity":
        return Identity(raw)
    if kind in ("scale", "translation"):
        if kind not in raw:
            raise _fail(where, f"{k}{kind}", "is required (parameters in arrays are not allowed)")
        values = _numbers(raw[kind], where, f"{k}{kind}")
        return Scale(raw, values) if kind == "scale" else Translation(raw, values)
    if kind in ("affine", "rotation"):
        if kind in raw:
            return Affine(raw, _matrix(raw[kind], where, f"{k}{kind}"))
        if isinstance(raw.get("path"), str):
            return Affine(raw, None, raw["path"])
        raise _fail(where, f"{k}{kind}", "needs the matrix or a 'path' to it")
    if kind == "mapAxis":
        values = raw.get("mapAxis")
        if isinstance(values, Mapping):  # an early draft: {output name: input name}
            raise _fail(where, f"{k}mapAxis", "must be a list of input axis indices")
        return MapAxis(raw, _indices(values, where, f"{k}mapAxis"))
    if kind == "projectAxis":
        dropped = _indices(raw.get("droppedInputs", []), where, f"{k}droppedInputs")
        created = _indices(raw.get("createdOutputs", []), where, f"{k}createdOutputs")
        return ProjectAxis(raw, dropped, created)
    if kind == "sequence":
        items = raw.get("transformations")
        if not isinstance(items, list):
            raise _fail(where, f"{k}transformations", "must be a list of transforms")
        return SequenceOf(
            raw,
            tuple(
                parse_transformation(t, where, f"{k}transformations/{i}")
                for i, t in enumerate(items)
            ),
        )
    if kind == "byDimension":
        return _parse_by_dimension(raw, where, k)
    if kind == "bijection":
        for part in ("forward", "inverse"):
            if part not in raw:
                raise _fail(where, f"{k}{part}", "is required")
        return Bijection(
            raw,
            parse_transformation(raw["forward"], where, f"{k}forward"),
            parse_transformation(raw["inverse"], where, f"{k}inverse"),
        )
    if kind == "inverseOf":
        inner = raw.get("transformation", raw.get("transform"))
        return InverseOf(raw, parse_transformation(inner, where, f"{k}transformation"))
    if kind in ("displacements", "coordinates"):
        path = raw.get("path")
        if not isinstance(path, str) or not path:
            raise _fail(where, f"{k}path", f"a {kind} field needs the path of its array")
        interpolation = raw.get("interpolation", "linear")
        if interpolation not in ("nearest", "linear", "cubic"):
            raise _fail(where, f"{k}interpolation", f"unknown interpolation {interpolation!r}")
        return Field(raw, path, interpolation)
    raise _fail(where, f"{k}type", f"unknown transform type {kind!r}")


def _parse_by_dimension(raw: dict[str, Any], where: str, k: str) -> ByDimension:
    items = raw.get("transformations")
    if not isinstance(items, list) or not items:
        raise _fail(where, f"{k}transformations", "must be a non-empty list")
    parts = []
    for i, item in enumerate(items):
        ik = f"{k}transformations/{i}"
        if not isinstance(item, Mapping):
            raise _fail(where, ik, "must be a JSON object")
        if "transformation" in item:  # 0.6: {"transformation", "inputAxes", "outputAxes"}
            inner = parse_transformation(item["transformation"], where, f"{ik}/transformation")
            in_raw, out_raw = item.get("inputAxes"), item.get("outputAxes")
            in_key, out_key = "inputAxes", "outputAxes"
        else:  # 0.6.dev: the transform itself carries input_axes / output_axes
            body = {a: b for a, b in item.items() if a not in ("input_axes", "output_axes")}
            inner = parse_transformation(body, where, ik)
            in_raw = item.get("input_axes", item.get("inputAxes"))
            out_raw = item.get("output_axes", item.get("outputAxes"))
            in_key, out_key = "input_axes", "output_axes"
        if in_raw is None or out_raw is None:
            raise _fail(where, ik, f"needs {in_key} and {out_key}")
        inputs = _indices(in_raw, where, f"{ik}/{in_key}")
        outputs = _indices(out_raw, where, f"{ik}/{out_key}")
        if len(inputs) != len(outputs):
            raise _fail(
                where, ik, f"{in_key} {list(inputs)} and {out_key} {list(outputs)} differ in length"
            )
        parts.append((inner, inputs, outputs))
    seen: list[int] = [o for _, _, outs in parts for o in outs]
    if len(set(seen)) != len(seen):
        raise _fail(where, f"{k}transformations", f"output axes repeat: {seen}")
    return ByDimension(raw, tuple(parts))


# ------------------------------------------------------------------------------------------
# coordinate systems and the graph
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoordinateSystem:
    """A named coordinate system: its axes as stored (each a JSON object)."""

    name: str
    axes: tuple[Mapping[str, Any], ...]
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def axis_names(self) -> tuple[str, ...]:
        """The axis names, in order."""
        return tuple(str(a.get("name")) for a in self.axes)


def parse_coordinate_systems(
    raw: Any, where: str = "", key: str = "coordinateSystems"
) -> tuple[CoordinateSystem, ...]:
    """Parse a ``coordinateSystems`` list; names must be unique."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail(where, key, f"must be a list, got {raw!r}")
    out = []
    for i, cs in enumerate(raw):
        if not isinstance(cs, Mapping):
            raise _fail(where, f"{key}/{i}", "must be a JSON object")
        name, axes = cs.get("name"), cs.get("axes")
        if not isinstance(name, str) or not name:
            raise _fail(where, f"{key}/{i}/name", f"must be a non-empty string, got {name!r}")
        if not isinstance(axes, list) or not all(
            isinstance(a, Mapping) and isinstance(a.get("name"), str) for a in axes
        ):
            raise _fail(where, f"{key}/{i}/axes", "must be a list of axes, each with a name")
        names = [a["name"] for a in axes]
        if len(set(names)) != len(names):
            raise _fail(where, f"{key}/{i}/axes", f"axis names repeat: {names}")
        out.append(CoordinateSystem(name, tuple(dict(a) for a in axes), dict(cs)))
    seen = [cs.name for cs in out]
    if len(set(seen)) != len(seen):
        raise _fail(where, key, f"coordinate system names repeat: {seen}")
    return tuple(out)


Node = tuple[str, str | None]


@dataclass(frozen=True)
class Edge:
    """A transform of the graph between two nodes; ``prefix`` locates its stored arrays."""

    source: Node
    target: Node
    transformation: Transformation
    prefix: str = ""
    inverted: bool = False


def describe_node(node: Node) -> str:
    """A node as a user reads it."""
    path, name = node
    if name is None:
        return f"array {path!r}"
    return repr(name) + (f" (of {path!r})" if path else "")


class TransformGraph:
    """Coordinate systems (and arrays) joined by transforms, of one or more documents.

    Nodes are ``(path, name)``: the coordinate system ``name`` of the group at ``path``
    (relative to the graph's root group, ``""`` for the root), or with ``name=None`` the
    pixel space of the array at ``path``.
    """

    def __init__(self) -> None:
        self.systems: dict[Node, CoordinateSystem] = {}
        self.edges: list[Edge] = []

    def add_systems(self, systems: Iterable[CoordinateSystem], prefix: str = "") -> None:
        """Add coordinate systems defined in the document at ``prefix``."""
        for cs in systems:
            self.systems[(prefix.strip("/"), cs.name)] = cs

    def add_transformation(
        self, t: Transformation, source: SystemRef, target: SystemRef, prefix: str = ""
    ) -> None:
        """Add a transform from ``source`` to ``target`` (refs relative to ``prefix``)."""
        self.edges.append(Edge(source.key(prefix), target.key(prefix), t, prefix.strip("/")))

    def add_document(
        self,
        systems_raw: Any,
        transforms_raw: Any,
        prefix: str = "",
        where: str = "",
        key: str = "",
    ) -> None:
        """Add a ``coordinateSystems`` list and a ``coordinateTransformations`` list."""
        k = f"{key}/" if key else ""
        systems = parse_coordinate_systems(systems_raw, where, f"{k}coordinateSystems")
        self.add_systems(systems, prefix)
        names = [cs.name for cs in systems]
        for i, raw in enumerate(transforms_raw or ()):
            tk = f"{k}coordinateTransformations/{i}"
            t = parse_transformation(raw, where, tk)
            source = parse_ref(raw.get("input"), where, f"{tk}/input", names)
            target = parse_ref(raw.get("output"), where, f"{tk}/output", names)
            self.add_transformation(t, source, target, prefix)

    def resolve(self, ref: Any) -> Node:
        """Find a node from a user's ``source``/``target``.

        A name (root systems first, then a name unique in the graph), a ``(path, name)``
        pair, or a ``{"name"|"path": ...}`` object.
        """
        if isinstance(ref, str):
            if ("", ref) in self.systems:
                return ("", ref)
            matches = [n for n in self.systems if n[1] == ref]
            if len(matches) == 1:
                return matches[0]
            if matches:
                raise OmeZarrError(
                    f"coordinate system {ref!r} is defined by several images "
                    f"({', '.join(repr(m[0]) for m in matches)}): pass {{'path': ..., 'name': "
                    f"{ref!r}}}"
                )
            raise OmeZarrError(f"no coordinate system {ref!r}; the graph has {self._names()}")
        if isinstance(ref, tuple) and len(ref) == 2:
            node: Node = (str(ref[0]).strip("/"), ref[1])
        else:
            node = parse_ref(ref, "", "source/target").key()
        if node in self.systems or any(node in (e.source, e.target) for e in self.edges):
            return node
        raise OmeZarrError(
            f"no coordinate system {describe_node(node)}; the graph has {self._names()}"
        )

    def _names(self) -> str:
        return ", ".join(describe_node(n) for n in self.systems) or "no coordinate systems"

    def path(self, source: Any, target: Any) -> list[Edge]:
        """The shortest chain of transforms from ``source`` to ``target`` (inverses used).

        Raises
        ------
        OmeZarrError
            When a node is unknown or no path joins them.
        """
        start, goal = self.resolve(source), self.resolve(target)
        if start == goal:
            return []
        steps: dict[Node, list[Edge]] = {}
        for e in self.edges:
            steps.setdefault(e.source, []).append(e)
            if e.transformation.invertible:
                back = Edge(e.target, e.source, e.transformation, e.prefix, inverted=True)
                steps.setdefault(e.target, []).append(back)
        came: dict[Node, Edge | None] = {start: None}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            if node == goal:
                break
            for e in steps.get(node, ()):
                if e.target not in came:
                    came[e.target] = e
                    queue.append(e.target)
        if goal not in came:
            raise OmeZarrError(
                f"no chain of coordinate transformations leads from {describe_node(start)} "
                f"to {describe_node(goal)}"
            )
        chain: list[Edge] = []
        node = goal
        while (edge := came[node]) is not None:
            chain.append(edge)
            node = edge.source
        return chain[::-1]

    def transform_points(
        self, points: Any, source: Any, target: Any, loader: Callable[[str, str], Any] | None = None
    ) -> np.ndarray:
        """Map an ``(N, ndim)`` array of points from ``source`` to ``target``.

        ``loader(path, kind)`` reads arrays named by transforms (paths from the graph root).
        """
        pts = _points(points)
        start = self.resolve(source)
        if start in self.systems:
            _check_width(pts, len(self.systems[start].axes), f"coordinate system {source!r}")
        for edge in self.path(source, target):
            t = edge.transformation.inverse() if edge.inverted else edge.transformation
            prefixed = _prefixed(loader, edge.prefix)
            pts = t.apply(pts, prefixed)
        return pts

    def composed(self, source: Any, target: Any) -> Transformation:
        """The chain from ``source`` to ``target`` as one sequence transform."""
        return SequenceOf(
            {"type": "sequence"},
            tuple(
                e.transformation.inverse() if e.inverted else e.transformation
                for e in self.path(source, target)
            ),
        )

    def affine(self, source: Any, target: Any, loader: Loader | None = None) -> np.ndarray:
        """The homogeneous matrix from ``source`` to ``target`` where the chain is affine;
        ``loader`` reads matrices stored in arrays (without one, they are not affine here)."""
        start = self.resolve(source)
        m = np.eye(self.ndim(start) + 1)
        for edge in self.path(source, target):
            t = edge.transformation.inverse() if edge.inverted else edge.transformation
            step = t.affine(m.shape[0] - 1, _prefixed(loader, edge.prefix))
            if step is None:
                raise OmeZarrError(
                    f"the transforms from {describe_node(start)} to {target!r} are not affine "
                    "(a field, or stored parameters with no store to read them from): map "
                    "points with xoz.transform_points"
                )
            m = step @ m
        return m

    def ndim(self, node: Node) -> int:
        """The number of axes of a node (a coordinate system or an array)."""
        if node in self.systems:
            return len(self.systems[node].axes)
        # an array: as many axes as the coordinate system its own transform outputs to
        for e in self.edges:
            if e.source == node and e.target in self.systems:
                return len(self.systems[e.target].axes)
        raise OmeZarrError(f"{describe_node(node)} has no known number of axes")


def _prefixed(loader: Callable[[str, str], Any] | None, prefix: str) -> Loader | None:
    if loader is None:
        return None
    return lambda path, kind: loader(_join(prefix, path), kind)


def axis_aligned(matrix: np.ndarray) -> list[tuple[int, float, float]] | None:
    """For each output axis ``(input axis, scale, translation)`` where ``matrix`` keeps axes.

    ``None`` where an output mixes input axes (shear, rotation), comes from none, or where
    two outputs share one input or an input is dropped.
    """
    linear = matrix[:-1, :-1]
    out = []
    for row, shift in zip(linear, matrix[:-1, -1], strict=True):
        nonzero = np.flatnonzero(row)
        if len(nonzero) != 1:
            return None
        j = int(nonzero[0])
        out.append((j, float(row[j]), float(shift)))
    used = [j for j, _, _ in out]
    if sorted(used) != list(range(linear.shape[1])):
        return None
    return out


def close(
    a: Any, b: Any, atol: float = ABSOLUTE_TOLERANCE, rtol: float = RELATIVE_TOLERANCE
) -> bool:
    """Whether two point arrays agree within the spec's tolerances."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return False
    scale = np.maximum(np.abs(a), np.abs(b))
    ok = np.abs(a - b) <= np.maximum(atol, rtol * scale)
    return bool(np.all(ok))


def graph_of_document(
    ome: Mapping[str, Any], where: str = "", prefix: str = "", graph: TransformGraph | None = None
) -> TransformGraph:
    """The graph of one OME document: its multiscales' and its scene's systems and transforms.

    Dataset transforms join each array (``(prefix/path, None)``) to its output system.
    """
    graph = graph if graph is not None else TransformGraph()
    for i, ms in enumerate(ome.get("multiscales") or ()):
        if not isinstance(ms, Mapping):
            continue
        key = f"multiscales/{i}"
        graph.add_document(
            ms.get("coordinateSystems"), ms.get("coordinateTransformations"), prefix, where, key
        )
        names = [
            cs.get("name") for cs in ms.get("coordinateSystems") or () if isinstance(cs, Mapping)
        ]
        for j, ds in enumerate(ms.get("datasets") or ()):
            if not isinstance(ds, Mapping):
                continue
            for n, raw in enumerate(ds.get("coordinateTransformations") or ()):
                tk = f"{key}/datasets/{j}/coordinateTransformations/{n}"
                t = parse_transformation(raw, where, tk)
                source = (
                    parse_ref(raw["input"], where, f"{tk}/input", ())
                    if "input" in raw
                    else SystemRef(path=ds.get("path"))
                )
                if source.name is not None and source.path is None:  # "input": "s0"
                    source = SystemRef(path=source.name)
                target = parse_ref(raw.get("output"), where, f"{tk}/output", cast(list[str], names))
                graph.add_transformation(t, source, target, prefix)
    scene = ome.get("scene")
    if isinstance(scene, Mapping):
        graph.add_document(
            scene.get("coordinateSystems"),
            scene.get("coordinateTransformations"),
            prefix,
            where,
            "scene",
        )
    return graph


__all__ = [
    "ABSOLUTE_TOLERANCE",
    "RELATIVE_TOLERANCE",
    "Affine",
    "Bijection",
    "ByDimension",
    "CoordinateSystem",
    "Edge",
    "Field",
    "FieldGrid",
    "Identity",
    "InverseOf",
    "MapAxis",
    "ProjectAxis",
    "Scale",
    "SequenceOf",
    "SystemRef",
    "TransformGraph",
    "Transformation",
    "Translation",
    "axis_aligned",
    "close",
    "graph_of_document",
    "parse_coordinate_systems",
    "parse_ref",
    "parse_transformation",
]
