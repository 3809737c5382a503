"""Appends (issue 15): ``to_ome_zarr(obj, store, append_dim=...)`` grows every level.

Real stores on disk and real processes: append-by-append equals write-at-once for every
level and method; a reader polling in another process while a writer appends never sees an
inconsistent image; a writer killed (SIGKILL) between any two steps of an append leaves a
store that opens as before that append (or with the whole append); readers trim levels an
interrupted append has grown (rule ``uneven-levels``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import warnings
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

import xarray_ome_zarr as xoz
from xarray_ome_zarr import OmeZarrError, OmeZarrWarning

from ..fixtures.stores import ome_zarr_py_plate

DIMS = ("t", "c", "z", "y", "x")
SCALE = {"t": 2.5, "z": 1.0, "y": 0.5, "x": 0.5}


def pixels(shape=(6, 1, 4, 16, 16), dtype="uint16", high=60000, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, size=shape, dtype=dtype)


def timelapse(data: np.ndarray, first: int = 0, **kwargs) -> xr.DataArray:
    """Time points ``first`` .. of a time-lapse, with coordinates."""
    return xoz.image(data, dims=DIMS, scale=SCALE, translation={"t": SCALE["t"] * first}, **kwargs)


def open_quietly(path, **kwargs) -> xr.DataTree:
    with warnings.catch_warnings():
        warnings.simplefilter("error", OmeZarrWarning)
        return xr.open_datatree(path, engine="ome-zarr", **kwargs)


def assert_same_levels(path: Path, expected: Path, levels: int) -> None:
    got, want = open_quietly(path), open_quietly(expected)
    for k in range(levels):
        a, b = got[f"scale{k}"].to_dataset(), want[f"scale{k}"].to_dataset()
        xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    assert got.attrs == want.attrs


CASES = {
    "0.5-mean": dict(version="0.5"),
    "0.4-mean": dict(version="0.4"),
    # chunks and shards of 2 and 4 time points: the last shard is partial after each append
    "0.5-sharded": dict(
        version="0.5",
        chunks={"t": 2, "z": 1, "y": 8, "x": 8},
        shards={"t": 4, "z": 2, "y": 16, "x": 16},
    ),
    "0.5-gaussian": dict(version="0.5", method="gaussian"),
    "0.4-nearest": dict(version="0.4", method="nearest"),
}


@pytest.mark.parametrize("case", CASES)
def test_append_by_append_equals_write_at_once(tmp_path, case):
    settings = CASES[case]
    data = pixels()
    once, grown = tmp_path / "once.ome.zarr", tmp_path / "grown.ome.zarr"
    xoz.to_ome_zarr(timelapse(data), once, scale_factors=[2, 2], **settings)
    xoz.to_ome_zarr(timelapse(data[:3]), grown, scale_factors=[2, 2], **settings)
    xoz.to_ome_zarr(timelapse(data[3:4], first=3), grown, append_dim="t")  # coordinates
    last = data[4:] if case.endswith("mean") else da.from_array(data[4:], chunks=(1, 1, 2, 8, 8))
    xoz.to_ome_zarr(last, grown, append_dim="t")  # a bare array: positions continued
    assert_same_levels(grown, once, 3)
    assert zarr.open_array(grown / "0").chunks == zarr.open_array(once / "0").chunks


def test_label_images_append_with_mode(tmp_path):
    labels = pixels((4, 2, 16, 16), "uint8", high=4)
    image = lambda a, name: xoz.image(a, dims=("t", "z", "y", "x"), name=name).to_dataset()  # noqa: E731
    once, grown = tmp_path / "once.ome.zarr", tmp_path / "grown.ome.zarr"
    for path, n in ((once, 4), (grown, 2)):
        tree = xr.DataTree.from_dict(
            {
                "/scale0": image(labels[:n].astype("uint16"), "image"),
                "/labels/cells/scale0": image(labels[:n], "cells"),
            }
        )
        xoz.to_ome_zarr(tree, path, scale_factors=[2])
    xoz.to_ome_zarr(labels.astype("uint16")[2:], grown, append_dim="t")
    # a label image is appended on its own (group=): until then it has fewer time points
    assert open_quietly(grown)["labels/cells/scale0"]["cells"].sizes["t"] == 2
    xoz.to_ome_zarr(labels[2:], grown, append_dim="t", group="labels/cells")
    got, want = open_quietly(grown), open_quietly(once)
    assert got["labels/cells"].ome.group_attrs["ome"]["multiscales"][0]["type"] == "mode"
    for k in range(2):
        for node in (f"scale{k}", f"labels/cells/scale{k}"):
            xr.testing.assert_identical(got[node].to_dataset(), want[node].to_dataset())


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_append_channels_extends_omero_and_refreshes_consolidated(tmp_path, version):
    data = pixels((3, 2, 16, 16))
    image = lambda a, names: xoz.image(a, dims=DIMS[1:], channels=names)  # noqa: E731
    once, grown = tmp_path / "once.ome.zarr", tmp_path / "grown.ome.zarr"
    xoz.to_ome_zarr(image(data, ["DAPI", "GFP", "RFP"]), once, version=version, scale_factors=[2])
    xoz.to_ome_zarr(image(data[:1], ["DAPI"]), grown, version=version, scale_factors=[2],
                    consolidated=True)  # fmt: skip
    xoz.to_ome_zarr(image(data[1:], ["GFP", "RFP"]), grown, append_dim="c")
    assert_same_levels(grown, once, 2)
    consolidated = zarr.open_consolidated(grown, zarr_format=2 if version == "0.4" else 3)
    assert consolidated["1"].shape == (3, 1, 8, 8)
    assert consolidated.attrs.asdict() == zarr.open_group(once).attrs.asdict()
    with pytest.raises(OmeZarrError, match="unique"):
        xoz.to_ome_zarr(image(data[:1], ["GFP"]), grown, append_dim="c")


def test_append_along_a_shrunk_axis_in_whole_blocks(tmp_path):
    plane = pixels((1, 1, 1, 32, 16))
    scan = lambda a, y0=0: xoz.image(a, dims=DIMS, translation={"y": y0})  # noqa: E731
    once, grown = tmp_path / "once.ome.zarr", tmp_path / "grown.ome.zarr"
    xoz.to_ome_zarr(scan(plane), once, scale_factors=[{"y": 2, "x": 2}] * 2)
    xoz.to_ome_zarr(scan(plane[..., :8, :]), grown, scale_factors=[{"y": 2, "x": 2}] * 2)
    xoz.to_ome_zarr(scan(plane[..., 8:20, :], 8), grown, append_dim="y")
    xoz.to_ome_zarr(plane[..., 20:, :], grown, append_dim="y")
    assert_same_levels(grown, once, 3)
    with pytest.raises(OmeZarrError, match="multiples of 4") as caught:
        xoz.to_ome_zarr(plane[..., :6, :], grown, append_dim="y")
    assert (caught.value.store, caught.value.node, caught.value.key) == (
        str(grown),
        "/",
        "append_dim",
    )
    assert open_quietly(grown)["scale0"]["image"].sizes["y"] == 32  # nothing written


def test_refusals_name_store_node_and_key(tmp_path):
    data = pixels((3, 1, 2, 16, 16))
    path = tmp_path / "img.ome.zarr"
    xoz.to_ome_zarr(timelapse(data[:2]), path, scale_factors=[2])
    with pytest.raises(OmeZarrError, match="does not continue") as caught:
        xoz.to_ome_zarr(timelapse(data[2:], first=5), path, append_dim="t")
    assert caught.value.key == "multiscales/0/axes/0"
    shifted = timelapse(data[2:], first=2).assign_coords(x=lambda d: d.x + 1)
    with pytest.raises(OmeZarrError, match="other axes must match"):
        xoz.to_ome_zarr(shifted, path, append_dim="t")
    with pytest.raises(OmeZarrError, match="contradicts the store's pyramid"):
        xoz.to_ome_zarr(data[2:], path, append_dim="t", method="nearest")
    with pytest.raises(OmeZarrError, match=r"cast them with \.astype"):
        xoz.to_ome_zarr(data[2:].astype("float32"), path, append_dim="t")
    with pytest.raises(OmeZarrError, match="match the image along the other axes"):
        xoz.to_ome_zarr(data[2:, :, :, :8], path, append_dim="t")
    with pytest.raises(OmeZarrError, match="not an axis"):
        xoz.to_ome_zarr(data[2:], path, append_dim="w")
    with pytest.raises(OmeZarrError, match="cannot apply"):
        xoz.to_ome_zarr(data[2:], path, append_dim="t", chunks={"t": 2})
    with pytest.raises(OmeZarrError, match="compressors= cannot apply"):  # no compression
        xoz.to_ome_zarr(data[2:], path, append_dim="t", compressors=None)
    zarr.open_group(tmp_path / "plain.zarr", mode="w")
    with pytest.raises(OmeZarrError, match="no OME-Zarr metadata"):
        xoz.to_ome_zarr(data[2:], tmp_path / "plain.zarr", append_dim="t")
    assert open_quietly(path)["scale0"]["image"].sizes["t"] == 2  # nothing written


def test_the_first_append_writes_the_image(tmp_path):
    """As with xarray's to_zarr: one call in a loop, the settings taking effect the first time."""
    data = pixels((3, 1, 4, 16, 16))
    once, grown = tmp_path / "once.ome.zarr", tmp_path / "grown.ome.zarr"
    xoz.to_ome_zarr(timelapse(data), once, scale_factors=[2], chunks={"y": 8})
    for t in range(3):
        part = timelapse(data[t : t + 1], first=t)
        settings = dict(scale_factors=[2], chunks={"y": 8}) if t == 0 else {}
        xoz.to_ome_zarr(part, grown, append_dim="t", **settings)
    assert_same_levels(grown, once, 2)
    with pytest.raises(OmeZarrError, match="not a dimension"):
        xoz.to_ome_zarr(timelapse(data), tmp_path / "new.ome.zarr", append_dim="time")


