"""The rules of OME-Zarr 0.6 documents (RFC-5): spellings, coordinate systems, datasets.

0.6 images name their coordinate systems and join them with transformations; the datasets'
transforms map each array to one coordinate system (found by name), whose axes are the
image's axes. That system's scale and translation per level become the model's level
transforms exactly as for 0.4/0.5; everything else stays in the verbatim document and in
the graph (``transformations.graph_of_document``).

Two spellings exist. 0.6.dev (``0.6.dev3``, ``0.6.dev4``, and the transformations
conformance suite) writes ``"input": "name"`` and byDimension's ``input_axes`` on the
transform; 0.6 (``0.6``, ``0.6rc0``) writes ``{"name"|"path": ...}`` objects and
``{"transformation", "inputAxes", "outputAxes"}`` items. Both are read; for a document
declaring 0.6 or 0.6rc0 the 0.6.dev spelling breaks the 0.6 text (its schema requires
objects), so ``validate`` reports it and the reader warns (``strict=True`` refuses).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from ..errors import OmeZarrError, OmeZarrWarning
from .model import Level, Multiscale, Transform
from .paths import check_member_path
from .transformations import (
    CoordinateSystem,
    SequenceOf,
    parse_coordinate_systems,
    parse_ref,
    parse_transformation,
)

#: The 0.6 version strings read, the released one first.
VERSIONS_06 = ("0.6", "0.6rc0", "0.6.dev3", "0.6.dev4")
#: Versions whose own spelling is the 0.6.dev one.
DEV_VERSIONS = ("0.6.dev3", "0.6.dev4")
#: The version string written (as ngff-zarr 0.50 writes it).
WRITTEN_VERSION = "0.6"
#: The rule id of the 0.6.dev spelling found in a 0.6 document.
SPELLING_RULE = "v06-spelling"


def is_06(version: str | None) -> bool:
    """Whether ``version`` is one of the 0.6 spellings."""
    return version in VERSIONS_06


def _warn(where: str, key: str, message: str) -> None:
    text = f"{where}: {key}: {message}" if where else f"{key}: {message}"
    warnings.warn(OmeZarrWarning(text, key=key, reason=message), stacklevel=4)


def _fail(where: str, key: str, message: str) -> OmeZarrError:
    text = f"{where}: {key}: {message}" if where else f"{key}: {message}"
    return OmeZarrError(text, key=key, reason=message)


# ------------------------------------------------------------------------------------------
# spellings
# ------------------------------------------------------------------------------------------


def normalise_spelling(ome: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """``ome`` in the 0.6 spelling, and ``(key, message)`` for each 0.6.dev spelling found.

    A bare string ``input`` of a dataset's transform is the dataset's path; every other bare
    string names a coordinate system.
    """
    found: list[tuple[str, str]] = []
    out = dict(ome)
    if isinstance(ome.get("multiscales"), list):
        out["multiscales"] = [
            _multiscale_spelling(m, f"multiscales/{i}", found) if isinstance(m, Mapping) else m
            for i, m in enumerate(ome["multiscales"])
        ]
    scene = ome.get("scene")
    if isinstance(scene, Mapping) and isinstance(scene.get("coordinateTransformations"), list):
        out["scene"] = {
            **scene,
            "coordinateTransformations": _list_spelling(
                scene["coordinateTransformations"], "scene/coordinateTransformations", found
            ),
        }
    return out, found


def _multiscale_spelling(ms: Mapping[str, Any], key: str, found: list[Any]) -> dict[str, Any]:
    out = dict(ms)
    if isinstance(ms.get("coordinateTransformations"), list):
        out["coordinateTransformations"] = _list_spelling(
            ms["coordinateTransformations"], f"{key}/coordinateTransformations", found
        )
    if isinstance(ms.get("datasets"), list):
        datasets = []
        for j, ds in enumerate(ms["datasets"]):
            if isinstance(ds, Mapping) and isinstance(ds.get("coordinateTransformations"), list):
                dk = f"{key}/datasets/{j}/coordinateTransformations"
                ds = {
                    **ds,
                    "coordinateTransformations": _list_spelling(
                        ds["coordinateTransformations"], dk, found, input_is_path=True
                    ),
                }
            datasets.append(ds)
        out["datasets"] = datasets
    return out


def _list_spelling(
    items: list[Any], key: str, found: list[Any], *, input_is_path: bool = False
) -> list[Any]:
    return [
        _transform_spelling(t, f"{key}/{i}", found, input_is_path=input_is_path)
        for i, t in enumerate(items)
    ]


def _transform_spelling(t: Any, key: str, found: list[Any], *, input_is_path: bool = False) -> Any:
    if not isinstance(t, Mapping):
        return t
    out = dict(t)
    for end in ("input", "output"):
        if isinstance(t.get(end), str):
            as_path = end == "input" and input_is_path
            out[end] = {"path" if as_path else "name": t[end]}
            found.append(
                (f"{key}/{end}", f"{t[end]!r} is the 0.6.dev spelling; 0.6 writes {out[end]!r}")
            )
    for nested in ("forward", "inverse", "transformation"):
        if isinstance(t.get(nested), Mapping):
            out[nested] = _transform_spelling(t[nested], f"{key}/{nested}", found)
    if isinstance(t.get("transformations"), list):
        items = []
        for i, item in enumerate(t["transformations"]):
            ik = f"{key}/transformations/{i}"
            if (
                t.get("type") == "byDimension"
                and isinstance(item, Mapping)
                and "transformation" not in item
                and ("input_axes" in item or "output_axes" in item)
            ):
                body = {k: v for k, v in item.items() if k not in ("input_axes", "output_axes")}
                item = {
                    "transformation": _transform_spelling(body, f"{ik}/transformation", found),
                    "inputAxes": item.get("input_axes"),
                    "outputAxes": item.get("output_axes"),
                }
                found.append(
                    (
                        ik,
                        "input_axes/output_axes on the transform is the 0.6.dev "
                        "spelling; 0.6 writes {'transformation', 'inputAxes', 'outputAxes'}",
                    )
                )
            else:
                item = _transform_spelling(item, ik, found)
            items.append(item)
        out["transformations"] = items
    return out


# ------------------------------------------------------------------------------------------
# multiscales
# ------------------------------------------------------------------------------------------


def parse_multiscale_06(
    raw: Mapping[str, Any], version: str, where: str, key: str, parse_axis: Any, check_axes: Any
) -> Multiscale:
    """One 0.6 multiscale (in the 0.6 spelling): axes from the datasets' output system.

    ``parse_axis`` and ``check_axes`` are the version-independent axis rules of ``parse``.
    """
    systems = parse_coordinate_systems(
        raw.get("coordinateSystems"), where, f"{key}/coordinateSystems"
    )
    if not systems:
        raise _fail(where, f"{key}/coordinateSystems", "must list at least one coordinate system")
    by_name = {cs.name: cs for cs in systems}
    datasets = raw.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise _fail(where, f"{key}/datasets", "must be a non-empty list")
    outputs, levels = [], []
    for i, ds in enumerate(datasets):
        level, output = _parse_level(ds, where, f"{key}/datasets/{i}", by_name)
        outputs.append(output)
        levels.append(level)
    if len(set(outputs)) != 1:
        raise _fail(
            where,
            f"{key}/datasets",
            f"every dataset must map to one coordinate system, got {outputs}",
        )
    intrinsic = by_name[outputs[0]]
    axes_key = f"{key}/coordinateSystems/{list(by_name).index(intrinsic.name)}/axes"
    axes = tuple(parse_axis(a, where, f"{axes_key}/{n}") for n, a in enumerate(intrinsic.axes))
    if not any(a.type == "array" for a in axes):  # array-index axes: geometry elsewhere
        check_axes(axes, where, axes_key)
    _check_multiscale_refs(raw.get("coordinateTransformations"), by_name, where, key)
    paths = [lv.path for lv in levels]
    if len(set(paths)) != len(paths):
        raise _fail(where, f"{key}/datasets", f"dataset paths repeat: {paths}")
    known = {
        "version",
        "name",
        "coordinateSystems",
        "datasets",
        "coordinateTransformations",
        "type",
        "metadata",
    }
    name, metadata = raw.get("name"), raw.get("metadata")
    return Multiscale(
        version=version,
        axes=axes,
        levels=tuple(levels),
        transforms=(),
        name=name if isinstance(name, str) else None,
        type=raw.get("type") if isinstance(raw.get("type"), str) else None,
        metadata=metadata if isinstance(metadata, Mapping) else None,
        extra={k: v for k, v in raw.items() if k not in known},
        coordinate_systems=systems,
        coordinate_system=intrinsic.name,
    )


def _parse_level(
    raw: Any, where: str, key: str, systems: Mapping[str, CoordinateSystem]
) -> tuple[Level, str]:
    if not isinstance(raw, Mapping):
        raise _fail(where, key, "must be a JSON object")
    path = raw.get("path")
    if not isinstance(path, str) or not path.strip("/"):
        raise _fail(where, f"{key}/path", f"must be a non-empty string, got {path!r}")
    path = check_member_path(path, where, f"{key}/path")
    items = raw.get("coordinateTransformations")
    tk = f"{key}/coordinateTransformations"
    if not isinstance(items, list) or len(items) != 1:
        raise _fail(where, tk, f"must hold exactly one transform, got {items!r}")
    t = items[0]
    if not isinstance(t, Mapping):
        raise _fail(where, f"{tk}/0", "must be a JSON object")
    source = parse_ref(t.get("input", {"path": path}), where, f"{tk}/0/input")
    if source.name is not None and source.path is None:
        source = type(source)(path=source.name)
    if source.path is not None and source.path.strip("/") != path:
        _warn(
            where,
            f"{tk}/0/input",
            f"names {source.path!r}, not the dataset's path {path!r}; the dataset {path!r} is read",
        )
    if "output" not in t:
        raise _fail(where, f"{tk}/0/output", "is required: the coordinate system of the dataset")
    target = parse_ref(t["output"], where, f"{tk}/0/output", systems)
    if target.name not in systems or target.path:
        raise _fail(
            where,
            f"{tk}/0/output",
            f"must name a coordinate system of the multiscale ({', '.join(systems)}), "
            f"got {t['output']!r}",
        )
    transforms = _scale_translation(parse_transformation(t, where, f"{tk}/0"), t, where, tk)
    extra = {k: v for k, v in raw.items() if k not in ("path", "coordinateTransformations")}
    return Level(path, transforms, extra), str(target.name)


def _scale_translation(
    t: Any, raw: Mapping[str, Any], where: str, key: str
) -> tuple[Transform, ...]:
    """A dataset transform as the model's scale (and translation); raw kept on the first."""
    parts = t.transformations if isinstance(t, SequenceOf) else (t,)
    types = [p.type for p in parts]
    if types == ["identity"]:
        return (Transform("identity", None, dict(raw)),)
    if types not in (["scale"], ["scale", "translation"], ["translation", "scale"]):
        raise _fail(
            where,
            key,
            "must be an identity, a scale, or a sequence of one scale and "
            f"one translation, got {types}",
        )
    scale = cast(Any, next(p for p in parts if p.type == "scale")).scale
    if any(s == 0 for s in scale):
        raise _fail(where, f"{key}/0", f"a scale must not contain zero, got {list(scale)}")
    out = [Transform("scale", tuple(scale), dict(raw))]
    if "translation" in types:
        shift = cast(Any, next(p for p in parts if p.type == "translation")).translation
        if types[0] == "translation":  # (x + t) * s = x * s + t * s
            if len(shift) != len(scale):
                raise _fail(where, key, "scale and translation differ in length")
            shift = tuple(a * b for a, b in zip(shift, scale, strict=True))
        out.append(Transform("translation", tuple(shift), {}))
    return tuple(out)


