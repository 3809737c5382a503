"""Updating the lower levels of a pyramid after a box of level 0 changed: the result is the
pyramid of the whole changed image, pixel for pixel, for every method (numpy arrays stand
in for the stored levels)."""

from __future__ import annotations

import numpy as np
import pytest

from xarray_ome_zarr import OmeZarrError
from xarray_ome_zarr.multiscale import downsample
from xarray_ome_zarr.pyramid_update import (
    Step,
    affected,
    self_contained,
    source,
    steps_for,
    update_levels,
    whole_units,
)

SHAPE = (3, 37, 45)  # c, y, x: odd sizes, so levels leave out leading pixels
FACTORS = [(1, 2, 2), (1, 3, 2), (1, 2, 2)]


def pyramid_of(image: np.ndarray, method: str) -> list[np.ndarray]:
    import dask.array as da

    levels = [image]
    for f in FACTORS:
        blocks = da.from_array(levels[-1], chunks=(3, 16, 16))  # several blocks: halos cross
        levels.append(downsample(blocks, f, method).compute(scheduler="sync"))
    return levels


@pytest.mark.parametrize(
    ("method", "dtype"),
    [("mean", "uint16"), ("mean", "float32"), ("nearest", "int8"), ("mode", "uint8")]
    + [("gaussian", "uint16"), ("gaussian", "float64")],
)
@pytest.mark.parametrize(
    "box", [((0, 3), (5, 22), (7, 30)), ((1, 2), (0, 37), (40, 45)), ((0, 3), (36, 37), (0, 1))]
)
def test_updated_levels_equal_the_pyramid_of_the_changed_image(method, dtype, box):
    rng = np.random.default_rng(1)
    high = 6 if method == "mode" else 200
    old = rng.integers(0, high, SHAPE).astype(dtype)
    new = old.copy()
    region = tuple(slice(a, b) for a, b in box)
    new[region] = rng.integers(0, high, new[region].shape).astype(dtype)
    stored = [level.copy() for level in pyramid_of(old, method)]
    stored[0][region] = new[region]
    steps = steps_for([s.shape for s in stored], FACTORS, method)
    known = new[region] if method == "mean" else None  # from memory where it can
    update_levels(stored, steps, box, known=known)
    for k, (got, want) in enumerate(zip(stored, pyramid_of(new, method), strict=True)):
        np.testing.assert_array_equal(got, want, err_msg=f"level {k}")


def test_boxes_between_levels():
    step = Step((10,), (2,), "mean")  # no leading pixel left out
    assert affected(step, ((3, 7),)) == ((1, 4),)
    assert source(step, ((1, 4),)) == ((2, 8),)
    assert not self_contained(step, ((3, 7),))
    assert self_contained(step, ((2, 8),))
    odd = Step((11,), (2,), "mean")  # pixel 0 is left out: blocks start at 1
    assert affected(odd, ((0, 1),)) == ((0, 0),)
    assert self_contained(odd, ((1, 5),))
    halo = Step((64,), (2,), "gaussian")
    assert halo.halos == (3,)
    assert not self_contained(halo, ((0, 32),))
    assert self_contained(halo, ((0, 64),))


def test_whole_units():
    assert whole_units(((0, 64), (64, 100)), (128, 100), (32, 32))
    assert not whole_units(((0, 64), (60, 100)), (128, 100), (32, 32))
    assert not whole_units(((0, 40),), (128,), (32,))


def test_levels_that_are_no_downsampling_are_refused():
    with pytest.raises(OmeZarrError, match="not level 0"):
        steps_for([(10, 10), (4, 5)], [(2, 2)], "mean")
    with pytest.raises(OmeZarrError, match="unknown downsampling method"):
        steps_for([(10,), (5,)], [(2,)], "bicubic")
