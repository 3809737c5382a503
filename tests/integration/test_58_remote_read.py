"""Remote chunk reads (``remote_read``) give exactly what zarr-python gives, with the same
requests, all asked for at once; sharded arrays too (index at the start and at the end,
shards cut by the array's edges, missing inner chunks and shards).

Real servers: the static HTTP server of ``tests/servers.py`` and moto's S3 server. Small
arrays (a few KiB), read both ways over the selections of the direct-read tests.
"""

from __future__ import annotations

import dataclasses

import numcodecs
import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.codecs import BytesCodec, Crc32cCodec, GzipCodec, ShardingCodec, ZstdCodec

from xarray_ome_zarr import OmeZarrError
from xarray_ome_zarr.array import OmeZarrArray
from xarray_ome_zarr.direct_read import ChunkReadError
from xarray_ome_zarr.remote_read import StoreReader
from xarray_ome_zarr.s3_obstore import SWITCH

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


#: Latency of the tests that count round trips: requests more than half of it apart are two
#: waves, so it stays well above what a loaded machine takes between two requests of a wave
#: (0.1 s let one fail under a load of 8 on 2 cores).
WAVE_DELAY = 0.4


def test_all_chunks_are_asked_for_at_once(http):
    array = remote_array(http, "v3-zstd")
    reader = StoreReader.of(array)
    assert reader is not None
    with http.latency(WAVE_DELAY):
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
    import json

    nested = site / "nested-shards.zarr"
    zarr.create_array(nested, shape=SHAPE, chunks=CHUNKS, shards=(2, 8, 10), dtype="<u2")
    meta = json.loads((nested / "zarr.json").read_text())
    inner = ShardingCodec(chunk_shape=(1, 2, 5), codecs=[BytesCodec()]).to_dict()
    meta["codecs"][0]["configuration"]["codecs"] = [inner]
    (nested / "zarr.json").write_text(json.dumps(meta))
    assert StoreReader.of(remote_array(http, "nested-shards")) is None
    assert StoreReader.of(remote_array(http, "sharded")) is not None
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
    http.clear()
    ours = ds[next(iter(ds.data_vars))].values
    asked = sorted(r.path for r in http.requests)
    http.clear()
    theirs = zarr.open_array(f"{http.url}/img.zarr/0", mode="r")[...]
    np.testing.assert_array_equal(ours, theirs)
    assert asked == sorted(r.path for r in http.chunk_requests())  # zarr's chunk GETs, no more
    assert len(asked) == 2 * 3 * 3 * 3  # c/z/y/x (2, 5, 13, 11) in chunks of (1, 2, 5, 4)
    local = xr.open_dataset(site / "img.zarr", engine="ome-zarr")
    xr.testing.assert_identical(ds.load(), local.load())
    shutil.rmtree(site / "img.zarr")


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        server.make_bucket("remote-read")
        yield server


def s3_array(server, source, name: str) -> zarr.Array:
    upload_tree(server.filesystem(), source, f"remote-read/{name}")
    store = zarr.storage.FsspecStore.from_url(
        f"s3://remote-read/{name}",
        storage_options={**server.storage_options, "max_concurrency": 1},
        read_only=True,
    )
    return zarr.open_array(store, mode="r")


class CountingStore:
    """A store whose ``get`` calls (each one request) are recorded: key and byte range."""

    def __init__(self, store):
        self.store, self.asked = store, []

    async def get(self, key, prototype, byte_range=None):
        self.asked.append((key, repr(byte_range)))
        return await self.store.get(key, prototype, byte_range)


def _asked(reader: StoreReader, key) -> tuple[np.ndarray | None, list]:
    counting = CountingStore(reader.store)
    got = dataclasses.replace(reader, store=counting).read(key, reader.dtype)
    return got, sorted(counting.asked)


@pytest.mark.parametrize("switch", ["0", "1"])  # s3fs, then obstore
def test_s3_reads_equal_zarr(site, s3, switch, monkeypatch):
    monkeypatch.setenv(SWITCH, switch)
    array = s3_array(s3, site / "v2-blosc.zarr", "v2-blosc.zarr")
    reader = StoreReader.of(array)
    assert reader is not None
    assert type(reader.store).__name__ == ("ObjectStore" if switch == "1" else "FsspecStore")
    for key in KEYS[:3]:
        np.testing.assert_array_equal(reader.read(key, np.dtype("<u2")), array[key])


