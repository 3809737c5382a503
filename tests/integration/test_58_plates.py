"""Plates (issue 16): the fast ways of opening them give what the plain ways give.

Every fast path of a plate's open (members of all wells fetched at once, schema checks of
equal documents remembered, Datasets built from their parts, the tree linked node by node)
is compared with the plain path on the same store; broken wells are still named. Plates are
small and hold no chunk (metadata only): pixels do not matter here.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr

from xarray_ome_zarr import OmeZarrError, OmeZarrWarning, _compat, hierarchy, reader
from xarray_ome_zarr.ngff import schema

ROWS, COLUMNS, FIELDS = ("A", "B"), ("1", "2", "3"), ("0", "1")


def _put_ome(group: zarr.Group, version: str, block: dict[str, Any]) -> None:
    if version == "0.5":
        group.attrs["ome"] = {"version": "0.5", **block}
    else:
        group.attrs.update(block)


def _field_block(version: str, levels: int, shift: float = 0.0) -> dict[str, Any]:
    multiscale: dict[str, Any] = {
        "name": "image",
        "axes": [
            {"name": "c", "type": "channel"},
            {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"},
        ],
        "datasets": [
            {
                "path": str(i),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [1.0, 0.5 * 2**i, 0.5 * 2**i]},
                    {"type": "translation", "translation": [0.0, shift, shift]},
                ],
            }
            for i in range(levels)
        ],
    }
    if version != "0.5":
        multiscale["version"] = version
    window = {"start": 0, "end": 4000, "min": 0, "max": 65535}
    channels = [{"label": "DAPI", "color": "0000FF", "active": True, "window": window}]
    return {"multiscales": [multiscale], "omero": {"channels": channels}}


def write_plate(
    path: Path,
    version: str = "0.5",
    *,
    rows: tuple[str, ...] = ROWS,
    columns: tuple[str, ...] = COLUMNS,
    fields: tuple[str, ...] = FIELDS,
    levels: int = 2,
    size: int = 8,
) -> Path:
    """A plate of ``rows`` x ``columns`` wells of ``fields`` images (``c=1``, ``size``²,
    ``levels`` levels), written with zarr-python; arrays hold no chunk."""
    fmt = 3 if version == "0.5" else 2
    root = zarr.open_group(path, mode="w", zarr_format=fmt)
    wells = []
    for r, row in enumerate(rows):
        for c, column in enumerate(columns):
            wells.append({"path": f"{row}/{column}", "rowIndex": r, "columnIndex": c})
            well = root.require_group(f"{row}/{column}")
            block: dict[str, Any] = {"images": [{"path": f} for f in fields]}
            if version != "0.5":
                block["version"] = version
            _put_ome(well, version, {"well": block})
            for f in fields:
                image = well.require_group(f)
                for i in range(levels):
                    n = size >> i
                    extra = {"dimension_names": ("c", "y", "x")} if fmt == 3 else {}
                    image.create_array(
                        str(i), shape=(1, n, n), chunks=(1, n, n), dtype="u2", **extra
                    )
                _put_ome(image, version, _field_block(version, levels))
    plate: dict[str, Any] = {
        "name": "test plate",
        "rows": [{"name": r} for r in rows],
        "columns": [{"name": c} for c in columns],
        "wells": wells,
        "field_count": len(fields),
    }
    if version != "0.5":
        plate["version"] = version
    _put_ome(root, version, {"plate": plate})
    return path


@pytest.fixture
def plain_paths(monkeypatch):
    """Turn every fast path of opening off: what the plain paths give."""

    def off() -> None:
        monkeypatch.setattr(hierarchy.Walker, "prefetch_wells", lambda self, wells: None)
        monkeypatch.setattr(_compat, "has_tree_links", lambda: False)
        monkeypatch.setattr(_compat, "has_node_data_setter", lambda: False)
        monkeypatch.setattr(_compat, "_dataset_construct_direct", lambda: None)
        monkeypatch.setattr(schema, "_json_text", lambda document: None)
        monkeypatch.setattr(_compat, "HAS_SHARED_ARRAY_METADATA", False)
        monkeypatch.setattr(reader.NodeReader, "remember_coordinates", False)

    return off


def assert_same_trees(fast: xr.DataTree, plain: xr.DataTree) -> None:
    """Identical trees, down to node order, index types, variable order and encodings."""
    xr.testing.assert_identical(fast, plain)
    assert [n.path for n in fast.subtree] == [n.path for n in plain.subtree]
    for a, b in zip(fast.subtree, plain.subtree, strict=True):
        assert list(a.dataset.variables) == list(b.dataset.variables)
        assert {k: type(v) for k, v in a.xindexes.items()} == {
            k: type(v) for k, v in b.xindexes.items()
        }
        for name in a.dataset.variables:
            assert a[name].encoding.keys() == b[name].encoding.keys(), name
            assert type(a[name].variable._data) is type(b[name].variable._data)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_plate_tree_is_the_plain_paths_tree(version, tmp_path, plain_paths):
    path = write_plate(tmp_path / "plate.ome.zarr", version)
    fast = xr.open_datatree(path, engine="ome-zarr")
    plain_paths()
    plain = xr.open_datatree(path, engine="ome-zarr")
    assert_same_trees(fast, plain)
    # every node already has its indexes: xarray's second pass to make them changes nothing
    assert_same_trees(
        xr.open_datatree(path, engine="ome-zarr", create_default_indexes=False), plain
    )
    assert set(fast["A"].children) == set(COLUMNS)
    assert fast["B/3/1/scale1"]["image"].shape == (1, 4, 4)


@pytest.mark.parametrize("options", [{}, {"lazy_coordinates": False, "drop_variables": ["c"]}])
def test_open_datatree_skips_xarrays_index_pass(tmp_path, monkeypatch, options):
    """``xr.open_datatree`` (engine by name or class) and ``xoz.open_ome_datatree`` give the
    tree xarray's default-index pass gives without running it over every node: the reader
    indexes every dimension coordinate itself. Other engines still get the pass."""
    import xarray.backends.api as xarray_api

    import xarray_ome_zarr as xoz
    from xarray_ome_zarr.backend import OmeZarrBackendEntrypoint

    path = write_plate(tmp_path / "plate.ome.zarr")
    calls = []
    original = xarray_api._maybe_create_default_indexes

    def counted(ds):
        calls.append(1)
        return original(ds)

    monkeypatch.setattr(xarray_api, "_maybe_create_default_indexes", counted)
    trees = [
        xr.open_datatree(path, engine="ome-zarr", **options),
        xr.open_datatree(path, engine=OmeZarrBackendEntrypoint, **options),
        xoz.open_ome_datatree(path, create_default_indexes=True, **options),
        xoz.open_ome_datatree(path, **options),
    ]
    assert not calls
    unindexed = xr.open_datatree(path, engine="ome-zarr", create_default_indexes=False, **options)
    plain = unindexed.map_over_datasets(xarray_api._maybe_create_default_indexes)  # the pass
    assert calls
    for tree in trees:
        assert_same_trees(tree, plain)

    calls.clear()
    xr.Dataset(coords={"x": [1, 2]}).to_zarr(tmp_path / "plain.zarr", consolidated=False)
    with xr.open_datatree(tmp_path / "plain.zarr", engine="zarr", consolidated=False) as other:
        assert other["x"].values.tolist() == [1, 2]
    assert calls  # zarr's engine: xarray's own pass, as without us


def test_lazy_coordinates_off_and_dropped_variables_too(tmp_path, plain_paths):
    path = write_plate(tmp_path / "plate.ome.zarr")
    options = {"lazy_coordinates": False, "drop_variables": ["c"]}
    fast = xr.open_datatree(path, engine="ome-zarr", **options)
    plain_paths()
    assert_same_trees(fast, xr.open_datatree(path, engine="ome-zarr", **options))
    assert "c" not in fast["A/1/0/scale0"].coords


def test_broken_wells_and_fields_are_named_as_before(tmp_path, plain_paths):
    path = write_plate(tmp_path / "plate.ome.zarr")
    shutil.rmtree(path / "A" / "2" / "1" / "0")  # a field without its level 0
    shutil.rmtree(path / "B" / "1")  # a listed well that is not there
    with pytest.warns(OmeZarrWarning) as fast_warnings:
        fast = xr.open_datatree(path, engine="ome-zarr")
    plain_paths()
    with pytest.warns(OmeZarrWarning) as plain_warnings:
        plain = xr.open_datatree(path, engine="ome-zarr")
    assert_same_trees(fast, plain)
    said = sorted(str(w.message) for w in fast_warnings if w.category is OmeZarrWarning)
    assert said == sorted(str(w.message) for w in plain_warnings if w.category is OmeZarrWarning)
    assert any("'/A/2/1' cannot be read" in s for s in said), said
    assert any("'/B/1' cannot be read" in s for s in said), said
    assert "1" not in fast["A/2"].children and "1" not in fast["B"].children


def test_wells_whose_levels_differ_keep_each_its_own_array(tmp_path, plain_paths):
    """Equal array documents are parsed once: a well whose level arrays differ in dtype,
    shape, chunks, fill value, codecs or attributes from the others reads as its own, with
    values, encodings and attributes as zarr's own lookup of each array gives them."""
    path = write_plate(tmp_path / "plate.ome.zarr", levels=2, size=8)
    differs = {
        "A/2/0": {"dtype": "f4"},
        "A/3/1": {"fill_value": 9},
        "B/1/0": {"chunks": (1, 4, 4)},
        "B/2/1": {"compressors": zarr.codecs.GzipCodec(level=1)},
        "B/3/0": {"attributes": {"note": "own"}},
        "B/3/1": {"shape": (1, 6, 6)},
    }
    for field, change in differs.items():
        image = zarr.open_group(path / field, mode="a")
        for i in range(2):
            n = (change.get("shape", (1, 8, 8))[1]) >> i
            options = {"shape": (1, n, n), "chunks": (1, n, n), "dtype": "u2", **change}
            options["shape"] = (1, n, n)
            image.create_array(str(i), dimension_names=("c", "y", "x"), overwrite=True, **options)
    fast = xr.open_datatree(path, engine="ome-zarr")
    plain_paths()
    plain = xr.open_datatree(path, engine="ome-zarr")
    assert_same_trees(fast, plain)
    for node in fast.subtree:
        if "image" not in node.dataset.variables:
            continue
        a, b = node["image"], plain[node.path]["image"]
        assert a.encoding == b.encoding, node.path
        assert a.attrs == b.attrs, node.path
        np.testing.assert_array_equal(a.values, b.values)
        assert a.dtype == b.dtype
    assert fast["A/2/0/scale0"]["image"].dtype == np.float32
    assert fast["A/2/1/scale0"]["image"].dtype == np.uint16
    assert (fast["A/3/1/scale1"]["image"].values == 9).all()
    assert (fast["A/3/0/scale1"]["image"].values == 0).all()
    assert fast["B/1/0/scale0"]["image"].encoding["chunks"] == (1, 4, 4)
    assert fast["B/1/1/scale0"]["image"].encoding["chunks"] == (1, 8, 8)
    assert (
        fast["B/2/1/scale0"]["image"].encoding["compressors"]
        != (fast["B/2/0/scale0"]["image"].encoding["compressors"])
    )
    assert fast["B/3/0/scale0"]["image"].attrs == {"note": "own"}
    assert fast["B/3/1/scale0"]["image"].attrs == {}
    assert fast["B/3/1/scale0"]["image"].shape == (1, 6, 6)


