"""The private zarr/dask/distributed/xarray APIs of ``_compat``: taken, and right.

On the installed versions every private path must really be taken (its feature check is
true): when a zarr, dask or xarray release moves one, these tests fail loudly instead of the
package silently falling back to a slower or more cautious path. Each private path is also
compared with its public fallback, so the fallbacks are known to give the same results.
"""

from __future__ import annotations

import asyncio
import threading
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.codecs import ZstdCodec

from xarray_ome_zarr import _compat
from xarray_ome_zarr.direct_read import DirectReader


def test_every_private_path_is_taken_on_the_installed_versions():
    assert _compat.HAS_ZARR_SYNC, "zarr.core.sync.sync is gone: stores run on a private loop"
    assert _compat.HAS_ASYNC_GETITEM, "Group._async_group.getitem is gone: members one by one"
    assert _compat.HAS_ARRAY_WITH_SHAPE, "Array._async_array is gone: appends resize first"
    assert _compat.HAS_CODEC_PIPELINE, "AsyncArray.codec_pipeline is gone: no direct reads"
    assert _compat.HAS_SYNC_DECODE, "codec._decode_sync is gone: no direct reads of zarr v3"
    assert _compat.HAS_V2_CODEC, "zarr.codecs._v2.V2Codec is gone: no direct reads of zarr v2"
    assert _compat.HAS_SHARDING_LAYOUT, "ShardingCodec's specs moved: zarr reads the shards"
    assert _compat.HAS_SHARED_ARRAY_METADATA, "zarr's v3 parse moved: each array parsed anew"
    assert _compat.has_dask_get_scheduler(), "dask.base.get_scheduler is gone"
    assert _compat.has_running_tasks(), "WorkerState.all_running_tasks is gone: slow aborts"
    assert _compat.has_dask_cpu_count(), "dask.system.CPU_COUNT is gone"
    assert _compat.has_dask_block_slices(), "dask.array.core.slices_from_chunks is gone"
    assert _compat.has_variable_data(), "xarray's Variable._data is gone: writes copy numpy"
    assert _compat.has_datatree_from_dict(), "datatree_from_dict_with_io_cleanup is gone"
    assert _compat.has_node_data_setter(), "DataTree._set_node_data is gone: nodes copy"
    assert _compat.has_index_pass_skip(), "xarray's _datatree_from_backend_datatree moved"


# ---- zarr ----------------------------------------------------------------------------------
def test_sync_runs_store_coroutines_like_its_fallback():
    store = zarr.storage.MemoryStore()
    zarr.open_group(store, mode="w").create_array("a", shape=(2,), dtype="u1")

    async def keys() -> list[str]:
        return sorted([k async for k in store.list()])

    assert _compat.sync(keys()) == _compat._sync_in_thread(keys()) == ["a/zarr.json", "zarr.json"]


def test_sync_fallback_raises_the_coroutines_error():
    async def fails() -> None:
        raise KeyError("gone")

    with pytest.raises(KeyError, match="gone"):
        _compat._sync_in_thread(fails())
    with pytest.raises(KeyError, match="gone"):
        _compat.sync(fails())


def test_fetch_members_concurrently_like_one_by_one(tmp_path):
    root = zarr.open_group(tmp_path / "g.zarr", mode="w")
    root.create_array("0", shape=(4,), dtype="u2")
    root.create_group("labels")
    (tmp_path / "g.zarr" / "broken").mkdir()
    (tmp_path / "g.zarr" / "broken" / "zarr.json").write_text("{not json")
    paths = ["0", "labels", "missing", "broken"]
    fast = _compat.fetch_members(root, paths)
    slow = _compat._fetch_members_one_by_one(root, paths)
    assert [type(m) for m in fast] == [type(m) for m in slow]
    assert isinstance(fast[0], zarr.Array) and fast[0].shape == (4,)
    assert isinstance(fast[1], zarr.Group) and fast[1].path == "labels"
    assert isinstance(fast[2], KeyError)
    assert isinstance(fast[3], Exception)


