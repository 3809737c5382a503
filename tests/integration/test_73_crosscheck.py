"""``validate`` against ome-zarr-models and yaozarrs on the spec's own cases (issue 12).

Each image and label case of the 0.4 and 0.5 suites is written into a real store and judged
by the three validators. Where one of them (or the suite) disagrees with ``validate``, the case
must be in
``DISAGREEMENTS`` and named in ``docs/errors.md``, which gives the spec clause that decides.
Plate and well cases are judged as documents (``validate`` of the attributes document,
yaozarrs' ``validate_ome_json``, ome-zarr-models' plate and well attribute models): their
documents name wells and fields that a store of one document does not have, which all three
validators rightly refuse as stores; the disagreements are in ``HCS_DISAGREEMENTS`` and
``docs/errors.md``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import zarr

import xarray_ome_zarr as xoz

from ..fixtures.conformance import suite_cases
from .test_70_faults import _write_case

DOCS = Path(__file__).parents[2] / "docs" / "errors.md"

#: case -> (what validate says, what the peers or the suite say); docs/errors.md gives the
#: deciding clause
DISAGREEMENTS = {
    "0.4-image-valid-missing_version": ("valid", "yaozarrs: invalid"),
    "0.4-image-invalid-invalid_channels_color": ("valid (warning)", "both: invalid"),
    "0.5-image-invalid-invalid_channels_color": ("valid (warning)", "yaozarrs: invalid"),
    "0.4-image-invalid-invalid_channels_window": ("valid (warning)", "both: valid; suite: invalid"),
    "0.5-image-invalid-invalid_channels_window": ("valid (warning)", "both: valid; suite: invalid"),
    "0.4-label-image-label-minimal": ("valid (warning)", "both: invalid"),
    "0.4-label-image-label-minimal_properties": ("valid (warning)", "both: invalid"),
    "0.5-label-image-label-minimal": ("valid (warning)", "both: invalid"),
    "0.5-label-image-label-minimal_properties": ("valid (warning)", "both: invalid"),
}


def _cases() -> list:
    return [
        pytest.param(ident, version, doc, valid, id=ident)
        for version in ("0.4", "0.5")
        for ident, kind, doc, valid in suite_cases(version)
        if kind in ("image", "label")
    ]


@pytest.mark.parametrize(("ident", "version", "doc", "valid"), _cases())
def test_validators_agree_or_the_docs_say_why(ident, version, doc, valid, tmp_path):
    yaozarrs = pytest.importorskip("yaozarrs")
    ome_zarr_models = pytest.importorskip("ome_zarr_models")
    path = tmp_path / "case.zarr"
    _write_case(path, version, doc)
    ours = not [p for p in xoz.validate(path) if p.severity == "error"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yaozarrs.validate_zarr_store(str(path))
            yao = True
        except Exception:
            yao = False
        try:
            ome_zarr_models.open_ome_zarr(zarr.open_group(path, mode="r"))
            models = True
        except Exception:
            models = False
    if ident == "0.4-image-valid-mismatch_axes_units":
        # the suite calls it valid; a scale with 2 values for 3 axes breaks a MUST, and all
        # three validators refuse it (see "Quirks of the spec's own test suites")
        assert (ours, yao, models) == (False, False, False)
        return
    if ident in DISAGREEMENTS:
        assert ident in DOCS.read_text(encoding="utf-8")
        agreed = ours == yao == models == valid
        assert not agreed, f"{ident} agrees now: drop it from DISAGREEMENTS"
    else:
        assert ours == yao == models == valid, (ours, yao, models, valid)


#: plate and well case -> (validate, yaozarrs, ome-zarr-models); the suite's verdict is the
#: case's own. docs/errors.md gives the deciding clause of each.
HCS_DISAGREEMENTS = {
    "0.4-plate-plate-minimal_no_acquisitions": (True, True, False),
    "0.4-plate-plate-minimal_acquisitions": (True, True, False),
    "0.4-plate-plate-non_alphanumeric_row": (True, True, False),
    "0.4-plate-plate-invalid_version": (False, True, False),
    "0.4-well-well-invalid_version": (False, True, False),
    "0.4-plate-plate-non_integer_acquisition_id": (False, True, False),
    "0.4-well-well-non_integer_acquisition_id": (False, True, True),
    "0.5-plate-plate-non_integer_acquisition_id": (False, True, True),
    "0.5-well-well-non_integer_acquisition_id": (False, True, False),
    "0.4-well-well-empty_images": (False, False, True),
    "0.5-plate-plate-acquisition_negative_starttime": (False, False, True),
    "0.5-plate-plate-negative_endtime": (False, False, True),
    "0.5-plate-plate-well_path_has_column_before_row": (False, True, False),
}


def _hcs_cases() -> list:
    return [
        pytest.param(ident, version, kind, doc, valid, id=ident)
        for version in ("0.4", "0.5")
        for ident, kind, doc, valid in suite_cases(version)
        if kind in ("plate", "well")
    ]


def _models_accept(version: str, kind: str, doc: dict) -> bool:
    from ome_zarr_models.v04.hcs import HCSAttrs as Plate04
    from ome_zarr_models.v04.well import WellAttrs as Well04
    from ome_zarr_models.v05.hcs import HCSAttrs as Plate05
    from ome_zarr_models.v05.well import WellAttrs as Well05

    model = {
        ("0.4", "plate"): Plate04,
        ("0.4", "well"): Well04,
        ("0.5", "plate"): Plate05,
        ("0.5", "well"): Well05,
    }[(version, kind)]
    body = doc["ome"] if version == "0.5" and "ome" in doc else doc
    try:
        model.model_validate(body)
    except Exception:
        return False
    return True


@pytest.mark.parametrize(("ident", "version", "kind", "doc", "valid"), _hcs_cases())
def test_plate_and_well_documents_agree_or_the_docs_say_why(
    ident, version, kind, doc, valid, tmp_path
):
    yaozarrs = pytest.importorskip("yaozarrs")
    pytest.importorskip("ome_zarr_models")
    path = tmp_path / "attributes.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    ours = not [p for p in xoz.validate(path) if p.severity == "error"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yaozarrs.validate_ome_json(json.dumps(doc))
            yao = True
        except Exception:
            yao = False
        models = _models_accept(version, kind, doc)
    if ident in HCS_DISAGREEMENTS:
        assert ident in DOCS.read_text(encoding="utf-8")
        assert (ours, yao, models) == HCS_DISAGREEMENTS[ident]
        assert ours == valid, "validate follows the suite on every plate and well case"
    else:
        assert ours == yao == models == valid, (ours, yao, models, valid)


# ---- stores written by peers, and what we write from them ------------------------------------
def _bioio_image(directory: Path, version: str) -> Path:
    """A c/z/y/x uint16 image written by bioio-ome-zarr's ``OMEZarrWriter`` (2 levels)."""
    writers = pytest.importorskip("bioio_ome_zarr.writers")
    import numpy as np

    path = directory / f"bioio_{version}.ome.zarr"
    data = np.random.default_rng(3).integers(0, 1000, (2, 4, 32, 24), dtype="uint16")
    writer = writers.OMEZarrWriter(
        str(path),
        level_shapes=[(2, 4, 32, 24), (2, 4, 16, 12)],
        dtype="uint16",
        zarr_format=2 if version == "0.4" else 3,
        axes_names=["c", "z", "y", "x"],
        axes_types=["channel", "space", "space", "space"],
        axes_units=[None, "micrometer", "micrometer", "micrometer"],
        physical_pixel_size=[1.0, 2.0, 0.5, 0.5],
        image_name="bioio",
    )
    writer.write_full_volume(data)
    return path


