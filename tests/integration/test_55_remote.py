"""Stores beyond a local directory: ``.ozx`` (RFC-9), HTTP, S3, consolidated, references.

Servers run on 127.0.0.1 only and start once per module (see :mod:`tests.servers`).
"""

from __future__ import annotations

import json
import pickle
import struct
import time
import warnings
import zipfile
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import xarray as xr
import zarr

from xarray_ome_zarr import OmeZarrError, OmeZarrWarning
from xarray_ome_zarr.ozx import ozx_member_order, read_ozx_comment, write_ozx
from xarray_ome_zarr.store import open_root, store_name
from xarray_ome_zarr.targets import make_target, writing

from ..conftest import SCALE, TRANSLATION, logging_store, pixels, write_hand_image
from ..servers import (
    S3_ENV,
    closed_port,
    http_server,
    patched_env,
    s3_server,
    upload_tree,
)

VERSIONS = ["0.4", "0.5"]
#: Pixels of the small images that go to S3 (moto answers slowly): 4 + 2 chunks per image.
SMALL = (2, 2, 5, 8)
BUCKET = "ome"
pytestmark = pytest.mark.timeout(60)


# ---- module fixtures: one site on disk, one HTTP server, one S3 server --------------------
def _plain_zarr(path: Path) -> None:
    root = zarr.open_group(path, mode="w", zarr_format=3)
    root.create_array("a", shape=(4,), dtype="i4")[...] = np.arange(4)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A directory of stores: hand images (0.4, 0.5), consolidated copies, an .ozx, a plain zarr."""
    root = tmp_path_factory.mktemp("site")
    for version in VERSIONS:
        write_hand_image(root / f"img-{version}.zarr", version)
        write_hand_image(root / f"cons-{version}.zarr", version)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
            zarr.consolidate_metadata(zarr.storage.LocalStore(root / f"cons-{version}.zarr"))
        write_hand_image(root / f"small-{version}.zarr", version, pixels(SMALL))
    write_ozx(root / "img-0.5.zarr", root / "img-0.5.ozx")
    write_ozx(root / "small-0.5.zarr", root / "small-0.5.ozx")
    _plain_zarr(root / "plain.zarr")
    return root


@pytest.fixture(scope="module")
def http(site):
    with http_server(site) as server:
        yield server


@pytest.fixture
def served(http):
    """The module's HTTP server with an empty request log and no latency."""
    http.clear()
    http.delay = 0.0
    return http


@pytest.fixture(scope="module")
def s3(site):
    with s3_server() as server:
        fs = server.filesystem()
        server.make_bucket(BUCKET)
        for version in VERSIONS:
            upload_tree(fs, site / f"small-{version}.zarr", f"{BUCKET}/small-{version}.zarr")
        fs.pipe_file(f"{BUCKET}/small-0.5.ozx", (site / "small-0.5.ozx").read_bytes())
        yield server


def local_tree(site: Path, version: str, kind: str = "img") -> xr.DataTree:
    return xr.open_datatree(site / f"{kind}-{version}.zarr", engine="ome-zarr")


def assert_same_tree(remote: xr.DataTree, local: xr.DataTree) -> None:
    """Same nodes, attrs, coordinates and pixels."""
    xr.testing.assert_identical(remote.load(), local.load())


# ---- .ozx ----------------------------------------------------------------------------------
def test_write_ozx_follows_rfc9(site):
    path = site / "img-0.5.ozx"
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        comment = archive.comment
    names = [i.filename for i in infos]
    assert names[0] == "zarr.json"
    metadata = [n for n in names if n.endswith("zarr.json")]
    assert names[: len(metadata)] == metadata == ["zarr.json", "0/zarr.json", "1/zarr.json"]
    assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
    assert json.loads(comment)["ome"]["version"] == "0.5"
    assert read_ozx_comment(path)["ome"]["version"] == "0.5"
    # ZIP64 local headers (RFC-9: irrespective of size): extra field 0x0001 on the first entry
    with open(path, "rb") as fh:
        header = fh.read(30)
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        extra = fh.read(name_len + extra_len)[name_len:]
    assert extra[:2] == b"\x01\x00"
    # what ngff-zarr reads back from the comment
    ngff_zarr = pytest.importorskip("ngff_zarr")
    assert ngff_zarr.read_ozx_version(path) == "0.5"


