"""Stores written by ngff-zarr, ome-zarr-py and by hand (0.1-0.5) read back exactly."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from ..fixtures import stores

WRITERS = stores.STORE_WRITERS


@pytest.fixture(scope="module", params=list(WRITERS))
def store(request, tmp_path_factory) -> stores.StoreSpec:
    return WRITERS[request.param](tmp_path_factory.mktemp(request.param))


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def _ome(attrs: dict) -> dict:
    return attrs.get("ome", attrs)


def test_tree_matches_what_was_written(store):
    dt = xr.open_datatree(store.path, engine="ome-zarr")
    for node, image in store.images.items():
        image_node = dt[node] if node else dt
        assert set(f"scale{i}" for i in range(len(image.levels))) <= set(image_node.children)
        for i, level in enumerate(image.levels):
            ds = image_node[f"scale{i}"].to_dataset()
            assert ds.attrs["ome_dataset_path"] == level.path
            (name,) = ds.data_vars
            if image.name and "/" not in image.name:
                assert name == image.name
            da = ds[name]
            assert da.dims == image.dims
            assert da.shape == level.shape
            assert da.dtype == level.dtype
            np.testing.assert_array_equal(da.values, level.data)
            for axis, axis_type, unit in image.axes:
                if axis_type in ("space", "time"):
                    expected = level.translation[axis] + level.scale[axis] * np.arange(
                        level.shape[image.dims.index(axis)]
                    )
                    np.testing.assert_allclose(ds[axis].values, expected, rtol=1e-12)
                    assert ds[axis].attrs.get("units") == unit
                    assert ds[axis].attrs["scale"] == pytest.approx(level.scale[axis])
            if image.channel_names:
                assert list(ds["c"].values) == image.channel_names
        attrs = _ome(image_node.ome.group_attrs)
        if image.omero is not None:
            assert attrs["omero"] == image.omero
        if image.is_label:
            label = attrs["image-label"]
            if image.colors is not None:
                assert label["colors"] == image.colors
            if image.properties is not None:
                assert label["properties"] == image.properties
    for parent, names in store.labels.items():
        labels_node = dt[_join(parent, "labels")]
        assert set(names) <= set(labels_node.children)
    if store.plate is not None:
        assert _ome(dt.ome.group_attrs)["plate"] == store.plate
        for well_path, well in (store.wells or {}).items():
            assert _ome(dt[well_path].ome.group_attrs)["well"] == well
    if store.series is not None:
        assert _ome(dt["OME"].ome.group_attrs)["series"] == store.series
        assert set(store.series) <= set(dt.children)


def test_each_level_opens_as_a_dataset(store):
    for node, image in store.images.items():
        for i, level in enumerate(image.levels):
            ds = xr.open_dataset(store.path, engine="ome-zarr", group=node or None, level=i)
            (name,) = ds.data_vars
            np.testing.assert_array_equal(ds[name].values, level.data)
            chunked = xr.open_dataset(
                store.path, engine="ome-zarr", group=node or None, level=i, chunks={}
            )
            expected = level.shards or level.chunks
            if expected is not None:
                assert chunked[name].data.chunksize == tuple(
                    min(c, s) for c, s in zip(expected, level.shape, strict=True)
                )
            np.testing.assert_array_equal(chunked[name].compute().values, level.data)