def test_coordinates_made_once_per_document_are_each_nodes_own(tmp_path, plain_paths):
    """The coordinates of one level of one document are made once: fields of another
    geometry get theirs, every node's coordinate attrs are its own, and a warning about the
    channels is said for every field that has it."""
    path = write_plate(tmp_path / "plate.ome.zarr")
    for field, change in {"A/2/0": "shift", "B/1/1": "channels", "B/2/0": "channels"}.items():
        group = zarr.open_group(path / field, mode="a")
        block = _field_block("0.5", 2, shift=3.0)
        if change == "channels":  # omero names two channels of a one-channel image
            block = _field_block("0.5", 2)
            block["omero"]["channels"] *= 2
        _put_ome(group, "0.5", block)
    with pytest.warns(OmeZarrWarning) as caught:
        fast = xr.open_datatree(path, engine="ome-zarr")
    said = [str(w.message) for w in caught if "omero names 2 channels" in str(w.message)]
    assert len(said) == 4, said  # both levels of both fields
    assert {f for f in ("'/B/1/1'", "'/B/2/0'") if any(f in s for s in said)} == {
        "'/B/1/1'",
        "'/B/2/0'",
    }
    plain_paths()
    with pytest.warns(OmeZarrWarning):
        plain = xr.open_datatree(path, engine="ome-zarr")
    assert_same_trees(fast, plain)
    assert float(fast["A/2/0/scale0"]["y"][0]) == 3.0
    assert float(fast["A/2/1/scale0"]["y"][0]) == 0.0
    assert "c" not in fast["B/1/1/scale0"].coords and "c" in fast["B/1/0/scale0"].coords
    fast["A/1/0/scale0"]["y"].attrs["units"] = "changed"
    fast["A/1/0/scale0"]["c"].attrs["type"] = "changed"
    assert fast["A/1/1/scale0"]["y"].attrs == plain["A/1/1/scale0"]["y"].attrs
    assert fast["A/3/0/scale0"]["c"].attrs == plain["A/3/0/scale0"]["c"].attrs
    assert fast["A/1/0/scale0"]["y"].attrs["units"] == "changed"