def _peer_store(writer: str, directory: Path, version: str) -> Path:
    from ..fixtures import stores

    if writer == "bioio-ome-zarr":
        return _bioio_image(directory, version)
    made = {
        "ngff-zarr": stores.ngff_zarr_image,
        "ome-zarr-py": stores.ome_zarr_py_image,
        "ome-zarr-py plate": stores.ome_zarr_py_plate,
    }[writer]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return made(directory, version).path


def _judged(path: Path, strict: bool = False) -> tuple[set, bool, bool]:
    """(the rule ids of validate's errors, or their messages; yaozarrs; ome-zarr-models)."""
    yaozarrs = pytest.importorskip("yaozarrs")
    ome_zarr_models = pytest.importorskip("ome_zarr_models")
    errors = {
        p.rule or p.message for p in xoz.validate(path, strict=strict) if p.severity == "error"
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yaozarrs.validate_zarr_store(str(path))
            yao = True
        except Exception:
            yao = False
        try:
            ome_zarr_models.open_ome_zarr(zarr.open_group(path, mode="r"))
            models = True
        except Exception:
            models = False
    return errors, yao, models


#: (writer, version) -> how the three validators judge its store, where not all accept it;
#: docs/errors.md ("Stores written by peers") gives the deciding clause.
PEER_DISAGREEMENTS = {
    ("ome-zarr-py", "0.5"): ({"version-missing", "dimension-names-missing"}, True, False),
}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize(
    "writer", ["ngff-zarr", "ome-zarr-py", "ome-zarr-py plate", "bioio-ome-zarr"]
)
def test_peer_stores_and_what_we_write_from_them_pass_every_validator(writer, version, tmp_path):
    source = _peer_store(writer, tmp_path, version)
    judged = _judged(source)
    if (writer, version) in PEER_DISAGREEMENTS:
        assert judged == PEER_DISAGREEMENTS[(writer, version)]
        assert f"{writer} {version}" in DOCS.read_text(encoding="utf-8")
    else:
        assert judged == (set(), True, True)
    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the liberal reading's warnings, checked elsewhere
        tree = xr.open_datatree(source, engine="ome-zarr")
    ours = tmp_path / "ours.zarr"
    xoz.to_ome_zarr(tree, ours, version=version)
    assert _judged(ours, strict=True) == (set(), True, True)