@pytest.mark.parametrize(
    "layout",
    [
        dict(chunks={"t": 4, "y": 8, "x": 8}, shards={"t": 8, "y": 16, "x": 16}),
        dict(chunks=(4, 1, 2, 8, 8), chunks_per_shard={"t": 2}),
        dict(chunks={"t": 4, "y": 8, "x": 8}, version="0.4"),
    ],
)
def test_asked_chunks_and_shards_hold_when_the_first_write_is_shorter(tmp_path, layout):
    """A time-lapse started with one time point keeps the t-chunks and shards asked for
    (zarr allows chunks larger than the array), on every level: appends fill them."""
    data = pixels((5, 1, 2, 16, 16))
    path = tmp_path / "img.ome.zarr"
    xoz.to_ome_zarr(timelapse(data[:1]), path, scale_factors=[2], **layout)
    for t in range(1, 5):
        xoz.to_ome_zarr(data[t : t + 1], path, append_dim="t")
    group = zarr.open_group(path, mode="r")
    for level in ("0", "1"):
        assert group[level].chunks[0] == 4
        if layout.get("version") != "0.4":
            assert group[level].shards[0] == 8
    np.testing.assert_array_equal(group["0"][...], data)
    with pytest.raises(OmeZarrError, match="smaller than the chunks"):
        xoz.to_ome_zarr(timelapse(data[:1]), tmp_path / "b.ome.zarr", chunks={"t": 4},
                        shards={"t": 2})  # fmt: skip