def test_ozx_member_order_is_breadth_first():
    names = ["b/0/c/0", "labels/x/zarr.json", "zarr.json", "a/zarr.json", "a/0/zarr.json", "z"]
    assert ozx_member_order(names) == [
        "zarr.json",
        "a/zarr.json",
        "a/0/zarr.json",
        "labels/x/zarr.json",
        "b/0/c/0",
        "z",
    ]


def test_write_ozx_refuses(site, tmp_path):
    with pytest.raises(OmeZarrError, match="zarr v3"):
        write_ozx(site / "img-0.4.zarr", tmp_path / "v2.ozx")
    target = tmp_path / "x.ozx"
    target.write_bytes(b"keep")
    with pytest.raises(OmeZarrError, match="overwrite"):
        write_ozx(site / "img-0.5.zarr", target)
    assert target.read_bytes() == b"keep"
    write_ozx(site / "img-0.5.zarr", target, overwrite=True)
    assert target.read_bytes() == (site / "img-0.5.ozx").read_bytes()  # reproducible bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ozx"]  # no partial file left


def test_read_ozx_like_the_directory(site):
    local = local_tree(site, "0.5")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zipped = xr.open_datatree(site / "img-0.5.ozx", engine="ome-zarr")
    assert_same_tree(zipped, local)
    ds = xr.open_dataset(str(site / "img-0.5.ozx"), engine="ome-zarr", level=-1, chunks={})
    expected = xr.open_dataset(site / "img-0.5.zarr", engine="ome-zarr", level=-1)
    xr.testing.assert_identical(ds.load(), expected.load())
    ds.close()


def test_ngff_zarr_reads_our_ozx(site):
    ngff_zarr = pytest.importorskip("ngff_zarr")
    multiscales = ngff_zarr.from_ngff_zarr(str(site / "img-0.5.ozx"))
    local = local_tree(site, "0.5")
    assert len(multiscales.images) == 2
    image = multiscales.images[0]
    assert tuple(image.dims) == ("c", "z", "y", "x")
    np.testing.assert_array_equal(np.asarray(image.data), local["scale0"]["cells"].values)
    assert [image.scale[d] for d in image.dims] == SCALE
    assert [image.translation[d] for d in image.dims] == TRANSLATION


def test_we_read_ngff_zarr_ozx(tmp_path):
    ngff_zarr = pytest.importorskip("ngff_zarr")
    data = np.random.default_rng(3).integers(0, 4000, (6, 20, 18), dtype=np.uint16)
    image = ngff_zarr.to_ngff_image(
        data,
        dims=("z", "y", "x"),
        scale={"z": 2.0, "y": 0.5, "x": 0.25},
        translation={"z": 10.0, "y": -3.0, "x": 1.5},
    )
    multiscales = ngff_zarr.to_multiscales(image, scale_factors=[2], chunks=4)
    path = tmp_path / "theirs.ozx"
    ngff_zarr.to_ngff_zarr(str(path), multiscales)  # sharded by default for .ozx
    assert read_ozx_comment(path)["ome"]["version"] == "0.5"
    tree = xr.open_datatree(path, engine="ome-zarr")
    level0 = tree["scale0"].to_dataset()
    name = next(iter(level0.data_vars))
    np.testing.assert_array_equal(level0[name].values, data)
    np.testing.assert_allclose(level0["x"].values, 1.5 + 0.25 * np.arange(18))
    level1 = tree["scale1"].to_dataset()
    np.testing.assert_array_equal(
        level1[name].values, np.asarray(multiscales.images[1].data.compute())
    )
    assert level0[name].encoding.get("shards")  # the sharded layout ngff-zarr chose


def test_ozx_with_the_hierarchy_in_a_folder_warns_and_reads(site, tmp_path):
    source = site / "img-0.5.zarr"
    path = tmp_path / "folder.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(source.rglob("*")):
            if file.is_file():
                archive.write(file, f"img.zarr/{file.relative_to(source).as_posix()}")
    with pytest.warns(OmeZarrWarning, match="RFC-9"):
        tree = xr.open_datatree(path, engine="ome-zarr")
    assert_same_tree(tree, local_tree(site, "0.5"))


def test_ozx_errors(tmp_path):
    bad = tmp_path / "bad.ozx"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(OmeZarrError, match="bad.ozx.*not a ZIP"):
        xr.open_dataset(bad, engine="ome-zarr")
    with pytest.raises(OmeZarrError, match="missing.ozx.*no such file"):
        xr.open_dataset(tmp_path / "missing.ozx", engine="ome-zarr")
    empty = tmp_path / "empty.ozx"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(OmeZarrError, match="empty.ozx.*no zarr group"):
        xr.open_datatree(empty, engine="ome-zarr")


