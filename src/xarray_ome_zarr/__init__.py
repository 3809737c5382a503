"""Open and write OME-Zarr (OME-NGFF) images as xarray objects.

Light on import: xarray imports every registered backend when it looks for engines, so the
heavy modules load only when a function that needs them is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import OmeZarrError, OmeZarrWarning

__version__ = "0.1.0"

__all__ = [
    "OmeZarrError",
    "OmeZarrWarning",
    "__version__",
    "open_ome_dataset",
    "open_ome_datatree",
]

if TYPE_CHECKING:
    import xarray as xr


def open_ome_dataset(store: Any, **kwargs: Any) -> xr.Dataset:
    """Open one level of an OME-Zarr image, as ``xr.open_dataset(..., engine="ome-zarr")``."""
    import xarray as xr

    return xr.open_dataset(store, engine="ome-zarr", **kwargs)


def open_ome_datatree(store: Any, **kwargs: Any) -> xr.DataTree:
    """Open a whole OME-Zarr hierarchy, as ``xr.open_datatree(..., engine="ome-zarr")``."""
    import xarray as xr

    return xr.open_datatree(store, engine="ome-zarr", **kwargs)