def _check_multiscale_refs(
    items: Any, systems: Mapping[str, CoordinateSystem], where: str, key: str
) -> None:
    """Multiscale-wide transforms: parseable, and local names that exist."""
    if items is None:
        return
    if not isinstance(items, list):
        raise _fail(where, f"{key}/coordinateTransformations", "must be a list")
    for i, t in enumerate(items):
        tk = f"{key}/coordinateTransformations/{i}"
        parse_transformation(t, where, tk)
        for end in ("input", "output"):
            if end not in t:
                raise _fail(where, f"{tk}/{end}", "is required")
            ref = parse_ref(t[end], where, f"{tk}/{end}", systems)
            if ref.path is None and ref.name not in systems:
                _warn(
                    where,
                    f"{tk}/{end}",
                    f"names no coordinate system of the multiscale ({', '.join(systems)}): "
                    f"{t[end]!r}; the transform joins nothing",
                )


def check_scene(scene: Any, where: str) -> Mapping[str, Any]:
    """The ``scene`` block: its systems and transforms parse; local names exist."""
    if not isinstance(scene, Mapping):
        raise _fail(where, "scene", f"must be a JSON object, got {scene!r}")
    systems = {
        cs.name: cs
        for cs in parse_coordinate_systems(
            scene.get("coordinateSystems"), where, "scene/coordinateSystems"
        )
    }
    items = scene.get("coordinateTransformations")
    if not isinstance(items, list) or not items:
        raise _fail(where, "scene/coordinateTransformations", "must be a non-empty list")
    for i, t in enumerate(items):
        tk = f"scene/coordinateTransformations/{i}"
        parse_transformation(t, where, tk)
        for end in ("input", "output"):
            if end not in t:
                raise _fail(where, f"{tk}/{end}", "is required")
            ref = parse_ref(t[end], where, f"{tk}/{end}", systems)
            if ref.name is None:
                raise _fail(where, f"{tk}/{end}", "must name a coordinate system")
            if not ref.path and ref.name not in systems:
                raise _fail(
                    where,
                    f"{tk}/{end}",
                    f"names no coordinate system of the scene "
                    f"({', '.join(systems) or 'none'}): {t[end]!r}",
                )
    return scene


