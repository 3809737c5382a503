"""OME-Zarr 0.6 conformance: the spec's 143 attribute cases and 85 hierarchies, decided by
``xoz.validate`` (strict cases with ``strict=True``) and by the ``validate --json`` command the
spec's conformance runner drives.

Where we decide against a case, the decision is listed here with its reason (and in
docs/model.md): the 0.6.dev string spelling of ``input``/``output`` (the two suites disagree;
the 0.6 text decides), a scale whose length differs from the axes (the coordinates would be a
guess), and the transitional ``omero`` block (a warning unless strict, as for 0.4/0.5).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from xarray_ome_zarr import validate
from xarray_ome_zarr.cli import main
from xarray_ome_zarr.errors import OmeZarrError

from ..fixtures.conformance import attribute_cases_06, hierarchy_cases_06

#: Valid hierarchy cases that spell input/output as strings in a 0.6rc0 document: the
#: attribute suite calls that spelling invalid, and the 0.6 text (its schema) requires objects.
SPELLING_DECIDED_INVALID = frozenset(
    f"0.6rc0-{case}"
    for case in (
        "spec-valid-image-custom_type_axes",
        "spec-valid-image-invalid_axis_units",
        "spec-valid-image-mismatch_axes_units",
        "spec-valid-image-missing_name",
        "spec-valid-image-untyped_axes",
        "strict-valid-image-image",
        "strict-valid-image-image_metadata",
        "strict-valid-image-image_omero",
        "strict-valid-image-multiscales_example",
        "strict-valid-image-multiscales_transformations",
    )
)
#: A "valid" case whose scale has 2 values for 3 axes: the third axis' coordinates would be
#: a guess, which the reader refuses and validate reports.
GEOMETRY_DECIDED_INVALID = frozenset({"0.6rc0-spec-valid-image-mismatch_axes_units"})
#: Invalid cases whose only fault is in the transitional omero block: a warning, an error
#: with strict=True.
OMERO_ONLY = frozenset(
    {
        "0.6rc0-spec-invalid-image-invalid_channels_color",
        "0.6rc0-spec-invalid-image-invalid_channels_window",
    }
)


def _errors(problems):
    return [p for p in problems if p.severity == "error"]


ATTRIBUTE_CASES = attribute_cases_06()


@pytest.mark.parametrize(
    ("doc", "valid", "strict"),
    [pytest.param(c[2], c[3], c[4], id=c[0]) for c in ATTRIBUTE_CASES],
)
def test_attribute_case(doc, valid, strict, tmp_path, request):
    ident = request.node.callspec.id
    path = tmp_path / "attributes.json"
    path.write_text(json.dumps(doc))
    problems = validate(path, strict=strict)
    errors = _errors(problems)
    if ident in OMERO_ONLY:
        assert problems and all(p.key.startswith("omero") for p in problems), problems
        assert any(p.key.startswith("omero") for p in _errors(validate(path, strict=True)))
        return
    if ident in GEOMETRY_DECIDED_INVALID:
        assert [p.key for p in errors] == [
            "multiscales/0/datasets/0/coordinateTransformations/0/scale"
        ]
        return
    assert (not errors) is valid, problems


def test_attribute_cases_are_all_here():
    assert len(ATTRIBUTE_CASES) == 143


HIERARCHY_CASES = hierarchy_cases_06()


def _judge(case_dir, strict):
    try:
        return _errors(validate(case_dir, metadata_only=True, strict=strict))
    except OmeZarrError as err:  # not even a zarr group (a case with broken JSON)
        return [err]


@pytest.mark.parametrize(
    ("case_dir", "valid", "strict"),
    [pytest.param(c[1], c[2], c[3], id=c[0]) for c in HIERARCHY_CASES],
)
def test_hierarchy_case_metadata_only(case_dir, valid, strict, request):
    ident = request.node.callspec.id
    errors = _judge(case_dir, strict)
    if ident in SPELLING_DECIDED_INVALID:
        assert errors, "decided invalid by the 0.6 text"
        rules = {getattr(p, "rule", None) for p in errors}
        expected = {"v06-spelling"} | ({None} if ident in GEOMETRY_DECIDED_INVALID else set())
        assert rules == expected, errors
        return
    assert (not errors) is valid, errors


def test_hierarchy_cases_are_all_here_and_need_metadata_only():
    assert len(HIERARCHY_CASES) == 85
    valid = [
        c
        for c in HIERARCHY_CASES
        if c[2] and c[0] not in SPELLING_DECIDED_INVALID and "-label-" not in c[0]
    ]
    assert len(valid) >= 9
    # without metadata_only the arrays they name are required, and do not exist
    for _ident, case_dir, _valid, strict in valid:
        problems = validate(case_dir, strict=strict)
        assert any("names no" in p.message for p in problems), problems


def test_metadata_only_and_read_chunks_do_not_combine():
    case_dir = HIERARCHY_CASES[0][1]
    with pytest.raises(OmeZarrError, match="metadata_only.*read_chunks"):
        validate(case_dir, metadata_only=True, read_chunks=True)


def _cli(capsys, *args):
    """(exit status, parsed stdout) of ``validate --json``, run in this process."""
    capsys.readouterr()
    status = main(["validate", "--json", *args])
    return status, json.loads(capsys.readouterr().out)


def _command(*args):
    """(exit status, parsed stdout) of ``validate --json`` run as the runner runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "xarray_ome_zarr.cli", "validate", "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, json.loads(done.stdout)


def _case(ident):
    return next(c for c in HIERARCHY_CASES if c[0] == ident)


def test_json_command_the_conformance_runner_drives(tmp_path, capsys):
    # a valid hierarchy, an invalid one, a broken one, and a single attributes document;
    # the invalid one through a real process (its exit status and stdout as the runner sees
    # them), the others through the same main() in this process
    valid = next(c for c in HIERARCHY_CASES if c[2] and c[0] not in SPELLING_DECIDED_INVALID)
    status, out = _cli(capsys, "--metadata-only", str(valid[1]))
    assert status == 0 and out["valid"] is True and isinstance(out["message"], str)
    assert set(out) == {"valid", "message", "problems"}
    invalid = _case("0.6rc0-spec-invalid-image-missing_scale")
    status, out = _command("--metadata-only", str(invalid[1]))
    assert status == 1 and out["valid"] is False and out["message"]
    assert out["problems"] and set(out["problems"][0]) == {
        "severity",
        "node",
        "key",
        "message",
        "rule",
    }
    status, out = _cli(
        capsys, "--metadata-only", str(_case("0.6rc0-spec-invalid-label-colors_rgba_length")[1])
    )
    assert status == 1 and out["valid"] is False and "cannot open" in out["message"]
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps(next(c[2] for c in ATTRIBUTE_CASES if c[3] and not c[4])))
    status, out = _cli(capsys, str(doc))
    assert status == 0 and out["valid"] is True
    status, out = _cli(capsys, str(valid[1] / "zarr.json"))  # a hierarchy's root document
    assert status == 0 and out["valid"] is True


def test_dev_versions_take_the_dev_spelling(tmp_path):
    ident, case_dir, _valid, _strict = _case("0.6rc0-strict-valid-image-image")
    doc = json.loads((case_dir / "zarr.json").read_text())["attributes"]
    doc.pop("_conformance")
    for version, valid in (("0.6.dev3", True), ("0.6.dev4", True), ("0.6", False)):
        doc["ome"]["version"] = version
        path = tmp_path / f"{version}.json"
        path.write_text(json.dumps(doc))
        assert (not _errors(validate(path, strict=True))) is valid, (ident, version)
