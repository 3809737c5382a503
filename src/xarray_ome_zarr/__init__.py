"""Open and write OME-Zarr (OME-NGFF) images as xarray objects.

Light on import: xarray imports every registered backend when it looks for engines, so the
heavy modules load only when a function that needs them is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import accessor  # noqa: F401  registers the .ome accessors (cheap: xarray only)
from .errors import OmeZarrError, OmeZarrWarning

__version__ = "0.1.0"

__all__ = [
    "OmeZarrError",
    "OmeZarrWarning",
    "__version__",
    "open_ome_dataset",
    "open_ome_datatree",
    "Problem",
    "validate",
    "to_multiscale",
    "to_ome_zarr",
    "to_spatial_image",
]

if TYPE_CHECKING:
    import xarray as xr

    from .validation import Problem


def open_ome_dataset(store: Any, **kwargs: Any) -> xr.Dataset:
    """Open one level of an OME-Zarr image, as ``xr.open_dataset(..., engine="ome-zarr")``."""
    import xarray as xr

    return xr.open_dataset(store, engine="ome-zarr", **kwargs)


def open_ome_datatree(store: Any, **kwargs: Any) -> xr.DataTree:
    """Open a whole OME-Zarr hierarchy, as ``xr.open_datatree(..., engine="ome-zarr")``."""
    import xarray as xr

    return xr.open_datatree(store, engine="ome-zarr", **kwargs)


def validate(
    store: Any,
    *,
    storage_options: dict[str, Any] | None = None,
    strict: bool = False,
    read_chunks: bool = False,
) -> list[Problem]:
    """Every problem found in an OME-Zarr store; see :func:`.validation.validate`."""
    from .validation import validate as _validate

    return _validate(store, storage_options=storage_options, strict=strict, read_chunks=read_chunks)


def __getattr__(name: str) -> Any:
    if name == "Problem":
        from .validation import Problem

        return Problem
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def to_spatial_image(obj: Any, level: int | str = 0) -> xr.DataArray:
    """A level of an image as a spatial-image DataArray; see :func:`.adapters.to_spatial_image`."""
    from .adapters import to_spatial_image as convert

    return convert(obj, level)


def to_ome_zarr(
    obj: Any,
    store: Any,
    *,
    version: str = "0.5",
    scale_factors: Any = None,
    method: str | None = None,
    chunks: Any = None,
    shards: Any = None,
    compressor: Any = None,
    storage_options: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    consolidated: bool = False,
    chunks_per_shard: Any = None,
) -> None:
    """Write an image, pyramid or hierarchy as OME-Zarr; see :func:`.writer.to_ome_zarr`."""
    from .writer import to_ome_zarr as write

    write(
        obj,
        store,
        version=version,
        scale_factors=scale_factors,
        method=method,
        chunks=chunks,
        shards=shards,
        compressor=compressor,
        storage_options=storage_options,
        overwrite=overwrite,
        progress=progress,
        consolidated=consolidated,
        chunks_per_shard=chunks_per_shard,
    )


def to_multiscale(
    image: Any, scale_factors: Any, method: str | None = None, chunks: Any = None
) -> xr.DataTree:
    """Build an image pyramid DataTree; see :func:`.multiscale.to_multiscale`."""
    from .multiscale import to_multiscale as build

    return build(image, scale_factors, method=method, chunks=chunks)
