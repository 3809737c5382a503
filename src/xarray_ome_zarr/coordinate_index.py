"""Space and time coordinates as lazy xarray indexes built from a scale and a translation.

A pixel-centre coordinate is ``translation + scale * i`` for ``i`` in ``range(size)``.
:class:`PixelCentreIndex` holds those two numbers instead of the values, so opening costs
nothing whatever the axis length, and the stored numbers come back exactly when written.

It behaves like the pandas index of the materialised values (the values it produces are the
same floats, bit for bit):

- ``.sel`` by label (a label matches a pixel centre within ``LABEL_RTOL`` of the pixel
  size), by array, by slice with both ends included (as pandas does), with ``method=``
  ``"nearest"``, ``"pad"``/``"ffill"``, ``"backfill"``/``"bfill"`` and ``tolerance=``;
  slices also accept ``method="nearest"`` (each end snaps to its nearest pixel);
- ``.isel`` by slices (any step) and by evenly spaced positions keeps the lazy index;
  other selections (boolean masks, uneven positions) fall back to a pandas index;
- alignment, ``xr.concat`` and ``xr.combine_*`` between tiles on the same grid stay lazy;
  where the result is not evenly spaced (tiles with gaps, other grids) it is a pandas index.

Built on xarray's public ``CoordinateTransform`` / ``CoordinateTransformIndex``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from xarray.core.indexing import IndexSelResult
from xarray.indexes import CoordinateTransform, CoordinateTransformIndex, Index, PandasIndex

from .transforms import tidy

#: A label matches a pixel centre when within this fraction of the pixel size of it.
LABEL_RTOL = 1e-6

_FILL_METHODS = {"pad": "pad", "ffill": "pad", "backfill": "backfill", "bfill": "backfill"}


class PixelCentreTransform(CoordinateTransform):
    """``translation + scale * (offset + step * k)`` for ``k`` in ``range(size)``.

    ``scale`` and ``translation`` are the numbers the axis was built from; ``offset`` and
    ``step`` (integers) record slicing, so every value is computed from the original
    numbers exactly as the materialised coordinate ``translation + scale * arange(n)``.
    """

    __slots__ = ("offset", "scale", "step", "translation")

    def __init__(
        self,
        size: int,
        scale: float,
        translation: float,
        dim: str,
        *,
        offset: int = 0,
        step: int = 1,
    ) -> None:
        super().__init__((dim,), {dim: int(size)}, dtype=np.dtype(np.float64))
        self.scale = float(scale)
        self.translation = float(translation)
        self.offset = int(offset)
        self.step = int(step)

    # ---- geometry ---------------------------------------------------------------------
    @property
    def dim(self) -> str:
        """The dimension (and coordinate) name."""
        return self.dims[0]

    @property
    def size(self) -> int:
        """The number of pixels."""
        return self.dim_size[self.dim]

    @property
    def spacing(self) -> float:
        """The distance between neighbouring values (negative for a reversed axis)."""
        return self.scale * self.step

    @property
    def is_original(self) -> bool:
        """Whether the values are the built ones, not a slice of them."""
        return self.offset == 0 and self.step == 1

    def value(self, k: int) -> float:
        """The value at position ``k`` (which may lie outside the axis)."""
        return self.translation + self.scale * float(self.offset + self.step * k)

    def sliced(self, start: int, step: int, size: int) -> PixelCentreTransform:
        """The transform of positions ``start + step * j`` for ``j`` in ``range(size)``."""
        return PixelCentreTransform(
            size,
            self.scale,
            self.translation,
            self.dim,
            offset=self.offset + self.step * start,
            step=self.step * step,
        )

    # ---- CoordinateTransform ----------------------------------------------------------
    def forward(self, dim_positions: dict[str, Any]) -> dict[Hashable, Any]:
        positions = np.asarray(dim_positions[self.dim])
        if positions.dtype.kind in "iub":
            index = self.offset + self.step * positions.astype(np.int64)
            values = self.translation + self.scale * index.astype(np.float64)
        else:
            values = self.translation + self.scale * (self.offset + self.step * positions)
        return {self.dim: values}

    def reverse(self, coord_labels: dict[Hashable, Any]) -> dict[str, Any]:
        labels = np.asarray(coord_labels[self.dim], dtype=np.float64)
        return {self.dim: (labels - self.value(0)) / self.spacing}

    def generate_coords(self, dims: tuple[str, ...] | None = None) -> dict[Hashable, Any]:
        return self.forward({self.dim: np.arange(self.size)})

    def equals(
        self, other: CoordinateTransform, exclude: frozenset[Hashable] | None = None
    ) -> bool:
        """Same size and the same values, within ``LABEL_RTOL`` of the pixel size."""
        if not isinstance(other, PixelCentreTransform) or other.size != self.size:
            return False
        if other.dim != self.dim:
            return False
        if self.size == 0:
            return True
        tol = LABEL_RTOL * abs(self.spacing)
        ends = (0, self.size - 1)
        return all(abs(self.value(k) - other.value(k)) <= tol for k in ends) and (
            self.size > 1 or _close(self.spacing, other.spacing)
        )

    def __reduce__(self) -> tuple[Any, ...]:
        args = (self.size, self.scale, self.translation, self.dim)
        return (_rebuild_transform, (*args, self.offset, self.step))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size}, scale={self.scale!r}, "
            f"translation={self.translation!r}, dim={self.dim!r}, offset={self.offset}, "
            f"step={self.step})"
        )


def _rebuild_transform(
    size: int, scale: float, translation: float, dim: str, offset: int, step: int
) -> PixelCentreTransform:
    return PixelCentreTransform(size, scale, translation, dim, offset=offset, step=step)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= LABEL_RTOL * max(abs(a), abs(b))


class PixelCentreIndex(CoordinateTransformIndex):
    """A lazy index of pixel-centre coordinates: ``translation + scale * i``.

    Build one with :meth:`from_geometry` (or :func:`pixel_centre_coordinates`); convert a
    materialised, evenly spaced coordinate with ``ds.set_xindex(dim, PixelCentreIndex)``.
    """

    transform: PixelCentreTransform

    def __init__(self, transform: PixelCentreTransform) -> None:
        if not isinstance(transform, PixelCentreTransform):
            raise TypeError(f"PixelCentreIndex needs a PixelCentreTransform, got {transform!r}")
        super().__init__(transform)

    @classmethod
    def from_geometry(
        cls, size: int, scale: float, translation: float, dim: str
    ) -> PixelCentreIndex:
        """The index of an axis of ``size`` pixels, centres at ``translation + scale * i``."""
        return cls(PixelCentreTransform(size, scale, translation, dim))

    @classmethod
    def from_variables(
        cls, variables: Mapping[Any, xr.Variable], *, options: Mapping[str, Any]
    ) -> PixelCentreIndex:
        """From an evenly spaced 1-D coordinate (``set_xindex``); its ``scale`` attr is used
        for a single value."""
        from .transforms import scale_translation

        if len(variables) != 1:
            raise ValueError("PixelCentreIndex is built from exactly one coordinate")
        ((name, var),) = variables.items()
        if var.ndim != 1 or var.dims[0] != name:
            raise ValueError(f"PixelCentreIndex needs a 1-D dimension coordinate, not {name!r}")
        fallback = var.attrs.get("scale")
        fallback = float(fallback) if isinstance(fallback, int | float) else None
        scale, translation = scale_translation(var.values, fallback, name=str(name))
        return cls.from_geometry(var.size, scale, translation, str(name))

    # ---- what the writer and the accessor read --------------------------------------------
    @property
    def dim(self) -> str:
        """The dimension name."""
        return self.transform.dim

    @property
    def size(self) -> int:
        """The number of pixels."""
        return self.transform.size

    def geometry(self) -> tuple[float, float]:
        """``(scale, translation)`` of the axis.

        The numbers the index was built from, exactly; after slicing, the spacing and first
        value computed once from them (without the float noise of reading them back off
        values). A single pixel keeps the scale it was built with.
        """
        t = self.transform
        if t.is_original:
            return t.scale, t.translation
        if t.size <= 1:  # one pixel has no spacing: it keeps the pixel size it was built with
            return t.scale, t.value(0) if t.offset == 0 else tidy(t.value(0), t.scale)
        spacing = t.spacing if t.step == 1 else tidy(t.spacing)
        first = t.value(0) if t.offset == 0 else tidy(t.value(0), spacing)
        return spacing, first

    # ---- pandas compatibility (PandasIndex.concat reads .index, .dim and .coord_dtype) -----
    @property
    def index(self) -> pd.Index:
        """The values as a pandas index (materialised)."""
        return self.to_pandas_index()

    @property
    def coord_dtype(self) -> np.dtype:
        """The dtype of the values (float64)."""
        return np.dtype(np.float64)

    def to_pandas_index(self) -> pd.Index:
        values = self.transform.generate_coords()[self.dim]
        return pd.Index(values, name=self.dim)

    def _as_pandas(self) -> PandasIndex:
        return PandasIndex(self.to_pandas_index(), self.dim, coord_dtype=np.dtype(np.float64))

    def _new(self, transform: PixelCentreTransform) -> PixelCentreIndex:
        return type(self)(transform)

    # ---- positional selection ---------------------------------------------------------
    def isel(self, indexers: Mapping[Any, Any]) -> Index | None:
        indexer = indexers[self.dim]
        if isinstance(indexer, xr.Variable):
            if indexer.dims != (self.dim,):
                return None
            indexer = indexer.data
        if isinstance(indexer, slice):
            if indexer == slice(None):
                return self
            picked = range(self.size)[indexer]
            return self._new(self.transform.sliced(picked.start, picked.step, len(picked)))
        if np.ndim(indexer) == 0:
            return None
        positions = np.asarray(indexer)
        if positions.dtype.kind == "b":
            positions = np.flatnonzero(positions)
        positions = np.where(positions < 0, positions + self.size, positions).astype(np.int64)
        regular = _regular(positions)
        if regular is not None:
            start, step = regular
            return self._new(self.transform.sliced(start, step, positions.size))
        values = self.transform.forward({self.dim: positions})[self.dim]
        return PandasIndex(pd.Index(values, name=self.dim), self.dim, coord_dtype=values.dtype)

    def roll(self, shifts: Mapping[Any, int]) -> Index | None:  # type: ignore[override]
        shift = shifts[self.dim] % (self.size or 1)
        if shift == 0:
            return self
        return self._as_pandas().roll(shifts)

    # ---- label selection --------------------------------------------------------------
    def sel(
        self, labels: dict[Any, Any], method: Any = None, tolerance: Any = None
    ) -> IndexSelResult:
        if method is not None and not isinstance(method, str):
            raise TypeError("``method`` must be a string")
        (label,) = labels.values()
        if isinstance(label, slice):
            return IndexSelResult({self.dim: self._slice(label, method, tolerance)})
        if isinstance(label, Mapping):
            raise ValueError(
                "cannot use a dict-like object for selection on a dimension that does not "
                "have a MultiIndex"
            )
        data = label.values if isinstance(label, xr.DataArray | xr.Variable) else label
        array = np.asarray(data)
        if array.dtype.kind == "b":
            indexer: Any = array
        else:
            if array.dtype.kind not in "iuf":
                raise KeyError(f"labels of {self.dim!r} must be numbers, got {label!r}")
            indexer = self._positions(array.astype(np.float64), method, tolerance)
            if indexer is None:
                return self._as_pandas().sel(labels, method=method, tolerance=tolerance)
            if np.any(indexer < 0):
                hint = "" if method is not None else " Try method='nearest'."
                raise KeyError(f"not all values found in index {self.dim!r}.{hint}")
            if indexer.ndim == 0:
                indexer = int(indexer)
        if isinstance(label, xr.Variable):
            indexer = xr.Variable(label.dims, indexer)
        elif isinstance(label, xr.DataArray):
            indexer = xr.DataArray(indexer, coords=label._coords, dims=label.dims)
        return IndexSelResult({self.dim: indexer})

    def _count_below(self, labels: np.ndarray | np.float64, strict: bool) -> np.ndarray:
        """How many values lie below each label (``<`` if ``strict``, else ``<=``).

        Exact for the float values the coordinate holds: an estimate from the geometry,
        then a bisection that usually needs a step or two. Needs an increasing axis.
        """
        t, n = self.transform, self.size
        labels = np.asarray(labels, dtype=np.float64)
        if n == 0:
            return np.zeros(labels.shape, dtype=np.int64)
        below = np.less if strict else np.less_equal

        def is_below(k: np.ndarray) -> np.ndarray:
            return below(t.forward({t.dim: k})[t.dim], labels)

        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            guess = np.floor((labels - t.value(0)) / t.spacing)
        guess = np.clip(np.nan_to_num(guess, nan=-1.0), -1, n - 1).astype(np.int64)
        # invariant: values at lo are below (or lo == -1), values at hi are not (or hi == n)
        lo = np.clip(guess - 1, -1, n - 1)
        hi = np.clip(guess + 2, 0, n)
        lo = np.where((lo >= 0) & ~is_below(np.maximum(lo, 0)), -1, lo)
        hi = np.where((hi < n) & is_below(np.minimum(hi, n - 1)), n, hi)
        while np.any(hi - lo > 1):
            mid = (lo + hi) // 2
            ok = is_below(np.clip(mid, 0, n - 1))
            moving = hi - lo > 1
            lo = np.where(moving & ok, mid, lo)
            hi = np.where(moving & ~ok, mid, hi)
        return (lo + 1).astype(np.int64)

    def _count_below_one(self, label: float, strict: bool) -> int:
        """``_count_below`` of one label in plain Python floats: a slice's ends.

        The same values bit for bit (``value`` computes what ``forward`` does), without
        numpy's per-call overhead on scalars (a slice ``.sel`` was 3x slower than pandas).
        """
        t, n = self.transform, self.size
        if n == 0 or math.isnan(label):
            return 0
        first = t.value(0)
        position = (label - first) / t.spacing if t.spacing else math.inf
        if math.isfinite(position):
            k = min(max(math.floor(position), -1), n - 1)
        else:
            k = n - 1 if label > first else -1

        def below(value: float) -> bool:
            return value < label if strict else value <= label

        # the estimate is off by a pixel at most through rounding: walk to the exact count
        while k + 1 < n and below(t.value(k + 1)):
            k += 1
        while k >= 0 and not below(t.value(k)):
            k -= 1
        return k + 1

    def _positions(
        self, labels: np.ndarray, method: str | None, tolerance: Any
    ) -> np.ndarray | None:
        """Positions of ``labels`` (-1 where none); ``None`` to leave it to pandas."""
        t, n = self.transform, self.size
        if method is None:
            if tolerance is not None:
                return None  # pandas says what it says about it
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                pos = np.round((labels - t.value(0)) / t.spacing)
                k = np.clip(np.nan_to_num(pos, nan=-1.0), -1, n).astype(np.int64)
                inside = (k >= 0) & (k < n)
                values = t.forward({t.dim: np.clip(k, 0, max(n - 1, 0))})[t.dim]
                near = np.abs(values - labels) <= LABEL_RTOL * abs(t.spacing)
            return np.where(inside & near, k, -1)
        kind = _FILL_METHODS.get(method, method)
        if kind not in ("nearest", "pad", "backfill"):
            raise ValueError(f"Invalid fill method {method!r}")
        if t.spacing <= 0 or n == 0:
            return None
        at_or_below = self._count_below(labels, strict=False)  # pad = at_or_below - 1
        left = at_or_below - 1
        exact = (left >= 0) & (self._value_at(left) == labels)
        right = np.where(exact, left, at_or_below)
        right = np.where(right >= n, -1, right)
        if kind == "pad":
            indexer = left
        elif kind == "backfill":
            indexer = right
        else:
            left_distance = np.abs(self._value_at(left) - labels)
            right_distance = np.abs(self._value_at(right) - labels)
            use_left = (left_distance < right_distance) | (right < 0)
            indexer = np.where(use_left, left, right)
        if tolerance is not None:
            distance = np.abs(self._value_at(indexer) - labels)
            indexer = np.where(distance <= np.asarray(tolerance), indexer, -1)
        return indexer

    def _value_at(self, k: np.ndarray) -> np.ndarray:
        """Values at positions ``k``; NaN where ``k`` is -1 (none)."""
        k = np.asarray(k)
        values = self.transform.forward({self.dim: np.clip(k, 0, max(self.size - 1, 0))})
        return np.where(k >= 0, values[self.dim], np.nan)

    def _slice(self, label: slice, method: str | None, tolerance: Any) -> slice:
        """A label slice as positions: both ends included, as pandas does."""
        t, n = self.transform, self.size
        start, stop, step = label.start, label.stop, label.step
        for end in (start, stop):
            if end is not None and not isinstance(end, int | float | np.integer | np.floating):
                raise KeyError(f"slice ends on {self.dim!r} must be numbers, got {label!r}")
        if step is not None and (not isinstance(step, int | np.integer) or step <= 0):
            raise ValueError(f"a label slice on {self.dim!r} takes a positive integer step")
        if tolerance is not None or method not in (None, "nearest"):
            raise NotImplementedError(
                "cannot use ``method`` other than 'nearest' or ``tolerance`` with slices"
            )
        if method == "nearest":
            # each end snaps to its nearest pixel; ends beyond the axis select up to its edge
            first, last = 0, n - 1
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                if start is not None:
                    pos = (float(start) - t.value(0)) / t.spacing
                    first = int(np.clip(np.nan_to_num(np.ceil(pos - 0.5), nan=n), 0, n))
                if stop is not None:
                    pos = (float(stop) - t.value(0)) / t.spacing
                    last = int(np.clip(np.nan_to_num(np.floor(pos + 0.5), nan=-1), -1, n - 1))
            return slice(first, max(first, last + 1), step)
        if t.spacing > 0 or n <= 1:  # one pixel has no direction: increasing, as in pandas
            lo = 0 if start is None else self._count_below_one(float(start), strict=True)
            hi = n if stop is None else self._count_below_one(float(stop), strict=False)
        else:  # decreasing: the mirror image of an increasing axis (negation is exact)
            mirror = self._new(
                PixelCentreTransform(
                    n, -t.scale, -t.translation, t.dim, offset=t.offset, step=t.step
                )
            )
            lo = 0 if start is None else mirror._count_below_one(-float(start), strict=True)
            hi = n if stop is None else mirror._count_below_one(-float(stop), strict=False)
        return slice(lo, max(lo, hi), step)

    # ---- alignment and concatenation --------------------------------------------------
    def equals(self, other: Index, *, exclude: frozenset[Hashable] | None = None) -> bool:
        if not isinstance(other, PixelCentreIndex):
            return False
        return self.transform.equals(other.transform)

    def _grid_offset(self, other: PixelCentreIndex) -> int | None:
        """Where ``other`` starts on this index's grid, in pixels; ``None`` off the grid."""
        a, b = self.transform, other.transform
        if not (math.isfinite(a.spacing) and a.spacing != 0 and _close(a.spacing, b.spacing)):
            return None
        position = (b.value(0) - a.value(0)) / a.spacing
        whole = round(position)
        if not abs(position - whole) <= LABEL_RTOL:
            return None
        return int(whole)

    def join(self, other: Index, how: str = "inner") -> Index:  # type: ignore[override]
        if isinstance(other, PixelCentreIndex):
            start = self._grid_offset(other)
            if start is not None:
                end = start + other.size
                if how == "inner":
                    lo, hi = max(0, start), min(self.size, end)
                    return self._new(self.transform.sliced(lo, 1, max(0, hi - lo)))
                if how == "outer" and start <= self.size and end >= 0:
                    lo, hi = min(0, start), max(self.size, end)
                    return self._new(self.transform.sliced(lo, 1, hi - lo))
        return self._as_pandas().join(_pandas(other), how=how)

    def reindex_like(
        self, other: Index, method: Any = None, tolerance: Any = None
    ) -> dict[Hashable, Any]:
        if isinstance(other, PixelCentreIndex) and method is None and tolerance is None:
            start = self._grid_offset(other)
            if start is not None:
                positions = np.arange(start, start + other.size, dtype=np.int64)
                inside = (positions >= 0) & (positions < self.size)
                return {self.dim: np.where(inside, positions, -1)}
        labels = np.asarray(_pandas(other).index, dtype=np.float64)
        indexer = self._positions(labels, method, tolerance)
        if indexer is None:
            return self._as_pandas().reindex_like(_pandas(other), method, tolerance)
        return {self.dim: indexer}

    @classmethod
    def concat(  # type: ignore[override]
        cls,
        indexes: Sequence[Index],
        dim: Hashable,
        positions: Iterable[Iterable[int]] | None = None,
    ) -> Index:
        if positions is None and indexes and all(isinstance(i, cls) for i in indexes):
            first = indexes[0]
            assert isinstance(first, PixelCentreIndex)
            expected, contiguous = 0, True
            for index in indexes:
                assert isinstance(index, PixelCentreIndex)
                if index.dim != dim or (index.size and first._grid_offset(index) != expected):
                    contiguous = False
                    break
                expected += index.size
            if contiguous:
                return first._new(first.transform.sliced(0, 1, expected))
        return PandasIndex.concat([_pandas(i) for i in indexes], dim, positions)

    # ---- repr -------------------------------------------------------------------------
    def _repr_inline_(self, max_width: int) -> str:
        scale, translation = self.geometry()
        return f"{type(self).__name__} (scale={scale:.6g}, translation={translation:.6g})"

    def __repr__(self) -> str:
        scale, translation = self.geometry()
        return (
            f"{type(self).__name__}(size={self.size}, scale={scale!r}, "
            f"translation={translation!r}, dim={self.dim!r})"
        )