def test_s3_chunks_through_obstore_equal_zarr_with_the_same_requests(site, s3, monkeypatch):
    """Where the s3fs options map exactly (here: an endpoint at an IP address, explicit
    credentials, the region of the environment), the chunks come through obstore: every
    value as zarr reads it, the same GET per chunk as through s3fs."""
    for name in ("v3-zstd",):
        array = s3_array(s3, site / f"{name}.zarr", f"{name}.zarr")
        fast = StoreReader.of(array)
        monkeypatch.setenv(SWITCH, "0")
        plain = StoreReader.of(array)
        monkeypatch.delenv(SWITCH)
        assert fast is not None and plain is not None
        assert type(fast.store).__name__ == "ObjectStore"
        for key in KEYS:
            got, asked = _asked(fast, key)
            expected, asked_by_s3fs = _asked(plain, key)
            assert got is not None and got.shape == array[key].shape, key
            np.testing.assert_array_equal(got, array[key], err_msg=str(key))
            # the same objects: the bucket's keys, where s3fs's store is rooted at the array
            assert asked == [(f"{name}.zarr/{k}", r) for k, r in asked_by_s3fs], key
    store = zarr.storage.FsspecStore.from_url(  # an option not mapped: s3fs keeps the reads
        "s3://remote-read/v3-zstd.zarr",
        storage_options={**s3.storage_options, "config_kwargs": {"read_timeout": 30}},
        read_only=True,
    )
    array = zarr.open_array(store, mode="r")
    reader = StoreReader.of(array)
    assert reader is not None and type(reader.store).__name__ == "FsspecStore"
    np.testing.assert_array_equal(reader.read(KEYS[2], np.dtype("<u2")), array[KEYS[2]])
    monkeypatch.setenv(SWITCH, "fast")
    with pytest.raises(OmeZarrError, match=SWITCH):
        StoreReader.of(s3_array(s3, site / "v3-zstd.zarr", "v3-zstd.zarr"))


def _read_in_this_process(options: dict) -> tuple[str, list]:
    """Which store a fresh reader of the ``v3-zstd`` copy on S3 uses here, and its values."""
    store = zarr.storage.FsspecStore.from_url(
        "s3://remote-read/v3-zstd.zarr", storage_options=options, read_only=True
    )
    reader = StoreReader.of(zarr.open_array(store, mode="r"))
    assert reader is not None
    return type(reader.store).__name__, reader.read(KEYS[0], np.dtype("<u2")).tolist()


def test_a_process_forked_after_obstore_reads_through_s3fs(site, s3):
    """obstore's runtime does not survive ``fork``: a child forked after the parent used it
    would hang on its first request. Such a child reads its chunks through s3fs."""
    import multiprocessing

    array = s3_array(s3, site / "v3-zstd.zarr", "v3-zstd.zarr")
    options = {**s3.storage_options, "max_concurrency": 1}
    kind, values = _read_in_this_process(options)  # the parent starts obstore's runtime
    assert kind == "ObjectStore" and values == array[KEYS[0]].tolist()
    with multiprocessing.get_context("fork").Pool(1) as pool:
        in_child = pool.apply_async(_read_in_this_process, (options,)).get(timeout=60)
    assert in_child == ("FsspecStore", values)


def _signed_by(request) -> tuple[str | None, str | None]:
    """The access key a request was signed with (``None``: unsigned), and its token."""
    headers = dict(request.headers)
    auth = headers.get("authorization")
    key = auth.split("Credential=", 1)[1].split("/", 1)[0] if auth else None
    return key, headers.get("x-amz-security-token")