def test_remembered_coordinates_are_new_variables_each_time(tmp_path):
    path = write_plate(tmp_path / "plate.ome.zarr", rows=("A",), columns=("1",))
    node_reader = reader.NodeReader("plate")
    meta = node_reader.meta(zarr.open_group(path / "A" / "1" / "0", mode="r"), "A/1/0")
    made = [node_reader.coordinates(meta, 0, (1, 8, 8), "A/1/0") for _ in range(3)]
    (first, first_indexes), (again, again_indexes), (third, _) = made
    assert first.keys() == again.keys() == third.keys() == {"c", "y", "x"}
    for k in first:
        assert len({id(first[k]), id(again[k]), id(third[k])}) == 3
        assert len({id(first[k].attrs), id(again[k].attrs), id(third[k].attrs)}) == 3
    assert all(first_indexes[k] is again_indexes[k] for k in first_indexes)  # immutable
    again["y"].attrs["units"] = "changed"
    assert node_reader.coordinates(meta, 0, (1, 8, 8), "A/1/0")[0]["y"].attrs["units"] == (
        "micrometer"
    )
    other, _ = node_reader.coordinates(meta, 1, (1, 4, 4), "A/1/0")
    assert other["y"].attrs["scale"] == 1.0 and other["y"].size == 4


