"""to_ome_zarr beyond a local directory: ``.ozx`` (RFC-9), S3 and other fsspec URLs, and
consolidated metadata. Real servers on 127.0.0.1 only (see :mod:`tests.servers`)."""

from __future__ import annotations

import json
import os
import signal
import time
import zipfile
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

import xarray_ome_zarr as xoz
from xarray_ome_zarr import OmeZarrError
from xarray_ome_zarr.ozx import read_ozx_comment, write_ozx

from ..processes import Child
from ..servers import S3_ENV, http_server, s3_server

BUCKET = "ome-write"
METADATA = ("zarr.json", ".zattrs", ".zgroup", ".zarray", ".zmetadata")
pytestmark = pytest.mark.timeout(120)


# ---- helpers -------------------------------------------------------------------------------
def image(shape=(2, 4, 16, 20), seed=0) -> xr.DataArray:
    """A c/z/y/x uint16 image with physical coordinates (pixel centres, micrometers)."""
    data = np.random.default_rng(seed).integers(0, 60000, shape, dtype=np.uint16)
    coords = {
        d: (d, t + s * np.arange(n), {"units": "micrometer"})
        for d, n, s, t in zip("zyx", shape[1:], (2.0, 0.5, 0.25), (10.0, -3.0, 1.5), strict=True)
    }
    return xr.DataArray(data, dims=("c", "z", "y", "x"), coords=coords, name="cells")


def failing(shape=(2, 4, 16, 20)) -> xr.DataArray:
    """A lazy image whose block (1, 1, 0, 0) raises when computed."""

    def block(x, block_info=None):
        if block_info[None]["chunk-location"] == (1, 1, 0, 0):
            raise RuntimeError("disk on fire")
        return x

    data = da.ones(shape, chunks=(1, 1) + shape[2:], dtype=np.uint16)
    return image(shape).copy(data=data.map_blocks(block, dtype=np.uint16))


def files(root: Path) -> dict[str, bytes]:
    """Every file under a directory: relative path -> bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def objects(fs, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix`` on an fsspec filesystem: relative key -> bytes."""
    fs.invalidate_cache()
    keys = fs.find(prefix)
    found = fs.cat(keys, on_error="omit") if keys else {}  # keys deleted meanwhile: left out
    return {k[len(prefix) + 1 :]: v for k, v in found.items()}


def assert_same_tree(actual: xr.DataTree, expected: xr.DataTree) -> None:
    xr.testing.assert_identical(actual.load(), expected.load())


def does_not_open(store, **kwargs) -> None:
    with pytest.raises(OmeZarrError):
        xr.open_datatree(store, engine="ome-zarr", **kwargs)
    with pytest.raises(OmeZarrError):
        xr.open_dataset(store, engine="ome-zarr", **kwargs)


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        server.make_bucket(BUCKET)
        yield server


@pytest.fixture
def bucket(s3, request) -> str:
    """A fresh prefix in the bucket for one test: ``s3://ome-write/<test name>``."""
    name = request.node.name.replace("[", "-").replace("]", "").replace(".", "_")
    return f"s3://{BUCKET}/{name}"


