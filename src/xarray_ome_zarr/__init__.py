"""Open and write OME-Zarr (OME-NGFF) images as xarray objects.

Light on import: xarray imports every registered backend when it looks for engines, so the
public functions load from their modules on first use (``xoz.to_ome_zarr`` *is*
:func:`xarray_ome_zarr.writer.to_ome_zarr`, with its full signature and docstring).

Examples
--------
>>> import numpy as np, xarray as xr, xarray_ome_zarr as xoz
>>> image = xoz.image(np.zeros((64, 64), "uint16"), scale={"y": 0.5, "x": 0.5},
...                   units="micrometer")
>>> xoz.to_ome_zarr(image, "new.ome.zarr", scale_factors=[2])          # doctest: +SKIP
>>> ds = xr.open_dataset("new.ome.zarr", engine="ome-zarr", level=0)   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import accessor  # noqa: F401  registers the .ome accessors (cheap: xarray only)
from ._version import __version__
from .errors import OmeZarrError, OmeZarrWarning

#: Public names loaded on first use: name -> the module that defines it.
_LAZY = {
    "Problem": "validation",
    "build_pyramid": "regions",
    "image": "builder",
    "info": "summary",
    "to_multiscale": "multiscale",
    "to_ome_zarr": "writer",
    "to_spatial_image": "adapters",
    "transform_points": "points",
    "validate": "validation",
    "write_metadata": "metadata_writer",
}

__all__ = [
    "OmeZarrError",
    "OmeZarrWarning",
    "__version__",
    "open_ome_dataset",
    "open_ome_datatree",
    *sorted(_LAZY),
]

if TYPE_CHECKING:
    import xarray as xr

    from .adapters import to_spatial_image as to_spatial_image
    from .builder import image as image
    from .metadata_writer import write_metadata as write_metadata
    from .multiscale import to_multiscale as to_multiscale
    from .points import transform_points as transform_points
    from .regions import build_pyramid as build_pyramid
    from .summary import info as info
    from .validation import Problem as Problem
    from .validation import validate as validate
    from .writer import to_ome_zarr as to_ome_zarr


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def open_ome_dataset(store: Any, **kwargs: Any) -> xr.Dataset:
    """Open one level of an OME-Zarr image: ``xr.open_dataset(store, engine="ome-zarr", ...)``.

    Parameters
    ----------
    store
        A local path, URL (``https://``, ``s3://``...), ``.ozx`` file, zarr store or
        ``zarr.Group``.
    **kwargs
        The engine's keywords: ``level`` (int, negative counts from the lowest resolution,
        ``"scaleN"`` or the dataset path on disk; default 0), ``group`` (an image inside the
        hierarchy, e.g. ``"labels/nuclei"``), ``storage_options`` (for fsspec URLs),
        ``chunks`` (``{}`` for dask arrays chunked as stored), ``validate``, ``strict``...;
        see the API reference.

    Returns
    -------
    xarray.Dataset
        One variable (named after the multiscale, else ``image``) with pixel-centre
        coordinates in physical units; the group's OME metadata in ``attrs["ome_group_attrs"]``.

    Examples
    --------
    >>> ds = xoz.open_ome_dataset("cells.ome.zarr", level=-1)            # doctest: +SKIP
    >>> ds = xoz.open_ome_dataset("s3://bucket/image.ome.zarr",
    ...                           storage_options={"anon": True})        # doctest: +SKIP
    """
    import xarray as xr

    return xr.open_dataset(store, engine="ome-zarr", **kwargs)


def open_ome_datatree(store: Any, **kwargs: Any) -> xr.DataTree:
    """Open a whole OME-Zarr hierarchy: ``xr.open_datatree(store, engine="ome-zarr", ...)``.

    Parameters
    ----------
    store
        A local path, URL, ``.ozx`` file, zarr store or ``zarr.Group``.
    **kwargs
        The engine's keywords: ``group`` (a subtree), ``storage_options``, ``chunks``,
        ``validate``, ``strict``...; see the API reference. The reader indexes every
        dimension coordinate itself, so xarray's second pass over every node to add default
        indexes is skipped (more than half the time of a 384-well plate's open), here and in
        ``xr.open_datatree``.

    Returns
    -------
    xarray.DataTree
        Each image a node with levels ``scale0`` .. ``scaleN``; labels, plates and
        bioformats2raw series as nodes below.

    Examples
    --------
    >>> dt = xoz.open_ome_datatree("cells.ome.zarr")                     # doctest: +SKIP
    >>> dt["labels/nuclei/scale0"]                                       # doctest: +SKIP
    """
    import xarray as xr

    kwargs.setdefault("create_default_indexes", False)  # as the engine does where it can
    return xr.open_datatree(store, engine="ome-zarr", **kwargs)