def test_fields_sharing_a_document_each_say_its_deviation(tmp_path):
    """Equal documents are parsed once, except where parsing has something to say: a
    deviation in the document every field shares is said for each field."""
    path = write_plate(tmp_path / "plate.ome.zarr")
    for row in ROWS:
        for column in COLUMNS:
            for field in FIELDS:
                doc = path / row / column / field / "zarr.json"
                meta = json.loads(doc.read_text())
                del meta["attributes"]["ome"]["version"]  # rule version-missing
                doc.write_text(json.dumps(meta))
    with pytest.warns(OmeZarrWarning) as caught:
        tree = xr.open_datatree(path, engine="ome-zarr")
    said = [str(w.message) for w in caught if "version-missing" in str(w.message)]
    fields = {f"/{r}/{c}/{f}" for r in ROWS for c in COLUMNS for f in FIELDS}
    assert {field for field in fields if any(repr(field) in s for s in said)} == fields
    assert tree["A/1/0/scale0"]["image"].shape == tree["B/3/1/scale0"]["image"].shape


def test_a_plate_costs_a_few_round_trips_whatever_its_wells(tmp_path, monkeypatch):
    """Members are fetched for all wells together: the number of fetches does not grow."""
    calls: list[int] = []
    real = _compat.fetch_members_of

    def counting(requests):
        calls.append(len(requests))
        return real(requests)

    monkeypatch.setattr(_compat, "fetch_members_of", counting)
    counts = []
    for columns in (("1",), COLUMNS):
        path = write_plate(tmp_path / f"plate-{len(columns)}.ome.zarr", columns=columns)
        calls.clear()
        xr.open_datatree(path, engine="ome-zarr")
        counts.append(len(calls))
    # the wells, their fields, the fields' levels and labels groups: one fetch each
    assert counts == [3, 3], calls


