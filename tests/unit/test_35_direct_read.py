"""Direct chunk reads (``direct_read``) give exactly what zarr-python gives.

Every eligible layout is read both ways, over selections that cover whole chunks, parts of
chunks, edge chunks, single pixels and nothing; layouts the module does not handle must be
left to zarr (``DirectReader.of`` is ``None``), never read wrongly.
"""

from __future__ import annotations

import itertools
import math
import pickle

import numcodecs
import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr.codecs import (
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    TransposeCodec,
    ZstdCodec,
)

from xarray_ome_zarr import OmeZarrError
from xarray_ome_zarr.array import OmeZarrArray
from xarray_ome_zarr.direct_read import ChunkReadError, DirectReader

SHAPE = (3, 10, 13)
CHUNKS = (2, 4, 5)

LAYOUTS = {
    "v3-zstd": dict(zarr_format=3, compressors=ZstdCodec(level=1)),
    "v3-blosc": dict(zarr_format=3, compressors=BloscCodec(cname="lz4", shuffle="bitshuffle")),
    "v3-gzip+crc32c": dict(zarr_format=3, compressors=(GzipCodec(), Crc32cCodec())),
    "v3-raw": dict(zarr_format=3, compressors=None),
    "v3-big-endian": dict(zarr_format=3, serializer=BytesCodec(endian="big")),
    "v3-v2-keys": dict(zarr_format=3, chunk_key_encoding={"name": "v2", "separator": "."}),
    "v2-zstd": dict(zarr_format=2, compressors=numcodecs.Zstd(level=1)),
    "v2-blosc-slash": dict(
        zarr_format=2,
        compressors=numcodecs.Blosc(),
        chunk_key_encoding={"name": "v2", "separator": "/"},
    ),
    "v2-raw": dict(zarr_format=2, compressors=None),
    "v2-order-F": dict(zarr_format=2, order="F"),
    "v2-delta-filter": dict(zarr_format=2, filters=[numcodecs.Delta(dtype="<i4")]),
}
DTYPES = ["uint8", "<u2", ">u2", "int16", "<i4", "float32", ">f8", "complex64", "bool"]

KEYS = [
    (slice(None),) * 3,
    (slice(0, 2), slice(0, 4), slice(0, 5)),  # exactly one chunk
    (slice(1, 3), slice(3, 9), slice(4, 13)),  # parts of several, edge chunks
    (1, slice(None), slice(2, 3)),  # an int drops an axis
    (-1, -1, -1),  # one pixel, negative ints
    (slice(2, 2), slice(None), slice(None)),  # nothing
    (slice(None), slice(8, 100), slice(-3, None)),  # beyond the end, negative start
]


def make_array(tmp_path, layout: str, dtype: str = "<i4", fill=0, missing=()) -> zarr.Array:
    kwargs = dict(LAYOUTS[layout])
    array = zarr.create_array(
        tmp_path / f"{layout}.zarr",
        shape=SHAPE,
        chunks=CHUNKS,
        dtype=dtype,
        fill_value=fill,
        **kwargs,
    )
    rng = np.random.default_rng(7)
    values = rng.integers(0, 120, SHAPE).astype(dtype)
    if np.dtype(dtype).kind == "c":
        values = values + 1j * values[::-1]
    array[...] = values
    for coords in missing:
        array.store_path.store  # noqa: B018
        key = array.metadata.encode_chunk_key(coords)
        (tmp_path / f"{layout}.zarr" / key).unlink()
    return zarr.open_array(tmp_path / f"{layout}.zarr", mode="r")


def direct(array: zarr.Array) -> DirectReader:
    reader = DirectReader.of(array)
    assert reader is not None, "this layout should be read directly"
    return reader


@pytest.mark.parametrize(
    ("layout", "dtype"),
    [
        (layout, dtype)
        for layout in LAYOUTS
        for dtype in DTYPES
        if "filters" not in LAYOUTS[layout] or dtype == "<i4"  # the Delta filter is for int32
    ],
)
def test_direct_reads_equal_zarr(tmp_path, layout, dtype):
    array = make_array(tmp_path, layout, dtype)
    reader = direct(array)
    for key in KEYS:
        got = reader.read(key, np.dtype(array.dtype))
        expected = array[key]
        assert got is not None
        assert got.dtype == expected.dtype and got.shape == expected.shape, key
        np.testing.assert_array_equal(got, expected, err_msg=str(key))


FILLS = [("<u2", 7), ("float32", float("nan")), ("float64", -1.5), ("<i4", None)]


@pytest.mark.parametrize(
    ("layout", "dtype", "fill"),
    [
        (layout, dtype, fill)
        for layout in ("v3-zstd", "v2-zstd", "v2-order-F")
        for dtype, fill in FILLS
        if fill is not None or layout.startswith("v2")  # zarr v3 always has a fill value
    ],
)
def test_missing_chunks_read_as_zarr_reads_them(tmp_path, layout, dtype, fill):
    array = make_array(tmp_path, layout, dtype, fill=fill, missing=[(0, 0, 0), (1, 2, 2)])
    reader = direct(array)
    for key in KEYS:
        np.testing.assert_array_equal(reader.read(key, np.dtype(array.dtype)), array[key])


