"""Direct reads of sharded zarr v3 arrays give exactly what zarr-python gives.

The shard layouts of the spec's ``sharding_indexed`` codec (index at the end and at the
start, with and without its crc32c, inner codecs of several kinds), shards cut by the array's
edges, missing inner chunks and missing whole shards, each read both ways over selections
that take whole shards, parts of shards, single pixels and nothing. Layouts the module does
not handle are left to zarr (``DirectReader.of`` is ``None``), never read wrongly.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr.codecs import (
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    ShardingCodec,
    TransposeCodec,
    ZstdCodec,
)

from xarray_ome_zarr.direct_read import ChunkReadError, DirectReader

SHAPE = (3, 11, 14)  # shards cut by every edge
SHARDS = (2, 8, 8)
CHUNKS = (1, 4, 4)

LAYOUTS = {
    "end-zstd": dict(compressors=ZstdCodec(level=1)),
    "start-zstd": dict(compressors=ZstdCodec(level=1), index_location="start"),
    "end-gzip+crc32c": dict(compressors=(GzipCodec(), Crc32cCodec())),
    "start-raw": dict(compressors=None, index_location="start"),
    "end-big-endian": dict(serializer=BytesCodec(endian="big"), compressors=ZstdCodec(level=1)),
}
DTYPES = ["uint8", "<u2", "int16", "float32", ">f8", "bool"]

KEYS = [
    (slice(None),) * 3,
    (slice(0, 2), slice(0, 8), slice(0, 8)),  # exactly one shard
    (slice(0, 1), slice(0, 4), slice(4, 8)),  # exactly one inner chunk
    (slice(1, 3), slice(3, 9), slice(5, 13)),  # parts of several shards and inner chunks
    (2, slice(None), slice(9, 14)),  # the edge shards; an int drops an axis
    (1, slice(None), slice(2, 3)),
    (-1, -1, -1),  # one pixel in the corner shard, negative ints
    (slice(2, 2), slice(None), slice(None)),  # nothing
    (slice(None), slice(8, 100), slice(-3, None)),  # beyond the end, negative start
]


def values_for(dtype: str, shape=SHAPE) -> np.ndarray:
    rng = np.random.default_rng(5)
    return rng.integers(1, 120, shape).astype(dtype)


def make_array(
    tmp_path, layout: str, dtype: str = "<u2", fill=0, values=None, index_codecs=None
) -> zarr.Array:
    kwargs = dict(LAYOUTS[layout])
    location = kwargs.pop("index_location", "end")
    folder = tmp_path / f"{layout}-{dtype}.zarr"
    array = zarr.create_array(
        folder,
        shape=SHAPE,
        shards=SHARDS,
        chunks=CHUNKS,
        dtype=dtype,
        fill_value=fill,
        zarr_format=3,
        **kwargs,
    )
    if location == "start" or index_codecs is not None:
        # zarr's create_array writes the index at the end; rewrite the codec in zarr.json
        _set_sharding(folder, index_location=location, index_codecs=index_codecs)
        array = zarr.open_array(folder, mode="r+")
    array[...] = values_for(dtype) if values is None else values
    return zarr.open_array(folder, mode="r")


def _set_sharding(folder, index_location: str, index_codecs) -> None:
    import json

    meta = json.loads((folder / "zarr.json").read_text())
    (codec,) = [c for c in meta["codecs"] if c["name"] == "sharding_indexed"]
    codec["configuration"]["index_location"] = index_location
    if index_codecs is not None:
        codec["configuration"]["index_codecs"] = index_codecs
    (folder / "zarr.json").write_text(json.dumps(meta))


def direct(array: zarr.Array) -> DirectReader:
    reader = DirectReader.of(array)
    assert reader is not None, "this sharded layout should be read directly"
    return reader


def assert_reads_as_zarr(reader: DirectReader, array: zarr.Array, keys=KEYS) -> None:
    for key in keys:
        got = reader.read(key, np.dtype(array.dtype))
        expected = array[key]
        assert got is not None, key
        assert got.dtype == expected.dtype and got.shape == expected.shape, key
        np.testing.assert_array_equal(got, expected, err_msg=str(key))


@pytest.mark.parametrize(
    ("layout", "dtype"),
    [(layout, "<u2") for layout in LAYOUTS]
    + [("end-zstd", dtype) for dtype in DTYPES if dtype != "<u2"],
)
def test_sharded_reads_equal_zarr(tmp_path, layout, dtype):
    array = make_array(tmp_path, layout, dtype)
    assert array.shards == SHARDS
    assert_reads_as_zarr(direct(array), array)


def test_index_without_crc32c(tmp_path):
    array = make_array(
        tmp_path,
        "end-zstd",
        index_codecs=[{"name": "bytes", "configuration": {"endian": "little"}}],
    )
    assert_reads_as_zarr(direct(array), array)


@pytest.mark.parametrize("layout", ["end-zstd", "start-zstd"])
@pytest.mark.parametrize(("dtype", "fill"), [("<u2", 7), ("float32", float("nan"))])
def test_missing_inner_chunks_and_shards_read_as_fill(tmp_path, layout, dtype, fill):
    values = values_for(dtype)
    values[0, 0:4, 0:4] = fill  # an inner chunk of only the fill value: not stored
    values[1:3, 4:8, 8:12] = fill  # two more, in another shard
    values[:, 8:, 8:] = fill  # a whole edge shard of only fill: no file
    array = make_array(tmp_path, layout, dtype, fill=fill, values=values)
    reader = direct(array)
    assert not (reader.folder / reader.chunk_key((0, 1, 1))).exists()
    assert_reads_as_zarr(reader, array)
    (reader.folder / reader.chunk_key((1, 0, 0))).unlink()  # a whole shard deleted
    assert_reads_as_zarr(reader, array)


def test_a_corrupt_index_is_named(tmp_path):
    array = make_array(tmp_path, "end-zstd")
    reader = direct(array)
    path = reader.folder / reader.chunk_key((0, 0, 1))
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # inside the index: its crc32c no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(Exception):  # noqa: B017, PT011 - zarr refuses it too
        array[0:2, 0:8, 8:14]
    with pytest.raises(ChunkReadError, match=r"c/0/0/1"):
        reader.read((slice(0, 2), slice(0, 8), slice(8, 14)), np.dtype("<u2"))
    # a shard that is too short to hold its index
    path.write_bytes(b"short")
    with pytest.raises(ChunkReadError, match=r"c/0/0/1"):
        reader.read((0, 0, 9), np.dtype("<u2"))


def test_a_corrupt_inner_chunk_is_named(tmp_path):
    array = make_array(tmp_path, "end-zstd")
    reader = direct(array)
    path = reader.folder / reader.chunk_key((0, 0, 0))
    offsets = _index(path, SHARDS, CHUNKS)
    start, length = offsets[0, 1, 1]  # inner chunk (0, 1, 1): y 4-8, x 4-8
    data = bytearray(path.read_bytes())
    data[start : start + length] = b"\x00" * length
    path.write_bytes(bytes(data))
    with pytest.raises(ChunkReadError, match=r"c/0/0/0"):
        reader.read((0, slice(4, 8), slice(4, 8)), np.dtype("<u2"))


def _index(path, shards, chunks) -> np.ndarray:
    """The (offset, length) pairs of a shard whose index sits at the end with a crc32c."""
    per_shard = tuple(s // c for s, c in zip(shards, chunks, strict=True))
    size = 16 * math.prod(per_shard)
    raw = path.read_bytes()[-size - 4 : -4]
    return np.frombuffer(raw, "<u8").reshape(*per_shard, 2)


def test_a_partial_selection_reads_only_its_inner_chunks(tmp_path):
    """Every other inner chunk of the shard is garbage: decoding one of them would raise."""
    array = make_array(tmp_path, "end-zstd")
    expected = array[0, 0:4, 4:8]
    reader = direct(array)
    path = reader.folder / reader.chunk_key((0, 0, 0))
    offsets = _index(path, SHARDS, CHUNKS)
    data = bytearray(path.read_bytes())
    for coords in itertools.product(*(range(n) for n in offsets.shape[:-1])):
        if coords != (0, 0, 1):
            start, length = offsets[coords]
            data[start : start + length] = b"\x01" * length
    path.write_bytes(bytes(data))
    np.testing.assert_array_equal(
        reader.read((0, slice(0, 4), slice(4, 8)), expected.dtype), expected
    )
    with pytest.raises(ChunkReadError):
        reader.read((slice(None),) * 3, expected.dtype)


def test_reads_only_the_shards_a_selection_touches(tmp_path):
    array = make_array(tmp_path, "end-zstd")
    expected = array[0:2, 0:8, 8:14]
    reader = direct(array)
    for coords in itertools.product(range(2), range(2), range(2)):
        if coords != (0, 0, 1):
            (reader.folder / reader.chunk_key(coords)).write_bytes(b"garbage")
    key = (slice(0, 2), slice(0, 8), slice(8, 14))
    np.testing.assert_array_equal(reader.read(key, expected.dtype), expected)


@pytest.mark.parametrize(
    "codecs",
    [
        pytest.param([TransposeCodec(order=(2, 1, 0)), BytesCodec()], id="inner-transpose"),
        pytest.param(
            [ShardingCodec(chunk_shape=(1, 2, 2), codecs=[BytesCodec()])], id="nested-shards"
        ),
    ],
)
def test_inner_layouts_zarr_must_read(tmp_path, codecs):
    folder = tmp_path / "a.zarr"
    zarr.create_array(folder, shape=SHAPE, shards=SHARDS, chunks=CHUNKS, dtype="<u2")
    import json

    meta = json.loads((folder / "zarr.json").read_text())
    meta["codecs"][0]["configuration"]["codecs"] = [c.to_dict() for c in codecs]
    (folder / "zarr.json").write_text(json.dumps(meta))
    array = zarr.open_array(folder, mode="r")
    assert DirectReader.of(array) is None


@st.composite
def sharded_cases(draw: st.DrawFn) -> tuple:
    """A shape, a shard shape, an inner chunk shape dividing it, and a basic key."""
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, 3)) for _ in shape)
    shards = tuple(c * draw(st.integers(1, 3)) for c in chunks)
    key = []
    for n in shape:
        if draw(st.booleans()):
            key.append(draw(st.integers(-n, n - 1)))
        else:
            start = draw(st.none() | st.integers(-n - 2, n + 2))
            stop = draw(st.none() | st.integers(-n - 2, n + 2))
            key.append(slice(start, stop))
    return shape, shards, chunks, tuple(key), draw(st.sampled_from(["end", "start"]))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=sharded_cases())
def test_any_basic_key_of_any_sharding_reads_as_zarr_reads_it(tmp_path_factory, case):
    shape, shards, chunks, key, location = case
    folder = tmp_path_factory.mktemp("prop") / "a.zarr"
    zarr.create_array(folder, shape=shape, shards=shards, chunks=chunks, dtype="<i2", fill_value=-3)
    if location == "start":
        _set_sharding(folder, "start", None)
    array = zarr.open_array(folder, mode="r+")
    values = np.arange(math.prod(shape), dtype="<i2").reshape(shape)
    array[...] = np.where(values % 4 == 0, -3, values)  # some inner chunks only the fill
    reader = direct(zarr.open_array(folder, mode="r"))
    got = reader.read(key, np.dtype("<i2"))
    expected = array[key]
    assert got is not None and got.shape == np.shape(expected)
    np.testing.assert_array_equal(got, expected)
