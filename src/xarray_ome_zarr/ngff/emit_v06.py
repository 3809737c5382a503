"""Emit OME-Zarr 0.6 (RFC-5) multiscales from plain values. Imports no xarray.

The datasets' transforms are regenerated from the levels' geometry (the coordinates are the
truth, as for 0.4/0.5) and output to the image's own coordinate system, by name; every other
coordinate system and every multiscale-wide transformation of the stored 0.6 document is
written back verbatim (in the 0.6 spelling). The image's own system keeps its stored name and
position in ``coordinateSystems``; its axes are the levels' axes. Transforms between systems
start from the image's own system, never from an array, so a crop (a new translation of the
datasets) leaves them valid: a point keeps its place in every other system.

A new image, or one converted from 0.4/0.5, gets one system named ``intrinsic`` (as ngff-zarr
names it); 0.4/0.5 multiscale-wide scale and translation are folded into each dataset's
transform (scale ``S_ms * S_ds``, translation ``S_ms * t_ds + t_ms``: the reader's coordinates
already hold them), since 0.6 multiscale-wide transforms join named systems instead.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import OmeZarrError
from .v06 import WRITTEN_VERSION, is_06, normalise_spelling

#: The name of the image's own coordinate system when the source names none.
DEFAULT_SYSTEM = "intrinsic"
#: Transform types whose ``path`` names stored data (a field group or a parameters array).
STORED_TYPES = ("displacements", "coordinates", "affine", "rotation")


def stored_multiscale_06(version: str | None, multiscales: Any) -> dict[str, Any] | None:
    """The first stored multiscale of a 0.6 document in the 0.6 spelling, else ``None``."""
    if not is_06(version) or not isinstance(multiscales, list) or not multiscales:
        return None
    spelled, _ = normalise_spelling({"multiscales": multiscales})
    first = spelled["multiscales"][0]
    return dict(first) if isinstance(first, Mapping) else None


def own_system_name(stored: Mapping[str, Any] | None) -> str:
    """The name of the system the stored datasets output to, else :data:`DEFAULT_SYSTEM`."""
    for ds in (stored or {}).get("datasets") or ():
        for t in ds.get("coordinateTransformations") or () if isinstance(ds, Mapping) else ():
            output = t.get("output") if isinstance(t, Mapping) else None
            if isinstance(output, Mapping) and isinstance(output.get("name"), str):
                return str(output["name"])
    return DEFAULT_SYSTEM


def _stored_dataset_transform(stored: Mapping[str, Any] | None, path: str) -> Mapping[str, Any]:
    for ds in (stored or {}).get("datasets") or ():
        if isinstance(ds, Mapping) and ds.get("path") == path:
            items = ds.get("coordinateTransformations")
            if isinstance(items, list) and items and isinstance(items[0], Mapping):
                return items[0]
    return {}


def dataset_json_06(
    path: str,
    scale: Sequence[float],
    translation: Sequence[float],
    system: str,
    stored: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One 0.6 ``datasets`` entry: the array ``path`` to the system ``system``.

    A sequence of a scale and a translation (as ngff-zarr 0.50 writes it); a single scale
    (or identity) where the stored transform of this path was one and still says the same.
    The stored transform's ``name`` is kept.
    """
    scale = [float(v) for v in scale]
    translation = [float(v) for v in translation]
    kept = stored or {}
    transform: dict[str, Any] = {"input": {"path": path}, "output": {"name": system}}
    if isinstance(kept.get("name"), str):
        transform["name"] = kept["name"]
    if kept.get("type") == "identity" and not any(translation) and all(v == 1 for v in scale):
        transform["type"] = "identity"
    elif kept.get("type") == "scale" and not any(translation):
        transform.update({"type": "scale", "scale": scale})
    else:
        transform["type"] = "sequence"
        transform["transformations"] = [
            {"type": "scale", "scale": scale},
            {"type": "translation", "translation": translation},
        ]
    return {"path": path, "coordinateTransformations": [transform]}


def _touches(transform: Any, system: str) -> bool:
    """Whether a multiscale-wide transform starts or ends at the local system ``system``."""
    if not isinstance(transform, Mapping):
        return False
    for end in ("input", "output"):
        ref = transform.get(end)
        if isinstance(ref, Mapping) and ref.get("name") == system and not ref.get("path"):
            return True
    return False