def test_ozx_over_http_uses_range_requests(site, served):
    tree = xr.open_datatree(f"{served.url}/img-0.5.ozx", engine="ome-zarr")
    assert_same_tree(tree, local_tree(site, "0.5"))
    gets = [r for r in served.requests if r.method == "GET"]
    assert gets and all(r.range for r in gets)  # never the whole file in one go
    tree.close()


# ---- HTTP and S3 ---------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_http_reads_like_local(site, served, version):
    url = f"{served.url}/img-{version}.zarr"
    assert_same_tree(xr.open_datatree(url, engine="ome-zarr"), local_tree(site, version))
    local = xr.open_dataset(site / f"img-{version}.zarr", engine="ome-zarr", level=1)
    remote = xr.open_dataset(url, engine="ome-zarr", level=1, chunks={})
    xr.testing.assert_identical(remote.load(), local.load())


@pytest.mark.parametrize("name", ["small-0.4.zarr", "small-0.5.zarr", "small-0.5.ozx"])
def test_s3_reads_like_local(site, s3, name):
    url = f"s3://{BUCKET}/{name}"
    tree = xr.open_datatree(url, engine="ome-zarr", storage_options=s3.storage_options)
    assert_same_tree(tree, local_tree(site, "0.4" if "0.4" in name else "0.5", "small"))
    ds = xr.open_dataset(url, engine="ome-zarr", storage_options=s3.storage_options, group="/")
    assert ds["cells"].dims == ("c", "z", "y", "x")


@pytest.mark.parametrize("name", ["img-0.5.zarr", "img-0.4.zarr", "img-0.5.ozx"])
def test_remote_dataset_pickles(site, served, name):
    ds = xr.open_dataset(f"{served.url}/{name}", engine="ome-zarr", chunks={})
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone["cells"].values, ds["cells"].values)


# ---- consolidated metadata -----------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_consolidated_metadata_saves_requests(site, served, version):
    xr.open_datatree(f"{served.url}/img-{version}.zarr", engine="ome-zarr")
    plain = len(served.requests)
    served.clear()
    tree = xr.open_datatree(f"{served.url}/cons-{version}.zarr", engine="ome-zarr")
    consolidated = len(served.requests)
    assert consolidated < plain
    # one wave: the root probed for both zarr formats (4 documents) and its labels group in
    # the store itself (a consolidated listing may miss labels added later): 8 at most
    assert consolidated <= 8, served.paths()
    xr.testing.assert_identical(tree.load(), local_tree(site, version).load())


@pytest.mark.parametrize("version", VERSIONS)
def test_round_trips_when_opening(served, version):
    """Requests that can go together do: counted as waves of requests at a slow server."""
    served.delay = 0.1
    xr.open_datatree(f"{served.url}/cons-{version}.zarr", engine="ome-zarr")
    assert len(served.rounds()) == 1  # root probe, everything else from consolidated metadata
    served.clear()
    xr.open_dataset(f"{served.url}/img-{version}.zarr", engine="ome-zarr")
    assert len(served.rounds()) == 2  # the root, then level 0
    served.clear()
    xr.open_datatree(f"{served.url}/img-{version}.zarr", engine="ome-zarr")
    assert len(served.rounds()) <= 3  # the root, the levels at once, the labels probe


def test_consolidated_can_be_refused(site, served):
    opened = open_root(f"{served.url}/cons-0.5.zarr", consolidated=False)
    assert opened.group.metadata.consolidated_metadata is None
    opened = open_root(f"{served.url}/cons-0.5.zarr")
    assert opened.group.metadata.consolidated_metadata is not None
    with pytest.raises(OmeZarrError, match="img-0.5.zarr"):
        open_root(f"{served.url}/img-0.5.zarr", consolidated=True)


# ---- virtual (reference) stores ------------------------------------------------------------
def test_kerchunk_references_open_like_the_store(site, tmp_path):
    kerchunk_zarr = pytest.importorskip("kerchunk.zarr")
    refs = kerchunk_zarr.single_zarr(str(site / "img-0.4.zarr"))
    path = tmp_path / "refs.json"
    path.write_text(json.dumps(refs))
    options = {"fo": str(path), "remote_protocol": "file"}
    tree = xr.open_datatree("reference://", engine="ome-zarr", storage_options=options)
    assert_same_tree(tree, local_tree(site, "0.4"))