def scene_image_paths(scene: Mapping[str, Any]) -> tuple[str, ...]:
    """The groups a scene's transforms reference, in order of first mention."""
    out: list[str] = []
    for t in scene.get("coordinateTransformations") or ():
        if not isinstance(t, Mapping):
            continue
        for end in ("input", "output"):
            ref = t.get(end)
            if isinstance(ref, Mapping) and isinstance(ref.get("path"), str) and ref["path"]:
                path = ref["path"].strip("/")
                if path not in out:
                    out.append(path)
    return tuple(out)


def dangling_scene_references(
    scene: Mapping[str, Any], systems_of: Callable[[str], Sequence[str] | None]
) -> list[tuple[str, str, str, list[str]]]:
    """The ends of a scene's transforms that name a system their image does not have.

    ``systems_of(path)`` gives the coordinate system names of the image at ``path`` (relative
    to the scene group), or ``None`` where that image is unknown (not checked). Each result is
    ``(key, path, name, the image's names)``, ``key`` relative to the scene's document.
    """
    out = []
    for i, t in enumerate(scene.get("coordinateTransformations") or ()):
        for end in ("input", "output"):
            ref = t.get(end) if isinstance(t, Mapping) else None
            if not isinstance(ref, Mapping) or not isinstance(ref.get("path"), str):
                continue
            path, name = ref["path"].strip("/"), ref.get("name")
            names = systems_of(path)
            if name is not None and names and name not in names:
                out.append((f"scene/coordinateTransformations/{i}/{end}", path, name, list(names)))
    return out


