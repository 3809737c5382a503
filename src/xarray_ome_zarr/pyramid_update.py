"""Bring the lower levels of a stored pyramid up to date after a part of level 0 changed.

A level made from the one above it by a factor ``f`` along an axis leaves out the first
``n % f`` pixels (:mod:`.multiscale`) and makes pixel ``j`` from the pixels
``off + j*f .. off + (j+1)*f`` above it (``off = n % f``), and, for ``gaussian``, a halo of
the kernel's radius around them. So a changed box of one level changes a box of the next,
which is recomputed from the stored pixels of the level above (the changed ones and, where
the box does not cover whole blocks, their neighbours read back) with the same numpy
kernels :func:`~xarray_ome_zarr.multiscale.downsample` runs on each dask block: the
result is the pyramid of the whole image, pixel for pixel.

:class:`Step` says how one level is made from the one above; :func:`affected` and
:func:`source` map boxes between levels; :func:`downsample_box` recomputes a box;
:func:`update_levels` runs it down a pyramid of zarr arrays. Whether a box can be written
without a lock (it covers whole chunks and needs no pixel outside the changed box) is
:func:`self_contained` and :func:`whole_units`. Used by region writes and appends.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import OmeZarrError
from .multiscale import (
    METHODS,
    centre_kernel,
    gaussian_sigma,
    gaussian_weights,
    mean_kernel,
    mode_kernel,
    nearest_kernel,
    smooth_kernel,
)

#: A box of an array: one ``(start, stop)`` per axis.
Box = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Step:
    """How a level is made from the one above it (``shape``), per axis.

    ``factors``: the downsampling factor; ``offsets``: the leading pixels left out
    (``n % f``); ``halos``: the pixels beyond a block the kernel reads (gaussian only).
    """

    shape: tuple[int, ...]
    factors: tuple[int, ...]
    method: str

    @property
    def offsets(self) -> tuple[int, ...]:
        """The leading pixels of the level above that no block of this one covers."""
        return tuple(n % f for n, f in zip(self.shape, self.factors, strict=True))

    @property
    def halos(self) -> tuple[int, ...]:
        """The kernel's reach beyond a block along each axis (0 but for gaussian)."""
        if self.method != "gaussian":
            return tuple(0 for _ in self.factors)
        return tuple(
            len(gaussian_weights(gaussian_sigma(f))) // 2 if f > 1 else 0 for f in self.factors
        )

    @property
    def out_shape(self) -> tuple[int, ...]:
        """The shape of the level made."""
        return tuple(n // f for n, f in zip(self.shape, self.factors, strict=True))


def steps_for(
    shapes: Sequence[Sequence[int]],
    factors: Sequence[Sequence[int]],
    method: str,
    where: str = "",
) -> list[Step]:
    """The steps between consecutive levels of these shapes, ``factors[k]`` making level
    ``k + 1`` from level ``k``.

    Raises
    ------
    OmeZarrError
        For an unknown method, or a level whose shape is not ``n // f`` of the level above.
    """
    if method not in METHODS:
        raise OmeZarrError(f"{where}unknown downsampling method {method!r}; one of {METHODS}")
    steps = []
    for i, (above, below, step) in enumerate(zip(shapes, shapes[1:], factors, strict=False)):
        if any(f < 1 or n // f != m for n, m, f in zip(above, below, step, strict=True)):
            raise OmeZarrError(
                f"{where}level {i + 1} (shape {tuple(below)}) is not level {i} (shape "
                f"{tuple(above)}) downsampled by the factors {tuple(step)} of their scales"
            )
        steps.append(Step(tuple(int(n) for n in above), tuple(int(f) for f in step), method))
    return steps


def affected(step: Step, box: Box) -> Box:
    """The box of the level below whose pixels depend on ``box`` of the level above."""
    out = []
    for (a, b), f, off, halo, m in zip(
        box, step.factors, step.offsets, step.halos, step.out_shape, strict=True
    ):
        lo = max(0, (a - halo - off) // f)
        hi = min(m, -(-(b + halo - off) // f))
        out.append((lo, max(lo, hi)))
    return tuple(out)


def source(step: Step, box: Box) -> Box:
    """The box of the level above that the pixels ``box`` of the level below are made from
    (halo included, clipped to the level)."""
    return tuple(
        (max(0, off + a * f - halo), min(n, off + b * f + halo))
        for (a, b), f, off, halo, n in zip(
            box, step.factors, step.offsets, step.halos, step.shape, strict=True
        )
    )


def is_empty(box: Box) -> bool:
    """Whether ``box`` holds no pixel."""
    return any(b <= a for a, b in box)


def self_contained(step: Step, changed: Box) -> bool:
    """Whether every pixel below that ``changed`` affects is made from ``changed`` alone."""
    return contains(changed, source(step, affected(step, changed)))


def whole_units(box: Box, shape: Sequence[int], unit: Sequence[int]) -> bool:
    """Whether ``box`` covers whole write units (chunks, or shards) of an array."""
    return all(
        a % u == 0 and (b % u == 0 or b == n) for (a, b), n, u in zip(box, shape, unit, strict=True)
    )


def as_slices(box: Box) -> tuple[slice, ...]:
    """``box`` as a tuple of slices."""
    return tuple(slice(a, b) for a, b in box)


def downsample_box(step: Step, box: Box, pixels: np.ndarray, read: Box) -> np.ndarray:
    """The pixels ``box`` of the level below, from ``pixels`` of the level above at ``read``
    (:func:`source` of ``box``), as the whole-image pyramid computes them."""
    factors = step.factors
    if step.method != "gaussian":
        method = {"mean": mean_kernel, "nearest": nearest_kernel, "mode": mode_kernel}
        return method[step.method](pixels, factors)
    halos = step.halos
    starts = [off + a * f for (a, _), f, off in zip(box, factors, step.offsets, strict=True)]
    stops = [off + b * f for (_, b), f, off in zip(box, factors, step.offsets, strict=True)]
    # beyond the level's edges the edge pixels repeat, as the whole-image smoothing does
    pad = [
        (h - (s - r0), h - (r1 - e))
        for h, s, e, (r0, r1) in zip(halos, starts, stops, read, strict=True)
    ]
    padded = np.pad(pixels, pad, mode="edge") if any(p != (0, 0) for p in pad) else pixels
    sigmas = [gaussian_sigma(f) for f in factors]
    smoothed = smooth_kernel(padded, sigmas)
    inner = smoothed[tuple(slice(h, smoothed.shape[i] - h) for i, h in enumerate(halos))]
    return centre_kernel(inner, factors, pixels.dtype)


def update_levels(
    arrays: Sequence[Any],
    steps: Sequence[Step],
    changed: Box,
    first: int = 1,
    known: np.ndarray | None = None,
) -> tuple[Box, np.ndarray | None]:
    """Recompute, from level ``first - 1`` down, the boxes of ``arrays[first:]`` that
    ``changed`` (a box of ``arrays[first - 1]``) affects, reading the level above back
    from the store where ``known`` (the pixels of ``changed``, if given) does not hold
    what a box is made from; returns the box written last and its pixels."""
    box = changed
    for k in range(first, len(arrays)):
        step = steps[k - 1]
        below = affected(step, box)
        if is_empty(below):
            return below, None
        read = source(step, below)
        if known is not None and contains(box, read):
            at = zip(read, box, strict=True)
            pixels = known[tuple(slice(a - a0, b - a0) for (a, b), (a0, _) in at)]
        else:
            pixels = np.asarray(arrays[k - 1][as_slices(read)])
        known = downsample_box(step, below, pixels, read)
        arrays[k][as_slices(below)] = known
        box = below
    return box, known


def contains(outer: Box, inner: Box) -> bool:
    """Whether ``inner`` lies within ``outer``."""
    return all(a0 <= a and b <= b0 for (a0, b0), (a, b) in zip(outer, inner, strict=True))


def box_size(box: Box) -> int:
    """How many pixels ``box`` holds."""
    return math.prod(max(0, b - a) for a, b in box)


__all__ = [
    "Box",
    "Step",
    "affected",
    "as_slices",
    "contains",
    "box_size",
    "downsample_box",
    "is_empty",
    "self_contained",
    "source",
    "steps_for",
    "update_levels",
    "whole_units",
]
