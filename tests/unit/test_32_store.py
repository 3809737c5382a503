"""``store``: naming and opening every kind of store (path, ``file://``, ``.ozx``, URL, store
object, group), and the errors when nothing readable is there.

Remote stores (HTTP, S3, references) are opened against real servers in
``tests/integration/test_55_remote.py``; here fsspec's ``memory://`` stands in for a URL.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import zarr

from xarray_ome_zarr import OmeZarrError, OmeZarrWarning
from xarray_ome_zarr.ozx import write_ozx
from xarray_ome_zarr.store import (
    is_memory_store,
    is_url,
    is_zip_path,
    local_path,
    open_root,
    open_store,
    redact_url,
    store_name,
    url_path,
)


@pytest.fixture
def hierarchy(tmp_path) -> Path:
    """A zarr v3 group with an array ``0`` and a group ``labels``."""
    path = tmp_path / "img.zarr"
    root = zarr.open_group(path, mode="w", zarr_format=3)
    root.attrs["ome"] = {"version": "0.5"}
    root.create_array("0", shape=(2, 3), dtype="u1")
    root.create_group("labels")
    return path


# ---- names and kinds -----------------------------------------------------------------------
def test_names_never_carry_credentials():
    assert redact_url("s3://key:s3cret@bucket/img.zarr?token=abc") == "s3://bucket/img.zarr?..."
    assert store_name("https://user:pw@example.org/a.zarr") == "https://example.org/a.zarr"
    assert store_name(Path("/data/a.zarr")) == "/data/a.zarr"
    refs = {"fo": "https://u:p@example.org/refs.json"}
    assert store_name("reference://", refs) == "reference://https://example.org/refs.json"


def test_names_of_store_objects_and_groups(tmp_path):
    local = zarr.storage.LocalStore(tmp_path)
    assert store_name(local) == str(tmp_path)
    assert store_name(zarr.open_group(local, mode="w")) == str(tmp_path)
    memory = zarr.storage.FsspecStore.from_url("memory://xoz-32/a.zarr")
    name = store_name(memory)  # the filesystem's own spelling of the URL
    assert name.startswith("memory:") and name.endswith("/xoz-32/a.zarr")


def test_kinds_of_names():
    assert is_url("s3://b/a.zarr") and is_url("https://x/a.zarr")
    assert not is_url("file:///data/a.zarr") and not is_url("/data/a.zarr") and not is_url(3)
    assert is_zip_path("a.ozx") and is_zip_path("A.ZIP") and is_zip_path("https://x/a.ozx?x=1")
    assert is_zip_path(Path("dir/a.ozx/")) and not is_zip_path("a.zarr")
    assert not is_zip_path(zarr.storage.MemoryStore())
    assert url_path("https://x/data/a.ozx?q") == "/data/a.ozx" and url_path("a/b") == "a/b"
    # fsspec's memory:// (and s3://...) have no host: the first name is part of the path
    assert is_zip_path("memory://name.ozx") and url_path("memory://name.ozx") == "name.ozx"
    assert url_path("s3://bucket/a.ozx") == "bucket/a.ozx"
    assert not is_zip_path("https://data.zip/") and not is_zip_path("memory://name.ozx/a.zarr")
    assert local_path("file:///data/a.zarr") == "/data/a.zarr"
    assert local_path(Path("a.zarr")) == "a.zarr"


def test_memory_stores_are_recognised():
    assert is_memory_store(zarr.storage.MemoryStore())
    assert is_memory_store(zarr.open_group(zarr.storage.MemoryStore(), mode="w"))
    assert is_memory_store(zarr.storage.FsspecStore.from_url("memory://xoz-32/m.zarr"))
    assert not is_memory_store(zarr.storage.LocalStore("."))


# ---- opening -------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["str", "path", "file-url"])
def test_a_local_directory_opens(hierarchy, form):
    source = {"str": str(hierarchy), "path": hierarchy, "file-url": f"file://{hierarchy}"}[form]
    opened = open_root(source)
    assert isinstance(opened.group.store, zarr.storage.LocalStore)
    assert opened.group.store.read_only
    assert opened.group.attrs["ome"] == {"version": "0.5"}
    assert opened.name == str(source)
    opened.close()


def test_a_group_inside_opens_and_an_array_is_not_a_group(hierarchy):
    assert open_root(hierarchy, group="/labels/").group.path == "labels"
    parent = r"node '/0': is an array, not a group; its image is the parent group '/'"
    with pytest.raises(OmeZarrError, match=parent) as info:
        open_root(hierarchy, group="0")
    assert str(hierarchy) in str(info.value)
    with pytest.raises(OmeZarrError, match=r"no group 'nothing'"):
        open_root(hierarchy, group="nothing")


def test_store_objects_and_groups_open_as_they_are(hierarchy):
    store = zarr.storage.LocalStore(hierarchy, read_only=True)
    assert open_store(store)[0] is store
    assert open_root(store).group.attrs["ome"] == {"version": "0.5"}
    group = zarr.open_group(hierarchy, mode="r")
    assert open_root(group).group is group
    assert open_root(group, group="labels").group.path == "labels"


def test_a_url_opens_through_fsspec(hierarchy):
    url = "memory://xoz-32/url.zarr"
    memory = zarr.storage.FsspecStore.from_url(url, read_only=False)
    zarr.open_group(memory, mode="w", zarr_format=3).attrs["ome"] = {"version": "0.5"}
    opened = open_root(url)
    assert isinstance(opened.group.store, zarr.storage.FsspecStore)
    assert opened.group.attrs["ome"] == {"version": "0.5"}
    assert opened.name == url


def test_an_ozx_opens_and_closes(hierarchy, tmp_path):
    path = write_ozx(hierarchy, tmp_path / "img.ozx")
    opened = open_root(path)
    assert isinstance(opened.group.store, zarr.storage.ZipStore)
    assert opened.group["0"].shape == (2, 3)
    opened.close()
    assert not opened.group.store._is_open
    opened.close()  # twice is fine


def test_a_zip_with_the_hierarchy_in_a_folder_warns_and_opens(hierarchy, tmp_path):
    path = tmp_path / "folder.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for file in hierarchy.rglob("*"):
            if file.is_file():
                archive.write(file, f"img.zarr/{file.relative_to(hierarchy).as_posix()}")
    with pytest.warns(OmeZarrWarning, match=r"root is the folder 'img.zarr' inside the zip"):
        opened = open_root(path)
    assert opened.group.attrs["ome"] == {"version": "0.5"}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.zarr", "no such file or directory"),
        (lambda p: p / "missing.ozx", "no such file"),
        (lambda p: (p / "text.ozx").write_text("not a zip") and p / "text.ozx", "not a ZIP file"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no zarr group found"),
        (lambda p: "nosuchprotocol://x/a.zarr", "cannot open"),
    ],
)
def test_nothing_readable_is_an_error_naming_the_store(tmp_path, make, message):
    source = make(tmp_path)
    with pytest.raises(OmeZarrError, match=message) as info:
        open_root(source)
    assert f"store {str(source)!r}" in str(info.value)


def test_consolidated_metadata_required_but_missing(hierarchy):
    with pytest.raises(OmeZarrError, match=str(hierarchy)):
        open_root(hierarchy, consolidated=True)
    zarr.consolidate_metadata(hierarchy)
    assert open_root(hierarchy, consolidated=True).group.attrs["ome"] == {"version": "0.5"}
