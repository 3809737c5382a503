"""Emit OME-NGFF metadata documents (0.4, 0.5, 0.6) from plain values. Imports no xarray.

The writer regenerates ``multiscales`` from the data and copies every other OME block
verbatim, moving it between the top level (0.4) and ``attributes["ome"]`` (0.5, 0.6). The
0.6 multiscale (coordinate systems, transforms by name) is built by :mod:`.emit_v06`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import OmeZarrError
from .emit_v06 import multiscale_json_06, scene_json_06
from .model import READ_VERSIONS, WRITE_VERSIONS, Axis, Multiscale
from .parse import parse_multiscale, split_attributes

#: OME blocks a group can carry besides ``multiscales`` (the keys the reader looks for).
OME_KEYS = (
    "omero",
    "image-label",
    "labels",
    "plate",
    "well",
    "bioformats2raw.layout",
    "series",
    "scene",
)
#: Blocks that carry their own ``version`` key in 0.4 (and lose it in 0.5).
VERSIONED_BLOCKS = ("image-label", "plate", "well")
#: Common spellings of units mapped to their UDUNITS-2 names, as the specification wants them.
UNIT_ALIASES = {
    "um": "micrometer",
    "µm": "micrometer",
    "μm": "micrometer",
    "micron": "micrometer",
    "microns": "micrometer",
    "nm": "nanometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "pm": "picometer",
    "Å": "angstrom",
    "s": "second",
    "sec": "second",
    "ms": "millisecond",
    "us": "microsecond",
    "µs": "microsecond",
    "ns": "nanosecond",
    "min": "minute",
    "h": "hour",
}


@dataclass(frozen=True)
class SourceDocument:
    """A group's stored attributes split into what the writer regenerates and what it copies.

    ``blocks`` are the OME keys other than ``version`` and ``multiscales`` (0.5: everything
    under ``ome``; 0.4 and older: every top-level key); ``other`` are the non-OME top-level
    attributes of a 0.5 group; ``multiscales`` is the stored (possibly stale) list.
    """

    version: str | None
    blocks: Mapping[str, Any]
    other: Mapping[str, Any]
    multiscales: Any = None

    @property
    def is_ome(self) -> bool:
        """Whether the group carried any OME metadata at all."""
        return self.multiscales is not None or any(k in self.blocks for k in OME_KEYS)


def check_version(version: Any) -> str:
    """Return ``version`` if this package writes it, else raise ``OmeZarrError``."""
    if version not in WRITE_VERSIONS:
        raise OmeZarrError(
            f"cannot write OME-Zarr version {version!r}; writable: {', '.join(WRITE_VERSIONS)}"
        )
    return str(version)


def zarr_format_of(version: str) -> Literal[2, 3]:
    """The zarr format an OME-Zarr version is stored in: 2 for 0.4, 3 for 0.5 and 0.6."""
    return 2 if check_version(version) == "0.4" else 3


def normalize_unit(unit: str | None) -> str | None:
    """A unit as the specification spells it (UDUNITS-2 name); ``None`` for no unit."""
    if unit is None or not str(unit).strip():
        return None
    unit = str(unit).strip()
    return UNIT_ALIASES.get(unit, unit)


#: Axis names spelled otherwise than OME-Zarr spells them, and the name it uses.
AXIS_NAME_ALIASES = {
    **{name.upper(): name for name in "tczyx"},
    "time": "t",
    "channel": "c",
    "channels": "c",
    "ch": "c",
    "depth": "z",
    "plane": "z",
    "row": "y",
    "rows": "y",
    "height": "y",
    "col": "x",
    "cols": "x",
    "column": "x",
    "columns": "x",
    "width": "x",
}


def axis_name_hint(names: Sequence[str]) -> str:
    """``"; rename ..."`` when some of the dims ``names`` are OME-Zarr axis names spelled
    otherwise (``Y``, ``row``, ``channel``...), else ``""``.

    >>> axis_name_hint(["Y", "X"])  # doctest: +ELLIPSIS
    "; OME-Zarr names its axes t, c, z, y, x: pass dims=('y', 'x'), or ...rename({'Y': 'y', ...
    """
    renames = {n: AXIS_NAME_ALIASES[n] for n in names if n in AXIS_NAME_ALIASES}
    if not renames:
        return ""
    dims = tuple(renames.get(n, n) for n in names)
    return (
        f"; OME-Zarr names its axes t, c, z, y, x: pass dims={dims!r}, or rename a DataArray "
        f"with .rename({renames!r})"
    )


def check_axes(axes: Sequence[Axis], where: str = "") -> None:
    """Check axes against the specification's rules before anything is written.

    Raises
    ------
    OmeZarrError
        For fewer than 2 or more than 5 axes, repeated names, not 2 or 3 space axes, more
        than one time or channel axis, or an order other than time, channel/custom, space.
    """
    prefix = f"{where}: " if where else ""
    names = [a.name for a in axes]
    if not 2 <= len(axes) <= 5:
        raise OmeZarrError(f"{prefix}OME-Zarr images have 2 to 5 axes, got {len(axes)}: {names}")
    if len(set(names)) != len(names):
        raise OmeZarrError(f"{prefix}axis names repeat: {names}")
    spaces = [a.name for a in axes if a.type == "space"]
    if not 2 <= len(spaces) <= 3:
        raise OmeZarrError(
            f"{prefix}an image needs 2 or 3 space axes, got {len(spaces)} ({spaces}) among {names}"
            f"{axis_name_hint(names)}"
        )
    for kind in ("time", "channel"):
        found = [a.name for a in axes if a.type == kind]
        if len(found) > 1:
            raise OmeZarrError(f"{prefix}at most one {kind} axis is allowed, got {found}")
    rank = [0 if a.type == "time" else 2 if a.type == "space" else 1 for a in axes]
    if rank != sorted(rank):
        described = [f"{a.name}:{a.type or 'custom'}" for a in axes]
        raise OmeZarrError(
            f"{prefix}axes must be ordered time, then channel or custom, then space; "
            f"got {described} (transpose the data first)"
        )


def axis_json(axis: Axis) -> dict[str, Any]:
    """One ``axes`` entry: name, type (when known), unit (when known), extra keys kept."""
    out: dict[str, Any] = {"name": axis.name}
    if axis.type is not None:
        out["type"] = axis.type
    unit = normalize_unit(axis.unit)
    if unit is not None:
        out["unit"] = unit
    for key, value in axis.extra.items():
        out.setdefault(key, copy.deepcopy(value))
    return out


def dataset_json(path: str, scale: Sequence[float], translation: Sequence[float]) -> dict[str, Any]:
    """One ``datasets`` entry: a path, a scale and a translation."""
    return {
        "path": path,
        "coordinateTransformations": [
            {"type": "scale", "scale": [float(v) for v in scale]},
            {"type": "translation", "translation": [float(v) for v in translation]},
        ],
    }


def multiscale_json(
    version: str,
    axes: Sequence[Axis],
    datasets: Sequence[Mapping[str, Any]],
    *,
    name: str | None = None,
    type: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    stored: Mapping[str, Any] | None = None,
    where: str = "",
) -> dict[str, Any]:
    """One ``multiscales`` entry for ``version`` (0.4 carries its own ``version`` key).

    ``datasets`` are :func:`dataset_json` entries; for 0.6 their scale and translation go
    to the image's own coordinate system and ``stored`` (the stored 0.6 multiscale, see
    :func:`.emit_v06.stored_multiscale_06`) gives the other systems and transforms.
    """
    check_version(version)
    if version == "0.6":
        return multiscale_json_06(
            [axis_json(a) for a in axes],
            [_geometry_of(d) for d in datasets],
            stored=stored,
            name=name,
            type=type,
            metadata=metadata,
            extra={k: v for k, v in (extra or {}).items() if k != "coordinateTransformations"},
            where=where,
        )
    out: dict[str, Any] = {}
    if version == "0.4":
        out["version"] = "0.4"
    if name is not None:
        out["name"] = name
    out["axes"] = [axis_json(a) for a in axes]
    out["datasets"] = [dict(d) for d in datasets]
    if type is not None:
        out["type"] = type
    if metadata is not None:
        out["metadata"] = copy.deepcopy(dict(metadata))
    for key, value in (extra or {}).items():
        if key not in out and key != "coordinateTransformations":
            out[key] = copy.deepcopy(value)
    return out


def _geometry_of(dataset: Mapping[str, Any]) -> tuple[str, list[float], list[float]]:
    """(path, scale, translation) of a :func:`dataset_json` entry."""
    by_type = {t["type"]: t[t["type"]] for t in dataset["coordinateTransformations"]}
    return str(dataset["path"]), list(by_type["scale"]), list(by_type["translation"])


def split_source(attrs: Mapping[Any, Any], where: str = "") -> SourceDocument:
    """Split a group's stored attributes (any version) into a ``SourceDocument``."""
    version, document = split_attributes(attrs, where)
    if document is attrs.get("ome"):
        version = version or "0.5"
        other = {k: v for k, v in attrs.items() if k != "ome"}
    else:
        other = {}
    blocks = {k: v for k, v in document.items() if k not in ("version", "multiscales")}
    return SourceDocument(version, blocks, other, document.get("multiscales"))


