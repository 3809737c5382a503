"""Remote chunk reads (``remote_read``) give exactly what zarr-python gives, with the same
requests, all asked for at once.

Real servers: the static HTTP server of ``tests/servers.py`` and moto's S3 server. Small
arrays (a few KiB), read both ways over the selections of the direct-read tests.
"""

from __future__ import annotations

import numcodecs
import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.codecs import ZstdCodec

from xarray_ome_zarr import OmeZarrError
from xarray_ome_zarr.array import OmeZarrArray
from xarray_ome_zarr.direct_read import ChunkReadError
from xarray_ome_zarr.remote_read import StoreReader

from ..servers import http_server, s3_server, upload_tree

pytestmark = pytest.mark.timeout(120)

SHAPE = (3, 10, 13)
CHUNKS = (2, 4, 5)  # 2 x 3 x 3 = 18 chunks
LAYOUTS = {
    "v3-zstd": dict(zarr_format=3, compressors=ZstdCodec(level=1)),
    "v2-blosc": dict(zarr_format=2, compressors=numcodecs.Blosc()),
    "v2-order-F": dict(zarr_format=2, order="F"),
}
KEYS = [
    (slice(None),) * 3,
    (slice(0, 2), slice(0, 4), slice(0, 5)),  # exactly one chunk
    (slice(1, 3), slice(3, 9), slice(4, 13)),  # parts of several, edge chunks
    (1, slice(None), slice(2, 3)),
    (-1, -1, -1),
    (slice(2, 2), slice(None), slice(None)),  # nothing
]
MISSING = (0, 1, 1)  # a chunk holding only the fill value: not stored


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote-read")
    values = np.random.default_rng(3).integers(1, 200, SHAPE).astype("<u2")
    values[0:2, 4:8, 5:10] = 9  # chunk MISSING is all fill
    for name, kwargs in LAYOUTS.items():
        array = zarr.create_array(
            root / f"{name}.zarr", shape=SHAPE, chunks=CHUNKS, dtype="<u2", fill_value=9, **kwargs
        )
        array[...] = values
    sharded = zarr.create_array(
        root / "sharded.zarr", shape=SHAPE, chunks=CHUNKS, shards=(2, 8, 10), dtype="<u2"
    )
    sharded[...] = values
    return root


@pytest.fixture(scope="module")
def http(site):
    with http_server(site) as server:
        yield server


def remote_array(http, name: str) -> zarr.Array:
    store = zarr.storage.FsspecStore.from_url(f"{http.url}/{name}.zarr", read_only=True)
    return zarr.open_array(store, mode="r")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_http_reads_equal_zarr_with_the_same_requests(http, layout):
    array = remote_array(http, layout)
    reader = StoreReader.of(array)
    assert reader is not None, "a remote unsharded array should be read by remote_read"
    for key in KEYS:
        http.clear()
        expected = array[key]
        theirs = sorted(r.path for r in http.chunk_requests())
        http.clear()
        got = reader.read(key, np.dtype("<u2"))
        ours = sorted(r.path for r in http.chunk_requests())
        assert got is not None and got.shape == expected.shape, key
        np.testing.assert_array_equal(got, expected, err_msg=str(key))
        assert ours == theirs, key  # one GET per chunk, the missing one asked for too
        if key == KEYS[0]:
            assert len(ours) == 18


def test_all_chunks_are_asked_for_at_once(http):
    array = remote_array(http, "v3-zstd")
    reader = StoreReader.of(array)
    assert reader is not None
    with http.latency(0.1):
        http.clear()
        reader.read((slice(None),) * 3, np.dtype("<u2"))
        rounds = [[r for r in wave if r.is_chunk] for wave in http.rounds()]
    assert [len(w) for w in rounds if w] == [18]  # one round trip, not 18 / zarr's 10


def test_a_corrupt_chunk_is_named(http, site, tmp_path):
    import shutil

    folder = site / "corrupt.zarr"
    shutil.copytree(site / "v3-zstd.zarr", folder, dirs_exist_ok=True)
    (folder / "c" / "1" / "2" / "2").write_bytes(b"not zstd")
    array = remote_array(http, "corrupt")
    wrapped = OmeZarrArray(array, "store 'x', node '/'")
    with pytest.raises(OmeZarrError, match=r"store 'x'.*chunk 'c/1/2/2'"):
        xr.Variable(("z", "y", "x"), wrapped).values  # noqa: B018
    reader = StoreReader.of(array)
    assert reader is not None
    with pytest.raises(ChunkReadError):
        reader.read((slice(None),) * 3, np.dtype("<u2"))
    np.testing.assert_array_equal(
        reader.read((0, slice(None), slice(None)), np.dtype("<u2")), array[0]
    )


def test_layouts_and_stores_zarr_must_read(http, site):
    assert StoreReader.of(remote_array(http, "sharded")) is None
    assert StoreReader.of(zarr.open_array(site / "v3-zstd.zarr", mode="r")) is None  # local
    memory = zarr.create_array(zarr.storage.MemoryStore(), shape=(4,), chunks=(2,), dtype="u1")
    assert StoreReader.of(memory) is None
    reader = StoreReader.of(remote_array(http, "v3-zstd"))
    assert reader is not None
    assert reader.read((slice(None, None, 2),) * 3, np.dtype("<u2")) is None  # a step: zarr


def test_the_engine_reads_remote_levels_through_it(http, site):
    import shutil

    from ..conftest import write_hand_image

    write_hand_image(site / "img.zarr", "0.5")
    ds = xr.open_dataset(f"{http.url}/img.zarr", engine="ome-zarr")
    backend = ds[next(iter(ds.data_vars))].variable._data
    while not isinstance(backend, OmeZarrArray):
        backend = backend.array
    assert isinstance(backend.direct(), StoreReader)  # found at the first read
    local = xr.open_dataset(site / "img.zarr", engine="ome-zarr")
    xr.testing.assert_identical(ds.load(), local.load())
    shutil.rmtree(site / "img.zarr")


def test_s3_reads_equal_zarr(site):
    with s3_server() as server:
        fs = server.filesystem()
        server.make_bucket("remote-read")
        upload_tree(fs, site / "v2-blosc.zarr", "remote-read/v2-blosc.zarr")
        store = zarr.storage.FsspecStore.from_url(
            "s3://remote-read/v2-blosc.zarr",
            storage_options={**server.storage_options, "max_concurrency": 1},
            read_only=True,
        )
        array = zarr.open_array(store, mode="r")
        reader = StoreReader.of(array)
        assert reader is not None
        for key in KEYS[:3]:
            np.testing.assert_array_equal(reader.read(key, np.dtype("<u2")), array[key])
