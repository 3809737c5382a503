"""The test helpers themselves: conformance material and store writers (no package import)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import zarr

from tests.fixtures import conformance as conf
from tests.fixtures import stores as st

# --------------------------------------------------------------------------------------------
# conformance material
# --------------------------------------------------------------------------------------------


def test_data_is_local():
    assert conf.NGFF_SPEC_DIR.is_relative_to(Path(__file__).resolve().parents[1] / "data")
    for v in ("0.4", "0.5", "0.6rc0"):
        for sub in ("schemas", "examples", "tests"):
            assert (conf.NGFF_SPEC_DIR / v / sub).is_dir()
    assert (conf.NGFF_SPEC_DIR / "LICENSE-NOTICE.md").is_file()
    assert (conf.TRANSFORMATIONS_DIR / "LICENSE").is_file()


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_suite_cases_shape(version):
    cases = conf.suite_cases(version)
    ids = [c[0] for c in cases]
    assert len(ids) == len(set(ids))
    kinds = {c[1] for c in cases}
    assert {"image", "strict_image", "label", "plate", "well", "strict_plate"} <= kinds
    assert any(c[3] for c in cases) and any(not c[3] for c in cases)
    for ident, _kind, data, valid in cases:
        assert isinstance(data, dict) and isinstance(valid, bool)
        assert " " not in ident
        if version == "0.5":
            assert "ome" in data or not valid


SUITE = conf.suite_cases("0.4") + conf.suite_cases("0.5")


@pytest.mark.parametrize(("ident", "kind", "data", "valid"), SUITE, ids=[c[0] for c in SUITE])
def test_suite_case_against_schema(ident, kind, data, valid):
    version = ident.split("-", 1)[0]
    errors = conf.validate_schema(data, version, kind)
    if ident in conf.SCHEMA_CANNOT_TELL:
        assert not valid and errors == []
        return
    assert (errors == []) is valid, errors


@pytest.mark.parametrize("version", ["0.4", "0.5", "0.6rc0"])
def test_example_cases(version):
    cases = conf.example_cases(version)
    assert cases
    assert len({c[0] for c in cases}) == len(cases)
    for ident, kind, doc, valid in cases:
        assert isinstance(doc, dict), ident
        assert "attributes" not in doc, ident
        if version == "0.5":
            assert "ome" in doc, ident
        if version in ("0.4", "0.5"):
            assert valid
            errors = conf.validate_schema(doc, version, conf.example_schema_kind(version, kind))
            assert errors == [], (ident, errors)
    if version == "0.6rc0":
        invalid = [c[0] for c in cases if not c[3]]
        assert invalid and all("byDimensionInvalid" in i for i in invalid)
        checked = 0
        for ident, kind, doc, _valid in cases:
            schema = conf.example_schema_kind(version, kind)
            if schema not in conf.schema_kinds(version):
                continue
            errors = conf.validate_schema(doc, version, schema)
            assert (errors == []) is (ident not in conf.EXAMPLES_06_SCHEMA_INVALID), ident
            checked += 1
        assert checked >= 15


def test_attribute_cases_06():
    cases = conf.attribute_cases_06()
    assert len(cases) == 143
    assert len({c[0] for c in cases}) == len(cases)
    assert {c[1] for c in cases} == {"image", "label", "plate", "well", "scene", "transforms"}
    assert any(c[4] for c in cases) and any(not c[4] for c in cases)
    for ident, _kind, doc, valid, _strict in cases:
        assert "_conformance" not in doc
        errors = conf.validate_schema(doc, "0.6rc0", conf.attribute_case_schema_06(ident))
        assert (errors == []) is valid, (ident, errors)


def test_validate_schema_errors_and_kinds():
    assert "bf2raw" in conf.schema_kinds("0.4")
    assert conf.validate_schema({"multiscales": []}, "0.4", "schemas/image.schema")
    with pytest.raises(ValueError):
        conf.validate_schema({}, "0.4", "no_such_schema")
    with pytest.raises(ValueError):
        conf.validate_schema({}, "0.3", "image")


def test_transformation_cases():
    cases = conf.transformation_cases()
    assert len(cases) == 24
    errors = {name for name, _d, toml in cases if toml["should_error"]}
    assert errors == {"unknown_source", "unknown_target"}
    for _name, case_dir, toml in cases:
        assert {"description", "absolute_tolerance", "relative_tolerance"} <= set(toml)
        assert toml["source"]["name"] and toml["target"]["name"]
        if not toml["should_error"]:  # failing cases give no target coordinates
            assert len(toml["source"]["coordinates"]) == len(toml["target"]["coordinates"])
        ome = conf.transformation_case_attrs(case_dir)["ome"]
        assert ome["scene"]["coordinateTransformations"]


# --------------------------------------------------------------------------------------------
# stores
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache: dict[str, st.StoreSpec] = {}

    def get(key: str) -> st.StoreSpec:
        if key not in cache:
            cache[key] = st.STORE_WRITERS[key](tmp_path_factory.mktemp(key.replace(".", "")))
        return cache[key]

    return get


WRITERS = list(st.STORE_WRITERS)


def _on_disk_zarr_format(path: Path) -> int:
    return 3 if (path / "zarr.json").is_file() else 2


@pytest.mark.parametrize("key", WRITERS)
def test_store_levels_match_zarr(built, key):
    spec = built(key)
    assert spec.path.is_dir()
    assert spec.zarr_format == _on_disk_zarr_format(spec.path)
    assert spec.version in ("0.1", "0.2", "0.3", "0.4", "0.5")
    assert spec.images
    uneven = False
    for node, image in spec.images.items():
        assert image.levels, node
        ndim = len(image.axes)
        for i, level in enumerate(image.levels):
            arr = zarr.open_array(str(spec.path), path=image.array_path(node, i), mode="r")
            assert arr.metadata.zarr_format == spec.zarr_format
            assert tuple(arr.shape) == level.shape == level.data.shape
            assert np.dtype(arr.dtype) == level.dtype == level.data.dtype
            np.testing.assert_array_equal(arr[...], level.data)
            assert len(level.shape) == ndim
            assert list(level.scale) == list(image.dims) == list(level.translation)
            assert all(math.isfinite(v) and v > 0 for v in level.scale.values())
            if level.chunks is not None:
                assert tuple(arr.chunks) == level.chunks
                uneven |= any(n % c for n, c in zip(level.shape, level.chunks, strict=True))
        # distinct, non-trivial values
        assert np.unique(image.levels[0].data).size > (4 if image.is_label else 50)
        # levels get smaller
        sizes = [math.prod(lv.shape) for lv in image.levels]
        assert sizes == sorted(sizes, reverse=True)
        if image.channel_names is not None:
            assert "c" in image.dims
            assert len(image.channel_names) == image.levels[0].shape[image.dims.index("c")]
    assert uneven, "some chunk shape should not divide the array shape"


@pytest.mark.parametrize("key", WRITERS)
def test_store_spec_matches_metadata(built, key):
    """The spec agrees with the metadata read back (for hand stores: independent check)."""
    spec = built(key)
    for node, image in spec.images.items():
        got = st.read_image_spec(spec.path, node, is_label=image.is_label)
        assert got.name == image.name
        assert got.axes == image.axes
        assert got.channel_names == image.channel_names
        assert got.colors == image.colors and got.properties == image.properties
        for a, b in zip(got.levels, image.levels, strict=True):
            assert a.path == b.path and a.shape == b.shape
            assert a.scale == pytest.approx(b.scale) and a.translation == pytest.approx(
                b.translation
            )


def _documents(spec: st.StoreSpec) -> list[tuple[str, str]]:
    docs = []
    for node, image in spec.images.items():
        docs.append((node, "label" if image.is_label else "image"))
    if spec.plate is not None:
        docs.append(("", "plate"))
        docs += [(w, "well") for w in spec.wells]
    if spec.series is not None:
        docs += [("", "bf2raw"), ("OME", "ome")]
    return docs


@pytest.mark.parametrize("key", [k for k in WRITERS if k.split("-")[1] in ("0.4", "0.5")])
def test_store_validates_against_schema(built, key):
    spec = built(key)
    for node, kind in _documents(spec):
        attrs = st.group_attrs(spec.path, node)
        assert conf.validate_schema(attrs, spec.version, kind) == [], (node, kind)
        if spec.version == "0.5":  # the union of all 0.5 documents
            assert conf.validate_schema(attrs, "0.5", "ome_zarr") == [], (node, kind)
        strict_kind = f"strict_{kind}"
        if strict_kind not in conf.schema_kinds(spec.version):
            continue
        if spec.writer == "hand" or (spec.writer == "ngff-zarr" and kind == "image"):
            strict = conf.validate_schema(attrs, spec.version, strict_kind)
            assert strict == [], (node, kind, strict)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ngff_zarr_conventions(built, version):
    spec = built(f"ngff_zarr-{version}")
    image = spec.images[""]
    assert image.name == "nzimage"
    assert image.channel_names == ["DAPI", "GFP"]
    assert ("y", "space", "micrometer") in image.axes and ("c", "channel", None) in image.axes
    l0 = image.levels[0]
    assert l0.scale == {**dict.fromkeys(image.dims, 1.0), **_nz_scale(version)}
    assert l0.translation == {**dict.fromkeys(image.dims, 0.0), **_nz_translation(version)}
    assert [lv.path for lv in image.levels] == [f"scale{i}/nzimage" for i in range(3)]
    for level in image.levels[1:]:  # pixel-centre convention, nominal factor
        for d in ("y", "x"):
            f = level.scale[d] / l0.scale[d]
            assert f in (2.0, 4.0)
            assert level.translation[d] == pytest.approx(
                l0.translation[d] + (f - 1) / 2 * l0.scale[d]
            )
    ome = st.ome_attrs(spec.path)
    assert ("omero" in ome) and (version == "0.4") == ("omero" in st.group_attrs(spec.path))


def _nz_scale(version):
    s = {"z": 2.0, "y": 0.5, "x": 0.25}
    return s if version == "0.4" else {"t": 1.5, **s}


def _nz_translation(version):
    t = {"z": 1.0, "y": -3.0, "x": 10.5}
    return t if version == "0.4" else {"t": 3.0, **t}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_py_conventions(built, version):
    spec = built(f"ome_zarr_py-{version}")
    assert spec.labels == {"": ["nuclei"]}
    assert st.ome_attrs(spec.path, "labels")["labels"] == ["nuclei"]
    image, label = spec.images[""], spec.images["labels/nuclei"]
    assert label.is_label and not image.is_label
    assert label.colors[0] == {"label-value": 1, "rgba": [255, 0, 0, 255]}
    assert label.properties[0]["class"] == "nucleus"
    assert image.channel_names == ["DAPI", "GFP"]
    assert [lv.path for lv in image.levels] == ["s0", "s1", "s2"]
    assert image.levels[0].translation == {"c": 0.0, "z": -2.0, "y": 5.0, "x": 7.0}
    assert image.levels[2].scale == pytest.approx({"c": 1.0, "z": 1.5, "y": 1.6, "x": 1.2})
    for lv_img, lv_lab in zip(image.levels, label.levels, strict=True):
        assert {d: lv_img.scale[d] for d in label.dims} == lv_lab.scale

    auto_spec = built(f"ome_zarr_py_auto-{version}")
    assert auto_spec.images["labels/cells"].colors == [{"label-value": 3, "rgba": [0, 0, 255, 255]}]
    if version == "0.5":  # peer quirks a reader must tolerate
        assert "version" not in st.ome_attrs(spec.path, "labels")
        assert st.ome_attrs(auto_spec.path)["omero"]["version"] == "0.5"
        lab0 = zarr.open_array(str(spec.path), path="labels/nuclei/s0", mode="r")
        assert lab0.metadata.dimension_names is None
    auto = auto_spec.images[""]
    s0 = auto.levels[0]
    assert s0.translation == dict.fromkeys(auto.dims, 0.0)
    for level in auto.levels[1:]:
        for d in ("y", "x"):
            ratio = s0.shape[auto.dims.index(d)] / level.shape[auto.dims.index(d)]
            assert level.scale[d] == pytest.approx(s0.scale[d] * ratio)
            assert level.translation[d] == pytest.approx((level.scale[d] - s0.scale[d]) / 2)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_plate(built, version):
    spec = built(f"ome_zarr_py_plate-{version}")
    assert [w["path"] for w in spec.plate["wells"]] == list(spec.wells)
    assert spec.plate["rows"] == [{"name": "A"}, {"name": "B"}]
    expected = {f"{w}/{img['path']}" for w, well in spec.wells.items() for img in well["images"]}
    assert set(spec.images) == expected == {"A/1/0", "A/1/1", "A/2/0", "B/2/0"}
    datas = [im.levels[0].data for im in spec.images.values()]
    assert not np.array_equal(datas[0], datas[1])


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_bf2raw(built, version):
    spec = built(f"bf2raw-{version}")
    assert st.ome_attrs(spec.path)["bioformats2raw.layout"] == 3
    assert st.ome_attrs(spec.path, "OME")["series"] == spec.series == ["0", "1"]
    assert (spec.path / "OME" / "METADATA.ome.xml").is_file()
    assert set(spec.images) == {"0", "1"}
    if version == "0.5":
        assert st.group_attrs(spec.path)["ome"]["version"] == "0.5"


def test_hand_global_transform(built):
    image = built("hand-0.4-global_transform").images[""]
    # scale = s_ms * s_ds; translation = s_ms * t_ds + t_ms
    l1 = image.levels[1]
    assert l1.scale == {"z": 2.0, "y": 0.5 * 2, "x": 0.25 * 2}
    assert l1.translation == {"z": 10.0, "y": 0.5 * 0.5 - 4.0, "x": 0.25 * 0.5 + 1.5}
    ms = st.ome_attrs(built("hand-0.4-global_transform").path)["multiscales"][0]
    assert ms["coordinateTransformations"][0]["type"] == "scale"


@pytest.mark.parametrize(
    ("key", "separator"),
    [
        ("hand-0.1-dot", "."),
        ("hand-0.2-slash", "/"),
        ("hand-0.4-dot", "."),
        ("hand-0.3-slash-cyx", "/"),
    ],
)
def test_hand_dimension_separator(built, key, separator):
    spec = built(key)
    zarray = json.loads((spec.path / "0" / ".zarray").read_text())
    assert zarray["dimension_separator"] == separator
    first_chunk = "0" + (separator + "0") * (len(zarray["shape"]) - 1)
    assert (spec.path / "0" / first_chunk).is_file()


@pytest.mark.parametrize("version", ["0.1", "0.2", "0.3"])
def test_hand_old_versions(built, version):
    key = {"0.1": "hand-0.1-dot", "0.2": "hand-0.2-slash", "0.3": "hand-0.3-dot-zyx"}[version]
    spec = built(key)
    ms = st.ome_attrs(spec.path)["multiscales"][0]
    assert ms["version"] == version
    assert "coordinateTransformations" not in ms
    assert all(set(ds) == {"path"} for ds in ms["datasets"])
    if version == "0.3":
        assert ms["axes"] == ["z", "y", "x"]
    else:
        assert "axes" not in ms and spec.images[""].levels[0].data.ndim == 5
    for level in spec.images[""].levels:
        assert set(level.scale.values()) == {1.0} and set(level.translation.values()) == {0.0}


def test_hand_sharded(built):
    spec = built("hand-0.5-sharded")
    for i, level in enumerate(spec.images[""].levels):
        arr = zarr.open_array(str(spec.path), path=str(i), mode="r")
        assert arr.shards == level.shards and arr.chunks == level.chunks
        assert arr.metadata.dimension_names == ("t", "z", "y", "x")


def test_hand_odd_paths(built):
    spec = built("hand-0.4-paths_nested")
    assert [lv.path for lv in spec.images[""].levels] == ["scale0/image", "scale1/image"]
    assert (spec.path / "scale0" / ".zgroup").is_file()
    assert [lv.path for lv in built("hand-0.4-paths_s").images[""].levels] == ["s0", "s1"]