def convert_blocks(
    blocks: Mapping[str, Any], source_version: str | None, target: str
) -> dict[str, Any]:
    """Deep copies of ``blocks`` with their ``version`` keys as ``target`` wants them.

    0.4 puts ``"version": "0.4"`` in ``image-label``, ``plate`` and ``well``; 0.5 and 0.6
    keep the version only in ``ome.version``, so converted blocks lose theirs (a source of
    the target version keeps its blocks verbatim). A 0.6 ``scene`` is written in the 0.6
    spelling.
    """
    out = copy.deepcopy(dict(blocks))
    if target == "0.6" and isinstance(out.get("scene"), Mapping):
        out["scene"] = scene_json_06(out["scene"])
    for key in VERSIONED_BLOCKS:
        block = out.get(key)
        if not isinstance(block, dict):
            continue
        if target == "0.4":
            block["version"] = "0.4"
        elif source_version != target:
            block.pop("version", None)
    return out


def group_attributes(
    target: str,
    blocks: Mapping[str, Any],
    other: Mapping[str, Any] | None = None,
    multiscale: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A group's attributes laid out for ``target``.

    0.4: ``multiscales`` and the blocks at the top level. 0.5 and 0.6: everything OME under
    ``ome`` with ``ome.version``; ``other`` (non-OME attributes) beside it.
    """
    check_version(target)
    ome: dict[str, Any] = {}
    if multiscale is not None:
        ome["multiscales"] = [dict(multiscale)]
    for key, value in blocks.items():
        if key not in ("version", "multiscales"):
            ome[key] = value
    other = dict(other or {})
    if target == "0.4":
        return {**{k: v for k, v in other.items() if k not in ome}, **ome}
    return {**{k: v for k, v in other.items() if k != "ome"}, "ome": {"version": target, **ome}}


def channel_entry(label: str, index: int, window: tuple[float, float]) -> dict[str, Any]:
    """A minimal ``omero`` channel for a channel named by a coordinate but not by ``omero``.

    0.4 requires a ``window`` with start, end, min and max: all set from ``window``.
    """
    colors = ("0000FF", "00FF00", "FF0000", "FF00FF", "00FFFF", "FFFF00")
    lo, hi = window
    return {
        "label": label,
        "color": colors[index % len(colors)],
        "active": True,
        "window": {"min": lo, "max": hi, "start": lo, "end": hi},
    }


def omero_for_channels(
    omero: Mapping[str, Any] | None,
    labels: Sequence[str],
    window: tuple[float, float] = (0.0, 1.0),
) -> dict[str, Any]:
    """An ``omero`` block whose channels follow ``labels`` (the channel coordinate).

    Channels are taken from the stored block by label, in the coordinate's order (so a
    subset or a reordering of the channels writes the right entries); a label the stored
    block does not name gets a minimal entry. Every other key of the block is kept.
    """
    out = copy.deepcopy(dict(omero or {}))
    block = out.get("channels")
    stored: list[Any] = block if isinstance(block, list) else []
    unused = list(range(len(stored)))
    channels = []
    for i, label in enumerate(labels):
        match = next((j for j in unused if _label_of(stored[j]) == label), None)
        if match is None:
            channels.append(channel_entry(str(label), i, window))
        else:
            unused.remove(match)
            channels.append(stored[match])
    out["channels"] = channels
    return out


def _label_of(channel: Any) -> Any:
    return channel.get("label") if isinstance(channel, Mapping) else None


def present_entries(entries: Any, key: str, present: set[str]) -> Any:
    """The entries of a listing (``wells``, ``images``) whose ``key`` names a present node."""
    if not isinstance(entries, list):
        return entries
    return [e for e in entries if not isinstance(e, Mapping) or e.get(key) in present]


def stored_multiscale(source: SourceDocument) -> Multiscale | None:
    """The first stored multiscale, parsed leniently: ``None`` when absent or unreadable.

    The writer only borrows from it (name, type, metadata, axis types and units, geometry of
    axes without coordinates), so a stale or broken one is ignored rather than fatal.
    """
    raw = source.multiscales
    if not isinstance(raw, list) or not raw:
        return None
    version = source.version if source.version in READ_VERSIONS else "0.4"
    try:
        return parse_multiscale(raw[0], version, "", "multiscales/0")
    except OmeZarrError:
        return None
