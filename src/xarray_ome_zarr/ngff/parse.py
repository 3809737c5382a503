"""Parse the OME metadata of one zarr group (versions 0.1 to 0.6) into ``model``.

Lenient where real data is sloppy (missing optional keys, old versions, a bad ``omero``
block: see ``parse_node``), strict wherever a guess would give wrong coordinates.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import OmeZarrError, OmeZarrWarning
from . import schema
from .limits import check_list_lengths, remember_bounded
from .model import (
    IMPLIED_AXES,
    READ_VERSIONS,
    Axis,
    Channel,
    FieldRef,
    ImageLabel,
    Level,
    Multiscale,
    NodeMeta,
    Omero,
    Plate,
    Transform,
    Well,
    WellRef,
)
from .paths import check_member_path
from .schema import SCHEMA_VERSIONS, SchemaProblem, kinds_for, schema_problems
from .v06 import (
    DEV_VERSIONS,
    SPELLING_RULE,
    check_scene,
    is_06,
    normalise_spelling,
    parse_multiscale_06,
)

_KNOWN_MULTISCALE_KEYS = {
    "version",
    "name",
    "axes",
    "datasets",
    "coordinateTransformations",
    "type",
    "metadata",
}


def _fail(where: str, key: str, message: str, rule: str | None = None) -> OmeZarrError:
    return OmeZarrError(f"{where}: {key}: {message}", key=key, reason=message, rule=rule)


def _optional_string(raw: Mapping[str, Any], field: str, where: str, key: str) -> str | None:
    """``raw[field]``: a string, or ``None`` where it is missing; anything else is refused."""
    value = raw.get(field)
    if value is not None and not isinstance(value, str):
        raise _fail(where, f"{key}/{field}", f"must be a string, got {value!r}")
    return value


#: Called with (key, message, rule id) for each deviation a reader accepts (``parse_node``).
Deviate = Callable[[str, str, str], None]

#: Rule ids of the deviations from the spec that liberal reading accepts (docs/errors.md).
IDENTITY_TRANSFORM = "identity-transform"
MISSING_TRANSFORMS = "missing-transforms"
VERSION_MISSING = "version-missing"


def _is_identity_only(transforms: Any) -> bool:
    return (
        isinstance(transforms, list)
        and len(transforms) == 1
        and isinstance(transforms[0], Mapping)
        and transforms[0].get("type") == "identity"
    )


def find_deviations(
    attrs: Mapping[str, Any], document: Mapping[str, Any], declared: str | None, version: str
) -> list[tuple[str, str, str]]:
    """The deviations from the spec in a group's OME document that peers read and the
    geometry survives, as (key, message, rule id); see ``docs/errors.md``.

    ``declared`` is the version the document states, ``version`` the one it is read as.
    """
    found = []
    if declared is None and document is attrs.get("ome"):
        message = (
            "the 'ome' object has no 'version' (ome-zarr-py 0.18 leaves it off the groups "
            "below an image); read as 0.5"
        )
        found.append(("version", message, VERSION_MISSING))
    multiscales = document.get("multiscales") if version in ("0.4", "0.5") else None
    for m, multiscale in _objects(multiscales):
        key = f"multiscales/{m}/coordinateTransformations"
        if _is_identity_only(multiscale.get("coordinateTransformations")):
            message = "an identity where the spec wants a scale (iohub writes it); read as scale 1"
            found.append((key, message, IDENTITY_TRANSFORM))
        for i, dataset in _objects(multiscale.get("datasets")):
            key = f"multiscales/{m}/datasets/{i}/coordinateTransformations"
            if _is_identity_only(dataset.get("coordinateTransformations")):
                message = "an identity as the only transform (iohub writes it); read as scale 1"
                found.append((key, message, IDENTITY_TRANSFORM))
            elif "coordinateTransformations" not in dataset and version == "0.4":
                found.append((key, "is required", MISSING_TRANSFORMS))
    return found


def _objects(value: Any) -> list[tuple[int, Mapping[str, Any]]]:
    """(index, entry) of the JSON objects in ``value`` when it is a list; other entries, and
    anything but a list, give none (the schema check reports them)."""
    if not isinstance(value, list):
        return []
    return [(i, entry) for i, entry in enumerate(value) if isinstance(entry, Mapping)]


def tolerated(problem: SchemaProblem, keys: Sequence[str]) -> bool:
    """Whether a schema problem is one of the accepted deviations at ``keys``."""
    path = problem.path[1:] if problem.path[:1] == ("ome",) else problem.path
    key = "/".join(str(p) for p in path)
    for accepted in keys:
        if accepted == "version":
            if not key and "'version'" in problem.message:
                return True
        elif key and _related(key, accepted):
            return True
    return False


def _related(a: str, b: str) -> bool:
    """Whether one ``/``-separated key contains the other."""
    pa, pb = a.split("/"), b.split("/")
    n = min(len(pa), len(pb))
    return n > 0 and pa[:n] == pb[:n]


def split_attributes(
    attrs: Mapping[str, Any], where: str = ""
) -> tuple[str | None, Mapping[str, Any]]:
    """Find the OME document in a group's attributes and the version it declares.

    0.5 and later keep everything under ``attributes["ome"]`` with ``ome.version``; before
    that the metadata sits at the top level with a ``version`` in each block. Returns
    ``(version, document)``; the version is ``None`` where no block states one.
    """
    ome = attrs.get("ome")
    if ome is not None and not isinstance(ome, Mapping):
        raise _fail(where, "ome", f"must be a JSON object, got {type(ome).__name__}")
    if isinstance(ome, Mapping):
        version = _optional_string(ome, "version", where, "ome")
        # Some writers leave the version off secondary groups (ome-zarr-py's labels group):
        # the "ome" namespace itself says 0.5 or later, and the schema check catches images.
        return version, ome
    for block in ("multiscales", "plate", "well", "image-label"):
        value = attrs.get(block)
        if block == "multiscales" and isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, Mapping) and "version" in value:
            version = value["version"]
            if not isinstance(version, str):
                raise _fail(where, f"{block}/version", f"must be a string, got {version!r}")
            return version, attrs
    return None, attrs


def _infer_version(document: Mapping[str, Any]) -> str:
    """The version of an unversioned document, from the shape of its axes."""
    multiscales = document.get("multiscales")
    if isinstance(multiscales, list) and multiscales and isinstance(multiscales[0], Mapping):
        axes = multiscales[0].get("axes")
        if isinstance(axes, list) and axes:
            return "0.4" if isinstance(axes[0], Mapping) else "0.3"
        return "0.2"
    return "0.4"


def parse_node(
    attrs: Mapping[str, Any],
    where: str = "",
    *,
    validate: bool = True,
    strict: bool = False,
    deviate: Deviate | None = None,
    memo: ParseMemo | None = None,
) -> NodeMeta:
    """Parse the attributes of one zarr group.

    Parameters
    ----------
    attrs
        The group's attributes as zarr-python returns them.
    where
        Names the store and node in error messages.
    validate
        Check 0.4 and 0.5 documents against the spec's schema. Problems in the transitional
        ``omero`` block only warn (``OmeZarrWarning``): they never change the pixels or
        their coordinates. Every other problem raises.
    strict
        Also apply the spec's strict schemas (its SHOULDs), and raise for ``omero`` problems.
    deviate
        Called with (key, message, rule id) for each deviation from the spec that peers
        read (``find_deviations``), which is then accepted; ``None`` refuses them.
    memo
        Documents parsed before in the same walk (:class:`ParseMemo`): an equal document
        that parsed with nothing to say gives the same (immutable) result without being
        parsed and checked again.

    Raises
    ------
    OmeZarrError
        When the metadata is not valid OME-Zarr of the version it declares.
    """
    if not isinstance(attrs, Mapping):
        raise _fail(where, "attributes", f"must be a JSON object, got {type(attrs).__name__}")
    key = memo.key(attrs, validate=validate, strict=strict) if memo is not None else None
    if key is not None and memo is not None:
        known = memo.known.get(key)
        if known is not None:
            return known
    declared, document = split_attributes(attrs, where)
    version = declared or ("0.5" if document is attrs.get("ome") else _infer_version(document))
    if version not in READ_VERSIONS:
        raise _fail(
            where,
            "version",
            f"OME-Zarr {version!r} is not supported (readable: {', '.join(READ_VERSIONS)})",
        )
    check_list_lengths(document, where)
    spelled = document
    if is_06(version):
        spelled = _spelling_06(document, version, where, strict=strict, report=validate)
    accepted = []
    for found, message, rule in find_deviations(attrs, document, declared, version):
        if deviate is None:
            raise _fail(where, found, message, rule)
        deviate(found, message, rule)
        accepted.append(found)
    warned = False
    if validate and version in SCHEMA_VERSIONS:
        warned = check_schema(
            {**attrs, "ome": spelled} if spelled is not document else attrs,
            spelled,
            version,
            where,
            strict=strict,
            accepted=accepted,
        )

    multiscales: tuple[Multiscale, ...] = ()
    if "multiscales" in spelled:
        raw = spelled["multiscales"]
        if not isinstance(raw, list) or not raw:
            raise _fail(where, "multiscales", "must be a non-empty list")
        multiscales = tuple(
            parse_multiscale(m, version, where, f"multiscales/{i}") for i, m in enumerate(raw)
        )
    meta = NodeMeta(
        version=version,
        document=document,
        multiscales=multiscales,
        labels=_string_list(document, "labels", where),
        plate=_optional(parse_plate, _plate(document, where, check_paths=version == "0.5")),
        image_label=_optional(parse_image_label, _mapping(document, "image-label", where)),
        well=_optional(parse_well, _mapping(document, "well", where)),
        bioformats2raw_layout=_layout(document, where),
        series=_string_list(document, "series", where),
        omero=parse_omero(document.get("omero")),
        scene=check_scene(spelled["scene"], where)
        if is_06(version) and "scene" in spelled
        else None,
    )
    # only what parsed with nothing to say: every node still gets its own messages (0.6
    # parsing may warn from several places, so 0.6 documents are always parsed)
    clean = not accepted and not warned and not is_06(version)
    if key is not None and memo is not None and clean:
        memo.remember(key, meta)
    return meta


class ParseMemo:
    """The documents one walk parsed with nothing to say (no deviation, no warning), by
    their JSON text and the checks asked for: the fields of a plate, and its wells, mostly
    share one document, which is then parsed and checked against the schema once.

    Equal JSON texts are equal documents (``schema._json_text`` refuses values that are not
    plain JSON), and the parsed metadata is immutable, so nodes can share it.
    """

    #: Distinct documents kept; a plate has a few (its fields', its wells').
    MAX_DOCUMENTS = 64

    def __init__(self) -> None:
        self.known: dict[tuple[str, bool, bool], NodeMeta] = {}

    @staticmethod
    def key(attrs: Mapping[str, Any], *, validate: bool, strict: bool) -> Any:
        """The key of a document, or ``None`` where it cannot be remembered."""
        text = schema._json_text(attrs)  # the schema check's own rule of equal documents
        return None if text is None else (text, validate, strict)

    def remember(self, key: tuple[str, bool, bool], meta: NodeMeta) -> None:
        """Keep ``meta`` for documents equal to the one of ``key``."""
        remember_bounded(self.known, key, meta, self.MAX_DOCUMENTS)


def _spelling_06(
    document: Mapping[str, Any], version: str, where: str, *, strict: bool, report: bool
) -> Mapping[str, Any]:
    """A 0.6 document in the 0.6 spelling; the 0.6.dev one warns (refused with ``strict``)
    where the document declares 0.6 or 0.6rc0."""
    spelled, found = normalise_spelling(document)
    if found and report and version not in DEV_VERSIONS:
        key, message = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        reason = f"{message}{more}; OME-Zarr {version} writes objects"
        text = f"{where}: {key}: {reason}"
        if strict:
            raise OmeZarrError(text, key=key, reason=reason, rule=SPELLING_RULE)
        warning = OmeZarrWarning(text, key=key, reason=reason, rule=SPELLING_RULE)
        warnings.warn(warning, stacklevel=3)
    return spelled


def _optional(parse: Any, block: Mapping[str, Any] | None) -> Any:
    return None if block is None else parse(block)


# ---- plate, well, image-label and omero: parsed leniently, the block kept in ``raw`` -----
# Their structural problems are reported where they matter (the walk of the hierarchy, the
# schema check, validate): a parsed field is None (or left out) where the block is malformed.
def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _entries(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def parse_plate(block: Mapping[str, Any]) -> Plate:
    """The ``plate`` block as a :class:`~.model.Plate` (the block itself in ``raw``)."""
    wells = tuple(
        WellRef(
            _str(_object(w).get("path")),
            _int(_object(w).get("rowIndex")),
            _int(_object(w).get("columnIndex")),
            _object(w),
        )
        for w in _entries(block.get("wells"))
    )
    return Plate(
        rows=tuple(_str(_object(r).get("name")) for r in _entries(block.get("rows"))),
        columns=tuple(_str(_object(c).get("name")) for c in _entries(block.get("columns"))),
        wells=wells,
        name=_str(block.get("name")),
        field_count=_int(block.get("field_count")),
        acquisitions=tuple(_object(a) for a in _entries(block.get("acquisitions"))),
        raw=block,
    )


def parse_well(block: Mapping[str, Any]) -> Well:
    """The ``well`` block as a :class:`~.model.Well` (the block itself in ``raw``)."""
    images = block.get("images")
    fields = (
        tuple(
            FieldRef(_str(_object(i).get("path")), _int(_object(i).get("acquisition")), _object(i))
            for i in images
        )
        if isinstance(images, list)
        else None
    )
    return Well(fields, block)


def parse_image_label(block: Mapping[str, Any]) -> ImageLabel:
    """The ``image-label`` block as an :class:`~.model.ImageLabel`."""
    source = _object(block.get("source"))
    return ImageLabel(
        colors=tuple(_object(c) for c in _entries(block.get("colors"))),
        properties=tuple(_object(p) for p in _entries(block.get("properties"))),
        source_image=_str(source.get("image")),
        raw=block,
    )


def parse_omero(block: Any) -> Omero | None:
    """The ``omero`` block as an :class:`~.model.Omero`; ``None`` when absent or not a JSON
    object (the schema check reports that as a warning)."""
    if not isinstance(block, Mapping):
        return None
    channels = block.get("channels")
    parsed = (
        tuple(
            Channel(
                label=_str(_object(c).get("label")),
                color=_str(_object(c).get("color")),
                window=_object(c).get("window")
                if isinstance(_object(c).get("window"), Mapping)
                else None,
                active=_object(c).get("active")
                if isinstance(_object(c).get("active"), bool)
                else None,
                raw=_object(c),
            )
            for c in channels
        )
        if isinstance(channels, list)
        else None
    )
    return Omero(parsed, block)


def check_schema(
    attrs: Mapping[str, Any],
    document: Mapping[str, Any],
    version: str,
    where: str,
    *,
    strict: bool = False,
    accepted: Sequence[str] = (),
) -> bool:
    """Raise for schema problems outside ``omero``; warn for those inside it.

    With ``strict``, the strict schemas apply too and every problem raises. Problems at the
    keys of ``accepted`` deviations are left out. Returns whether it warned.
    """
    warned = False
    for kind in kinds_for(document, version, strict=strict):
        problems = [p for p in schema_problems(attrs, version, kind) if not tolerated(p, accepted)]
        fatal = [p for p in problems if strict or not p.in_omero]
        if fatal:
            listed = "; ".join(f"{p.key}: {p.message}" for p in fatal[:3])
            more = f" (and {len(fatal) - 3} more)" if len(fatal) > 3 else ""
            raise OmeZarrError(
                f"{where}: invalid OME-Zarr {version} {kind} metadata: {listed}{more} "
                "(validate=False skips this schema check)",
                reason=f"invalid OME-Zarr {version} {kind} metadata: {listed}{more}",
            )
        for p in problems if not fatal else ():
            warnings.warn(
                f"{where}: {p.key}: {p.message} (the omero block is kept as it is)",
                OmeZarrWarning,
                stacklevel=3,
            )
            warned = True
    return warned


def _string_list(document: Mapping[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    if key not in document:
        return None
    value = document[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(where, key, f"must be a list of strings, got {value!r}")
    return tuple(check_member_path(v, where, f"{key}/{i}") for i, v in enumerate(value))


def _mapping(document: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    if key not in document:
        return None
    value = document[key]
    if not isinstance(value, Mapping):
        raise _fail(where, key, f"must be a JSON object, got {value!r}")
    return value


def _plate(
    document: Mapping[str, Any], where: str, *, check_paths: bool
) -> Mapping[str, Any] | None:
    """The plate block; from 0.5 on, each well path checked against its row and column.

    The 0.4 and 0.6rc0 suites call column-first paths valid: only 0.5 plates are checked.
    """
    plate = _mapping(document, "plate", where)
    if plate is None:
        return None
    rows, columns, wells = plate.get("rows"), plate.get("columns"), plate.get("wells")
    if not (isinstance(rows, list) and isinstance(columns, list) and isinstance(wells, list)):
        raise _fail(where, "plate", "needs lists of rows, columns and wells")
    names = {}
    for key, entries in (("rows", rows), ("columns", columns)):
        names[key] = [e.get("name") if isinstance(e, Mapping) else None for e in entries]
        if not all(isinstance(n, str) for n in names[key]):
            raise _fail(where, f"plate/{key}", "every entry needs a string name")
    for i, well in enumerate(wells):
        if not isinstance(well, Mapping):
            raise _fail(where, f"plate/wells/{i}", "must be a JSON object")
        path, row, col = well.get("path"), well.get("rowIndex"), well.get("columnIndex")
        if not isinstance(path, str):
            raise _fail(where, f"plate/wells/{i}/path", f"must be a string, got {path!r}")
        if check_paths and isinstance(row, int) and isinstance(col, int):
            if not (0 <= row < len(rows) and 0 <= col < len(columns)):
                raise _fail(where, f"plate/wells/{i}", "rowIndex or columnIndex out of range")
            expected = f"{names['rows'][row]}/{names['columns'][col]}"
            if path != expected:
                raise _fail(
                    where,
                    f"plate/wells/{i}/path",
                    f"{path!r} must be '<row>/<column>' = {expected!r}",
                )
    return plate


def _layout(document: Mapping[str, Any], where: str) -> int | None:
    if "bioformats2raw.layout" not in document:
        return None
    value = document["bioformats2raw.layout"]
    if value != 3 or isinstance(value, bool):
        raise _fail(where, "bioformats2raw.layout", f"must be 3, got {value!r}")
    return 3


def parse_multiscale(raw: Any, version: str, where: str, key: str) -> Multiscale:
    """Parse one entry of ``multiscales`` for ``version``."""
    if not isinstance(raw, Mapping):
        raise _fail(where, key, "must be a JSON object")
    if is_06(version):
        return parse_multiscale_06(raw, version, where, key, _parse_axis, _check_axes)
    axes = _parse_axes(raw.get("axes"), version, where, f"{key}/axes")
    ndim = len(axes)
    datasets = raw.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise _fail(where, f"{key}/datasets", "must be a non-empty list")
    levels = tuple(
        _parse_level(d, version, ndim, where, f"{key}/datasets/{i}") for i, d in enumerate(datasets)
    )
    paths = [lv.path for lv in levels]
    if len(set(paths)) != len(paths):
        raise _fail(where, f"{key}/datasets", f"dataset paths repeat: {paths}")
    transforms: tuple[Transform, ...] = ()
    if "coordinateTransformations" in raw and version in ("0.4", "0.5"):
        transforms = _parse_transforms(
            raw["coordinateTransformations"], ndim, where, f"{key}/coordinateTransformations"
        )
    name = raw.get("name")
    metadata = raw.get("metadata")
    return Multiscale(
        version=version,
        axes=axes,
        levels=levels,
        transforms=transforms,
        name=name if isinstance(name, str) else None,
        type=raw.get("type") if isinstance(raw.get("type"), str) else None,
        metadata=metadata if isinstance(metadata, Mapping) else None,
        extra={k: v for k, v in raw.items() if k not in _KNOWN_MULTISCALE_KEYS},
    )


def _parse_axes(raw: Any, version: str, where: str, key: str) -> tuple[Axis, ...]:
    if version in ("0.1", "0.2") or (version == "0.3" and raw is None):
        return tuple(Axis(n, _implied_type(n)) for n in IMPLIED_AXES)
    if not isinstance(raw, list):
        raise _fail(where, key, f"must be a list, got {raw!r}")
    if version == "0.3":
        if not all(isinstance(a, str) for a in raw):
            raise _fail(where, key, f"0.3 axes must be a list of names, got {raw!r}")
        allowed = {"t", "c", "z", "y", "x"}
        if not set(raw) <= allowed:
            raise _fail(where, key, f"0.3 axes must be among t, c, z, y, x, got {raw!r}")
        axes = tuple(Axis(n, _implied_type(n)) for n in raw)
    else:
        axes = tuple(_parse_axis(a, where, f"{key}/{i}") for i, a in enumerate(raw))
    _check_axes(axes, where, key)
    return axes


def _implied_type(name: str) -> str:
    return {"t": "time", "c": "channel"}.get(name, "space")


def _parse_axis(raw: Any, where: str, key: str) -> Axis:
    if not isinstance(raw, Mapping):
        raise _fail(where, key, f"must be a JSON object with a name, got {raw!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise _fail(where, f"{key}/name", f"must be a non-empty string, got {name!r}")
    type_, unit = (_optional_string(raw, field, where, key) for field in ("type", "unit"))
    extra = {k: v for k, v in raw.items() if k not in ("name", "type", "unit")}
    return Axis(name, type_, unit, extra)


def _check_axes(axes: tuple[Axis, ...], where: str, key: str) -> None:
    names = [a.name for a in axes]
    if len(set(names)) != len(names):
        raise _fail(where, key, f"axis names repeat: {names}")
    if not 2 <= len(axes) <= 5:
        raise _fail(where, key, f"must have 2 to 5 axes, got {len(axes)}: {names}")
    spaces = sum(a.type == "space" for a in axes)
    if not 2 <= spaces <= 3:
        raise _fail(where, key, f"must have 2 or 3 space axes, got {spaces}: {names}")
    if sum(a.type == "time" for a in axes) > 1:
        raise _fail(where, key, f"at most one time axis, got {names}")
    if sum(a.type == "channel" for a in axes) > 1:
        raise _fail(where, key, f"at most one channel axis, got {names}")
    rank = [0 if a.type == "time" else 2 if a.type == "space" else 1 for a in axes]
    if rank != sorted(rank):
        raise _fail(
            where, key, f"axes must be ordered time, channel or custom, then space: {names}"
        )


def _parse_level(raw: Any, version: str, ndim: int, where: str, key: str) -> Level:
    if not isinstance(raw, Mapping):
        raise _fail(where, key, "must be a JSON object")
    path = raw.get("path")
    if not isinstance(path, str):
        raise _fail(where, f"{key}/path", f"must be a non-empty string, got {path!r}")
    check_member_path(path, where, f"{key}/path")
    transforms: tuple[Transform, ...] = ()
    if version in ("0.4", "0.5"):
        if "coordinateTransformations" not in raw:
            # accepted by parse_node for 0.4 (MISSING_TRANSFORMS): the geometry then comes
            # from the shapes of the arrays (hierarchy.Walker)
            if version != "0.4":
                raise _fail(where, f"{key}/coordinateTransformations", "is required")
            return Level(path.strip("/"), (), {k: v for k, v in raw.items() if k != "path"})
        transforms = _parse_transforms(
            raw["coordinateTransformations"], ndim, where, f"{key}/coordinateTransformations"
        )
        # an identity alone is accepted by parse_node (IDENTITY_TRANSFORM): scale 1
        if transforms[0].type not in ("scale", "identity"):
            raise _fail(where, f"{key}/coordinateTransformations", "must start with a scale")
    extra = {k: v for k, v in raw.items() if k not in ("path", "coordinateTransformations")}
    return Level(path.strip("/"), transforms, extra)


def _parse_transforms(raw: Any, ndim: int, where: str, key: str) -> tuple[Transform, ...]:
    if not isinstance(raw, list) or not raw:
        raise _fail(where, key, f"must be a non-empty list, got {raw!r}")
    parsed = tuple(_parse_transform(t, where, f"{key}/{i}") for i, t in enumerate(raw))
    types = [t.type for t in parsed]
    if types not in (["scale"], ["scale", "translation"], ["identity"]):
        raise _fail(
            where, key, f"must be one scale optionally followed by one translation, got {types}"
        )
    return parsed


def _parse_transform(raw: Any, where: str, key: str) -> Transform:
    if not isinstance(raw, Mapping):
        raise _fail(where, key, "must be a JSON object")
    type_ = raw.get("type")
    if type_ == "identity":
        return Transform("identity", None, dict(raw))
    if type_ not in ("scale", "translation"):
        raise _fail(where, f"{key}/type", f"must be 'scale' or 'translation', got {type_!r}")
    if "path" in raw and type_ not in raw:
        raise _fail(where, f"{key}/path", "transforms stored in binary arrays are not supported")
    values = raw.get(type_)
    # A length that differs from the number of axes is refused when the level is read
    # (transforms.level_geometry): the spec's own 0.4 suite calls such a document valid.
    if not isinstance(values, list) or not values or not all(_is_number(v) for v in values):
        raise _fail(where, f"{key}/{type_}", f"must be a list of numbers, got {values!r}")
    if type_ == "scale" and any(v == 0 for v in values):
        raise _fail(where, f"{key}/scale", f"must not contain zero, got {values!r}")
    return Transform(type_, tuple(float(v) for v in values), dict(raw))


def _is_number(value: Any) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int beyond float range
        return False