def _varied_arrays(root: zarr.Group) -> list[str]:
    """Arrays of one group: pairs with equal documents, and documents that differ in each
    part zarr parses (dtype, shape, chunks, fill value, codecs, attributes, names)."""
    made = {
        "a": {"shape": (2, 4), "dtype": "u2"},
        "a_twin": {"shape": (2, 4), "dtype": "u2"},
        "dtype": {"shape": (2, 4), "dtype": "f4"},
        "shape": {"shape": (3, 4), "dtype": "u2"},
        "chunks": {"shape": (2, 4), "dtype": "u2", "chunks": (1, 2)},
        "fill": {"shape": (2, 4), "dtype": "u2", "fill_value": 7},
        "codecs": {"shape": (2, 4), "dtype": "u2", "compressors": ZstdCodec(level=5)},
        "sharded": {"shape": (2, 4), "dtype": "u2", "chunks": (1, 2), "shards": (2, 4)},
        "names": {"shape": (2, 4), "dtype": "u2", "dimension_names": ("y", "x")},
        "attrs": {"shape": (2, 4), "dtype": "u2", "attributes": {"k": [1, {"n": 2}]}},
        "attrs_twin": {"shape": (2, 4), "dtype": "u2", "attributes": {"k": [1, {"n": 2}]}},
    }
    for name, kwargs in made.items():
        root.create_array(name, **kwargs)
    root.create_group("g", attributes={"ome": {"version": "0.5"}})
    return [*made, "g", "missing"]


def test_members_from_their_documents_are_zarrs_lookups(tmp_path):
    root = zarr.open_group(tmp_path / "g.zarr", mode="w", zarr_format=3)
    paths = _varied_arrays(root)
    (tmp_path / "g.zarr" / "broken").mkdir()
    (tmp_path / "g.zarr" / "broken" / "zarr.json").write_text("{not json")
    paths.append("broken")
    fast = _compat.fetch_members(root, paths)
    slow = _compat._fetch_members_one_by_one(root, paths)
    assert [type(m) for m in fast] == [type(m) for m in slow]
    for path, a, b in zip(paths, fast, slow, strict=True):
        if isinstance(b, Exception):
            assert type(a) is type(b) and str(a) == str(b), path
            continue
        a_inner = a._async_array if isinstance(a, zarr.Array) else a._async_group
        b_inner = b._async_array if isinstance(b, zarr.Array) else b._async_group
        assert a_inner == b_inner, path  # metadata, store path, codec pipeline, config
        assert a_inner.metadata.to_dict() == b_inner.metadata.to_dict(), path
        assert a.attrs.asdict() == b.attrs.asdict(), path
    members = dict(zip(paths, fast, strict=True))
    np.testing.assert_array_equal(members["fill"][...], np.full((2, 4), 7, dtype="u2"))
    # equal documents share zarr's parse, never their mutable parts
    twin, attrs_twin = members["a_twin"], members["attrs_twin"]
    assert twin.metadata.codecs == members["a"].metadata.codecs
    first, second = members["attrs"].metadata.attributes, attrs_twin.metadata.attributes
    assert second is not first and second["k"][1] is not first["k"][1]


def test_an_arrays_attributes_changed_in_place_leave_its_twins_alone(tmp_path):
    """zarr updates an array's attributes in place: arrays read from equal documents must
    not share them."""
    root = zarr.open_group(tmp_path / "g.zarr", mode="a", zarr_format=3)
    for name in ("a", "b"):
        root.create_array(name, shape=(2,), dtype="u1", attributes={"k": {"n": 1}})
    a, b = _compat.fetch_members(root, ["a", "b"])
    a.attrs["k"] = {"n": 2}
    a.attrs.asdict()["k"]["n"] = 3
    assert b.attrs.asdict() == {"k": {"n": 1}}
    assert zarr.open_array(tmp_path / "g.zarr" / "b").attrs.asdict() == {"k": {"n": 1}}


def test_members_of_v2_and_consolidated_groups_are_zarrs_lookups(tmp_path):
    for fmt in (2, 3):
        path = tmp_path / f"g{fmt}.zarr"
        root = zarr.open_group(path, mode="w", zarr_format=fmt)
        root.create_array("a", shape=(2,), dtype="u1")
        assert not _compat._reads_documents(root) if fmt == 2 else _compat._reads_documents(root)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata")
            zarr.consolidate_metadata(path)
            consolidated = zarr.open_group(path, mode="r", use_consolidated=True)
        assert not _compat._reads_documents(consolidated)
        (a,) = _compat.fetch_members(consolidated, ["a"])
        assert a._async_array == consolidated["a"]._async_array