def test_a_copy_of_a_short_time_lapse_keeps_its_layout(tmp_path):
    """The encoding's chunks and shards are kept as they are (a round trip keeps the layout),
    so appends to a copy fill chunks and shards as in the original."""
    data = pixels((1, 1, 2, 16, 16))
    layout = dict(chunks={"t": 4, "y": 8, "x": 8}, shards={"t": 8, "y": 16, "x": 16})
    xoz.to_ome_zarr(timelapse(data), tmp_path / "a.ome.zarr", scale_factors=[2], **layout)
    xoz.to_ome_zarr(open_quietly(tmp_path / "a.ome.zarr"), tmp_path / "b.ome.zarr")
    original, copy = (zarr.open_group(tmp_path / n, mode="r") for n in ("a.ome.zarr", "b.ome.zarr"))
    assert original["0"].shards == (8, 1, 2, 16, 16)
    for level in ("0", "1"):
        assert copy[level].chunks == original[level].chunks
        assert copy[level].shards == original[level].shards


def test_one_size_for_every_axis_is_a_cap(tmp_path):
    """``chunks=N`` names no axis: at most N along each, so a channel axis of 2 gets 2."""
    xoz.to_ome_zarr(timelapse(pixels((1, 1, 2, 16, 16))), tmp_path / "a.ome.zarr", chunks=8)
    assert zarr.open_array(tmp_path / "a.ome.zarr" / "0").chunks == (1, 1, 2, 8, 8)