def test_strided_and_array_keys_are_left_to_zarr(tmp_path):
    reader = direct(make_array(tmp_path, "v3-zstd"))
    assert reader.read((slice(None, None, 2), slice(None), slice(None)), np.dtype("<i4")) is None
    assert reader.read((np.array([0, 2]), slice(None), slice(None)), np.dtype("<i4")) is None
    assert reader.read((5, 0, 0), np.dtype("<i4")) is None  # out of bounds: zarr's IndexError


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param(dict(filters=TransposeCodec(order=(2, 1, 0))), id="transpose"),
    ],
)
def test_layouts_zarr_must_read(tmp_path, kwargs):
    array = zarr.create_array(tmp_path / "a.zarr", shape=SHAPE, chunks=CHUNKS, dtype="u2", **kwargs)
    assert DirectReader.of(array) is None


def test_stores_zarr_must_read():
    array = zarr.create_array(zarr.storage.MemoryStore(), shape=SHAPE, chunks=CHUNKS, dtype="u2")
    assert DirectReader.of(array) is None
    strings = zarr.create_array(zarr.storage.MemoryStore(), shape=(3,), dtype=str)
    assert DirectReader.of(strings) is None


def test_a_corrupt_chunk_is_named(tmp_path):
    array = make_array(tmp_path, "v3-zstd")
    key = array.metadata.encode_chunk_key((1, 1, 1))
    (tmp_path / "v3-zstd.zarr" / key).write_bytes(b"not zstd at all")
    wrapped = OmeZarrArray(array, "store 'x', node '/'")
    with pytest.raises(OmeZarrError, match=r"store 'x'.*chunk 'c/1/1/1'"):
        xr.Variable(("z", "y", "x"), wrapped).values  # noqa: B018


def test_backend_array_pickles_and_reads_the_same(tmp_path):
    array = make_array(tmp_path, "v2-zstd", "<u2")
    wrapped = OmeZarrArray(array, "here")
    again = pickle.loads(pickle.dumps(wrapped))
    assert again._direct is not None
    key = xr.core.indexing.BasicIndexer((slice(1, 3), slice(None), slice(4, 11)))
    np.testing.assert_array_equal(again[key], array[1:3, :, 4:11])


def test_reads_in_a_forked_child_after_the_pool_started(tmp_path):
    import multiprocessing

    array = make_array(tmp_path, "v3-zstd", "<u2")
    reader = direct(array)
    expected = array[...]
    np.testing.assert_array_equal(reader.read((slice(None),) * 3, expected.dtype), expected)
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:  # the pool's threads are not in the child
        got = pool.apply_async(_read_all, (array,)).get(timeout=60)
    np.testing.assert_array_equal(got, expected)


def _read_all(array: zarr.Array) -> np.ndarray:
    return direct(array).read((slice(None),) * 3, np.dtype("<u2"))