def test_hand_written_v3_references_to_http_chunks(site, served, tmp_path):
    """Reference spec v1 by hand: metadata inline, chunks as [url] pointing at the server."""
    source = site / "img-0.5.zarr"
    refs: dict[str, object] = {}
    for file in sorted(source.rglob("*")):
        if not file.is_file():
            continue
        key = file.relative_to(source).as_posix()
        if key.endswith("zarr.json"):
            refs[key] = file.read_text()
        else:
            refs[key] = [f"{served.url}/img-0.5.zarr/{key}"]
    path = tmp_path / "refs.json"
    path.write_text(json.dumps({"version": 1, "refs": refs}))
    options = {"fo": str(path), "remote_protocol": "http"}
    tree = xr.open_datatree("reference://", engine="ome-zarr", storage_options=options)
    assert served.requests == []  # metadata is all in the references file
    assert_same_tree(tree, local_tree(site, "0.5"))
    assert served.chunk_requests()  # the pixels came from the server
    with pytest.raises(OmeZarrError, match=r"reference://.*missing\.json"):
        xr.open_datatree(
            "reference://",
            engine="ome-zarr",
            storage_options={"fo": str(tmp_path / "missing.json"), "remote_protocol": "file"},
        )


# ---- laziness over the network -------------------------------------------------------------
def _chunk_key(version: str, index: tuple[int, ...]) -> str:
    return ".".join(map(str, index)) if version == "0.4" else "c/" + "/".join(map(str, index))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("chunks", [None, {}])
def test_http_opening_reads_no_chunk_and_a_slice_only_its_chunks(served, version, chunks):
    url = f"{served.url}/img-{version}.zarr"
    ds = xr.open_dataset(url, engine="ome-zarr", chunks=chunks)
    tree = xr.open_datatree(url, engine="ome-zarr", chunks=chunks)
    assert served.chunk_requests() == []
    assert all(r.is_metadata for r in served.requests)
    # chunks are (1, 2, 5, 4): c=1, z=2..3, y=5..9, x=4..8 touches x-chunks 1 and 2 only
    assert ds["cells"][1, 2:4, 5:10, 4:9].values.shape == (2, 5, 5)
    got = sorted(r.path.split(f"img-{version}.zarr/0/", 1)[1] for r in served.chunk_requests())
    assert got == [_chunk_key(version, (1, 1, 1, 1)), _chunk_key(version, (1, 1, 1, 2))]
    served.clear()
    assert tree["scale1"]["cells"][0, 0, 0, 0].values.shape == ()
    got = [r.path.split(f"img-{version}.zarr/", 1)[1] for r in served.chunk_requests()]
    assert got == ["1/" + _chunk_key(version, (0, 0, 0, 0))]


def test_logging_store_over_http(served):
    remote = zarr.storage.FsspecStore.from_url(f"{served.url}/img-0.5.zarr", read_only=True)
    store, recorder = logging_store(remote)
    ds = xr.open_dataset(store, engine="ome-zarr")
    assert recorder.keys and recorder.chunk_keys == []
    recorder.keys.clear()
    assert ds["cells"][0, 0, :5, :4].values.shape == (5, 4)
    assert recorder.keys == ["0/c/0/0/0/0"]


# ---- errors --------------------------------------------------------------------------------
def test_unreachable_url_fails_fast_with_the_url():
    url = f"http://127.0.0.1:{closed_port()}/img.zarr"
    options = {"client_kwargs": {"timeout": aiohttp.ClientTimeout(total=5, connect=2)}}
    start = time.monotonic()
    with pytest.raises(OmeZarrError, match=rf"{url}.*cannot open"):
        xr.open_datatree(url, engine="ome-zarr", storage_options=options)
    assert time.monotonic() - start < 10


def test_credentials_stay_out_of_messages():
    url = f"http://user:s3cret@127.0.0.1:{closed_port()}/img.zarr?token=s3cret"
    with pytest.raises(OmeZarrError) as info:
        xr.open_dataset(url, engine="ome-zarr")
    assert "s3cret" not in str(info.value)
    assert "127.0.0.1" in str(info.value)
    assert "s3cret" not in store_name(url)