def test_a_pyramid_of_unknown_type_needs_method(tmp_path):
    data = pixels((3, 1, 2, 16, 16))
    path = tmp_path / "img.ome.zarr"
    xoz.to_ome_zarr(timelapse(data[:2]), path, scale_factors=[2])
    group = zarr.open_group(path, mode="r+")
    attrs = group.attrs.asdict()
    attrs["ome"]["multiscales"][0]["type"] = "itkwasm_gaussian"
    group.attrs.put(attrs)
    with pytest.raises(OmeZarrError, match="pass method=") as caught:
        xoz.to_ome_zarr(data[2:], path, append_dim="t")
    assert caught.value.key == "multiscales/0/type"
    xoz.to_ome_zarr(data[2:], path, append_dim="t", method="mean")
    assert open_quietly(path)["scale1"]["image"].sizes["t"] == 3


def test_a_field_of_a_peers_plate_whose_levels_cannot_be_made_is_refused(tmp_path):
    """group= reaches a well's field. ome-zarr-py's level 1 of 33 x 41 pixels is 16 x 20 at
    scale 2.0625 x 2.05: no whole factor makes it, so no append could be exact."""
    spec = ome_zarr_py_plate(tmp_path, "0.5")
    part = xr.DataArray(pixels((1, 33, 41), seed=3), dims=("c", "y", "x"), coords={"c": ["GFP"]})
    with pytest.raises(OmeZarrError, match="not a whole multiple") as caught:
        xoz.to_ome_zarr(part, spec.path, group="A/2/0", append_dim="c", method="mean")
    assert (caught.value.node, caught.value.key) == (
        "/A/2/0",
        "multiscales/0/datasets/1/coordinateTransformations",
    )
    field = zarr.open_group(spec.path / "A/2/0")
    shapes = sorted(array.shape for _, array in field.arrays())
    assert shapes == [(2, 16, 20), (2, 33, 41)]  # untouched


