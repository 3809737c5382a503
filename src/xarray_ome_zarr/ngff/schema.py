"""Validate OME attribute documents against the specification's own JSON schemas.

The schemas of each version ship with the package (``schemas/<version>``, see the licence
notice there) and are validated with ``jsonschema`` under Draft 2020-12. Nothing is fetched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from .limits import remember_bounded

#: Versions whose schemas ship with the package.
SCHEMA_VERSIONS = ("0.4", "0.5", "0.6", "0.6rc0", "0.6.dev3", "0.6.dev4")


def schema_folder(version: str) -> str:
    """The folder of ``schemas/`` that checks ``version`` (every 0.6 spelling: ``0.6``)."""
    return "0.6" if version.startswith("0.6") else version


@dataclass(frozen=True)
class SchemaProblem:
    """One place where a document breaks its schema."""

    kind: str
    path: tuple[str | int, ...]
    message: str

    @property
    def key(self) -> str:
        """The JSON path of the offending value, ``/``-separated."""
        return "/".join(str(p) for p in self.path) or "<root>"

    @property
    def in_omero(self) -> bool:
        """Whether the problem lies in the transitional ``omero`` block."""
        return "omero" in self.path[:2]


@cache
def _registry_and_schemas(version: str) -> tuple[Any, dict[str, dict[str, Any]]]:
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    folder = files("xarray_ome_zarr.ngff") / "schemas" / schema_folder(version)
    schemas: dict[str, dict[str, Any]] = {}
    resources = []
    for entry in folder.iterdir():
        if entry.name.endswith(".schema"):
            schema = json.loads(entry.read_text(encoding="utf-8"))
            schemas[entry.name.removesuffix(".schema")] = schema
            resource = Resource.from_contents(schema, default_specification=DRAFT202012)
            resources.append((schema["$id"], resource))
    return Registry().with_resources(resources), schemas


@cache
def _validator(version: str, kind: str) -> Any:
    from jsonschema import Draft202012Validator

    registry, schemas = _registry_and_schemas(version)
    return Draft202012Validator(schemas[kind], registry=registry)


def schema_kinds(version: str) -> tuple[str, ...]:
    """The schema names (``image``, ``strict_plate``, ...) shipped for a version."""
    return tuple(sorted(_registry_and_schemas(schema_folder(version))[1]))


def schema_problems(document: Mapping[str, Any], version: str, kind: str) -> list[SchemaProblem]:
    """Every way ``document`` breaks the schema ``kind`` of ``version``.

    Parameters
    ----------
    document
        The group's attributes as stored (for 0.5, with the ``ome`` key).
    version
        ``"0.4"`` or ``"0.5"``.
    kind
        A schema name such as ``"image"``, ``"label"``, ``"plate"``, ``"strict_well"``.
    """
    text = _json_text(document)
    if text is not None:
        known = _SEEN.get((version, kind, text))
        if known is not None:
            return list(known)
    validator = _validator(schema_folder(version), kind)
    problems = [
        SchemaProblem(kind, tuple(err.absolute_path), err.message)
        for err in validator.iter_errors(document)
    ]
    problems.sort(key=lambda p: [str(x) for x in p.path])
    if text is not None:
        remember_bounded(_SEEN, (version, kind, text), tuple(problems), MAX_REMEMBERED)
    return problems


#: Documents checked lately, by (version, kind, JSON text): the fields of a plate, the
#: levels' images of a collection and the wells share a few documents, each checked once.
_SEEN: dict[tuple[str, str, str], tuple[SchemaProblem, ...]] = {}
MAX_REMEMBERED = 256


def _json_text(document: Mapping[str, Any]) -> str | None:
    """The JSON text of ``document`` when it is plain JSON (so equal texts are equal
    documents, tuples and lists not confused); else ``None`` (not remembered)."""
    try:
        text = json.dumps(document, allow_nan=True)
    except (TypeError, ValueError):
        return None
    return text if json.loads(text) == document else None


def kinds_for(ome: Mapping[str, Any], version: str, *, strict: bool = False) -> list[str]:
    """The schemas that apply to an OME document (the content under ``ome`` for 0.5).

    With ``strict``, each kind's strict schema follows it where the version has one.
    """
    kinds = []
    if "multiscales" in ome:
        kinds.append("image")
    if "image-label" in ome:
        kinds.append("label")
    if "plate" in ome:
        kinds.append("plate")
    if "well" in ome:
        kinds.append("well")
    if "bioformats2raw.layout" in ome:
        kinds.append("bf2raw")
    if "series" in ome and version != "0.4":
        kinds.append("ome")
    if "scene" in ome and version.startswith("0.6"):
        kinds.append("scene")
    if strict:
        available = schema_kinds(version)
        kinds = [k for kind in kinds for k in (kind, f"strict_{kind}") if k in available]
    return kinds
