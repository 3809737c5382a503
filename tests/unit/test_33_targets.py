"""``targets``: the one write-target abstraction (directory, store object or group, URL,
``.ozx``), checked before anything is written; committed whole or aborted without a trace.

Writes of whole images through every target are in ``tests/integration/test_56_remote_write``
(S3, HTTP) and ``test_62_killed_write`` (killed processes); here the targets themselves.
"""

from __future__ import annotations

import zipfile

import pytest
import zarr

from xarray_ome_zarr import OmeZarrError
from xarray_ome_zarr.ozx import check_ozx_target, ozx_comment, read_ozx_comment
from xarray_ome_zarr.targets import (
    LocalTarget,
    OzxTarget,
    StoreTarget,
    clear_hierarchy,
    make_target,
    writing,
)


def fill(root: zarr.Group, version: str = "0.5") -> None:
    """What a writer does: an array, then the OME metadata last."""
    root.create_array("0", shape=(2, 2), dtype="u1")[...] = 7
    root.attrs["ome"] = {"version": version}


class Failure(Exception):
    pass


# ---- which target -------------------------------------------------------------------------
def test_each_kind_of_store_gets_its_target(tmp_path):
    assert isinstance(make_target(tmp_path / "a.zarr"), LocalTarget)
    assert isinstance(make_target(f"file://{tmp_path}/b.zarr"), LocalTarget)
    assert isinstance(make_target(tmp_path / "c.ozx"), OzxTarget)
    assert isinstance(make_target("memory://xoz-33/d.zarr"), StoreTarget)
    assert isinstance(make_target(zarr.storage.MemoryStore()), StoreTarget)
    group = zarr.open_group(zarr.storage.MemoryStore(), mode="w").create_group("inner")
    target = make_target(group)
    assert isinstance(target, StoreTarget) and target.path == "inner"


def test_what_is_not_a_target_is_refused(tmp_path):
    with pytest.raises(OmeZarrError, match="cannot write to a int"):
        make_target(42)
    with pytest.raises(OmeZarrError, match="storage_options only apply to URLs"):
        make_target(tmp_path / "a.zarr", storage_options={"anon": True})
    with pytest.raises(OmeZarrError, match="0.5 or later; version '0.4' cannot be zipped"):
        make_target(tmp_path / "a.ozx", version="0.4")
    (tmp_path / "dir.ozx").mkdir()
    with pytest.raises(OmeZarrError, match="is a directory; an .ozx target is a file"):
        make_target(tmp_path / "dir.ozx")
    with pytest.raises(OmeZarrError, match="cannot open"):
        make_target("nosuchprotocol://x/a.zarr")


