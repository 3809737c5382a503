"""to_ome_zarr under dask.distributed: a multi-process LocalCluster writes the same bytes.

One cluster for the module (2 worker processes, 1 thread each), closed at the end. The
baseline writes run on dask's local threads (``dask.config.set(scheduler="threads")``).
"""

from __future__ import annotations

import contextlib
import pickle
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

import xarray_ome_zarr as xoz
from xarray_ome_zarr import OmeZarrError
from xarray_ome_zarr.targets import distributed_client, pixel_writes
from xarray_ome_zarr.writer import Options, make_plan

from ..servers import cluster_client, s3_server

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.timeout(120)

SHAPE = (2, 8, 256, 240)
#: (version, chunks, shards) of the writes compared with and without the cluster.
LAYOUTS = [
    ("0.5", {"z": 4, "y": 64, "x": 64}, None),
    ("0.5", {"z": 4, "y": 32, "x": 32}, {"y": 128, "x": 128}),
    ("0.4", {"z": 4, "y": 64, "x": 64}, None),
]


@pytest.fixture(scope="module")
def client():
    with cluster_client(n_workers=2, threads_per_worker=1) as client:
        yield client


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """An image on disk, stored in chunks of (1, 4, 128, 128): its dask blocks are whole
    chunks or shards of every layout written, so level 0 is written by many tasks."""
    path = tmp_path_factory.mktemp("source") / "source.ome.zarr"
    data = np.random.default_rng(0).integers(0, 60000, SHAPE, dtype=np.uint16)
    coords = {
        d: (d, s * np.arange(n), {"units": "micrometer"})
        for d, n, s in zip("zyx", SHAPE[1:], (2.0, 0.5, 0.5), strict=True)
    }
    image = xr.DataArray(data, dims=("c", "z", "y", "x"), coords=coords, name="cells")
    with dask.config.set(scheduler="threads"):
        xoz.to_ome_zarr(image, path, chunks={"z": 4, "y": 128, "x": 128})
    return path


def lazy(source: Path) -> xr.Dataset:
    """The source opened lazily: dask blocks over the reader's picklable zarr arrays."""
    return xr.open_dataset(source, engine="ome-zarr", chunks={})


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# ---- the same bytes ------------------------------------------------------------------------
@pytest.mark.parametrize(("version", "chunks", "shards"), LAYOUTS)
def test_a_cluster_writes_the_same_bytes(client, source, tmp_path, version, chunks, shards):
    kwargs = {"version": version, "scale_factors": [2, 2], "chunks": chunks, "shards": shards}
    with dask.config.set(scheduler="threads"):
        assert distributed_client() is None
        xoz.to_ome_zarr(lazy(source), tmp_path / "local.ome.zarr", **kwargs)
    assert distributed_client() is client
    with distributed.get_task_stream(client) as stream:
        xoz.to_ome_zarr(lazy(source), tmp_path / "cluster.ome.zarr", **kwargs)
    writes = [t for t in stream.data if "store-map" in str(t["key"])]
    assert len(writes) >= 8  # level 0 alone: 2 x 2 x 2 x 2 blocks
    assert {t["worker"] for t in writes} <= set(client.scheduler_info()["workers"])
    local, cluster = files(tmp_path / "local.ome.zarr"), files(tmp_path / "cluster.ome.zarr")
    assert sorted(cluster) == sorted(local)
    assert [k for k in local if cluster[k] != local[k]] == []
    assert len([k for k in local if not k.endswith(("zarr.json", ".zarray", ".zattrs"))]) > 10
    tree = xr.open_datatree(tmp_path / "cluster.ome.zarr", engine="ome-zarr")
    np.testing.assert_array_equal(tree["scale0"]["cells"].values, lazy(source)["cells"].values)


def test_a_cluster_writes_numpy_pixels_the_same(client, tmp_path):
    """In-memory pixels reach the workers as views of the caller's array (pickled with the
    graph); empty chunks are left out on the workers as they are locally."""
    data = np.zeros(SHAPE, dtype=np.uint16)
    data[:, :4, :100, 50:] = np.random.default_rng(1).integers(1, 900, (2, 4, 100, 190))
    image = xr.DataArray(data, dims=("c", "z", "y", "x"), name="cells")
    kwargs = {"scale_factors": [2], "chunks": {"z": 4, "y": 64, "x": 64}}
    with dask.config.set(scheduler="threads"):
        xoz.to_ome_zarr(image, tmp_path / "local.ome.zarr", **kwargs)
    xoz.to_ome_zarr(image, tmp_path / "cluster.ome.zarr", **kwargs)
    local, cluster = files(tmp_path / "local.ome.zarr"), files(tmp_path / "cluster.ome.zarr")
    assert cluster == local
    level0 = [k for k in local if k.startswith("0/c/")]
    assert 0 < len(level0) < 2 * 2 * 4 * 4  # the empty chunks are not there


def test_an_object_store_written_by_the_cluster(client, source, tmp_path):
    """The set-up for a real cluster: every worker writes straight to S3 (moto here)."""
    kwargs = {"scale_factors": [2], "chunks": {"z": 4, "y": 128, "x": 128}, "consolidated": True}
    with s3_server() as s3:
        url = f"{s3.make_bucket('cluster')}/img.ome.zarr"
        xoz.to_ome_zarr(lazy(source), url, storage_options=s3.storage_options, **kwargs)
        with dask.config.set(scheduler="threads"):
            xoz.to_ome_zarr(lazy(source), tmp_path / "local.ome.zarr", **kwargs)
        fs = s3.filesystem()
        written = {k.removeprefix("cluster/img.ome.zarr/"): fs.cat_file(k) for k in fs.find(url)}
    assert written == files(tmp_path / "local.ome.zarr")


