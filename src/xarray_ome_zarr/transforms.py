"""Scale and translation to and from coordinates, by the pixel-centre convention.

A coordinate value is the centre of a pixel: ``translation + scale * index``. Pure numpy.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from .errors import OmeZarrError
from .ngff.limits import remember_bounded
from .ngff.model import Multiscale, Transform

#: Relative tolerance for "evenly spaced" coordinates.
SPACING_RTOL = 1e-6


def _as_vectors(
    transforms: Sequence[Transform], ndim: int, key: str
) -> tuple[np.ndarray, np.ndarray]:
    scale, translation = np.ones(ndim), np.zeros(ndim)
    for i, t in enumerate(transforms):
        if t.values is None:
            continue
        if len(t.values) != ndim:
            reason = f"has {len(t.values)} values for {ndim} axes"
            at = f"{key}/{i}/{t.type}"
            raise OmeZarrError(f"{at}: {reason}", key=at, reason=reason)
        if t.type == "scale":
            scale = np.asarray(t.values, dtype=np.float64)
        elif t.type == "translation":
            translation = np.asarray(t.values, dtype=np.float64)
    return scale, translation


#: Geometries of the multiscales seen last, by identity (the multiscale kept, so its id is
#: not reused while here): a plate's fields share one parsed multiscale (``ParseMemo``), whose
#: levels' geometry the walk and the reader ask for several times each.
_GEOMETRIES: dict[int, tuple[Multiscale, dict[int, tuple[np.ndarray, np.ndarray]]]] = {}
_GEOMETRIES_KEPT = 64
_geometries_lock = threading.Lock()


def level_geometry(multiscale: Multiscale, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Effective (scale, translation) of one level, per axis (new arrays on each call).

    The dataset's own transforms apply first, then the multiscale-wide ones:
    ``scale = S_ms * s_ds`` and ``translation = S_ms * t_ds + t_ms``.

    Raises
    ------
    OmeZarrError
        When a transform's length differs from the number of axes (message names the key).
    """
    with _geometries_lock:
        seen = _GEOMETRIES.get(id(multiscale))
    if seen is not None and seen[0] is multiscale and index in seen[1]:
        scale, translation = seen[1][index]
        return scale.copy(), translation.copy()
    scale, translation = _level_geometry(multiscale, index)
    with _geometries_lock:
        seen = _GEOMETRIES.get(id(multiscale))
        if seen is None or seen[0] is not multiscale:
            seen = (multiscale, {})
            remember_bounded(_GEOMETRIES, id(multiscale), seen, _GEOMETRIES_KEPT)
        seen[1][index] = (scale.copy(), translation.copy())
    return scale, translation


def _level_geometry(multiscale: Multiscale, index: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`level_geometry`, computed."""
    ndim = len(multiscale.axes)
    s_ds, t_ds = _as_vectors(
        multiscale.levels[index].transforms,
        ndim,
        f"multiscales/0/datasets/{index}/coordinateTransformations",
    )
    s_ms, t_ms = _as_vectors(multiscale.transforms, ndim, "multiscales/0/coordinateTransformations")
    return s_ms * s_ds, s_ms * t_ds + t_ms


def coordinate_values(size: int, scale: float, translation: float) -> np.ndarray:
    """Pixel-centre coordinates of an axis of ``size`` pixels."""
    return translation + scale * np.arange(size, dtype=np.float64)


def scale_translation(
    values: np.ndarray, fallback_scale: float | None = None, *, name: str = "?"
) -> tuple[float, float]:
    """Read (scale, translation) off pixel-centre coordinates.

    Parameters
    ----------
    values
        The coordinate values along one axis.
    fallback_scale
        The scale of a length-1 axis, which its values cannot tell; 1.0 if ``None``.
    name
        The axis name, for error messages.

    Raises
    ------
    OmeZarrError
        When the values are empty, not finite, or not evenly spaced.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise OmeZarrError(f"axis {name!r}: a coordinate needs at least one value")
    if not np.all(np.isfinite(values)):
        raise OmeZarrError(f"axis {name!r}: coordinate values must be finite")
    if values.size == 1:
        scale = 1.0 if fallback_scale is None else float(fallback_scale)
        return scale, float(values[0])
    steps = np.diff(values)
    # The mean step over the whole axis is the most exact estimate of the scale.
    scale = float((values[-1] - values[0]) / (values.size - 1))
    if scale == 0 or not np.allclose(steps, scale, rtol=SPACING_RTOL, atol=0):
        raise OmeZarrError(
            f"axis {name!r}: coordinates are not evenly spaced (steps from {steps.min():g} "
            f"to {steps.max():g}); OME-Zarr can only store a scale and a translation"
        )
    return scale, float(values[0])


def downsampled(scale: float, translation: float, factor: int) -> tuple[float, float]:
    """Geometry of an axis downsampled by ``factor``: pixel centres of the merged blocks."""
    return scale * factor, translation + (factor - 1) / 2 * scale


def tidy(value: float, reference: float | None = None) -> float:
    """``value`` without the float noise of reading it off coordinates.

    The shortest decimal within 1e-13 (relative) of ``value``; zero when negligible next to
    ``reference`` (a translation next to its scale).
    """
    value = float(value)
    if reference is not None and abs(value) < 1e-9 * abs(float(reference)):
        return 0.0
    if not np.isfinite(value):
        return value
    for digits in range(1, 17):
        short = float(f"{value:.{digits}g}")
        if abs(short - value) <= 1e-13 * abs(value):
            return short
    return value


def block_factor(shift: float, size_above: int) -> float:
    """The factor that made a one-pixel level, from its shift in pixels of the level above.

    Blocks of ``f`` aligned to the start put the first centre ``(f - 1) / 2`` pixels in;
    aligned to the end (xarray's ``coarsen(side="right")``, as multiscale-spatial-image
    uses) ``size_above - (f + 1) / 2``. At most one of the two is a whole factor that
    leaves one pixel; without one, the start-aligned value is taken.
    """
    start, end = 2 * shift + 1, 2 * (size_above - shift) - 1
    for factor in (start, end):
        whole = round(factor)
        if whole >= 1 and abs(factor - whole) < 1e-6 * factor and size_above // whole == 1:
            return whole
    return start
