"""Adding a node to an existing OME-Zarr store: a label image, a field into a well, a well into
a plate (``to_ome_zarr(obj, store, group=..., mode="a")``).

Everything is checked before the store is touched: where the node goes (:func:`find_place`),
the node against its place (a label image against its image: axes, shapes of every level,
integer pixels; :func:`label_input`), and the listings that will name it (:class:`Listing`,
each validated against the spec's schema). The writer then writes the node whole, and only
then are the listings updated (the deepest first) and consolidated metadata refreshed, so a
reader never finds a listing that names a node that is not complete. A failed write removes
what it wrote, the groups it created above the node included.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from ._compat import sync
from .consolidated import kept_consolidated
from .errors import OmeZarrError
from .existing import ExistingStore
from .layout import as_image_dataarray, check_label, level_number
from .multiscale import to_multiscale
from .ngff.emit import convert_blocks, group_attributes, split_source
from .ngff.parse import parse_node
from .node_attrs import group_attrs, node_attrs
from .reader import open_ome_dataset
from .store import is_url, local_path, open_store
from .targets import LocalTarget, StoreTarget, Target

__all__ = ["Addition", "Listing", "find_place", "label_input", "open_addition"]

#: What a node added to an existing store can be.
KINDS = ("label", "field", "well", "plain")


@dataclass
class Listing:
    """New attributes of a group that lists the added node, written after the node."""

    path: str
    attrs: dict[str, Any]


@dataclass
class Addition:
    """Where a node goes in an existing store, and what is updated once it is written."""

    store: Any
    name: str
    root: zarr.Group
    path: str
    kind: str
    version: str
    #: For a label image: the path of its image.
    image: str = ""
    listings: list[Listing] = field(default_factory=list)
    #: Groups above the node that do not exist yet (created by the write; removed on failure).
    missing_parents: list[str] = field(default_factory=list)
    close: Any = None

    def finish(self) -> None:
        """Close what was opened to write into the store."""
        if self.close is not None:
            self.close()
            self.close = None

    def where(self, path: str | None = None) -> str:
        node = self.path if path is None else path
        return f"store {self.name!r}, node {'/' + node!r}"


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def _attrs(root: zarr.Group, path: str) -> dict[str, Any] | None:
    """The attributes of the group at ``path`` (``None``: no group there)."""
    try:
        node = root[path] if path else root
    except KeyError:
        return None
    if not isinstance(node, zarr.Group):
        raise OmeZarrError.at(
            "is an array: nothing can be written below it", node="/" + path, key="group"
        )
    return dict(node.attrs.asdict())


def _blocks(attrs: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not attrs:
        return {}
    try:
        source = split_source(attrs)
    except OmeZarrError:
        return {}
    blocks = dict(source.blocks)
    if source.multiscales is not None:
        blocks["multiscales"] = source.multiscales
    return blocks


def open_addition(
    store: Any,
    path: str,
    mode: str,
    existing: ExistingStore,
    version: str,
    storage_options: Mapping[str, Any] | None,
) -> Addition:
    """Open ``store`` for adding the node ``path`` and find its place (nothing written yet).

    Raises
    ------
    OmeZarrError
        When the node exists and ``mode`` is not ``"w"``, or the place cannot take a node.
    """
    if isinstance(store, zarr.Group):
        root, close = store, None
    else:
        opened, _, close = open_store(store, storage_options=storage_options, read_only=False)
        try:
            root = zarr.open_group(opened, mode="r+", use_consolidated=False)
        except Exception as err:
            if close is not None:
                close()
            raise OmeZarrError.at(
                f"cannot open for writing ({type(err).__name__}: {err})", store=existing.name
            ) from err
    addition = Addition(store, existing.name, root, path, "plain", version, close=close)
    try:
        node = _attrs(root, path)
        if (node is not None or _holds_array(root, path)) and mode != "w":
            raise OmeZarrError.at(
                f"exists; mode={mode!r} does not replace it: mode='w' replaces this node "
                "(and only it), append_dim= appends to it",
                store=existing.name,
                node="/" + path,
                key="group",
            )
        find_place(addition)
    except OmeZarrError as err:
        addition.finish()
        raise err.in_store(existing.name) from None
    except BaseException:
        addition.finish()
        raise
    return addition


def _holds_array(root: zarr.Group, path: str) -> bool:
    try:
        return isinstance(root[path], zarr.Array)
    except KeyError:
        return False


def find_place(addition: Addition) -> None:
    """Decide what kind of node ``addition.path`` is from the groups above it.

    ``labels/<name>`` under an image is a label image; a child of a well is a field; a
    ``<row>/<column>`` below a plate is a well; below a plain group (or none), a plain node.
    Anything else (inside an image, a plate's row, a field...) is refused.
    """
    root, path = addition.root, addition.path
    parts = path.split("/")
    chain: list[tuple[str, dict[str, Any] | None]] = []
    for i in range(len(parts)):
        ancestor = "/".join(parts[:i])
        attrs = _attrs(root, ancestor) if not chain or chain[-1][1] is not None else None
        chain.append((ancestor, attrs))
        if attrs is None:
            addition.missing_parents.append(ancestor)
    blocks = [_blocks(a) for _, a in chain]
    parent = blocks[-1]
    grandparent = blocks[-2] if len(blocks) >= 2 else {}
    if "bioformats2raw.layout" in (chain[0][1] or {}):
        raise OmeZarrError.at(
            "is a bioformats2raw collection: adding a series to it is not supported (its "
            "series list lives in the OME group); write a new store",
            node="/" + path,
            key="group",
        )
    if len(parts) >= 2 and parts[-2] == "labels" and "multiscales" in grandparent:
        addition.kind, addition.image = "label", "/".join(parts[:-2])
    elif "well" in parent:
        addition.kind = "field"
    elif len(parts) >= 2 and "plate" in grandparent and not parent:
        addition.kind = "well"
    elif len(parts) >= 2 and parts[-2] == "labels" and "multiscales" not in grandparent:
        image = "/" + "/".join(parts[:-2])
        raise OmeZarrError.at(
            f"a label image goes under an image, and {image!r} is not one (no multiscales)",
            node="/" + path,
            key="group",
        )
    parent_path = "/".join(parts[:-1])
    image_parent = addition.image.rpartition("/")[0] if addition.image else None
    for (ancestor, _), found in zip(chain, blocks, strict=True):
        inside = "/" + path[len(ancestor) :].strip("/")
        if "multiscales" in found and not (addition.kind == "label" and ancestor == addition.image):
            raise OmeZarrError.at(
                f"is inside the image {'/' + ancestor!r} ({inside!r} below it): an image holds "
                "its levels and, under labels/<name>, its label images",
                node="/" + path,
                key="group",
            )
        if "plate" in found and addition.kind not in ("well", "field", "label"):
            raise OmeZarrError.at(
                f"is inside the plate {'/' + ancestor!r}: a plate holds wells at "
                "<row>/<column> and fields at <row>/<column>/<field>",
                node="/" + path,
                key="group",
            )
        well_ok = (addition.kind == "field" and ancestor == parent_path) or (
            addition.kind == "label" and ancestor == image_parent
        )
        if "well" in found and not well_ok:
            raise OmeZarrError.at(
                f"is inside the well {'/' + ancestor!r} ({inside!r} below it): a well holds "
                "fields, each an image",
                node="/" + path,
                key="group",
            )


# ---- label images ----------------------------------------------------------------------
def _channel_dims(ds: xr.Dataset) -> set[str]:
    return {str(d) for d in ds.dims if ds[d].attrs.get("axis_type") == "channel" or d == "c"}


def image_levels(addition: Addition) -> list[xr.Dataset]:
    """The levels of the image a label image is added to, opened lazily (metadata only)."""
    group = addition.image or None
    first = open_ome_dataset(addition.root, group=group, level=0, validate=False)
    multiscales = split_source(group_attrs(first.attrs)).multiscales
    count = len(multiscales[0].get("datasets") or []) if multiscales else 1
    rest = [
        open_ome_dataset(addition.root, group=group, level=i, validate=False)
        for i in range(1, count)
    ]
    return [first, *rest]


def label_input(
    obj: Any,
    addition: Addition,
    scale_factors: Any,
    method: str | None,
    adopt_geometry: bool,
) -> xr.DataTree:
    """The label image to write: checked against its image, with the image's number of
    levels (built by ``method``, default ``"mode"``, when one level is given) and the image's
    coordinates at every level.

    Raises
    ------
    OmeZarrError
        For other axes than the image's (a channel axis may be left out), other sizes at any
        level, other coordinates, or pixels that are not integers.
    """
    levels = image_levels(addition)
    where = addition.where()
    image_where = addition.where(addition.image)
    first = levels[0]
    image_var = next(iter(first.data_vars.values()))
    channels = _channel_dims(first)
    if isinstance(obj, xr.DataTree):
        names = sorted(
            (n for n in obj.children if level_number(n) is not None),
            key=lambda n: level_number(n) or 0,
        )
        if not names:
            raise OmeZarrError(f"{where}: the DataTree holds no levels scale0..scaleN")
        arrays = [as_image_dataarray(obj.children[n].to_dataset(), where)[0] for n in names]
        attrs: Mapping[Any, Any] = group_attrs(obj.attrs, where)
    else:
        array, attrs = as_image_dataarray(obj, where)
        arrays = [array]
    base = arrays[0]
    check_label(base, where)
    dims = [str(d) for d in base.dims]
    wanted = [str(d) for d in image_var.dims if str(d) in dims or str(d) not in channels]
    if dims != wanted:
        raise OmeZarrError(
            f"{where}: a label image has its image's axes {list(map(str, image_var.dims))} in "
            f"that order (a channel axis may be left out), got {dims}"
        )
    _check_sizes(base, image_var, channels, 0, where, image_where)
    if adopt_geometry:
        arrays = [a.drop_vars([d for d in a.coords if d in a.dims]) for a in arrays]
    built = len(arrays) == 1 and len(levels) > 1  # lower levels made here lie on the image's
    if built:
        factors = scale_factors or _factors(levels, dims, channels, where)
        base = _with_image_coords(arrays[0], first, dims, channels, where=where)
        tree = to_multiscale(base, factors, method)
        arrays = [_only_variable(tree[f"scale{i}"].to_dataset()) for i in range(len(tree.children))]
    elif scale_factors is not None:
        raise OmeZarrError(
            f"{where}: scale_factors build a pyramid from one level, got {len(arrays)}"
        )
    if len(arrays) != len(levels):
        raise OmeZarrError(
            f"{where}: a label image has as many levels as its image ({len(levels)} at "
            f"{image_where}), got {len(arrays)}"
        )
    out = {}
    for i, (array, ds) in enumerate(zip(arrays, levels, strict=True)):
        image = next(iter(ds.data_vars.values()))
        _check_sizes(array, image, channels, i, where, image_where)
        array = _with_image_coords(
            array, ds, dims, channels, level=i, where=where, check=not (built and i > 0)
        )
        out[f"scale{i}"] = array.to_dataset(name=str(array.name or "image"))
    tree = xr.DataTree.from_dict(out)
    tree.attrs = node_attrs(attrs)
    return tree


def _check_sizes(
    array: xr.DataArray,
    image: xr.DataArray,
    channels: set[str],
    level: int,
    where: str,
    image_where: str,
) -> None:
    """Refuse a label level whose size along an axis (channels aside) is not its image's."""
    for d in map(str, array.dims):
        if d not in channels and array.sizes[d] != image.sizes[d]:
            raise OmeZarrError(
                f"{where}: level {level} has {array.sizes[d]} pixels along {d!r} and its image "
                f"{image.sizes[d]} ({image_where}); a label image has its image's shape at "
                "every level (pass a DataTree with the levels to write them as they are)"
            )


def _factors(
    levels: Sequence[xr.Dataset], dims: Sequence[str], channels: set[str], where: str
) -> list[dict[str, int]]:
    """The image's scale factors, each level relative to the one before."""
    out = []
    for above, below in zip(levels, levels[1:], strict=False):
        step = {}
        for d in dims:
            if d in channels:
                continue
            ratio = above.sizes[d] / below.sizes[d]
            if round(ratio) != 1 or d in step:
                step[d] = max(1, round(ratio))
        out.append(step)
    return out


def _with_image_coords(
    array: xr.DataArray,
    ds: xr.Dataset,
    dims: Sequence[str],
    channels: set[str],
    level: int = 0,
    where: str = "",
    check: bool = True,
) -> xr.DataArray:
    """``array`` with the image level's coordinates along every non-channel axis; where it
    has coordinates of its own and ``check``, they must agree with the image's (to 1e-6
    pixel). Lower levels built here from level 0 take the image's as they are (``check``
    off): the image's own lower levels may follow another rule than the pixel-centre one."""
    coords = {}
    for d in dims:
        if d in channels or d not in ds.coords:
            continue
        image_coord = ds[d]
        if check and d in array.coords and array.sizes[d] == ds.sizes[d]:
            mine = np.asarray(array[d].values, dtype=float)
            theirs = np.asarray(image_coord.values, dtype=float)
            step = abs(float(theirs[1] - theirs[0])) if theirs.size > 1 else 1.0
            if mine.shape != theirs.shape or not np.allclose(
                mine, theirs, rtol=0, atol=1e-6 * (step or 1.0)
            ):
                raise OmeZarrError(
                    f"{where}: level {level}: the coordinates along {d!r} ({_span(mine)}) are "
                    f"not its image's ({_span(theirs)}); a label image lies on its image's "
                    "pixels (drop the coordinate to take the image's)"
                )
        coords[d] = image_coord
    return array.assign_coords(coords)


def _only_variable(ds: xr.Dataset) -> xr.DataArray:
    return next(iter(ds.data_vars.values()))


def _span(values: np.ndarray) -> str:
    if values.size == 0:
        return "empty"
    if values.size == 1:
        return f"{values[0]:g}"
    return f"{values[0]:g} .. {values[-1]:g}, step {values[1] - values[0]:g}"


# ---- listings ---------------------------------------------------------------------------
def plan_listings(addition: Addition, written: Any) -> None:
    """The new attributes of every group that must name the node, checked against the spec."""
    parts = addition.path.split("/")
    name = parts[-1]
    if addition.kind == "label":
        labels_path = _join(addition.image, "labels")
        attrs = _attrs(addition.root, labels_path) or {}
        blocks, other = _editable(attrs, addition)
        listed = [n for n in blocks.get("labels") or [] if isinstance(n, str)]
        blocks["labels"] = listed + ([name] if name not in listed else [])
        _add_listing(addition, labels_path, blocks, other)
    elif addition.kind == "field":
        well_path = "/".join(parts[:-1])
        blocks, other = _editable(_attrs(addition.root, well_path) or {}, addition)
        well = dict(blocks["well"])
        images = [dict(i) for i in well.get("images") or [] if isinstance(i, Mapping)]
        if not any(i.get("path") == name for i in images):
            entry: dict[str, Any] = {"path": name}
            acquisition = _acquisition_for(addition, well_path, images)
            if acquisition is not None:
                entry["acquisition"] = acquisition
            images.append(entry)
        well["images"] = images
        blocks["well"] = well
        _add_listing(addition, well_path, blocks, other)
        plate_path = "/".join(parts[:-3]) if len(parts) >= 3 else None
        if plate_path is not None:
            _update_plate(addition, plate_path, None, images)
    elif addition.kind == "well":
        plate_path = "/".join(parts[:-2])
        images = _well_images(written)
        _update_plate(addition, plate_path, (parts[-2], parts[-1]), images)


def _editable(
    attrs: Mapping[str, Any], addition: Addition
) -> tuple[dict[str, Any], dict[str, Any]]:
    source = split_source(attrs, addition.where())
    blocks = convert_blocks(source.blocks, source.version, addition.version)
    return blocks, dict(source.other)


def _add_listing(
    addition: Addition, path: str, blocks: dict[str, Any], other: dict[str, Any]
) -> None:
    attrs = group_attributes(addition.version, blocks, other)
    try:
        parse_node(attrs, addition.where(path), validate=True)
    except OmeZarrError as err:
        raise OmeZarrError(f"would write invalid metadata: {err}") from None
    addition.listings.append(Listing(path, attrs))


def _plate_blocks(addition: Addition, plate_path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    pending = next((x for x in addition.listings if x.path == plate_path), None)
    attrs = pending.attrs if pending else _attrs(addition.root, plate_path) or {}
    if pending:
        addition.listings.remove(pending)
    return _editable(attrs, addition)


def _acquisition_for(addition: Addition, well_path: str, images: list[dict[str, Any]]) -> Any:
    """The acquisition of a field added to a well: the plate's only one (where the other
    fields name theirs); refused where the plate has several."""
    parts = well_path.split("/")
    plate_attrs = _attrs(addition.root, "/".join(parts[:-2])) if len(parts) >= 2 else None
    plate = _blocks(plate_attrs).get("plate") or {}
    acquisitions = [a for a in plate.get("acquisitions") or [] if isinstance(a, Mapping)]
    if len(acquisitions) > 1:
        raise OmeZarrError(
            f"{addition.where()}: the plate has {len(acquisitions)} acquisitions and a field "
            "must say which it belongs to; adding a field to such a plate is not supported "
            "(write the well whole, with its well metadata naming each field's acquisition, "
            "with mode='w')"
        )
    if acquisitions and any("acquisition" in i for i in images):
        return acquisitions[0].get("id")
    return None


def _well_images(written: Any) -> list[dict[str, Any]]:
    if not isinstance(written, xr.DataTree):
        return []
    well = _blocks(group_attrs(written.attrs)).get("well") or {}
    return [dict(i) for i in well.get("images") or [] if isinstance(i, Mapping)]


def _update_plate(
    addition: Addition,
    plate_path: str,
    new_well: tuple[str, str] | None,
    images: list[dict[str, Any]],
) -> None:
    """The plate's ``wells``, ``rows`` and ``columns`` naming a new well, and its field
    counts (``field_count``, each acquisition's ``maximumfieldcount``) kept right."""
    if _attrs(addition.root, plate_path) is None:
        return
    blocks, other = _plate_blocks(addition, plate_path)
    plate = copy.deepcopy(dict(blocks.get("plate") or {}))
    if not plate:
        return
    if new_well is not None:
        row, column = new_well
        rows = [dict(r) for r in plate.get("rows") or []]
        columns = [dict(c) for c in plate.get("columns") or []]
        if row not in [r.get("name") for r in rows]:
            rows.append({"name": row})
        if column not in [c.get("name") for c in columns]:
            columns.append({"name": column})
        plate["rows"], plate["columns"] = rows, columns
        wells = [dict(w) for w in plate.get("wells") or []]
        path = f"{row}/{column}"
        if not any(w.get("path") == path for w in wells):
            wells.append(
                {
                    "path": path,
                    "rowIndex": [r.get("name") for r in rows].index(row),
                    "columnIndex": [c.get("name") for c in columns].index(column),
                }
            )
        plate["wells"] = wells
        ids = {a.get("id") for a in plate.get("acquisitions") or [] if isinstance(a, Mapping)}
        unknown = [
            i["acquisition"] for i in images if "acquisition" in i and i["acquisition"] not in ids
        ]
        if unknown and ids:
            raise OmeZarrError(
                f"{addition.where()}: the well's fields name acquisitions {unknown} that the "
                f"plate does not have (it has {sorted(map(str, ids))})"
            )
    count = len(images)
    if "field_count" in plate:
        plate["field_count"] = max(int(plate["field_count"]), count)
    for acquisition in plate.get("acquisitions") or []:
        if not isinstance(acquisition, dict):
            continue
        ident = acquisition.get("id")
        mine = [i for i in images if i.get("acquisition", ident) == ident]
        if mine and "maximumfieldcount" in acquisition:
            acquisition["maximumfieldcount"] = max(int(acquisition["maximumfieldcount"]), len(mine))
        elif mine and len(plate.get("acquisitions") or []) == 1:
            acquisition["maximumfieldcount"] = len(mine)
    blocks["plate"] = plate
    _add_listing(addition, plate_path, blocks, other)


# ---- writing ---------------------------------------------------------------------------
def node_target(addition: Addition, overwrite: bool) -> Target:
    """Where the node is written: a local directory is staged beside it and renamed into
    place; any other store is written in place (and removed again on failure)."""
    store = addition.store
    if isinstance(store, str | os.PathLike) and not is_url(store):
        return LocalTarget(Path(local_path(store)) / addition.path, overwrite=overwrite)
    root = addition.root
    return StoreTarget(root.store, _join(root.path, addition.path), addition.name, overwrite)


def finish_addition(addition: Addition, consolidated: bool) -> None:
    """After the node is written: the groups above it, then the listings (deepest first),
    then consolidated metadata where the store has it (or it is asked for)."""
    root = addition.root
    fmt = root.metadata.zarr_format
    with kept_consolidated(root, asked=consolidated):
        for parent in addition.missing_parents:
            zarr.open_group(
                root.store, path=_join(root.path, parent) or None, mode="a", zarr_format=fmt
            )
        deepest_first = sorted(addition.listings, key=lambda x: -x.path.count("/") if x.path else 1)
        for listing in deepest_first:
            group = zarr.open_group(
                root.store, path=_join(root.path, listing.path) or None, mode="a", zarr_format=fmt
            )
            group.attrs.put(listing.attrs)


def remove_created_parents(addition: Addition) -> None:
    """After a failed write: remove the groups above the node that the write created."""
    store = addition.root.store
    local = isinstance(addition.store, str | os.PathLike) and not is_url(addition.store)
    for parent in reversed(addition.missing_parents):
        with contextlib.suppress(Exception):  # cleanup must not hide the original error
            sync(store.delete_dir(_join(addition.root.path, parent)))
        if local:
            with contextlib.suppress(OSError):
                (Path(local_path(addition.store)) / parent).rmdir()