def test_schema_checks_of_equal_documents_are_remembered():
    document = {"ome": {"version": "0.5", **_field_block("0.5", 2)}}
    first = schema.schema_problems(document, "0.5", "image")
    again = schema.schema_problems(json.loads(json.dumps(document)), "0.5", "image")
    assert first == again == []
    broken = json.loads(json.dumps(document))
    broken["ome"]["multiscales"][0]["axes"] = []
    assert schema.schema_problems(broken, "0.5", "image")  # not taken for the valid one
    # a tuple where JSON has a list is not the same document: never remembered
    odd = {"ome": {**document["ome"], "multiscales": tuple(document["ome"]["multiscales"])}}
    assert schema._json_text(odd) is None
    assert schema._json_text({"x": float("nan")}) is None


def test_linked_tree_is_from_dicts_tree():
    ds = xr.Dataset({"a": ("x", np.arange(3))}, coords={"x": [1, 2, 3]}, attrs={"k": 1})
    groups = {
        "/": xr.Dataset(attrs={"root": True}),
        "/b/deep": ds,  # its parent "b" is made empty, as from_dict does
        "/a": xr.Dataset(attrs={"n": 2}),
        "/a/level": ds.copy(),
    }
    closed: list[str] = []
    for key, value in groups.items():
        value.set_close(lambda key=key: closed.append(key))
    assert _compat._only_leaves_hold_variables(groups)
    linked = _compat.datatree_linked(groups)
    plain = xr.DataTree.from_dict(groups)
    xr.testing.assert_identical(linked, plain)
    assert [n.path for n in linked.subtree] == [n.path for n in plain.subtree]
    assert [n.name for n in linked.subtree] == [n.name for n in plain.subtree]
    assert linked["a/level"].parent is linked["a"] and linked["b/deep"].root is linked
    linked.close()
    assert sorted(closed) == sorted(groups)
    # an inner node that holds variables goes through from_dict (alignment is checked there)
    assert not _compat._only_leaves_hold_variables({"/": ds, "/a": ds})


