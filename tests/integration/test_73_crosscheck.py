"""``validate`` against ome-zarr-models and yaozarrs on the spec's own cases (issue 12).

Each image and label case of the 0.4 and 0.5 suites is written into a real store and judged
by the three validators. Where one of them (or the suite) disagrees with ``validate``, the case
must be in
``DISAGREEMENTS`` and named in ``docs/errors.md``, which gives the spec clause that decides.
Plate and well cases are left out: the suite's documents name wells and fields that a store
of one document does not have, which all three validators rightly refuse.
"""

from __future__ import annotations

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
