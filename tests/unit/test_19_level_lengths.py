"""The rule that trims lower levels an append has grown (level_lengths.py), and the write
units of an append's region (append.py)."""

from __future__ import annotations

import pytest

from xarray_ome_zarr.append import _region_chunks
from xarray_ome_zarr.level_lengths import longest_allowed, trimmed_axes, trimmed_shape, whole_factor


@pytest.mark.parametrize(
    ("ratio", "factor"), [(1.0, 1), (2.0, 2), (2.0000000001, 2), (2.0625, None), (0.5, None)]
)
def test_whole_factor(ratio, factor):
    assert whole_factor(ratio) == factor


def test_a_lower_level_is_trimmed_along_axes_it_does_not_downsample_only():
    # t, c unshrunk; z, y, x downsampled by 2: only t (grown by an append) is trimmed
    scale0, scale1 = [1.0, 1.0, 1.0, 0.5, 0.5], [1.0, 1.0, 2.0, 1.0, 1.0]
    assert longest_allowed((3, 2, 8, 16, 16), scale1, scale0) == (3, 2, None, None, None)
    trimmed = trimmed_shape((5, 2, 4, 9, 8), (3, 2, 8, 16, 16), scale1, scale0)
    assert trimmed == (3, 2, 4, 9, 8)  # y keeps its 9 (peers round up): no limit drawn there
    assert trimmed_axes((5, 2, 4, 9, 8), trimmed, "tczyx") == ["t"]
    assert trimmed_shape((2, 2, 4, 8, 8), (3, 2, 8, 16, 16), scale1, scale0) == (2, 2, 4, 8, 8)


@pytest.mark.parametrize(
    ("offset", "length", "unit", "chunks"),
    [(0, 8, 4, (4, 4)), (3, 1, 4, (1,)), (3, 6, 4, (1, 4, 1)), (4, 2, 1, (1, 1))],
)
def test_region_chunks_end_on_the_write_unit_grid(offset, length, unit, chunks):
    assert _region_chunks(offset, length, unit) == chunks