def test_dataset_from_parts_is_the_public_constructors():
    from xarray.indexes import PandasIndex

    x = xr.Variable(("x",), np.array([0.5, 1.5]), {"units": "micrometer"})
    index = PandasIndex.from_variables({"x": x}, options={})
    coord_vars = index.create_variables({"x": x})
    data = {"image": xr.Variable(("c", "x"), np.zeros((1, 2)), {"a": 1})}
    indexes = {"x": index}
    fast = _compat.dataset_from_parts(data, coord_vars, indexes, {"p": "0"})
    plain = _compat.dataset_from_parts_here(data, coord_vars, indexes, {"p": "0"})
    xr.testing.assert_identical(fast, plain)
    assert list(fast.variables) == list(plain.variables)
    assert dict(fast.sizes) == dict(plain.sizes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fast.x.attrs == {"units": "micrometer"}


# ---- request counts over HTTP (a real server; each wave is a round trip at 20 ms and more) --
#: The server's delay while counting waves: far above the client's own time between requests.
DELAY = 0.3


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Hand images (0.4, 0.5) plain and consolidated; small plates plain and consolidated."""
    from ..conftest import write_hand_image

    root = tmp_path_factory.mktemp("site")
    for version in ("0.4", "0.5"):
        for kind in ("img", "cons"):
            write_hand_image(root / f"{kind}-{version}.zarr", version)
        plate = write_plate(root / f"plate-{version}.zarr", version)
        shutil.copytree(plate, root / f"plate-cons-{version}.zarr")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
            for kind in ("cons", "plate-cons"):
                zarr.consolidate_metadata(zarr.storage.LocalStore(root / f"{kind}-{version}.zarr"))
    return root


@pytest.fixture(scope="module")
def http(site):
    from ..servers import http_server

    with http_server(site) as server:
        yield server


def _count(server, open_it) -> tuple[int, int, list[str]]:
    """(requests, waves, paths) of one open at a slow server.

    A request starts a new wave when it arrives after the first request of the current
    wave could have been answered: the client waited for an answer before asking. (Robust
    to a loaded machine, where requests of one wave may leave the client some time apart.)
    """
    server.clear()
    with server.latency(DELAY):
        open_it()
    paths = server.paths()
    waves, start = 0, float("-inf")
    for at in sorted(r.at for r in server.requests):
        if at >= start + DELAY * 0.9:
            waves, start = waves + 1, at
    return len(server.requests), waves, paths


# (zarr format of the version) -> requests: the root's four documents (zarr asks for both
# formats and for consolidated metadata), the labels group probed in both formats beside
# the root (three documents: the root's format is not known yet; needed so a consolidated
# listing, a cache, is checked in the same wave), each level's documents (v3: zarr.json;
# v2: .zarray, .zgroup, .zattrs); nothing else, and no document twice.
OPEN_COUNTS = {
    # version: (image tree, one level, consolidated tree)
    "0.5": ((9, 2), (5, 2), (7, 1)),
    "0.4": ((13, 2), (7, 2), (7, 1)),
}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_request_counts_and_waves_of_opens(http, site, version):
    tree, level, consolidated = OPEN_COUNTS[version]
    url = f"{http.url}/img-{version}.zarr"
    counted = _count(http, lambda: xr.open_datatree(url, engine="ome-zarr"))
    assert counted[:2] == tree, counted[2]
    assert len(set(counted[2])) == len(counted[2]), "a document asked for twice"
    counted = _count(http, lambda: xr.open_dataset(url, engine="ome-zarr"))
    assert counted[:2] == level, counted[2]  # one level reads no labels: none probed
    assert not any("labels" in p for p in counted[2])
    cons = f"{http.url}/cons-{version}.zarr"
    counted = _count(http, lambda: xr.open_datatree(cons, engine="ome-zarr"))
    assert counted[:2] == consolidated, counted[2]
    assert any(
        p.endswith("/labels/" + ("zarr.json" if version == "0.5" else ".zattrs"))
        for p in counted[2]
    )


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_plate_over_http_in_few_waves(http, site, version):
    local = xr.open_datatree(site / f"plate-{version}.zarr", engine="ome-zarr")
    url = f"{http.url}/plate-{version}.zarr"
    remote: list[xr.DataTree] = []
    count, waves, paths = _count(
        http, lambda: remote.append(xr.open_datatree(url, engine="ome-zarr"))
    )
    # the root (with the labels probe), the wells, their fields, the fields' levels and labels
    # (zarr v2 lookups take more waves of their own: zarr asks for .zarray before the rest)
    assert waves == 4 or version == "0.4", paths
    xr.testing.assert_identical(remote[0], local)
    cons = f"{http.url}/plate-cons-{version}.zarr"
    count, waves, paths = _count(
        http, lambda: remote.append(xr.open_datatree(cons, engine="ome-zarr"))
    )
    # the root; then every field's labels group probed in the store, all at once (the
    # consolidated listing is a cache: labels added later are found)
    assert waves == 2 or version == "0.4", paths
    fields = len(ROWS) * len(COLUMNS) * len(FIELDS)
    per_probe = 1 if version == "0.5" else 2
    assert count == 4 + 3 + fields * per_probe, paths
    xr.testing.assert_identical(remote[1], local)


# ---- the plate view: open_dataset on a plate ------------------------------------------------
def _with_pixels(path: Path) -> Path:
    """Fill every field's levels with distinct pixels (so a mixed-up block shows)."""
    root = zarr.open_group(path, mode="r+")
    for well_path in (f"{r}/{c}" for r in ROWS for c in COLUMNS):
        for f in FIELDS:
            image = root[f"{well_path}/{f}"]
            for _, array in image.arrays():
                salt = 1000 * int(f) + 100 * ROWS.index(well_path[0]) + int(well_path[2])
                array[...] = (np.arange(array.size).reshape(array.shape) % 97) + salt
    return path


@pytest.mark.parametrize("level", [0, -1])
def test_plate_view_is_the_fields_stacked(tmp_path, level):
    path = _with_pixels(write_plate(tmp_path / "plate.ome.zarr"))
    tree = xr.open_datatree(path, engine="ome-zarr")
    ds = xr.open_dataset(path, engine="ome-zarr", level=level)
    wells = [f"{r}/{c}" for r in ROWS for c in COLUMNS]
    assert ds["image"].dims == ("well", "field", "c", "y", "x")
    assert list(ds["well"].values) == wells
    assert list(ds["row"].values) == [w[0] for w in wells]
    assert list(ds["column"].values) == [w[2] for w in wells]
    assert list(ds["field"].values) == [0, 1]
    name = f"scale{level % 2}"
    first = tree[f"A/1/0/{name}"].dataset
    xr.testing.assert_identical(ds["x"], first["x"])  # the fields share their geometry
    assert ds.ome.group_attrs["ome"] == tree.ome.group_attrs["ome"]
    expected = np.stack(
        [np.stack([tree[f"{w}/{f}/{name}"]["image"].values for f in FIELDS]) for w in wells]
    )
    np.testing.assert_array_equal(ds["image"].values, expected)
    # selections read only what they select, and agree with the stacked values
    pick = ds["image"].isel(well=[4, 1], field=1, x=slice(1, None, 2))
    np.testing.assert_array_equal(pick.values, expected[[4, 1], 1][..., 1::2])
    one = ds["image"].sel(well="B/2").isel(field=0, y=0)
    np.testing.assert_array_equal(one.values, expected[4, 0, :, 0])
    lazy = xr.open_dataset(path, engine="ome-zarr", level=level, chunks={})
    assert lazy["image"].chunks[:2] == ((1,) * len(wells), (1, 1))
    np.testing.assert_array_equal(lazy["image"].values, expected)


def test_plate_view_says_what_it_cannot_stack(tmp_path):
    path = write_plate(tmp_path / "plate.ome.zarr")
    shutil.rmtree(path / "A" / "2" / "1")  # a listed field that is not there: left out
    image = zarr.open_group(path / "B" / "3" / "0", mode="r+")
    block = image.attrs.asdict()
    block["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"][1] = {
        "type": "translation",
        "translation": [0.0, 100.0, 200.0],  # a field at another stage position
    }
    image.attrs.put(block)
    with pytest.warns(OmeZarrWarning) as said:
        ds = xr.open_dataset(path, engine="ome-zarr")
    text = " ".join(str(w.message) for w in said)
    assert "'/A/2/1' cannot be read" in text
    assert "wells ['A/2'] have fewer than 2 fields" in text
    assert "differ in scale or translation along ['y', 'x']" in text
    assert "x" not in ds.coords and "y" not in ds.coords and "c" in ds.coords
    assert (ds["image"].sel(well="A/2").isel(field=1).values == 0).all()  # the fill value
    # fields of other shapes cannot be stacked: refused, naming the field
    other = zarr.open_group(path / "B" / "3" / "1", mode="r+")
    del other["0"]
    other.create_array("0", shape=(1, 9, 9), dtype="u2", dimension_names=("c", "y", "x"))
    with (
        pytest.raises(OmeZarrError, match=r"/B/3/1.*\(1, 9, 9\).*open_datatree"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", OmeZarrWarning)
        xr.open_dataset(path, engine="ome-zarr")