# ---- .ozx ----------------------------------------------------------------------------------
def test_ozx_is_the_directory_zipped_by_rfc9(tmp_path):
    xoz.to_ome_zarr(image(), tmp_path / "dir.ome.zarr", scale_factors=[2])
    xoz.to_ome_zarr(image(), tmp_path / "img.ozx", scale_factors=[2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.ome.zarr", "img.ozx"]
    write_ozx(tmp_path / "dir.ome.zarr", tmp_path / "reference.ozx")
    # same hierarchy, same zip: entry order, no compression, ZIP64, comment, timestamps
    assert (tmp_path / "img.ozx").read_bytes() == (tmp_path / "reference.ozx").read_bytes()
    with zipfile.ZipFile(tmp_path / "img.ozx") as archive:
        names = archive.namelist()
    assert names[:3] == ["zarr.json", "0/zarr.json", "1/zarr.json"]
    assert read_ozx_comment(tmp_path / "img.ozx")["ome"]["version"] == "0.5"
    zipped = xr.open_datatree(tmp_path / "img.ozx", engine="ome-zarr")
    assert_same_tree(zipped, xr.open_datatree(tmp_path / "dir.ome.zarr", engine="ome-zarr"))
    np.testing.assert_array_equal(zipped["scale0"]["cells"].values, image().values)


def test_ngff_zarr_reads_the_ozx_we_write(tmp_path):
    ngff_zarr = pytest.importorskip("ngff_zarr")
    path = tmp_path / "img.ozx"
    xoz.to_ome_zarr(image(), path, scale_factors=[2, 2], version="0.5")
    ours = xr.open_datatree(path, engine="ome-zarr")
    theirs = ngff_zarr.from_ngff_zarr(str(path))  # zarrista's zip store, version from comment
    assert len(theirs.images) == 3
    for i, level in enumerate(theirs.images):
        expected = ours[f"scale{i}"]
        np.testing.assert_array_equal(np.asarray(level.data), expected["cells"].values)
        for dim in "zyx":
            assert level.scale[dim] == pytest.approx(expected.ome.scale[dim], rel=1e-12)
            assert level.translation[dim] == pytest.approx(expected.ome.translation[dim], rel=1e-12)


def test_ozx_needs_0_5(tmp_path):
    with pytest.raises(OmeZarrError, match=r"v2\.ozx.*0\.5 or later"):
        xoz.to_ome_zarr(image(), tmp_path / "v2.ozx", version="0.4")
    assert list(tmp_path.iterdir()) == []


def test_ozx_overwrite_rules_and_failed_writes(tmp_path):
    path = tmp_path / "img.ozx"
    xoz.to_ome_zarr(image(), path)
    before = path.read_bytes()
    with pytest.raises(OmeZarrError, match=r"img\.ozx.*already exists.*overwrite=True"):
        xoz.to_ome_zarr(image(seed=1), path)
    with pytest.raises(RuntimeError, match="disk on fire"):
        xoz.to_ome_zarr(failing(), path, overwrite=True)
    assert path.read_bytes() == before  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["img.ozx"]  # no staging left
    xoz.to_ome_zarr(image(seed=1), path, overwrite=True)
    back = xr.open_dataset(path, engine="ome-zarr")
    np.testing.assert_array_equal(back["cells"].values, image(seed=1).values)
    (tmp_path / "dir.ozx").mkdir()
    with pytest.raises(OmeZarrError, match=r"dir\.ozx.*is a directory"):
        xoz.to_ome_zarr(image(), tmp_path / "dir.ozx", overwrite=True)


def test_overwriting_the_ozx_the_input_is_read_from(tmp_path):
    path = tmp_path / "img.ozx"
    xoz.to_ome_zarr(image(), path, scale_factors=[2])
    crop = xr.open_dataset(path, engine="ome-zarr", chunks={}).isel(y=slice(3, 11))
    expected = crop["cells"].values
    xoz.to_ome_zarr(crop, path, overwrite=True)
    back = xr.open_dataset(path, engine="ome-zarr")
    np.testing.assert_array_equal(back["cells"].values, expected)
    assert float(back["y"][0]) == -3.0 + 3 * 0.5


def test_ozx_on_s3(s3, bucket, tmp_path):
    url = f"{bucket}/img.ozx"
    xoz.to_ome_zarr(image(), url, storage_options=s3.storage_options, scale_factors=[2])
    xoz.to_ome_zarr(image(), tmp_path / "local.ozx", scale_factors=[2])
    fs = s3.filesystem()
    assert objects(fs, bucket.removeprefix("s3://")) == {
        "img.ozx": (tmp_path / "local.ozx").read_bytes()  # one object, the same zip
    }
    remote = xr.open_datatree(url, engine="ome-zarr", storage_options=s3.storage_options)
    assert_same_tree(remote, xr.open_datatree(tmp_path / "local.ozx", engine="ome-zarr"))
    with pytest.raises(OmeZarrError, match=rf"{url}.*already exists"):
        xoz.to_ome_zarr(image(seed=1), url, storage_options=s3.storage_options)
    with pytest.raises(RuntimeError, match="disk on fire"):
        xoz.to_ome_zarr(failing(), url, storage_options=s3.storage_options, overwrite=True)
    assert fs.cat_file(url) == (tmp_path / "local.ozx").read_bytes()
    xoz.to_ome_zarr(image(seed=1), url, storage_options=s3.storage_options, overwrite=True)
    back = xr.open_dataset(url, engine="ome-zarr", storage_options=s3.storage_options)
    np.testing.assert_array_equal(back["cells"].values, image(seed=1).values)


# ---- S3 and other fsspec URLs --------------------------------------------------------------
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_s3_writes_what_a_directory_holds(s3, bucket, tmp_path, version):
    url = f"{bucket}/img.ome.zarr"
    kwargs = {"version": version, "scale_factors": [2], "chunks": {"y": 8, "x": 8}}
    xoz.to_ome_zarr(image(), url, storage_options=s3.storage_options, **kwargs)
    xoz.to_ome_zarr(image(), tmp_path / "img.ome.zarr", **kwargs)
    written = objects(s3.filesystem(), url.removeprefix("s3://"))
    assert written == files(tmp_path / "img.ome.zarr")  # every key, every byte
    remote = xr.open_datatree(url, engine="ome-zarr", storage_options=s3.storage_options)
    assert_same_tree(remote, xr.open_datatree(tmp_path / "img.ome.zarr", engine="ome-zarr"))


def test_s3_is_never_clobbered_without_overwrite(s3, bucket):
    url = f"{bucket}/img.ome.zarr"
    xoz.to_ome_zarr(image(), url, storage_options=s3.storage_options)
    fs = s3.filesystem()
    before = objects(fs, url.removeprefix("s3://"))
    with pytest.raises(OmeZarrError, match=rf"{url}.*not empty.*overwrite=True"):
        xoz.to_ome_zarr(image(seed=1), url, storage_options=s3.storage_options)
    fs.pipe_file(f"{bucket}/notes/readme.txt", b"not zarr")  # any object counts
    with pytest.raises(OmeZarrError, match="not empty"):
        xoz.to_ome_zarr(image(), f"{bucket}/notes", storage_options=s3.storage_options)
    assert objects(fs, url.removeprefix("s3://")) == before
    xoz.to_ome_zarr(image(seed=1), url, storage_options=s3.storage_options, overwrite=True)
    back = xr.open_dataset(url, engine="ome-zarr", storage_options=s3.storage_options)
    np.testing.assert_array_equal(back["cells"].values, image(seed=1).values)


def test_a_failed_s3_overwrite_leaves_nothing_that_opens(s3, bucket):
    url = f"{bucket}/img.ome.zarr"
    xoz.to_ome_zarr(image(), url, storage_options=s3.storage_options, scale_factors=[2])
    with pytest.raises(RuntimeError, match="disk on fire"):
        xoz.to_ome_zarr(failing(), url, storage_options=s3.storage_options, overwrite=True)
    does_not_open(url, storage_options=s3.storage_options)
    assert objects(s3.filesystem(), url.removeprefix("s3://")) == {}  # old and new gone


class Recording(zarr.storage.WrapperStore):
    """Records every write and delete of the store it wraps, in order."""

    def __init__(self, store) -> None:
        super().__init__(store)
        self.log: list[tuple[str, str, bytes]] = []

    async def set(self, key, value, byte_range=None) -> None:
        self.log.append(("set", key, value.to_bytes()))
        await self._store.set(key, value)

    async def set_if_not_exists(self, key, value) -> None:
        self.log.append(("set", key, value.to_bytes()))
        await self._store.set_if_not_exists(key, value)

    async def delete(self, key) -> None:
        self.log.append(("delete", key, b""))
        await self._store.delete(key)

    async def delete_dir(self, prefix) -> None:
        self.log.append(("delete_dir", prefix, b""))
        await self._store.delete_dir(prefix)


def test_s3_overwrite_removes_metadata_first_and_writes_it_last(s3, bucket):
    """An overwrite through the store of an ``s3://`` URL, logged: old metadata out first
    (the root's first), then chunks, then the new OME metadata, the root's last."""
    url = f"{bucket}/img.ome.zarr"
    xoz.to_ome_zarr(
        image(),
        url,
        storage_options=s3.storage_options,
        version="0.4",
        scale_factors=[2],
        consolidated=True,
    )
    old = sorted(objects(s3.filesystem(), url.removeprefix("s3://")))
    store = Recording(zarr.storage.FsspecStore.from_url(url, storage_options=s3.storage_options))
    xoz.to_ome_zarr(image(seed=1), store, overwrite=True, scale_factors=[2])
    ops = [(op, key) for op, key, _ in store.log]
    deletes = [key for op, key in ops if op == "delete"]
    assert sorted(deletes) == sorted(k for k in old if k.endswith(METADATA))
    assert ops[: len(deletes)] == [("delete", k) for k in deletes]  # before anything else
    assert deletes[0] == ".zmetadata" and {k.count("/") for k in deletes[:3]} == {0}  # root's
    assert ops[len(deletes)] == ("delete_dir", "")  # then the old chunks, in one go
    with_ome = [i for i, (op, _, value) in enumerate(store.log) if b'"multiscales"' in value]
    chunks = [
        i for i, (op, key) in enumerate(ops) if op == "set" and key.split("/")[-1] != "zarr.json"
    ]
    assert chunks and max(chunks) < min(with_ome) and with_ome == [len(ops) - 1]
    assert ops[-1] == ("set", "zarr.json")
    back = xr.open_datatree(url, engine="ome-zarr", storage_options=s3.storage_options)
    np.testing.assert_array_equal(back["scale0"]["cells"].values, image(seed=1).values)


CHILD = """
import sys, time
import dask, dask.array as da, numpy as np, xarray as xr
import xarray_ome_zarr as xoz

def slow(block):
    time.sleep(0.2)
    return block + 1

data = da.zeros((2, 8, 16, 16), dtype="uint16", chunks=(1, 1, 16, 16)).map_blocks(slow)
image = xr.DataArray(data, dims=("c", "z", "y", "x"))
options = {"endpoint_url": sys.argv[2], "key": "testing", "secret": "testing"}
with dask.config.set(scheduler="synchronous"):
    xoz.to_ome_zarr(image, sys.argv[1], storage_options=options, overwrite=True,
                    chunks={"z": 1}, version=sys.argv[3])
print("finished")
"""


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_an_s3_overwrite_killed_half_way_does_not_open(s3, bucket, version):
    """SIGKILL in the middle of an overwrite (no cleanup runs): no mix of old and new."""
    url = f"{bucket}/img.ome.zarr"
    xoz.to_ome_zarr(
        image(),
        url,
        storage_options=s3.storage_options,
        version=version,
        chunks={"z": 1},
        consolidated=True,
    )
    fs = s3.filesystem()
    old = objects(fs, url.removeprefix("s3://"))
    env = {**os.environ, **S3_ENV}
    child = Child(CHILD, url, s3.endpoint_url, version, env=env)  # a real process, forked
    try:
        deadline = time.monotonic() + 300  # a hang guard: the child imports, under load
        while True:
            now = objects(fs, url.removeprefix("s3://"))
            new_chunks = [k for k, v in now.items() if k not in old or old[k] != v]
            if len([k for k in new_chunks if not k.endswith(METADATA)]) >= 3:
                break
            assert child.poll() is None, "the writer ended before it could be interrupted"
            assert time.monotonic() < deadline, "the writer never started writing chunks"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    does_not_open(url, storage_options=s3.storage_options)
    left = objects(fs, url.removeprefix("s3://"))
    old_chunks = {k: v for k, v in old.items() if not k.endswith(METADATA)}
    assert not [k for k, v in left.items() if old_chunks.get(k) == v]  # no old pixel left


def test_other_fsspec_urls(tmp_path):
    url = f"memory://xoz-56-{os.getpid()}/img.ome.zarr"
    xoz.to_ome_zarr(image(), url, scale_factors=[2], consolidated=True)
    np.testing.assert_array_equal(
        xr.open_dataset(url, engine="ome-zarr")["cells"].values, image().values
    )
    with pytest.raises(OmeZarrError, match="not empty"):
        xoz.to_ome_zarr(image(), url)
    xoz.to_ome_zarr(image(seed=1), url, overwrite=True)
    assert sorted(xr.open_datatree(url, engine="ome-zarr").children) == ["scale0"]
    local = tmp_path / "f.ome.zarr"
    xoz.to_ome_zarr(image(), f"file://{local}", version="0.4")
    xoz.to_ome_zarr(image(seed=1), f"file://{local}", overwrite=True)
    assert (local / "zarr.json").is_file() and not (local / ".zattrs").exists()
    np.testing.assert_array_equal(
        xr.open_dataset(local, engine="ome-zarr")["cells"].values, image(seed=1).values
    )


# ---- consolidated metadata -----------------------------------------------------------------
def consolidated_of(path: Path, version: str) -> dict:
    if version == "0.4":
        return json.loads((path / ".zmetadata").read_text())["metadata"]
    return json.loads((path / "zarr.json").read_text())["consolidated_metadata"]["metadata"]


def tree_with_labels() -> xr.DataTree:
    tree = xoz.to_multiscale(image(), [2, 2])
    tree["labels/nuclei"] = xoz.to_multiscale((image()[0] // 20000).astype("uint8"), [2, 2])
    return tree


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_consolidated_metadata_is_written_when_asked(tmp_path, version):
    plain, consolidated = tmp_path / "plain.ome.zarr", tmp_path / "cons.ome.zarr"
    xoz.to_ome_zarr(tree_with_labels(), plain, version=version)
    xoz.to_ome_zarr(tree_with_labels(), consolidated, version=version, consolidated=True)
    if version == "0.4":
        assert not (plain / ".zmetadata").exists()
    else:
        assert "consolidated_metadata" not in json.loads((plain / "zarr.json").read_text())
    entries = consolidated_of(consolidated, version)
    key = "labels/nuclei/2/.zarray" if version == "0.4" else "labels/nuclei/2"
    assert key in entries  # the whole hierarchy, labels included
    other = {k: v for k, v in files(consolidated).items() if k not in (".zmetadata", "zarr.json")}
    assert other == {k: v for k, v in files(plain).items() if k in other}  # nothing else differs
    assert_same_tree(
        xr.open_datatree(consolidated, engine="ome-zarr"),
        xr.open_datatree(plain, engine="ome-zarr"),
    )


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_consolidated_metadata_comes_last(version):
    store = Recording(zarr.storage.MemoryStore())
    xoz.to_ome_zarr(image(), store, version=version, scale_factors=[2], consolidated=True)
    key, value = store.log[-1][1:]
    if version == "0.4":
        assert key == ".zmetadata"
        assert "multiscales" in json.loads(value)["metadata"][".zattrs"]
    else:
        document = json.loads(value)
        assert key == "zarr.json" and "multiscales" in document["attributes"]["ome"]
        assert set(document["consolidated_metadata"]["metadata"]) == {"0", "1"}
    with_ome = [i for i, (_, _, v) in enumerate(store.log) if b'"multiscales"' in v]
    chunks = [i for i, (_, k, _) in enumerate(store.log) if k.split("/")[-1][:1] not in ".z"]
    assert max(chunks) < min(with_ome)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_opening_a_consolidated_store_costs_one_round_trip(tmp_path, version):
    site = tmp_path / "site"
    xoz.to_ome_zarr(tree_with_labels(), site / "plain.ome.zarr", version=version)
    xoz.to_ome_zarr(tree_with_labels(), site / "cons.ome.zarr", version=version, consolidated=True)
    with http_server(site, delay=0.1) as server:
        plain = xr.open_datatree(f"{server.url}/plain.ome.zarr", engine="ome-zarr")
        plain_requests, plain_rounds = len(server.requests), len(server.rounds())
        server.clear()
        tree = xr.open_datatree(f"{server.url}/cons.ome.zarr", engine="ome-zarr")
        assert len(server.rounds()) == 1 < plain_rounds  # the root probe, nothing more
        # the root's 4 documents and, in the same wave, its labels group's: a consolidated
        # listing may miss labels added later
        assert len(server.requests) <= 8 < plain_requests, server.paths()
        assert not server.chunk_requests()
        assert_same_tree(tree, plain)


def test_consolidated_ozx_and_s3(s3, bucket, tmp_path):
    path = tmp_path / "img.ozx"
    xoz.to_ome_zarr(image(), path, scale_factors=[2], consolidated=True)
    with zipfile.ZipFile(path) as archive:
        root = json.loads(archive.read("zarr.json"))
    assert set(root["consolidated_metadata"]["metadata"]) == {"0", "1"}
    ngff_zarr = pytest.importorskip("ngff_zarr")
    assert len(ngff_zarr.from_ngff_zarr(str(path)).images) == 2
    url = f"{bucket}/img.ome.zarr"
    xoz.to_ome_zarr(
        image(),
        url,
        storage_options=s3.storage_options,
        version="0.4",
        scale_factors=[2],
        consolidated=True,
    )
    xoz.to_ome_zarr(
        image(), tmp_path / "local.ome.zarr", version="0.4", scale_factors=[2], consolidated=True
    )
    assert objects(s3.filesystem(), url.removeprefix("s3://")) == files(tmp_path / "local.ome.zarr")