def multiscale_json_06(
    axes: Sequence[Mapping[str, Any]],
    levels: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    *,
    stored: Mapping[str, Any] | None = None,
    name: str | None = None,
    type: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    where: str = "",
) -> dict[str, Any]:
    """One 0.6 ``multiscales`` entry.

    Parameters
    ----------
    axes
        The levels' axes as JSON (``axis_json``), in the arrays' order.
    levels
        ``(path, scale, translation)`` of each level, highest resolution first.
    stored
        The stored 0.6 multiscale in the 0.6 spelling (:func:`stored_multiscale_06`), whose
        other systems and transforms are kept; ``None`` for a new or converted image.
    name, type, metadata, extra
        As for 0.4/0.5.

    Raises
    ------
    OmeZarrError
        When the axes are no longer the stored system's (renamed, reordered, added or
        dropped) while transforms to other systems start or end there: they would no
        longer fit.
    """
    system = own_system_name(stored)
    own_axes = [dict(a) for a in axes]
    own: dict[str, Any] = {"name": system, "axes": own_axes}
    systems: list[Any] = []
    found = False
    old_names: list[Any] = []
    for cs in (stored or {}).get("coordinateSystems") or ():
        if isinstance(cs, Mapping) and cs.get("name") == system and not found:
            found = True
            kept_keys = {k: copy.deepcopy(v) for k, v in cs.items() if k not in ("name", "axes")}
            systems.append({**own, **kept_keys})
            old_names = [a.get("name") for a in cs.get("axes") or () if isinstance(a, Mapping)]
        else:
            systems.append(copy.deepcopy(cs))
    if not found:
        systems.insert(0, own)
        old_names = [a["name"] for a in own_axes]
    transforms = copy.deepcopy((stored or {}).get("coordinateTransformations"))
    new_names = [a["name"] for a in own_axes]
    if old_names != new_names and isinstance(transforms, list):
        touching = [t.get("name", i) for i, t in enumerate(transforms) if _touches(t, system)]
        if touching:
            prefix = f"{where}: " if where else ""
            raise OmeZarrError(
                f"{prefix}the axes of the coordinate system {system!r} changed from "
                f"{old_names} to {new_names}, so the multiscale's coordinateTransformations "
                f"{touching} from or to it no longer fit; keep the axes (select with slices, "
                "not single indices; keep the dims' names and order), or remove those "
                "transforms from attrs['ome']"
            )
    out: dict[str, Any] = {}
    if name is not None:
        out["name"] = name
    out["coordinateSystems"] = systems
    out["datasets"] = [
        dataset_json_06(path, s, t, system, _stored_dataset_transform(stored, path))
        for path, s, t in levels
    ]
    if transforms:
        out["coordinateTransformations"] = transforms
    if type is not None:
        out["type"] = type
    if metadata is not None:
        out["metadata"] = copy.deepcopy(dict(metadata))
    for key, value in (extra or {}).items():
        if key not in out and key not in ("version", "axes"):
            out[key] = copy.deepcopy(value)
    return out


def scene_json_06(scene: Mapping[str, Any]) -> dict[str, Any]:
    """A ``scene`` block in the 0.6 spelling (a deep copy)."""
    spelled, _ = normalise_spelling({"scene": scene})
    return copy.deepcopy(dict(spelled["scene"]))


def stored_paths(document: Mapping[str, Any]) -> list[str]:
    """The paths of stored data (field groups, parameter arrays) that the transforms of a
    0.6 document (multiscale-wide and scene) name, relative to the document's group."""
    found: list[str] = []

    def visit(t: Any) -> None:
        if isinstance(t, Mapping):
            path = t.get("path")
            path = path.strip("/") if isinstance(path, str) else ""
            if t.get("type") in STORED_TYPES and path and path not in found:
                found.append(path)
            for key in ("forward", "inverse", "transformation"):
                visit(t.get(key))
            for item in t.get("transformations") or ():
                visit(item)

    for ms in document.get("multiscales") or ():
        if isinstance(ms, Mapping):
            for t in ms.get("coordinateTransformations") or ():
                visit(t)
    scene = document.get("scene")
    if isinstance(scene, Mapping):
        for t in scene.get("coordinateTransformations") or ():
            visit(t)
    return found


__all__ = [
    "DEFAULT_SYSTEM",
    "WRITTEN_VERSION",
    "dataset_json_06",
    "multiscale_json_06",
    "own_system_name",
    "scene_json_06",
    "stored_multiscale_06",
    "stored_paths",
]
