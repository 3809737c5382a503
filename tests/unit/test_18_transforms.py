"""``transforms``: scale and translation to and from pixel-centre coordinates.

Worked examples of each rule; ``test_30_properties`` checks the same functions over random
inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

from xarray_ome_zarr import OmeZarrError, transforms
from xarray_ome_zarr.ngff.model import Axis, Level, Multiscale, Transform
from xarray_ome_zarr.transforms import (
    block_factor,
    coordinate_values,
    downsampled,
    level_geometry,
    scale_translation,
    tidy,
)

AXES = (Axis("z", "space"), Axis("y", "space"), Axis("x", "space"))


def multiscale(levels, transforms=()) -> Multiscale:
    return Multiscale(
        version="0.4",
        axes=AXES,
        levels=tuple(Level(str(i), tuple(t)) for i, t in enumerate(levels)),
        transforms=tuple(transforms),
    )


# ---- a level's geometry from its transforms --------------------------------------------------
def test_dataset_transforms_apply_first_then_the_multiscale_ones():
    ms = multiscale(
        [[Transform("scale", (1.0, 0.5, 0.5)), Transform("translation", (0.0, 10.0, -2.0))]],
        [Transform("scale", (2.0, 2.0, 3.0)), Transform("translation", (5.0, 1.0, 0.0))],
    )
    scale, translation = level_geometry(ms, 0)
    np.testing.assert_array_equal(scale, [2.0, 1.0, 1.5])
    np.testing.assert_array_equal(translation, [5.0, 21.0, -6.0])  # S_ms * t_ds + t_ms


def test_missing_transforms_mean_unit_scale_and_no_translation():
    ms = multiscale([[], [Transform("scale", (1.0, 2.0, 2.0))]])
    scale, translation = level_geometry(ms, 0)
    np.testing.assert_array_equal(scale, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(translation, [0.0, 0.0, 0.0])
    scale, _ = level_geometry(ms, 1)
    np.testing.assert_array_equal(scale, [1.0, 2.0, 2.0])


def test_identity_transforms_change_nothing():
    ms = multiscale([[Transform("identity"), Transform("scale", (1.0, 4.0, 4.0))]])
    scale, translation = level_geometry(ms, 0)
    np.testing.assert_array_equal(scale, [1.0, 4.0, 4.0])
    np.testing.assert_array_equal(translation, [0.0, 0.0, 0.0])


def test_a_transform_of_the_wrong_length_is_an_error_naming_its_key():
    ms = multiscale([[Transform("scale", (1.0, 1.0, 1.0))], [Transform("scale", (2.0, 2.0))]])
    key = "multiscales/0/datasets/1/coordinateTransformations/0/scale"
    with pytest.raises(OmeZarrError, match="has 2 values for 3 axes") as info:
        level_geometry(ms, 1)
    assert info.value.key == key
    assert str(info.value).startswith(key)
    ms = multiscale([[]], [Transform("translation", (1.0,))])
    with pytest.raises(OmeZarrError, match="multiscales/0/coordinateTransformations/0"):
        level_geometry(ms, 0)


def test_geometry_asked_again_is_the_same_and_each_callers_own(monkeypatch):
    """A multiscale's geometry is remembered (a plate's fields share one parsed multiscale),
    by identity: asked again it is equal, in new arrays a caller may change; an equal-looking
    multiscale with other transforms, or one seen after many others, gets its own."""
    calls = []
    compute = transforms._level_geometry
    monkeypatch.setattr(
        transforms, "_level_geometry", lambda m, i: calls.append(i) or compute(m, i)
    )
    ms = multiscale([[Transform("scale", (1.0, 0.5, 0.5))], [Transform("scale", (1.0, 1.0, 1.0))]])
    first = level_geometry(ms, 0)
    first[0][:] = 99.0  # the caller's own arrays
    again = level_geometry(ms, 0)
    np.testing.assert_array_equal(again[0], [1.0, 0.5, 0.5])
    assert again[0] is not first[0] and calls == [0]
    np.testing.assert_array_equal(level_geometry(ms, 1)[0], [1.0, 1.0, 1.0])
    other = multiscale([[Transform("scale", (1.0, 2.0, 2.0))]])
    np.testing.assert_array_equal(level_geometry(other, 0)[0], [1.0, 2.0, 2.0])
    for _ in range(transforms._GEOMETRIES_KEPT + 1):  # ms is forgotten, still right
        level_geometry(multiscale([[]]), 0)
    np.testing.assert_array_equal(level_geometry(ms, 0)[0], [1.0, 0.5, 0.5])
    assert calls.count(0) == 2 + transforms._GEOMETRIES_KEPT + 1 + 1


# ---- coordinates <-> scale and translation ------------------------------------------------
def test_coordinates_are_pixel_centres():
    np.testing.assert_array_equal(coordinate_values(4, 0.5, 10.0), [10.0, 10.5, 11.0, 11.5])
    assert coordinate_values(0, 1.0, 0.0).shape == (0,)
    assert coordinate_values(3, 1.0, 0.0).dtype == np.float64


def test_scale_and_translation_read_back_off_coordinates():
    assert scale_translation(coordinate_values(7, 0.25, -3.0)) == (0.25, -3.0)
    assert scale_translation(np.array([5.0, 3.0, 1.0])) == (-2.0, 5.0)  # decreasing is kept
    assert scale_translation(np.array([2.5])) == (1.0, 2.5)  # one value: scale unknown
    assert scale_translation(np.array([2.5]), fallback_scale=4.0) == (4.0, 2.5)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([], "at least one value"),
        ([[1.0, 2.0]], "at least one value"),
        ([0.0, np.nan], "finite"),
        ([0.0, np.inf], "finite"),
        ([0.0, 1.0, 3.0], "not evenly spaced"),
        ([2.0, 2.0, 2.0], "not evenly spaced"),
    ],
)
def test_coordinates_that_are_not_a_scale_and_translation_are_refused(values, message):
    with pytest.raises(OmeZarrError, match=rf"axis 'x': .*{message}"):
        scale_translation(np.array(values, dtype=float), name="x")


def test_a_downsampled_pixel_sits_at_the_centre_of_its_block():
    assert downsampled(0.5, 10.0, 2) == (1.0, 10.25)  # f * s, t + (f - 1) / 2 * s
    assert downsampled(0.5, 10.0, 1) == (0.5, 10.0)
    assert downsampled(1.0, 0.0, 4) == (4.0, 1.5)


def test_tidy_drops_float_noise_only():
    assert tidy(0.1 + 0.2) == 0.3
    third = tidy(1 / 3)  # the shortest decimal within 1e-13 (relative)
    assert abs(third - 1 / 3) <= 1e-13 / 3 and len(repr(third)) < len(repr(1 / 3))
    assert tidy(0.25) == 0.25
    assert tidy(1e-12, reference=0.5) == 0.0  # negligible next to the scale
    assert tidy(1e-12) == 1e-12
    assert np.isnan(tidy(float("nan")))


@pytest.mark.parametrize(
    ("shift", "size_above", "factor"),
    [
        (0.5, 2, 2),  # blocks from the start: centre (f - 1) / 2 in
        (1.5, 4, 4),
        (2.0, 5, 5),
        (2.5, 5, 4),  # blocks from the end (coarsen side="right"): size - (f + 1) / 2
    ],
)
def test_the_factor_of_a_one_pixel_level(shift, size_above, factor):
    assert block_factor(shift, size_above) == factor


def test_a_shift_no_whole_factor_explains_gives_the_start_aligned_value():
    assert block_factor(0.25, 10) == 1.5
