"""Caps on metadata lists and on dask blocks."""

from __future__ import annotations

import math

import pytest

from xarray_ome_zarr import OmeZarrError
from xarray_ome_zarr.ngff.limits import (
    MAX_DASK_BLOCKS,
    MAX_LEVELS,
    check_list_lengths,
    dask_chunks,
    remember_bounded,
)
from xarray_ome_zarr.ngff.parse import parse_node


def test_normal_arrays_keep_their_chunks() -> None:
    assert dask_chunks((2, 5, 2048, 2048), (1, 1, 256, 256)) == (1, 1, 256, 256)


@pytest.mark.parametrize(
    ("shape", "chunks"),
    [((10**9, 10**9), (1024, 1024)), ((2**62, 2**62), (1, 1)), ((10**7, 3), (1, 1))],
)
def test_huge_arrays_get_whole_multiples_of_their_chunks(shape, chunks) -> None:
    grown = dask_chunks(shape, chunks)
    assert all(g % c == 0 and g <= max(n, c) for g, c, n in zip(grown, chunks, shape, strict=True))
    assert math.prod(-(-n // g) for n, g in zip(shape, grown, strict=True)) <= MAX_DASK_BLOCKS


def test_lists_beyond_their_cap_are_refused_before_validation() -> None:
    datasets = [{"path": "0"}] * (MAX_LEVELS + 1)
    attrs = {"ome": {"version": "0.5", "multiscales": [{"axes": [], "datasets": datasets}]}}
    with pytest.raises(OmeZarrError, match="multiscales/0/datasets: lists 65 entries") as err:
        parse_node(attrs, "store 's', node '/'")
    assert err.value.key == "multiscales/0/datasets"
    check_list_lengths({"plate": {"wells": [{}] * 10}}, "here")  # under the cap


def test_remember_bounded_drops_the_oldest_for_a_new_key_only():
    memo: dict[str, int] = {}
    for n, key in enumerate("abc"):
        remember_bounded(memo, key, n, most=3)
    remember_bounded(memo, "b", 10, most=3)  # a known key: nothing dropped
    assert memo == {"a": 0, "b": 10, "c": 2}
    remember_bounded(memo, "d", 3, most=3)  # a new key: the oldest goes
    assert list(memo) == ["b", "c", "d"]
