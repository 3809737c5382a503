"""How long each level of an image may be, given level 0: the rule that trims the lower
levels an interrupted (or ongoing) append has already grown.

An append (:mod:`.append`) writes chunks first, then the array shapes, the lower levels
before level 0. Between those steps the lower levels are longer along the appended axis
than level 0. Level 0 is the truth: along an axis that a level does not downsample (the
same scale as level 0: time, channel, an unshrunk space axis) a level is at most as long as
level 0, and one that is longer is read trimmed to level 0's length (such a store was
refused before: levels must shrink). Along an axis a level downsamples, no limit is drawn:
peers write lower levels whose scales and shapes disagree (a label image with its image's
scales, levels rounded up), and trimming them would hide pixels. Pure numpy; imports no
xarray.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The rule id of the warning for levels trimmed to level 0's length (docs/errors.md).
UNEVEN_LEVELS = "uneven-levels"

#: How close to a whole number a scale ratio must be to count as a downsampling factor.
FACTOR_RTOL = 1e-6


def whole_factor(ratio: float) -> int | None:
    """``ratio`` as a whole factor >= 1, or ``None`` when it is not one."""
    if not np.isfinite(ratio) or ratio < 1 - FACTOR_RTOL:
        return None
    whole = round(ratio)
    return whole if abs(ratio - whole) <= FACTOR_RTOL * whole else None


def longest_allowed(
    shape0: Sequence[int], scale: Sequence[float], scale0: Sequence[float]
) -> tuple[int | None, ...]:
    """The most pixels a level of ``scale`` may have along each axis, given level 0 of
    ``shape0`` and ``scale0``: level 0's length where the scales are the same, ``None`` (no
    limit drawn) where the level downsamples the axis."""
    out: list[int | None] = []
    for n0, s, s0 in zip(shape0, scale, scale0, strict=True):
        factor = whole_factor(abs(float(s) / float(s0))) if s0 else None
        out.append(int(n0) if factor == 1 else None)
    return tuple(out)


def trimmed_shape(
    shape: Sequence[int],
    shape0: Sequence[int],
    scale: Sequence[float],
    scale0: Sequence[float],
) -> tuple[int, ...]:
    """``shape`` (of a lower level) trimmed to what level 0 allows (:func:`longest_allowed`)."""
    allowed = longest_allowed(shape0, scale, scale0)
    return tuple(
        int(n) if limit is None else min(int(n), limit)
        for n, limit in zip(shape, allowed, strict=True)
    )


def trimmed_axes(shape: Sequence[int], trimmed: Sequence[int], names: Sequence[str]) -> list[str]:
    """The names of the axes along which ``trimmed`` is shorter than ``shape``."""
    return [str(n) for n, a, b in zip(names, shape, trimmed, strict=True) if b < a]


__all__ = ["UNEVEN_LEVELS", "longest_allowed", "trimmed_axes", "trimmed_shape", "whole_factor"]