def test_fetch_members_opens_them_at_once(tmp_path, monkeypatch):
    """The private path really overlaps the opens (the reason it exists)."""
    root = zarr.open_group(tmp_path / "g.zarr", mode="w")
    for i in range(3):
        root.create_array(str(i), shape=(1,), dtype="u1")
    inflight, peak = [0], [0]
    original = zarr.storage.LocalStore.get

    async def slow_get(self, key, *args, **kwargs):
        inflight[0] += 1
        peak[0] = max(peak[0], inflight[0])
        await asyncio.sleep(0.05)
        inflight[0] -= 1
        return await original(self, key, *args, **kwargs)

    monkeypatch.setattr(zarr.storage.LocalStore, "get", slow_get)
    members = _compat.fetch_members(root, ["0", "1", "2"])
    assert all(isinstance(m, zarr.Array) for m in members)
    assert peak[0] == 3


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_codec_pipeline_decodes_chunks_synchronously(tmp_path, zarr_format):
    data = np.arange(24, dtype="<u2").reshape(4, 6)
    compressors = ZstdCodec(level=1) if zarr_format == 3 else {"id": "zstd", "level": 1}
    array = zarr.create_array(
        tmp_path / "a.zarr",
        shape=data.shape,
        chunks=data.shape,
        dtype=data.dtype,
        zarr_format=zarr_format,
        compressors=compressors,
    )
    array[...] = data
    pipeline = _compat.codec_pipeline(array)
    assert pipeline is not None
    if zarr_format == 2:
        assert isinstance(pipeline.array_bytes_codec, _compat.V2Codec)
    else:
        (compressor,) = pipeline.bytes_bytes_codecs
        assert _compat.sync_decoder(compressor) is not None
        assert _compat.sync_decoder(pipeline.array_bytes_codec) is not None
    reader = DirectReader.of(array)
    assert reader is not None, "the direct read path must be taken for a local array"
    np.testing.assert_array_equal(reader.read_chunk((0, 0)), data)


def test_shard_layout_of_a_sharded_array(tmp_path):
    from zarr.buffer import default_buffer_prototype

    array = zarr.create_array(
        tmp_path / "s.zarr", shape=(4, 6), shards=(4, 6), chunks=(2, 3), dtype="<u2"
    )
    array[...] = np.arange(24, dtype="<u2").reshape(4, 6)
    spec = array.metadata.get_chunk_spec((0, 0), array.config, default_buffer_prototype())
    layout = _compat.shard_layout(array, spec)
    assert layout is not None
    assert layout.inner_chunks == (2, 3) and layout.chunks_per_shard == (2, 2)
    assert layout.index_size == 16 * 4 + 4  # the default index codecs: bytes + crc32c
    assert not layout.index_at_start
    assert tuple(layout.inner_spec.shape) == (2, 3)
    assert tuple(layout.index_spec.shape) == (2, 2, 2)
    reader = DirectReader.of(array)
    assert reader is not None and reader.shards is not None, "the sharded path must be taken"
    np.testing.assert_array_equal(reader.read((slice(None),) * 2, np.dtype("<u2")), array[...])
    unsharded = zarr.create_array(tmp_path / "u.zarr", shape=(4, 6), chunks=(2, 3), dtype="<u2")
    assert _compat.shard_layout(unsharded, spec) is None


def test_sync_decoder_of_a_codec_without_one_is_none():
    assert _compat.sync_decoder(object()) is None


# ---- dask / distributed -------------------------------------------------------------------
def test_current_scheduler_and_cpu_count():
    from dask.system import CPU_COUNT
    from dask.threaded import get as threaded_get

    with dask.config.set(scheduler="threads"):
        assert _compat.current_scheduler() is threaded_get
        assert _compat.current_client() is None
        assert _compat.default_client_if_scheduler() is None
    with dask.config.set(scheduler="synchronous"):
        assert _compat.current_scheduler(collections=[da.zeros(3)]) is dask.get
    assert _compat.cpu_count() == CPU_COUNT


def test_block_slices_like_the_fallback():
    for shape, chunks in [((10,), 3), ((7, 5, 4), (2, 5, 3)), ((0, 4), 2), ((1, 1), 1)]:
        normal = da.core.normalize_chunks(chunks, shape)
        assert _compat.block_slices(normal) == _compat.block_slices_here(normal)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def test_current_client_like_the_default_client(client):
    assert _compat.current_client() is client
    assert _compat.default_client_if_scheduler() is client
    with dask.config.set(scheduler="threads"):
        assert _compat.current_client() is None


def test_running_task_keys_sees_a_running_task(client):
    from distributed import Event

    started, release = Event("xoz-started"), Event("xoz-release")

    def block() -> int:
        started.set()
        release.wait(timeout=30)
        return 1

    future = client.submit(block, pure=False)
    try:
        started.wait(timeout=30)
        seen = client.run(lambda dask_worker: _compat.running_task_keys(dask_worker))
        assert [future.key in keys for keys in seen.values()] == [True]
    finally:
        release.set()
    assert future.result(timeout=30) == 1
    assert _compat.running_task_keys(object()) is None  # a worker that cannot tell