def test_s3_credentials_reach_the_server_as_s3fs_sends_them(site, monkeypatch):
    """The chunk requests made through obstore carry the credentials s3fs would use: the
    explicit ones alone (no token from the environment mixed in), else the environment's,
    else none (``anon``); and they are the same requests as s3fs's. The S3 endpoint here is
    the static HTTP server: path-style, ``/bucket/key`` is a file."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-token")
    monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)  # botocore would take it first
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with http_server(site.parent) as server:
        url = f"s3://{site.name}/v3-zstd.zarr"
        local = zarr.open_array(site / "v3-zstd.zarr", mode="r")
        cases = [
            ({"key": "given-key", "secret": "given-secret"}, {}, ("given-key", None)),
            ({}, {}, ("env-key", "env-token")),
            ({}, {"AWS_SECURITY_TOKEN": "old-name"}, ("env-key", "old-name")),
            ({"anon": True}, {}, (None, None)),
        ]
        for options, env, expected in cases:
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            store = zarr.storage.FsspecStore.from_url(
                url,
                storage_options={
                    "endpoint_url": server.url,
                    "max_concurrency": 1,
                    "skip_instance_cache": True,  # s3fs resolves the environment once
                    **options,
                },
                read_only=True,
            )
            reader = StoreReader.of(zarr.open_array(store, mode="r"))
            assert reader is not None and type(reader.store).__name__ == "ObjectStore"
            server.clear()
            got = reader.read(KEYS[2], np.dtype("<u2"))
            np.testing.assert_array_equal(got, local[KEYS[2]])
            chunks = server.chunk_requests()
            assert chunks and {_signed_by(r) for r in chunks} == {expected}, options
            ours = sorted((r.path, r.range) for r in chunks)
            monkeypatch.setenv(SWITCH, "0")
            plain = StoreReader.of(zarr.open_array(store, mode="r"))
            monkeypatch.delenv(SWITCH)
            assert plain is not None and type(plain.store).__name__ == "FsspecStore"
            server.clear()
            plain.read(KEYS[2], np.dtype("<u2"))
            assert ours == sorted((r.path, r.range) for r in server.chunk_requests())
            assert {_signed_by(r) for r in server.chunk_requests()} == {expected}


# ---- sharded arrays -----------------------------------------------------------------------
SHARDED_SHAPE = (3, 11, 14)  # shards cut by every edge
SHARDS = (2, 8, 8)
INNER = (1, 4, 4)
SHARD_LAYOUTS = {
    "end-zstd": dict(compressors=ZstdCodec(level=1)),
    "start-zstd": dict(compressors=ZstdCodec(level=1)),
    "end-gzip+crc32c": dict(compressors=(GzipCodec(), Crc32cCodec())),
}
SHARD_KEYS = [
    (slice(None),) * 3,  # whole shards (one GET each) and edge shards (index, then ranges)
    (slice(0, 2), slice(0, 8), slice(0, 8)),  # exactly one shard
    (slice(0, 1), slice(0, 4), slice(4, 8)),  # exactly one inner chunk
    (slice(1, 3), slice(3, 9), slice(5, 13)),  # parts of several shards and inner chunks
    (2, slice(None), slice(9, 14)),  # the edge shards; an int drops an axis
    (-1, -1, -1),
    (slice(2, 2), slice(None), slice(None)),  # nothing
    (slice(None), slice(8, 100), slice(-3, None)),
]


def _sharded(folder, layout: str, dtype: str, fill) -> None:
    import json

    values = np.random.default_rng(5).integers(1, 120, SHARDED_SHAPE).astype(dtype)
    values[0, 0:4, 0:4] = fill  # an inner chunk of only the fill value: not stored
    values[1:3, 4:8, 8:12] = fill  # two more, in another shard
    values[:, 8:, 8:] = fill  # a whole edge shard of only fill: not stored
    array = zarr.create_array(
        folder,
        shape=SHARDED_SHAPE,
        shards=SHARDS,
        chunks=INNER,
        dtype=dtype,
        fill_value=fill,
        **SHARD_LAYOUTS[layout],
    )
    if layout.startswith("start"):  # zarr writes the index at the end unless told
        meta = json.loads((folder / "zarr.json").read_text())
        meta["codecs"][0]["configuration"]["index_location"] = "start"
        (folder / "zarr.json").write_text(json.dumps(meta))
        array = zarr.open_array(folder, mode="r+")
    array[...] = values


@pytest.fixture(scope="module")
def sharded_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote-sharded")
    for layout in SHARD_LAYOUTS:
        _sharded(root / f"{layout}.zarr", layout, "<u2", 7)
    _sharded(root / "f4-nan.zarr", "end-zstd", "float32", float("nan"))
    with http_server(root) as server:
        yield server


def _chunk_requests(server) -> list[tuple[str, str | None]]:
    return sorted((r.path, r.range) for r in server.chunk_requests())


@pytest.mark.parametrize("name", [*SHARD_LAYOUTS, "f4-nan"])
def test_sharded_http_reads_equal_zarr_with_the_same_requests(sharded_site, name):
    array = remote_array(sharded_site, name)
    reader = StoreReader.of(array)
    assert reader is not None and reader.shards is not None
    for key in SHARD_KEYS:
        sharded_site.clear()
        expected = array[key]
        theirs = _chunk_requests(sharded_site)
        sharded_site.clear()
        got = reader.read(key, np.dtype(array.dtype))
        ours = _chunk_requests(sharded_site)
        assert got is not None and got.shape == expected.shape, key
        np.testing.assert_array_equal(got, expected, err_msg=str(key))
        assert ours == theirs, key  # a GET per whole shard; index + ranges for the others
    sharded_site.clear()
    reader.read((slice(None),) * 3, np.dtype(array.dtype))
    whole = [r for r in sharded_site.chunk_requests() if r.range is None]
    assert len(whole) == 2  # the two shards the array covers whole: one GET each


def test_sharded_requests_go_out_together(sharded_site):
    """Every shard's index (or whole shard) in one round trip, then every inner chunk's
    range in one more: zarr asks for a partial shard's inner chunks one after another."""
    reader = StoreReader.of(remote_array(sharded_site, "end-zstd"))
    assert reader is not None
    with sharded_site.latency(WAVE_DELAY):
        sharded_site.clear()
        reader.read((slice(None), slice(0, 11), slice(0, 6)), np.dtype("<u2"))
        rounds = [[r for r in wave if r.is_chunk] for wave in sharded_site.rounds()]
    sizes = [len(w) for w in rounds if w]
    # 4 shards: (0, 0, 0) has all its inner chunks touched (one GET), the 3 others an index
    # each; then their touched inner chunks: 4 + 4 + 2
    assert sizes == [4, 10], sizes