def _pandas(index: Index) -> PandasIndex:
    if isinstance(index, PixelCentreIndex):
        return index._as_pandas()
    if isinstance(index, PandasIndex):
        return index
    raise TypeError(f"cannot combine a PixelCentreIndex with {type(index).__name__}")


def _regular(positions: np.ndarray) -> tuple[int, int] | None:
    """``(start, step)`` when the 1-D positions are evenly spaced with a non-zero step."""
    if positions.ndim != 1 or positions.size == 0:
        return None
    if positions.size == 1:
        return int(positions[0]), 1
    steps = np.diff(positions)
    step = int(steps[0])
    if step == 0 or not np.all(steps == step):
        return None
    return int(positions[0]), step


# ---- building and reading coordinates ---------------------------------------------------
def pixel_centre_coordinates(
    size: int,
    scale: float,
    translation: float,
    dim: str,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Coordinates:
    """The lazy coordinate of one axis: ``translation + scale * i`` for ``i < size``."""
    index, variables = pixel_centre_index(size, scale, translation, dim, attrs)
    return xr.Coordinates(variables, indexes=dict.fromkeys(variables, index))


def pixel_centre_index(
    size: int,
    scale: float,
    translation: float,
    dim: str,
    attrs: Mapping[str, Any] | None = None,
) -> tuple[PixelCentreIndex, dict[Any, xr.Variable]]:
    """The lazy index of one axis and the coordinate variables it makes."""
    index = PixelCentreIndex.from_geometry(size, scale, translation, dim)
    variables = index.create_variables()
    variables[dim].attrs = dict(attrs or {})
    return index, variables


def exact_geometry(coord: xr.DataArray | None) -> tuple[float, float] | None:
    """``(scale, translation)`` of a coordinate held by a :class:`PixelCentreIndex`.

    ``None`` for any other coordinate (materialised ones are read off their values).
    """
    if coord is None or coord.ndim != 1:
        return None
    index = coord.xindexes.get(coord.dims[0])
    if isinstance(index, PixelCentreIndex) and coord.name == index.dim:
        return index.geometry()
    return None


def materialized(obj: Any) -> Any:
    """``obj`` (DataArray, Dataset or DataTree) with plain numpy values in place of lazy
    pixel-centre coordinates: pandas indexes, as xarray makes by default."""
    if isinstance(obj, xr.DataTree):
        return obj.map_over_datasets(materialized)
    names = [name for name, index in obj.xindexes.items() if isinstance(index, PixelCentreIndex)]
    if not names:
        return obj
    out = obj.drop_indexes(names)
    for name in names:
        out = out.set_xindex(name)
    return out