# ---- xarray -------------------------------------------------------------------------------
def test_in_memory_numpy_never_loads(tmp_path):
    pixels = np.arange(6, dtype="u1").reshape(2, 3)
    assert _compat.in_memory_numpy(xr.DataArray(pixels).variable) is pixels
    assert _compat.in_memory_numpy(xr.DataArray(da.from_array(pixels)).variable) is None
    xr.Dataset({"v": (("y", "x"), pixels)}).to_zarr(tmp_path / "v.zarr", zarr_format=3)
    lazy = xr.open_zarr(tmp_path / "v.zarr", chunks=None)["v"]
    assert _compat.in_memory_numpy(lazy.variable) is None
    assert not lazy.variable._in_memory  # looking did not load it


def test_datatree_from_dict_like_the_fallback():
    closed: list[str] = []

    def groups() -> dict[str, xr.Dataset]:
        out = {}
        for path in ["/", "/a", "/a/b"]:
            ds = xr.Dataset({"v": ("x", np.arange(3))})
            ds.set_close(lambda path=path: closed.append(path))
            out[path] = ds
        return out

    tree = _compat.datatree_from_dict(groups())
    other = _compat.datatree_from_dict_here(groups())
    xr.testing.assert_identical(tree, other)
    tree.close()
    assert sorted(closed) == ["/", "/a", "/a/b"]
    closed.clear()
    broken = {"/": xr.Dataset(), "/a": xr.Dataset({"v": ("x", [1])}), "/a/v": xr.Dataset()}
    for name, ds in broken.items():
        ds.set_close(lambda name=name: closed.append(name))
    with pytest.raises(KeyError, match="already contains a variable"):
        _compat.datatree_from_dict_here(broken)
    assert sorted(closed) == sorted(broken)


def test_node_of_is_the_public_nodes(monkeypatch):
    from xarray.indexes import PandasIndex

    x = xr.Variable(("x",), np.array([0.5, 1.5]), {"units": "micrometer"})
    index = PandasIndex.from_variables({"x": x}, options={})
    data = {"image": xr.Variable(("x",), np.zeros(2), {"a": 1}, {"chunks": (2,)})}

    def made() -> tuple[xr.DataTree, list[str]]:
        closed: list[str] = []
        ds = _compat.dataset_from_parts(data, index.create_variables({"x": x}), {"x": index}, {})
        ds.attrs["p"] = "0"
        ds.encoding["e"] = 1
        ds.set_close(lambda: closed.append("closed"))
        return _compat.node_of(ds), closed

    fast, fast_closed = made()
    monkeypatch.setattr(_compat, "has_node_data_setter", lambda: False)
    plain, plain_closed = made()
    xr.testing.assert_identical(fast, plain)
    assert fast.encoding == plain.encoding == {"e": 1}
    assert fast["image"].encoding == plain["image"].encoding == {"chunks": (2,)}
    assert type(fast.xindexes["x"]) is type(plain.xindexes["x"])
    fast.close()
    plain.close()
    assert fast_closed == plain_closed == ["closed"]


def test_no_thread_left_behind_by_the_sync_fallback():
    before = threading.active_count()

    async def value() -> int:
        return 3

    assert _compat._sync_in_thread(value()) == 3
    assert threading.active_count() == before


def test_close_filesystem_sessions_closes_and_resets_them():
    """The private slots s3fs and fsspec's HTTP filesystem keep their sessions in are there:
    closed, then opened anew on the next call (no network: a session connects lazily)."""
    s3fs = pytest.importorskip("s3fs")
    from fsspec.implementations.http import HTTPFileSystem

    async def opened(fs):
        return await fs.set_session()

    s3 = s3fs.S3FileSystem(
        asynchronous=True, skip_instance_cache=True, anon=True, endpoint_url="http://127.0.0.1:9"
    )
    http = HTTPFileSystem(asynchronous=True, skip_instance_cache=True)
    for fs, slot in ((s3, "_s3"), (http, "_session")):
        first = _compat.sync(opened(fs))
        assert getattr(fs, slot) is first
        _compat.sync(_compat.close_filesystem_sessions(fs))
        assert getattr(fs, slot) is None
        assert _compat.sync(opened(fs)) is not first
        _compat.sync(_compat.close_filesystem_sessions(fs))
    assert http._session is None and s3._s3creator is None
