"""The xarray backend entrypoint ``ome-zarr``: a thin shim over ``reader``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from xarray import Dataset, DataTree
from xarray.backends.common import BackendEntrypoint

_OME_KEYS = ("multiscales", "plate", "well", "bioformats2raw.layout", "labels", "image-label")


def _drop_list(drop_variables: str | Iterable[str] | None) -> tuple[str, ...]:
    if drop_variables is None:
        return ()
    if isinstance(drop_variables, str):
        return (drop_variables,)
    return tuple(drop_variables)


def _has_ome_metadata(folder: Path) -> bool:
    """Look for OME keys in a local group's ``zarr.json`` or ``.zattrs`` (one small read)."""
    v3 = folder / "zarr.json"
    if v3.is_file():
        attrs = json.loads(v3.read_text(encoding="utf-8")).get("attributes") or {}
        return isinstance(attrs.get("ome"), dict)
    v2 = folder / ".zattrs"
    if v2.is_file():
        attrs = json.loads(v2.read_text(encoding="utf-8"))
        return isinstance(attrs, dict) and any(k in attrs for k in _OME_KEYS)
    return False


def is_this_engine(engine: Any) -> bool:
    """Whether xarray's ``engine`` argument names this engine (by name or class)."""
    if isinstance(engine, str):
        return engine == "ome-zarr"
    return isinstance(engine, type) and issubclass(engine, OmeZarrBackendEntrypoint)


class OmeZarrBackendEntrypoint(BackendEntrypoint):
    """Open OME-Zarr (OME-NGFF 0.1-0.6) images, labels, plates and collections.

    ``xr.open_dataset(path, engine="ome-zarr", level=0, group=None)`` opens one resolution
    level; ``xr.open_datatree(path, engine="ome-zarr")`` opens the whole hierarchy.
    xarray's CF decoding keywords (``decode_times``, ``mask_and_scale``...) are accepted and
    change nothing: nothing in OME-Zarr is CF-encoded.
    """

    description = "Open OME-Zarr (OME-NGFF) images with physical coordinates"
    url = "https://github.com/xarray-ome-zarr/xarray-ome-zarr"
    supports_groups = True
    open_dataset_parameters: ClassVar[tuple[str, ...]] = (
        "filename_or_obj",
        "drop_variables",
        "level",
        "group",
        "storage_options",
        "validate",
        "strict",
        "consolidated",
        "lazy_coordinates",
        "coordinate_system",
    )

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """Yes only for an ``.ozx`` file or a local group whose metadata is OME's."""
        try:
            if not isinstance(filename_or_obj, str | os.PathLike):
                return False
            path = os.fspath(filename_or_obj)
            if "://" in path:
                return False
            if path.lower().endswith(".ozx"):
                return True
            folder = Path(path)
            return folder.is_dir() and _has_ome_metadata(folder)
        except Exception:
            return False

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        level: int | str = 0,
        group: str | None = None,
        storage_options: dict[str, Any] | None = None,
        validate: bool = True,
        strict: bool = False,
        consolidated: bool | None = None,
        lazy_coordinates: bool = True,
        coordinate_system: str | None = None,
        mask_and_scale: Any = None,
        decode_times: Any = None,
        decode_timedelta: Any = None,
        use_cftime: Any = None,
        concat_characters: Any = None,
        decode_coords: Any = None,
    ) -> Dataset:
        """Open one resolution level of an image; see ``reader.open_ome_dataset``.

        The CF decoding keywords change nothing (nothing in OME-Zarr is CF-encoded).
        """
        from .reader import open_ome_dataset

        return open_ome_dataset(
            filename_or_obj,
            level=level,
            group=group,
            storage_options=storage_options,
            drop_variables=_drop_list(drop_variables),
            validate=validate,
            strict=strict,
            consolidated=consolidated,
            lazy_coordinates=lazy_coordinates,
            coordinate_system=coordinate_system,
        )

    def open_groups_as_dict(  # type: ignore[override]
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        group: str | None = None,
        storage_options: dict[str, Any] | None = None,
        validate: bool = True,
        strict: bool = False,
        consolidated: bool | None = None,
        lazy_coordinates: bool = True,
        coordinate_system: str | None = None,
        mask_and_scale: Any = None,
        decode_times: Any = None,
        decode_timedelta: Any = None,
        use_cftime: Any = None,
        concat_characters: Any = None,
        decode_coords: Any = None,
    ) -> dict[str, Dataset]:
        """Every OME node of the hierarchy; see ``reader.open_ome_groups``."""
        from .reader import open_ome_groups

        return open_ome_groups(
            filename_or_obj,
            group=group,
            storage_options=storage_options,
            drop_variables=_drop_list(drop_variables),
            validate=validate,
            strict=strict,
            consolidated=consolidated,
            lazy_coordinates=lazy_coordinates,
            coordinate_system=coordinate_system,
        )

    def open_datatree(  # type: ignore[override]
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        group: str | None = None,
        storage_options: dict[str, Any] | None = None,
        validate: bool = True,
        strict: bool = False,
        consolidated: bool | None = None,
        lazy_coordinates: bool = True,
        coordinate_system: str | None = None,
        mask_and_scale: Any = None,
        decode_times: Any = None,
        decode_timedelta: Any = None,
        use_cftime: Any = None,
        concat_characters: Any = None,
        decode_coords: Any = None,
    ) -> DataTree:
        """The whole hierarchy as a DataTree (images, labels, plates, collections)."""
        from ._compat import datatree_from_dict, skip_index_pass_for  # imports zarr: not at
        from .collector import collection_paused  # engine discovery

        # every dimension coordinate comes indexed (reader.with_default_indexes): xarray's
        # pass to index them, which rebuilds the whole tree, is skipped from now on
        skip_index_pass_for(is_this_engine)

        with collection_paused():  # the groups and the tree together
            groups = self.open_groups_as_dict(
                filename_or_obj,
                drop_variables=drop_variables,
                group=group,
                storage_options=storage_options,
                validate=validate,
                strict=strict,
                consolidated=consolidated,
                lazy_coordinates=lazy_coordinates,
                coordinate_system=coordinate_system,
            )
            return datatree_from_dict(groups)