def test_http_missing_store_and_non_ome_store(served):
    url = f"{served.url}/nothing-here.zarr"
    with pytest.raises(OmeZarrError, match=rf"{url}.*no zarr group"):
        xr.open_dataset(url, engine="ome-zarr")
    url = f"{served.url}/plain.zarr"
    with pytest.raises(OmeZarrError, match=rf"{url}.*no OME"):
        xr.open_dataset(url, engine="ome-zarr")
    with pytest.raises(OmeZarrError, match=rf"{url}.*no OME"):
        xr.open_datatree(url, engine="ome-zarr")
    with pytest.raises(OmeZarrError, match=rf"{served.url}/img-0.5.zarr.*no group 'nope'"):
        xr.open_dataset(f"{served.url}/img-0.5.zarr", engine="ome-zarr", group="nope")


def test_s3_wrong_bucket_and_missing_credentials(s3):
    url = "s3://no-such-bucket/img-0.5.zarr"
    with pytest.raises(OmeZarrError, match=url):
        xr.open_dataset(url, engine="ome-zarr", storage_options=s3.storage_options)
    url = f"s3://{BUCKET}/small-0.5.zarr"
    no_credentials = {name: None for name in S3_ENV if name.startswith("AWS_") and "KEY" in name}
    no_credentials |= {"AWS_SECURITY_TOKEN": None, "AWS_SESSION_TOKEN": None}
    with patched_env(no_credentials), pytest.raises(OmeZarrError, match=rf"{url}.*credentials"):
        xr.open_dataset(
            url,
            engine="ome-zarr",
            storage_options={"endpoint_url": s3.endpoint_url, "skip_instance_cache": True},
        )


def test_s3_unreachable_endpoint_fails_fast():
    url = "s3://bucket/img.zarr"
    options = {
        "endpoint_url": f"http://127.0.0.1:{closed_port()}",
        "key": "k",
        "secret": "s",
        "retries": 1,
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
        "skip_instance_cache": True,
    }
    start = time.monotonic()
    with patched_env(S3_ENV), pytest.raises(OmeZarrError, match=url):
        xr.open_dataset(url, engine="ome-zarr", storage_options=options)
    assert time.monotonic() - start < 15


# ---- the write targets (the writer's side) ---------------------------------------------------
def test_target_directory(tmp_path):
    target = tmp_path / "out.ome.zarr"
    with writing(make_target(target), zarr_format=3) as root:
        write_hand_image(root.store, "0.5")
    assert xr.open_datatree(target, engine="ome-zarr")["scale0"]["cells"].shape == (2, 5, 13, 11)
    with pytest.raises(OmeZarrError, match="overwrite"):
        make_target(target)
    assert (target / "zarr.json").is_file()  # untouched
    replacing = make_target(target, overwrite=True)
    root = replacing.open(3)
    fresh = Path(root.store.root)  # a fresh directory beside the target, the new root only
    assert fresh.parent == tmp_path and [p.name for p in fresh.iterdir()] == ["zarr.json"]
    assert (target / "zarr.json").is_file()  # the old one stays until the commit
    replacing.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ome.zarr"]


def test_target_ozx(site, tmp_path):
    target = tmp_path / "out.ozx"
    with writing(make_target(target, version="0.5"), zarr_format=3) as root:
        write_hand_image(root.store, "0.5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ozx"]  # staging removed
    assert read_ozx_comment(target)["ome"]["version"] == "0.5"
    assert_same_tree(xr.open_datatree(target, engine="ome-zarr"), local_tree(site, "0.5"))
    before = target.read_bytes()
    with pytest.raises(OmeZarrError, match="overwrite"):
        make_target(target)
    with (
        pytest.raises(RuntimeError),
        writing(make_target(target, overwrite=True), zarr_format=3) as root,
    ):
        write_hand_image(root.store, "0.5")
        raise RuntimeError("the writer failed")
    assert target.read_bytes() == before  # a failed write leaves the old file alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ozx"]
    with pytest.raises(OmeZarrError, match="0.5 or later"):
        make_target(tmp_path / "v2.ozx", version="0.4")


@pytest.mark.parametrize("name", ["written.zarr", "written.ozx"])
def test_target_s3(site, s3, name):
    url = f"s3://{BUCKET}/{name}"
    with writing(make_target(url, storage_options=s3.storage_options), zarr_format=3) as root:
        write_hand_image(root.store, "0.5", pixels(SMALL))
    tree = xr.open_datatree(url, engine="ome-zarr", storage_options=s3.storage_options)
    assert_same_tree(tree, local_tree(site, "0.5", "small"))
    with pytest.raises(OmeZarrError, match=rf"{url}.*overwrite"):
        make_target(url, storage_options=s3.storage_options)