# ---- a local directory --------------------------------------------------------------------
def test_a_directory_is_written_beside_itself_and_renamed_into_place(tmp_path):
    path = tmp_path / "img.zarr"
    target = make_target(path)
    root = target.open(3)
    fill(root)
    assert not path.exists()  # nothing at the target until the commit
    target.commit()
    assert zarr.open_group(path, mode="r").attrs["ome"] == {"version": "0.5"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.zarr"]


def test_an_existing_directory_is_replaced_only_with_overwrite(tmp_path):
    path = tmp_path / "img.zarr"
    with writing(make_target(path), 3) as root:
        fill(root, "0.5")
    with pytest.raises(OmeZarrError, match=r"img\.zarr'?: already exists; pass overwrite=True"):
        make_target(path)
    with pytest.raises(Failure), writing(make_target(path, overwrite=True), 2) as root:
        fill(root, "0.4")
        raise Failure
    assert zarr.open_group(path, mode="r").attrs["ome"] == {"version": "0.5"}  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.zarr"]  # no staging left
    with writing(make_target(path, overwrite=True), 2) as root:
        fill(root, "0.4")
    assert zarr.open_group(path, mode="r", zarr_format=2).attrs["ome"] == {"version": "0.4"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.zarr"]  # the old one removed


def test_an_empty_directory_or_a_file_in_the_way(tmp_path):
    (tmp_path / "empty.zarr").mkdir()
    with writing(make_target(tmp_path / "empty.zarr"), 3) as root:
        fill(root)
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(OmeZarrError, match="already exists"):
        make_target(tmp_path / "file.zarr")
    with writing(make_target(tmp_path / "file.zarr", overwrite=True), 3) as root:
        fill(root)
    assert (tmp_path / "file.zarr" / "zarr.json").is_file()


# ---- a store object, a group, a URL -------------------------------------------------------
def test_a_store_is_written_in_place_and_refused_when_not_empty():
    store = zarr.storage.MemoryStore()
    with writing(make_target(store), 3) as root:
        fill(root)
    with pytest.raises(OmeZarrError, match="is not empty; pass overwrite=True"):
        make_target(store)
    with writing(make_target(store, overwrite=True), 3) as root:
        root.attrs["ome"] = {"version": "0.5", "new": True}
    assert zarr.open_group(store, mode="r").attrs["ome"]["new"] is True
    assert "0" not in zarr.open_group(store, mode="r")  # the old content went first


def test_a_failed_write_into_a_store_is_removed():
    store = zarr.storage.MemoryStore()
    with pytest.raises(Failure), writing(make_target(store), 3) as root:
        fill(root)
        raise Failure
    assert dict(store._store_dict) == {}


def test_a_group_target_writes_under_its_path():
    store = zarr.storage.MemoryStore()
    group = zarr.open_group(store, mode="w").create_group("inner")
    with writing(make_target(group), 3) as root:
        fill(root)
    assert zarr.open_group(store, mode="r", path="inner").attrs["ome"] == {"version": "0.5"}


def test_a_url_is_written_in_place():
    url = "memory://xoz-33/url.zarr"
    with writing(make_target(url), 3) as root:
        fill(root)
    with pytest.raises(OmeZarrError, match=rf"{url}.*not empty"):
        make_target(url)
    assert zarr.open_group(url, mode="r").attrs["ome"] == {"version": "0.5"}


def test_clearing_removes_metadata_before_chunks():
    class Recording(zarr.storage.MemoryStore):
        deleted: list[str] = []

        async def delete(self, key: str) -> None:
            self.deleted.append(key)
            await super().delete(key)

    store = Recording()
    root = zarr.open_group(store, mode="w", zarr_format=2)
    root.create_group("labels").create_array("0", shape=(2,), chunks=(1,), dtype="u1")[...] = 1
    root.create_array("0", shape=(2,), chunks=(1,), dtype="u1")[...] = 1
    zarr.consolidate_metadata(store)
    clear_hierarchy(store)
    documents = [k for k in store.deleted if k.rsplit("/", 1)[-1].startswith(".z")]
    assert documents[0] == ".zmetadata"  # consolidated metadata first, then the root's
    assert [k.count("/") for k in documents] == sorted(k.count("/") for k in documents)
    assert dict(store._store_dict) == {}


def test_a_store_that_cannot_delete_cannot_be_overwritten(tmp_path):
    store = zarr.storage.ZipStore(tmp_path / "a.zip", mode="w")
    zarr.open_group(store, mode="w").attrs["a"] = 1
    target = make_target(store, overwrite=True)
    with pytest.raises(OmeZarrError, match="cannot delete, so cannot overwrite"):
        target.open(3)
    store.close()


# ---- an .ozx file -------------------------------------------------------------------------
def test_an_ozx_is_staged_zipped_and_moved_into_place(tmp_path):
    path = tmp_path / "img.ozx"
    target = make_target(path)
    root = target.open(3)
    fill(root)
    assert not path.exists()
    target.commit()
    assert read_ozx_comment(path) == {
        "ome": {"version": "0.5", "zipFile": {"centralDirectory": {"jsonFirst": True}}}
    }
    with zipfile.ZipFile(path) as archive:
        assert archive.comment == ozx_comment("0.5")
        assert archive.namelist()[:2] == ["zarr.json", "0/zarr.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.ozx"]  # staging removed


def test_an_existing_ozx_is_replaced_whole_or_not_at_all(tmp_path):
    path = tmp_path / "img.ozx"
    with writing(make_target(path), 3) as root:
        fill(root)
    before = path.read_bytes()
    with pytest.raises(OmeZarrError, match="already exists; pass overwrite=True"):
        make_target(path)
    with pytest.raises(OmeZarrError, match="already exists"):
        check_ozx_target(path)
    with pytest.raises(Failure), writing(make_target(path, overwrite=True), 3) as root:
        fill(root)
        raise Failure
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.ozx"]
    with writing(make_target(path, overwrite=True), 3) as root:
        fill(root)
        root.attrs["extra"] = True
    assert path.read_bytes() != before


def test_a_file_appearing_before_the_write_starts_is_refused(tmp_path):
    path = tmp_path / "img.ozx"
    target = make_target(path)
    path.write_bytes(b"someone else's")
    with pytest.raises(OmeZarrError, match="already exists"):
        target.open(3)
    assert path.read_bytes() == b"someone else's"


def test_an_ozx_at_a_url(tmp_path):
    import fsspec

    url = "memory://xoz-33/bucket/img.ozx"
    with writing(make_target(url), 3) as root:
        fill(root)
    data = fsspec.filesystem("memory").cat_file(url)
    (tmp_path / "copy.ozx").write_bytes(data)
    assert read_ozx_comment(tmp_path / "copy.ozx")["ome"]["version"] == "0.5"
    with pytest.raises(OmeZarrError, match="already exists"):
        make_target(url)