def test_a_field_of_a_plate_grows_through_group(tmp_path):
    """group= reaches a well's field: it grows as an image does; plate and well stay."""
    data = pixels()

    def plate(part: np.ndarray) -> xr.DataTree:
        tree = xr.DataTree.from_dict({"A/1/0": timelapse(part).to_dataset(name="image")})
        tree.attrs = {
            "ome": {
                "version": "0.5",
                "plate": {
                    "rows": [{"name": "A"}],
                    "columns": [{"name": "1"}],
                    "wells": [{"path": "A/1", "rowIndex": 0, "columnIndex": 0}],
                },
            }
        }
        tree["A/1"].attrs = {"ome": {"version": "0.5", "well": {"images": [{"path": "0"}]}}}
        return tree

    once, grown = tmp_path / "once.ome.zarr", tmp_path / "grown.ome.zarr"
    xoz.to_ome_zarr(plate(data), once, scale_factors=[2])
    xoz.to_ome_zarr(plate(data[:3]), grown, scale_factors=[2])
    xoz.to_ome_zarr(timelapse(data[3:], first=3), grown, group="A/1/0", append_dim="t")
    got, want = open_quietly(grown), open_quietly(once)
    for k in range(2):
        node = f"A/1/0/scale{k}"
        xr.testing.assert_identical(got[node].to_dataset(), want[node].to_dataset())
    assert (got.attrs, got["A/1"].attrs) == (want.attrs, want["A/1"].attrs)
    assert xoz.validate(grown, strict=True) == []


# ---- readers during and after interrupted appends --------------------------------------
def test_reader_trims_levels_an_append_has_grown(tmp_path):
    path = tmp_path / "img.ome.zarr"
    xoz.to_ome_zarr(timelapse(pixels((3, 1, 2, 16, 16))), path, scale_factors=[2])
    zarr.open_array(path / "1", mode="r+").resize((5, 1, 1, 8, 8))  # as a killed append
    with pytest.warns(OmeZarrWarning, match="uneven-levels") as caught:
        tree = xr.open_datatree(path, engine="ome-zarr")
    warning = next(w.message for w in caught if getattr(w.message, "rule", None))
    assert (warning.store, warning.node, warning.key, warning.rule) == (
        str(path),
        "/",
        "multiscales/0/datasets/1/path",
        "uneven-levels",
    )
    assert tree["scale1"]["image"].sizes["t"] == 3
    assert tree["scale1"]["t"].values.tolist() == [0.0, 2.5, 5.0]
    with pytest.warns(OmeZarrWarning, match="uneven-levels"):
        level = xr.open_dataset(path, engine="ome-zarr", level=1)
    assert level["image"].shape == (3, 1, 1, 8, 8)
    assert level["image"].values.shape == (3, 1, 1, 8, 8)
    with pytest.raises(OmeZarrError, match="uneven-levels"):
        xr.open_datatree(path, engine="ome-zarr", strict=True)
    assert any(p.rule == "uneven-levels" for p in xoz.validate(path))


def _append_in_child(
    path: Path, stop_at: str, start: int, count: int, steps: Any, pause: float = 0.0
) -> None:
    """Append time points ``start``.. one at a time (``pause`` seconds apart, as a camera
    would), saying each step; hang at ``stop_at``."""
    from xarray_ome_zarr import append

    def hook(step: str) -> None:
        steps.put(step)
        if step == stop_at:
            time.sleep(120)  # killed here

    append.step_hook = hook
    data = pixels()
    for t in range(start, start + count):
        time.sleep(pause)
        xoz.to_ome_zarr(data[t : t + 1], path, append_dim="t")
    steps.put("done")