def test_a_missing_shard_and_a_corrupt_one(sharded_site):
    root = sharded_site.root
    import shutil

    folder = root / "broken.zarr"
    shutil.copytree(root / "end-zstd.zarr", folder)
    shutil.rmtree(folder / "c" / "1")  # the shards of the last channel: not stored
    array = remote_array(sharded_site, "broken")
    reader = StoreReader.of(array)
    assert reader is not None
    for key in SHARD_KEYS[:4]:
        np.testing.assert_array_equal(reader.read(key, np.dtype("<u2")), array[key])
    shard = folder / "c" / "0" / "0" / "1"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF  # inside the index: its crc32c no longer matches
    shard.write_bytes(bytes(data))
    with pytest.raises(ChunkReadError, match=r"c/0/0/1"):
        reader.read((slice(0, 2), slice(0, 8), slice(8, 14)), np.dtype("<u2"))  # whole shard
    with pytest.raises(ChunkReadError, match=r"c/0/0/1"):
        reader.read((0, 0, 9), np.dtype("<u2"))  # one inner chunk: the index alone
    shard.write_bytes(b"short")
    with pytest.raises(ChunkReadError, match=r"c/0/0/1"):
        reader.read((0, 0, 9), np.dtype("<u2"))


def test_s3_sharded_reads_equal_zarr(sharded_site, s3, monkeypatch):
    """Through obstore (the options map exactly) and through s3fs: zarr's values, the same
    requests (whole shards, indexes, inner chunks' ranges)."""
    for name in ("end-zstd", "start-zstd"):
        array = s3_array(s3, sharded_site.root / f"{name}.zarr", f"{name}.zarr")
        reader = StoreReader.of(array)
        monkeypatch.setenv(SWITCH, "0")
        plain = StoreReader.of(array)
        monkeypatch.delenv(SWITCH)
        assert reader is not None and reader.shards is not None and plain is not None
        assert type(reader.store).__name__ == "ObjectStore"
        for key in SHARD_KEYS:
            got, asked = _asked(reader, key)
            np.testing.assert_array_equal(got, array[key], err_msg=str(key))
            asked_by_s3fs = _asked(plain, key)[1]
            assert asked == [(f"{name}.zarr/{k}", r) for k, r in asked_by_s3fs], key


def test_chunks_of_whole_rows_decode_straight_into_the_result(http, site):
    """Chunks that are contiguous parts of the result are decoded into it in place, others
    into a reused buffer; a stored chunk of another size is refused, named."""
    values = np.random.default_rng(8).integers(0, 999, (4, 6, 8)).astype("<u2")
    for name, chunks in (("rows.zarr", (1, 6, 8)), ("tiles.zarr", (2, 3, 4))):
        array = zarr.create_array(site / name, shape=values.shape, chunks=chunks, dtype="<u2")
        array[...] = values
    for name in ("rows", "tiles"):
        array = remote_array(http, name)
        reader = StoreReader.of(array)
        assert reader is not None and reader.decode_into is not None
        for key in [(slice(None),) * 3, (slice(1, 3), slice(None), slice(None)), (2, 1, 7)]:
            np.testing.assert_array_equal(reader.read(key, np.dtype("<u2")), array[key])
    chunk = site / "rows.zarr" / "c" / "2" / "0" / "0"
    chunk.write_bytes(numcodecs.Zstd().encode(np.arange(10, dtype="<u2")))
    reader = StoreReader.of(remote_array(http, "rows"))
    assert reader is not None
    with pytest.raises(ChunkReadError, match=r"c/2/0/0"):
        reader.read((slice(None),) * 3, np.dtype("<u2"))
