"""A plate as one lazy Dataset per level: ``xr.open_dataset(plate, engine="ome-zarr")``.

The fields of every well, at one resolution level, stacked along two new leading dims:
``well`` (the plate's wells in the order it lists them, labelled by their paths, with
``row`` and ``column`` names as coordinates on ``well``) and ``field`` (the position of
the field in its well's list, ``0`` … ``n - 1``). The axes of the fields follow, with the
coordinates of the first field where every field shares its geometry. Nothing is read
until values are asked for; each (well, field) block reads its own level array.

Refused (``OmeZarrError``) where the fields' level arrays differ in shape, dtype or axes: no
single array can hold them, and ``xr.open_datatree`` opens each field on its own. Where
they differ only in scale or translation (fields at different stage positions), the axes
that differ get no coordinate and a warning says which fields differ.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xarray as xr
import zarr
from xarray.backends.common import BackendArray
from xarray.core import indexing

from .array import OmeZarrArray
from .errors import OmeZarrError, OmeZarrWarning
from .hierarchy import Node, level_dims
from .layout import PATH_ATTR, variable_name
from .ngff.model import Plate
from .transforms import level_geometry

WELL_DIM = "well"
FIELD_DIM = "field"


class PlateArray(BackendArray):
    """The level arrays of a plate's fields as one ``(well, field, *axes)`` array.

    ``blocks[w][f]`` is the field's level array, or ``None`` where well ``w`` has fewer
    fields (read as the fill value).
    """

    __slots__ = ("_blocks", "_fill", "dtype", "shape")

    def __init__(
        self,
        blocks: Sequence[Sequence[OmeZarrArray | None]],
        shape: tuple[int, ...],
        dtype: np.dtype[Any],
        fill: Any,
    ) -> None:
        self._blocks = [list(row) for row in blocks]
        self.shape = shape
        self.dtype = dtype
        self._fill = fill

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._outer
        )

    def _outer(self, key: tuple[Any, ...]) -> np.ndarray:
        wells = np.arange(self.shape[0])[key[0]]
        fields = np.arange(self.shape[1])[key[1]]
        rest = key[2:]
        basic = all(isinstance(k, int | np.integer | slice) for k in rest)
        inner = indexing.BasicIndexer(rest) if basic else indexing.OuterIndexer(rest)
        sub_shape = _outer_shape(self.shape[2:], rest)
        out = np.full(
            (np.atleast_1d(wells).size, np.atleast_1d(fields).size, *sub_shape),
            self._fill,
            dtype=self.dtype,
        )
        for i, w in enumerate(np.atleast_1d(wells)):
            for j, f in enumerate(np.atleast_1d(fields)):
                block = self._blocks[int(w)][int(f)]
                if block is not None:
                    out[i, j] = np.asarray(block[inner]).reshape(sub_shape)
        if np.ndim(wells) == 0 and np.ndim(fields) == 0:
            return out[0, 0]
        if np.ndim(wells) == 0:
            return out[0]
        if np.ndim(fields) == 0:
            return out[:, 0]
        return out


def _outer_shape(shape: tuple[int, ...], rest: tuple[Any, ...]) -> tuple[int, ...]:
    """The shape an outer selection ``rest`` of an array of ``shape`` gives."""
    out = []
    for n, k in zip(shape, rest, strict=True):
        if isinstance(k, int | np.integer):
            continue
        out.append(len(range(n)[k]) if isinstance(k, slice) else len(np.asarray(k)))
    return tuple(out)


def plate_dataset(
    root: Node,
    index_of: Callable[[Any], int],
    coordinates: Callable[..., tuple[dict[str, xr.Variable], dict[str, Any]]],
    encoding_of: Callable[..., dict[str, Any]],
    where: Callable[[str], str],
) -> xr.Dataset:
    """The view of the walked plate ``root`` at the level ``index_of(multiscale)`` picks.

    ``coordinates``, ``encoding_of`` and ``where`` are the reader's (one rule, one place).
    """
    assert root.meta is not None and root.meta.plate is not None
    plate = root.meta.plate
    wells: list[tuple[str, Node]] = []
    for ref in plate.wells:
        node = root.children.get(ref.path or "")
        if node is not None and node.children:
            wells.append((ref.path or "", node))
    if not wells:
        raise OmeZarrError(f"{where(root.path)}: the plate has no well with a readable field")
    first = next(iter(wells[0][1].children.values()))
    assert first.meta is not None
    multiscale = first.meta.multiscales[0]
    index = index_of(multiscale)
    field_count = max(len(node.children) for _, node in wells)
    blocks: list[list[OmeZarrArray | None]] = []
    reference, reference_shape = _level(first, index, where)
    dims = level_dims(first.meta, multiscale, reference.ndim)
    geometry = _geometry(first, index)
    differing: set[int] = set()
    short: list[str] = []
    for path, node in wells:
        row: list[OmeZarrArray | None] = []
        for field in node.children.values():
            assert field.meta is not None
            array, shape = _level(field, index, where)
            fdims = level_dims(field.meta, field.meta.multiscales[0], array.ndim)
            if (shape, np.dtype(array.dtype), fdims) != (
                reference_shape,
                np.dtype(reference.dtype),
                dims,
            ):
                raise OmeZarrError(
                    f"{where(field.path)}: level {index} has shape {shape}, "
                    f"dtype {array.dtype} and axes {list(fdims)}; the first field "
                    f"{'/' + first.path!r} has {reference_shape}, {reference.dtype} "
                    f"and {list(dims)}: no single array holds both; open the plate with "
                    "xr.open_datatree to read each field on its own"
                )
            scale, translation = _geometry(field, index)
            differing |= {
                a
                for a in range(len(dims))
                if (scale[a], translation[a]) != (geometry[0][a], geometry[1][a])
            }
            row.append(OmeZarrArray(array, where(field.path), shape))
        if len(row) < field_count:
            short.append(path)
        row += [None] * (field_count - len(row))
        blocks.append(row)
    coord_vars, indexes = coordinates(first.meta, index, reference_shape, first.path)
    lost = [dims[a] for a in sorted(differing) if dims[a] in coord_vars]
    if lost:
        warnings.warn(
            f"{where(root.path)}: the fields differ in scale or translation along {lost} "
            "(fields at different positions); those axes get no coordinate in the plate "
            "view (xr.open_datatree gives each field its own)",
            OmeZarrWarning,
            stacklevel=3,
        )
        coord_vars = {k: v for k, v in coord_vars.items() if k not in lost}
        indexes = {k: v for k, v in indexes.items() if k not in lost}
    fill = reference.fill_value
    if short:
        warnings.warn(
            f"{where(root.path)}: wells {short} have fewer than {field_count} fields; their "
            f"missing fields read as the fill value {fill!r}",
            OmeZarrWarning,
            stacklevel=3,
        )
    shape = (len(wells), field_count, *reference_shape)
    data = PlateArray(blocks, shape, np.dtype(reference.dtype), fill)
    encoding = encoding_of(reference, dims, where(first.path))
    preferred = encoding.get("preferred_chunks", {})
    encoding = {
        "preferred_chunks": {WELL_DIM: 1, FIELD_DIM: 1, **preferred},
        "dtype": np.dtype(reference.dtype),
        "fill_value": encoding.get("fill_value"),
    }
    variable = xr.Variable(
        (WELL_DIM, FIELD_DIM, *dims),
        indexing.LazilyIndexedArray(data),
        encoding=encoding,
        fastpath=True,
    )
    rows, columns = _rows_and_columns(plate, [p for p, _ in wells])
    coords = xr.Coordinates(coord_vars, indexes=indexes)
    coords = coords.merge(
        xr.Coordinates(
            {
                WELL_DIM: ((WELL_DIM,), np.asarray([p for p, _ in wells], dtype=str)),
                FIELD_DIM: ((FIELD_DIM,), np.arange(field_count)),
            }
        )
    ).coords
    ds = xr.Dataset({variable_name(multiscale.name): variable}, coords=coords)
    ds = ds.assign_coords(row=(WELL_DIM, rows), column=(WELL_DIM, columns))
    ds.attrs[PATH_ATTR] = multiscale.levels[index].path
    return ds


def _level(
    field: Node, index: int, where: Callable[[str], str]
) -> tuple[zarr.Array, tuple[int, ...]]:
    """The field's level array and its shape as read: the walk opened that level only."""
    assert field.meta is not None
    if len(field.meta.multiscales[0].levels) <= index or not field.levels:
        count = len(field.meta.multiscales[0].levels)
        raise OmeZarrError(
            f"{where(field.path)}: has {count} levels, no level {index}; "
            "open the plate with xr.open_datatree to read each field on its own"
        )
    shape = field.shapes[0] if field.shapes else tuple(field.levels[0].shape)
    return field.levels[0], tuple(shape)


def _geometry(field: Node, index: int) -> tuple[list[float], list[float]]:
    assert field.meta is not None
    scale, translation = level_geometry(field.meta.multiscales[0], index)
    return [float(s) for s in scale], [float(t) for t in translation]


def _rows_and_columns(plate: Plate, paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each well's row and column name: from its indexes where the plate gives them, else
    from its ``<row>/<column>`` path."""
    by_path = {ref.path: ref for ref in plate.wells}
    row_names, column_names = plate.rows, plate.columns
    rows: list[str] = []
    columns: list[str] = []
    for path in paths:
        ref = by_path[path]
        parts = path.split("/")
        r, c = ref.row_index, ref.column_index
        row = row_names[r] if r is not None and 0 <= r < len(row_names) else None
        column = column_names[c] if c is not None and 0 <= c < len(column_names) else None
        rows.append(row if row is not None else parts[0])
        columns.append(column if column is not None else parts[-1])
    return np.asarray(rows, dtype=str), np.asarray(columns, dtype=str)