def lost_in(document: Mapping[str, Any], target: str) -> list[str]:
    """What writing a 0.6 ``document`` as ``target`` (0.4 or 0.5) would lose, described.

    Those versions hold one coordinate system (the axes) and per-level scale and
    translation: other coordinate systems, transforms between systems and scenes are lost.
    Empty when ``document`` is not 0.6 or nothing is lost.
    """
    if not is_06(document.get("version")) or target.startswith("0.6"):
        return []
    spelled, _ = normalise_spelling(document)
    lost = []
    for i, ms in enumerate(spelled.get("multiscales") or ()):
        if not isinstance(ms, Mapping):
            continue
        outputs = {
            t.get("output", {}).get("name")
            for ds in ms.get("datasets") or ()
            if isinstance(ds, Mapping)
            for t in ds.get("coordinateTransformations") or ()
            if isinstance(t, Mapping) and isinstance(t.get("output"), Mapping)
        }
        others = [
            cs.get("name")
            for cs in ms.get("coordinateSystems") or ()
            if isinstance(cs, Mapping) and cs.get("name") not in outputs
        ]
        if others:
            lost.append(f"multiscales/{i}: the coordinate systems {others}")
        if ms.get("coordinateTransformations"):
            n = len(ms["coordinateTransformations"])
            lost.append(
                f"multiscales/{i}/coordinateTransformations: {n} transform(s) between systems"
            )
    if "scene" in spelled:
        lost.append("scene: the scene (its coordinate systems and transforms)")
    return lost
