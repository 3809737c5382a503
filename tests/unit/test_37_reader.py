"""The reader's walk of a hierarchy (``hierarchy.Walker`` raising, ``reader.NodeReader``):
each node parsed once, one round trip per node, the first problem raised with its key."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest
import xarray as xr
import zarr

from xarray_ome_zarr import OmeZarrError, hierarchy
from xarray_ome_zarr.hierarchy import Findings, Walker

from ..conftest import write_hand_image
from ..fixtures.labels import add_labels

VERSIONS = ["0.4", "0.5"]


def _image_with_labels(tmp_path, version):
    path = tmp_path / f"image-{version}.ome.zarr"
    write_hand_image(path, version)
    labels = {name: np.zeros((5, 13, 11), "uint8") for name in ("nuclei", "cells")}
    add_labels(path, version, labels)
    return path


@pytest.mark.parametrize("version", VERSIONS)
def test_each_node_is_parsed_once(version, tmp_path, monkeypatch):
    path = _image_with_labels(tmp_path, version)
    parsed: Counter[str] = Counter()
    real = hierarchy.parse_node

    def counting(attrs, where="", **kwargs):
        parsed[where.rsplit("node ", 1)[-1]] += 1
        return real(attrs, where, **kwargs)

    monkeypatch.setattr(hierarchy, "parse_node", counting)
    tree = xr.open_datatree(path, engine="ome-zarr")
    assert set(tree["labels"].children) == {"nuclei", "cells"}
    assert parsed == {"'/'": 1, "'/labels'": 1, "'/labels/nuclei'": 1, "'/labels/cells'": 1}


@pytest.mark.parametrize("version", VERSIONS)
def test_one_fetch_of_members_per_node(version, tmp_path, monkeypatch):
    """A label's dtype is checked on the levels fetched for reading: no extra round trip."""
    path = _image_with_labels(tmp_path, version)
    fetched: list[tuple[str, tuple[str, ...]]] = []
    real = hierarchy.fetch_members

    def recording(group, paths):
        fetched.append((group.path, tuple(paths)))
        return real(group, paths)

    monkeypatch.setattr(hierarchy, "fetch_members", recording)
    xr.open_datatree(path, engine="ome-zarr")
    assert sorted(fetched) == sorted(
        [
            ("", ("0", "1", "labels")),
            ("labels", ("nuclei", "cells")),
            ("labels/nuclei", ("0", "1", "labels")),
            ("labels/cells", ("0", "1", "labels")),
        ]
    )


def _two_missing_levels(tmp_path, version):
    path = tmp_path / f"image-{version}.ome.zarr"
    write_hand_image(path, version)
    shutil.rmtree(path / "0")
    shutil.rmtree(path / "1")
    return path


@pytest.mark.parametrize("version", VERSIONS)
def test_reading_raises_at_the_first_problem(version, tmp_path):
    path = _two_missing_levels(tmp_path, version)
    walker = Walker(Findings(str(path), collect=False))
    with pytest.raises(OmeZarrError) as caught:
        walker.walk(zarr.open_group(path, mode="r"))
    message = str(caught.value)
    assert message == (
        f"store {str(path)!r}, node '/': multiscales/0/datasets/0/path: "
        "'0' names no array in the store"
    )
    assert isinstance(caught.value.__cause__, KeyError | FileNotFoundError)
    assert (caught.value.store, caught.value.node) == (str(path), "/")
    assert caught.value.key == "multiscales/0/datasets/0/path"


@pytest.mark.parametrize("version", VERSIONS)
def test_collecting_lists_every_problem(version, tmp_path):
    path = _two_missing_levels(tmp_path, version)
    findings = Findings(str(path), collect=True)
    Walker(findings).walk(zarr.open_group(path, mode="r"))
    assert [(p.node, p.key) for p in findings.problems] == [
        ("/", "multiscales/0/datasets/0/path"),
        ("/", "multiscales/0/datasets/1/path"),
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_walk_returns_the_tree_of_nodes(version, tmp_path):
    path = _image_with_labels(tmp_path, version)
    root = Walker(Findings(str(path), collect=False)).walk(zarr.open_group(path, mode="r"))
    assert root is not None and root.path == ""
    assert [a.shape for a in root.levels] == [(2, 5, 13, 11), (2, 5, 7, 6)]
    labels = root.children["labels"]
    assert list(labels.children) == ["nuclei", "cells"]
    nuclei = labels.children["nuclei"]
    assert nuclei.path == "labels/nuclei"
    assert nuclei.meta is not None and nuclei.meta.image_label is not None
    assert [a.dtype for a in nuclei.levels] == [np.dtype("uint8")] * 2


def test_error_text_names_store_node_and_key():
    findings = Findings("s.zarr", collect=False)
    err = findings.exception("labels/a", "multiscales/0", "is wrong")
    assert str(err) == "store 's.zarr', node '/labels/a': multiscales/0: is wrong"
    assert str(findings.exception("", "<root>", "no metadata")) == (
        "store 's.zarr', node '/': no metadata"
    )


def test_every_dimension_coordinate_gets_its_default_index():
    """The reader's groups carry every index xarray's open_datatree would add, so the pass
    that adds them can be skipped (``xoz.open_ome_datatree``)."""
    from xarray_ome_zarr.reader import with_default_indexes

    bare = xr.Coordinates({"x": np.arange(3.0)}, indexes={})
    ds = xr.Dataset({"v": ("x", np.zeros(3))}, coords=bare)
    assert "x" not in ds.xindexes
    indexed = with_default_indexes(ds)
    assert isinstance(indexed.xindexes["x"], xr.indexes.PandasIndex)
    xr.testing.assert_identical(indexed.drop_indexes("x"), ds)
    complete = xr.Dataset({"v": ("x", np.zeros(3))}, coords={"x": np.arange(3.0)})
    assert with_default_indexes(complete) is complete