# ---- why it is safe: whole chunks or shards per task, a graph that pickles -----------------
def units_of_blocks(sizes: tuple[int, ...], unit: int) -> list[range]:
    """The chunk (or shard) indices along one axis that each dask block writes to."""
    edges = np.cumsum((0,) + sizes)
    return [range(a // unit, -(-b // unit)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


@pytest.mark.parametrize(("version", "chunks", "shards"), LAYOUTS)
@pytest.mark.parametrize("blocks", [(1, 7, 300, 300), (2, 8, 1024, 1024)])
def test_no_two_tasks_write_the_same_chunk_or_shard(version, chunks, shards, blocks):
    """Planned, not computed: a lazy 1 GiB image, in blocks that fit the layout or not."""
    data = da.zeros((2, 64, 2048, 2048), dtype=np.uint16, chunks=blocks)
    image = xr.DataArray(data, dims=("c", "z", "y", "x"), name="cells")
    plan = make_plan(image, Options(version, [2, 2], None, chunks, shards))
    assert len(plan.arrays) == 3
    for array in plan.arrays:
        unit = array.shards or array.chunks
        for sizes, size in zip(array.data.chunks, unit, strict=True):
            touched = [i for r in units_of_blocks(sizes, size) for i in r]
            assert len(touched) == len(set(touched)), (array.path, sizes, size)
    assert plan.arrays[0].data.npartitions >= 16  # many tasks, not one


@pytest.mark.parametrize("method", ["mean", "nearest", "gaussian", "mode"])
def test_the_write_graph_pickles(source, tmp_path, method):
    """With plain pickle (no cloudpickle): no lambdas, no closures, no open handles."""
    image = lazy(source)
    if method == "mode":
        image = (image // 20000).astype("uint8")
    plan = make_plan(image, Options("0.5", [2, 2], method, *LAYOUTS[1][1:]))
    root = zarr.open_group(tmp_path / "out.ome.zarr", mode="w", zarr_format=3)
    for write in pixel_writes(plan, root):
        graph = dict(write.__dask_graph__())
        clone = pickle.loads(pickle.dumps(graph))
        assert clone.keys() == graph.keys()


# ---- progress, failures, unreachable stores ------------------------------------------------
def test_progress_under_the_cluster(client, source, tmp_path, capsys):
    xoz.to_ome_zarr(lazy(source), tmp_path / "p.ome.zarr", scale_factors=[2], progress=True)
    assert "100% Completed" in capsys.readouterr().out  # dask.distributed's text bar
    xoz.to_ome_zarr(lazy(source), tmp_path / "q.ome.zarr", scale_factors=[2])
    assert "Completed" not in capsys.readouterr().out


def slow_and_failing(finished: Path) -> xr.DataArray:
    """A lazy image of 16 blocks: those with an odd z fail after 0.1 s, the others take 1 s
    and then leave a file in ``finished`` (so a test counts them, without timing anything)."""

    def block(x, block_info=None):
        import time

        location = block_info[None]["chunk-location"]
        failing = location[1] % 2
        time.sleep(0.1 if failing else 1.0)
        if failing:
            raise RuntimeError("disk on fire")
        (finished / "-".join(map(str, location))).touch()
        return x

    data = da.ones((2, 8, 32, 32), chunks=(1, 1, 32, 32), dtype=np.uint16)
    return xr.DataArray(data.map_blocks(block, dtype=np.uint16), dims=("c", "z", "y", "x"))


@pytest.mark.parametrize("scheduler", ["cluster", "threads"])
def test_a_failed_write_leaves_nothing_behind(client, tmp_path, scheduler):
    """The first error comes back at once, after the tasks still running have ended (not
    after all 8 good blocks): none of them writes into the directory removed after it."""
    target = tmp_path / "out" / "f.ome.zarr"
    finished = tmp_path / "finished"
    finished.mkdir()
    local = dask.config.set(scheduler="threads", num_workers=2) if scheduler == "threads" else None
    with local or contextlib.nullcontext(), pytest.raises(RuntimeError, match="disk on fire"):
        xoz.to_ome_zarr(slow_and_failing(finished), target, chunks={"z": 1})
    assert len(list(finished.iterdir())) < 8  # not every good block was waited for
    time.sleep(1.5)  # a task still running after the cleanup would have written by now
    assert list((tmp_path / "out").iterdir()) == []


def test_memory_stores_are_refused(client, source):
    for store in (zarr.storage.MemoryStore(), "memory://xoz-57/img.ome.zarr"):
        with pytest.raises(OmeZarrError, match="memory.*workers.*cannot reach"):
            xoz.to_ome_zarr(lazy(source), store)
    with dask.config.set(scheduler="threads"):  # computed here, the memory store works
        memory = zarr.storage.MemoryStore()
        xoz.to_ome_zarr(lazy(source), memory)
    assert xr.open_dataset(memory, engine="ome-zarr")["cells"].shape == SHAPE