@pytest.fixture(scope="module")
def spawn() -> Any:
    """Starts real child processes quickly: forked from a server that imported this module."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "xarray_ome_zarr.append", "xarray_ome_zarr.writer"])

    def start(path: Path, stop_at: str, first: int, count: int, pause: float = 0.0) -> Any:
        steps = context.Queue()
        args = (path, stop_at, first, count, steps, pause)
        child = context.Process(target=_append_in_child, args=args)
        child.start()
        return child, steps

    return start


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> xr.DataTree:
    """The image of 6 time points written at once, loaded."""
    path = tmp_path_factory.mktemp("expected") / "once.ome.zarr"
    xoz.to_ome_zarr(timelapse(pixels()), path, scale_factors=[2, 2])
    return open_quietly(path).load()


def _check_prefix(tree: xr.DataTree, expected: xr.DataTree, lengths: set[int]) -> int:
    """Every level holds the first time points of ``expected``; returns how many."""
    sizes = {tree[f"scale{k}"]["image"].sizes["t"] for k in range(3)}
    assert len(sizes) == 1, sizes
    (n,) = sizes
    assert n in lengths, (n, lengths)
    for k in range(3):
        got = tree[f"scale{k}"].to_dataset()
        want = expected[f"scale{k}"].to_dataset().isel(t=slice(0, n))
        xr.testing.assert_identical(got.drop_attrs(), want.drop_attrs())
    return n


@pytest.mark.parametrize("stop_at", ["chunks", "shape:1", "shape:0"])
def test_sigkill_between_steps_leaves_a_store_that_opens(tmp_path, expected, spawn, stop_at):
    path = tmp_path / "img.ome.zarr"
    xoz.to_ome_zarr(timelapse(pixels()[:3]), path, scale_factors=[2, 2])
    child, steps = spawn(path, stop_at, 3, 1)
    try:
        while (step := steps.get(timeout=120)) != stop_at:
            assert step != "done", "the child ended before the step"
        os.kill(child.pid, signal.SIGKILL)
        child.join(60)
        assert child.exitcode == -signal.SIGKILL
    finally:
        child.kill()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OmeZarrWarning)  # uneven-levels between shapes
        tree = xr.open_datatree(path, engine="ome-zarr")
    appended = stop_at == "shape:0"
    assert _check_prefix(tree, expected, {4 if appended else 3}) == (4 if appended else 3)
    # the next append starts from what opens, and the store ends as if written at once
    xoz.to_ome_zarr(pixels()[3 + appended :], path, append_dim="t")
    assert_same_levels_tree(open_quietly(path), expected)


def assert_same_levels_tree(tree: xr.DataTree, expected: xr.DataTree) -> None:
    for k in range(3):
        xr.testing.assert_identical(
            tree[f"scale{k}"].to_dataset().drop_attrs(),
            expected[f"scale{k}"].to_dataset().drop_attrs(),
        )


def test_a_reader_polling_while_appends_run_sees_whole_time_points(tmp_path, expected, spawn):
    path = tmp_path / "img.ome.zarr"
    xoz.to_ome_zarr(timelapse(pixels()[:1]), path, scale_factors=[2, 2])
    child, _ = spawn(path, "never", 1, 5, pause=0.5)
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while child.is_alive() and time.monotonic() < deadline:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OmeZarrWarning)  # uneven-levels mid-append
                tree = xr.open_datatree(path, engine="ome-zarr")
            seen.add(_check_prefix(tree, expected, set(range(1, 7))))
            time.sleep(0.01)
        child.join(60)
    finally:
        child.kill()
    assert child.exitcode == 0
    assert _check_prefix(open_quietly(path), expected, {6}) == 6
    assert len(seen) >= 2, seen  # the reader saw the image grow


def test_peers_read_the_appended_store_as_written_at_once(tmp_path):
    ngff_zarr = pytest.importorskip("ngff_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    data = pixels()
    for version in ("0.4", "0.5"):
        once, grown = tmp_path / f"once-{version}", tmp_path / f"grown-{version}"
        xoz.to_ome_zarr(timelapse(data), once, scale_factors=[2, 2], version=version)
        xoz.to_ome_zarr(timelapse(data[:2]), grown, scale_factors=[2, 2], version=version)
        for t in range(2, 6):
            xoz.to_ome_zarr(data[t : t + 1], grown, append_dim="t")
        a, b = (ngff_zarr.from_ngff_zarr(str(p), validate=True) for p in (grown, once))
        for x, y in zip(a.images, b.images, strict=True):
            np.testing.assert_array_equal(np.asarray(x.data), np.asarray(y.data))
            assert (x.scale, x.translation) == (y.scale, y.translation)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (a_node, *_), (b_node, *_) = (list(Reader(parse_url(str(p)))()) for p in (grown, once))
        for x, y in zip(a_node.data, b_node.data, strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