def test_reads_only_the_chunks_a_selection_touches(tmp_path):
    """Every other chunk file is garbage: reading one of them would raise."""
    array = make_array(tmp_path, "v3-zstd", "<u2")
    expected = array[1:3, 3:5, 4:6]  # chunks (0..1, 0..1, 0..1): z 1-2, y 3-4, x 4-5
    reader = direct(array)
    touched = {
        (0, 0, 0),
        (0, 0, 1),
        (0, 1, 0),
        (0, 1, 1),
        (1, 0, 0),
        (1, 0, 1),
        (1, 1, 0),
        (1, 1, 1),
    }
    grid = [range(-(-n // c)) for n, c in zip(SHAPE, CHUNKS, strict=True)]
    for coords in itertools.product(*grid):
        if coords not in touched:
            (reader.folder / reader.chunk_key(coords)).write_bytes(b"garbage")
    np.testing.assert_array_equal(
        reader.read((slice(1, 3), slice(3, 5), slice(4, 6)), np.dtype("<u2")), expected
    )
    with pytest.raises(ChunkReadError):
        reader.read((slice(None),) * 3, np.dtype("<u2"))


@st.composite
def arrays_and_keys(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...], tuple, str]:
    """A shape, a chunk shape, a key of ints and unit-step slices, and a zarr format."""
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, n + 2)) for n in shape)
    key = []
    for n in shape:
        if draw(st.booleans()):
            key.append(draw(st.integers(-n, n - 1)))
        else:
            start = draw(st.none() | st.integers(-n - 2, n + 2))
            stop = draw(st.none() | st.integers(-n - 2, n + 2))
            key.append(slice(start, stop))
    return shape, chunks, tuple(key), draw(st.sampled_from(["2", "3"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=arrays_and_keys())
def test_any_basic_key_reads_as_zarr_reads_it(tmp_path_factory, case):
    shape, chunks, key, zarr_format = case
    folder = tmp_path_factory.mktemp("prop") / "a.zarr"
    array = zarr.create_array(
        folder, shape=shape, chunks=chunks, dtype="<i2", fill_value=-3, zarr_format=int(zarr_format)
    )
    values = np.arange(math.prod(shape), dtype="<i2").reshape(shape)
    array[...] = np.where(values % 5 == 0, -3, values)  # some chunks may hold only the fill
    reader = direct(zarr.open_array(folder, mode="r"))
    got = reader.read(key, np.dtype("<i2"))
    expected = array[key]
    assert got is not None and got.shape == np.shape(expected)
    np.testing.assert_array_equal(got, expected)


def test_an_unreadable_chunk_is_named(tmp_path):
    array = make_array(tmp_path, "v2-zstd")
    key = array.metadata.encode_chunk_key((0, 1, 2))
    path = tmp_path / "v2-zstd.zarr" / key
    path.unlink()
    path.mkdir()  # a directory where the chunk file should be
    wrapped = OmeZarrArray(array, "store 'x', node '/'")
    with pytest.raises(OmeZarrError, match=r"store 'x'.*chunk '0\.1\.2'"):
        xr.Variable(("z", "y", "x"), wrapped).values  # noqa: B018


# ---- decoding into a given buffer (remote_read's scratch buffers) -------------------------
@pytest.mark.parametrize("nbytes", [0, 10, 300, 70_000, 2**17 + 3])
@pytest.mark.parametrize("checksum", [False, True])
def test_zstd_content_size_reads_the_frame_header(nbytes, checksum):
    from xarray_ome_zarr.direct_read import zstd_content_size

    data = np.random.default_rng(1).integers(0, 4, nbytes).astype("u1").tobytes()
    frame = numcodecs.Zstd(level=1, checksum=checksum).encode(data)
    assert zstd_content_size(frame) == nbytes
    assert zstd_content_size(np.frombuffer(frame, "u1")) == nbytes  # a buffer too


def test_content_sizes_of_what_is_not_a_frame():
    from xarray_ome_zarr.direct_read import blosc_content_size, zstd_content_size

    assert zstd_content_size(b"not zstd at all") is None
    assert zstd_content_size(b"\x28\xb5\x2f\xfd") is None  # too short
    assert blosc_content_size(b"short") is None
    data = np.arange(1000, dtype="<u2")
    assert blosc_content_size(numcodecs.Blosc().encode(data)) == data.nbytes


@pytest.mark.parametrize("layout", ["v3-zstd", "v3-blosc", "v2-zstd", "v2-blosc"])
def test_decoding_into_a_buffer_gives_the_chunk_zarr_gives(tmp_path, layout):
    from xarray_ome_zarr.direct_read import chunk_decoder_into

    kwargs = {
        "v3-zstd": dict(zarr_format=3, compressors=ZstdCodec(level=1, checksum=True)),
        "v3-blosc": dict(zarr_format=3, compressors=BloscCodec(cname="zstd")),
        "v2-zstd": dict(zarr_format=2, compressors=numcodecs.Zstd()),
        "v2-blosc": dict(zarr_format=2, compressors=numcodecs.Blosc()),
    }[layout]
    array = zarr.create_array(
        tmp_path / "a.zarr", shape=(4, 6), chunks=(2, 3), dtype="<i4", **kwargs
    )
    array[...] = np.arange(24, dtype="<i4").reshape(4, 6)
    into = chunk_decoder_into(array)
    assert into is not None
    key = array.metadata.encode_chunk_key((1, 1))
    stored = (tmp_path / "a.zarr" / key).read_bytes()
    scratch = np.full(24, 0xFF, dtype="u1")
    chunk = into(stored, scratch)
    assert chunk is not None
    np.testing.assert_array_equal(chunk, array[2:4, 3:6])
    assert np.shares_memory(chunk, scratch)
    assert into(stored, np.empty(25, dtype="u1")) is None  # not the chunk's size
    other = numcodecs.Zstd().encode(np.arange(5, dtype="<i4"))  # another size stored
    if "zstd" in layout:
        assert into(other, scratch) is None


def test_no_decoding_into_a_buffer_where_zarr_must_convert(tmp_path):
    from xarray_ome_zarr.direct_read import chunk_decoder_into

    def make(name, **kwargs):
        return zarr.create_array(tmp_path / name, shape=(4,), chunks=(2,), **kwargs)

    assert chunk_decoder_into(make("be.zarr", dtype=">u2", zarr_format=2)) is None
    assert (
        chunk_decoder_into(make("be3.zarr", dtype="<u2", serializer=BytesCodec(endian="big")))
        is None
    )
    assert chunk_decoder_into(make("gzip.zarr", dtype="<u2", compressors=GzipCodec())) is None
    assert chunk_decoder_into(make("raw.zarr", dtype="<u2", compressors=None)) is None
    f_order = make("f.zarr", dtype="<u2", zarr_format=2, order="F", compressors=numcodecs.Zstd())
    assert chunk_decoder_into(f_order) is None
