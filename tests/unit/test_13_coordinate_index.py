"""The lazy pixel-centre index against the pandas index of the same values."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from xarray.indexes import PandasIndex

from xarray_ome_zarr.coordinate_index import (
    LABEL_RTOL,
    PixelCentreIndex,
    exact_geometry,
    materialized,
    pixel_centre_coordinates,
)
from xarray_ome_zarr.transforms import coordinate_values

ATTRS = {"axis_type": "space", "units": "micrometer", "scale": 0.325}


def pair(size: int, scale: float, translation: float) -> tuple[xr.DataArray, xr.DataArray]:
    """The same 1-D array with a lazy and with a materialised ``x``."""
    data = np.arange(size, dtype=np.float64) * 10
    lazy = xr.DataArray(
        data, dims="x", coords=pixel_centre_coordinates(size, scale, translation, "x", ATTRS)
    )
    values = coordinate_values(size, scale, translation)
    eager = xr.DataArray(data, dims="x", coords={"x": ("x", values, ATTRS)})
    return lazy, eager


def outcome(fn, da: xr.DataArray):
    try:
        return fn(da), None
    except (KeyError, ValueError, IndexError, NotImplementedError, TypeError) as err:
        return None, type(err)


def same(lazy: xr.DataArray, eager: xr.DataArray) -> None:
    """Same data and coordinate values, bit for bit; attrs kept."""
    np.testing.assert_array_equal(lazy.values, eager.values)
    assert lazy.dims == eager.dims
    for name in eager.coords:
        np.testing.assert_array_equal(lazy[name].values, eager[name].values)
        assert lazy[name].attrs == eager[name].attrs


geometry = st.tuples(
    st.integers(0, 40),
    st.floats(0.01, 100).map(lambda s: round(s, 3)) | st.sampled_from([0.325, 0.1, 1.0, 2.5]),
    st.floats(-1000, 1000).map(lambda t: round(t, 2)),
)
isel_first = st.one_of(
    st.none(),
    st.builds(
        slice,
        st.none() | st.integers(-50, 50),
        st.none() | st.integers(-50, 50),
        st.none() | st.integers(-5, 5).filter(lambda s: s != 0),
    ),
)


@st.composite
def label(draw, values: np.ndarray) -> float:
    if values.size and draw(st.booleans()):
        return float(draw(st.sampled_from(list(values))))
    low = float(values.min()) - 5 if values.size else -5.0
    high = float(values.max()) + 5 if values.size else 5.0
    return draw(st.floats(low, high))


# about 20 selections compared per example: its number of examples comes from the profile
# (tests/conftest.py: 50 in the suite, 500 with HYPOTHESIS_PROFILE=thorough)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geometry, isel_first, st.data())
def test_selection_matches_materialised(geom, first, data) -> None:
    lazy, eager = pair(*geom)
    if first is not None:
        lazy, eager = lazy.isel(x=first), eager.isel(x=first)
        same(lazy, eager)
    values = eager.x.values
    increasing = values.size < 2 or values[1] > values[0]
    ops = []
    a, b = data.draw(label(values)), data.draw(label(values))
    step = data.draw(st.none() | st.integers(1, 3))
    ops.append(("slice", lambda d: d.sel(x=slice(a, b, step))))
    ops.append(("open slice", lambda d: d.sel(x=slice(a, None))))
    ops.append(("open slice", lambda d: d.sel(x=slice(None, b))))
    if increasing:
        tol = data.draw(st.none() | st.floats(0, 10))
        for method in ("nearest", "pad", "ffill", "backfill", "bfill"):
            ops.append(("method", lambda d, m=method: d.sel(x=a, method=m, tolerance=tol)))
            ops.append(("method", lambda d, m=method: d.sel(x=[a, b], method=m)))
    ops.append(("label", lambda d: d.sel(x=a)))
    ops.append(("labels", lambda d: d.sel(x=[a, b])))
    positions = data.draw(st.lists(st.integers(0, max(values.size - 1, 0)), max_size=6))
    if values.size:
        ops.append(("isel list", lambda d: d.isel(x=positions)))
        mask = data.draw(st.lists(st.booleans(), min_size=values.size, max_size=values.size))
        ops.append(("mask", lambda d: d.isel(x=np.array(mask, dtype=bool))))
        second = data.draw(isel_first.filter(lambda s: s is not None))
        ops.append(("isel slice", lambda d: d.isel(x=second)))
    for kind, op in ops:
        got, got_err = outcome(op, lazy)
        want, want_err = outcome(op, eager)
        if kind.startswith("label") and want_err is not None and got_err is None:
            # lazy labels match a pixel centre within a tolerance; pandas only exactly
            distance = np.abs(np.atleast_1d(got.x.values) - np.atleast_1d([a, b][: got.size]))
            assert np.all(distance <= LABEL_RTOL * abs(geom[1]) * 8), kind
            continue
        assert (got_err is None) == (want_err is None), (kind, got_err, want_err)
        if want_err is None:
            same(got, want)


@settings(max_examples=100, deadline=None)
@given(geometry, st.data())
def test_nearest_slices_snap_each_end(geom, data) -> None:
    lazy, eager = pair(*geom)
    values = eager.x.values
    a, b = data.draw(label(values)), data.draw(label(values))
    got = lazy.sel(x=slice(a, b), method="nearest")
    half = geom[1] / 2
    # every pixel whose centre is within half a pixel of [a, b]; ties may go either way
    surely = np.flatnonzero((values > a - half * 0.999) & (values < b + half * 0.999))
    maybe = np.flatnonzero((values >= a - half * 1.001) & (values <= b + half * 1.001))
    picked = np.flatnonzero(np.isin(values, got.x.values))
    assert set(surely) <= set(picked) <= set(maybe)
    np.testing.assert_array_equal(got.values, eager.values[picked])


def test_user_slices_keep_both_ends() -> None:
    lazy, eager = pair(100, 2.0, 0.0)
    got = lazy.sel(x=slice(4.0, 20.0))
    same(got, eager.sel(x=slice(4.0, 20.0)))
    assert got.x.values[[0, -1]].tolist() == [4.0, 20.0]
    assert isinstance(got.xindexes["x"], PixelCentreIndex)


@pytest.mark.parametrize("bounds", [(0.0, 1.0), (None, 1.0), (1.0, None), (1.0, 0.0)])
def test_reversed_single_pixel_selects_as_pandas(bounds) -> None:
    """One pixel has no direction: a reversing isel leaves label slices as pandas does them
    (found by the property test: slice(0.0, 1.0) gave nothing on a reversed one-pixel axis)."""
    lazy, eager = pair(1, 1.0, 1.0)
    lazy, eager = lazy.isel(x=slice(None, None, -1)), eager.isel(x=slice(None, None, -1))
    same(lazy.sel(x=slice(*bounds)), eager.sel(x=slice(*bounds)))


def test_label_matches_within_a_fraction_of_a_pixel() -> None:
    lazy, _ = pair(10, 0.325, 0.0)
    assert lazy.sel(x=0.975).item() == 30  # 0.325 * 3 is 0.9750000000000001
    with pytest.raises(KeyError, match="not all values found"):
        lazy.sel(x=0.9)
    with pytest.raises(KeyError):
        lazy.sel(x=100.0)


def test_isel_steps_stay_lazy_and_exact() -> None:
    lazy, eager = pair(50, 0.325, 1.5)
    for key in (slice(3, None, 2), slice(None, None, -1), slice(40, 2, -3), [1, 3, 5]):
        got = lazy.isel(x=key)
        same(got, eager.isel(x=key))
        assert isinstance(got.xindexes["x"], PixelCentreIndex)
    uneven = lazy.isel(x=[0, 1, 5])
    assert type(uneven.xindexes["x"]) is PandasIndex
    masked = lazy.where(lazy > 100, drop=True)
    same(masked, eager.where(eager > 100, drop=True))


def test_geometry_is_exact() -> None:
    lazy, _ = pair(10**6, 0.1, 0.2)
    assert exact_geometry(lazy.x) == (0.1, 0.2)
    assert exact_geometry(lazy.isel(x=slice(3, None)).x) == (0.1, 0.5)
    assert exact_geometry(lazy.isel(x=slice(None, None, 3)).x) == (0.3, 0.2)
    assert exact_geometry(materialized(lazy).x) is None


def test_alignment_between_tiles() -> None:
    whole, eager = pair(30, 0.5, 0.0)
    left, right = whole.isel(x=slice(0, 20)), whole.isel(x=slice(10, None))
    for join in ("inner", "outer", "left", "right"):
        got = xr.align(left, right, join=join)
        want = xr.align(eager.isel(x=slice(0, 20)), eager.isel(x=slice(10, None)), join=join)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g.x.values, w.x.values)
            np.testing.assert_array_equal(g.values, w.values)
            assert isinstance(g.xindexes["x"], PixelCentreIndex)
    total = left + right
    same(total, eager.isel(x=slice(0, 20)) + eager.isel(x=slice(10, None)))
    # tiles with a gap: the outer join is not evenly spaced
    gap = xr.align(whole.isel(x=slice(0, 5)), whole.isel(x=slice(10, 15)), join="outer")
    assert type(gap[0].xindexes["x"]) is PandasIndex
    assert gap[0].sizes["x"] == 10


def test_concat_and_combine_tiles() -> None:
    whole, eager = pair(30, 0.5, 2.0)
    tiles = [whole.isel(x=slice(i, i + 10)) for i in (0, 10, 20)]
    joined = xr.concat(tiles, "x")
    same(joined, eager)
    assert isinstance(joined.xindexes["x"], PixelCentreIndex)
    combined = xr.combine_by_coords([t.to_dataset(name="v") for t in reversed(tiles)])
    np.testing.assert_array_equal(combined.x.values, eager.x.values)
    assert isinstance(combined.xindexes["x"], PixelCentreIndex)
    apart = xr.concat([tiles[0], tiles[2]], "x")
    assert type(apart.xindexes["x"]) is PandasIndex
    np.testing.assert_array_equal(apart.x.values, eager.x.values[[*range(10), *range(20, 30)]])
    mixed = xr.concat([tiles[0], materialized(tiles[1])], "x")
    np.testing.assert_array_equal(mixed.x.values, eager.x.values[:20])


def test_arithmetic_with_materialised_arrays() -> None:
    lazy, eager = pair(12, 0.25, 1.0)
    same(lazy * 2 + eager, eager * 2 + eager)
    same(lazy - lazy.mean(), eager - eager.mean())


def test_pickle_roundtrip_keeps_the_index() -> None:
    lazy, _ = pair(7, 0.3, 0.1)
    back = pickle.loads(pickle.dumps(lazy.isel(x=slice(1, None, 2))))
    assert isinstance(back.xindexes["x"], PixelCentreIndex)
    assert exact_geometry(back.x) == exact_geometry(lazy.isel(x=slice(1, None, 2)).x)
    xr.testing.assert_identical(back, lazy.isel(x=slice(1, None, 2)))


def test_huge_axis_costs_nothing() -> None:
    size = 10**12
    coords = pixel_centre_coordinates(size, 0.5, 0.0, "x", ATTRS)
    ds = xr.Dataset(coords=coords)
    assert "PixelCentreIndex" in repr(ds)
    part = ds.sel(x=slice(1e6, 1e6 + 4))
    assert part.x.values.tolist() == [
        1e6,
        1e6 + 0.5,
        1e6 + 1,
        1e6 + 1.5,
        1e6 + 2,
        1e6 + 2.5,
        1e6 + 3,
        1e6 + 3.5,
        1e6 + 4,
    ]
    assert ds.sel(x=4e11 + 0.5).x.item() == 4e11 + 0.5
    assert ds.isel(x=-1).x.item() == (size - 1) * 0.5


def test_set_xindex_from_values() -> None:
    _, eager = pair(9, 0.5, 3.0)
    lazy = eager.drop_indexes("x").set_xindex("x", PixelCentreIndex)
    assert exact_geometry(lazy.x) == (0.5, 3.0)
    same(lazy, eager)


def test_plot_uses_units() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    lazy, _ = pair(5, 0.5, 0.0)
    lines = lazy.plot()
    assert "micrometer" in lines[0].axes.get_xlabel()
    matplotlib.pyplot.close("all")


def test_assume_is_used() -> None:  # keeps hypothesis' assume imported for future filters
    assume(True)
