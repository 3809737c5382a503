"""``validate``: the reader's walk, collecting (``hierarchy.Walker`` with a collecting
``Findings``), plus the checks only a validator makes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import zarr

from xarray_ome_zarr import Problem, hierarchy, validate

from ..conftest import write_hand_image
from ..fixtures.labels import add_labels

VERSIONS = ["0.4", "0.5"]


def test_problem_text():
    problem = Problem("/labels/a", "multiscales/0/datasets/0/path", "is wrong")
    assert str(problem) == "error /labels/a multiscales/0/datasets/0/path: is wrong"
    assert problem.severity == "error"


@pytest.mark.parametrize("version", VERSIONS)
def test_validate_parses_each_node_once(version, tmp_path, monkeypatch):
    path = tmp_path / "image.ome.zarr"
    write_hand_image(path, version)
    add_labels(path, version, {"nuclei": np.zeros((5, 13, 11), "uint8")})
    parsed: Counter[str] = Counter()
    real = hierarchy.parse_node

    def counting(attrs, where="", **kwargs):
        parsed[where.rsplit("node ", 1)[-1]] += 1
        return real(attrs, where, **kwargs)

    monkeypatch.setattr(hierarchy, "parse_node", counting)
    assert validate(path) == []
    assert parsed == {"'/'": 1, "'/labels'": 1, "'/labels/nuclei'": 1}


@pytest.mark.parametrize("version", VERSIONS)
def test_same_structural_check_as_the_reader(version, tmp_path):
    """One rule, one text: validate lists what the reader raises, under the same key."""
    path = tmp_path / "image.ome.zarr"
    write_hand_image(path, version)
    add_labels(path, version, {"nuclei": np.zeros((5, 13, 11), "float32")})
    problem, _ = validate(path)  # both levels
    assert (problem.node, problem.key) == ("/labels/nuclei", "multiscales/0/datasets/0/path")
    assert problem.message == "label image '0' has dtype float32; labels must be integers"
    assert problem.rule == "label-dtype"


@pytest.mark.parametrize("version", VERSIONS)
def test_validator_only_checks_are_not_the_readers(version, tmp_path):
    """Chunk reading, units and omero colours are looked at by validate alone."""
    path = tmp_path / "image.ome.zarr"
    write_hand_image(path, version)
    root = zarr.open_group(path, mode="r+")
    attrs = root.attrs.asdict()
    document = attrs["ome"] if version == "0.5" else attrs
    document["multiscales"][0]["axes"][2]["unit"] = "um"
    root.attrs.put(attrs)
    found = {(p.key, p.severity) for p in validate(path)}
    assert found == {("multiscales/0/axes/2/unit", "warning")}
    hierarchy_findings = hierarchy.Findings(str(path), collect=True)
    hierarchy.Walker(hierarchy_findings).walk(zarr.open_group(path, mode="r"))
    assert hierarchy_findings.problems == []


@pytest.mark.parametrize("version", VERSIONS)
def test_problems_in_hierarchy_order(version, tmp_path):
    path = tmp_path / "image.ome.zarr"
    write_hand_image(path, version)
    labels = {name: np.zeros((5, 13, 11), "float64") for name in ("b", "a", "c")}
    add_labels(path, version, labels)
    nodes = [p.node for p in validate(path)]
    assert list(dict.fromkeys(nodes)) == ["/labels/b", "/labels/a", "/labels/c"]
