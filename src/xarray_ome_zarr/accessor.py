"""The ``.ome`` accessor on DataArray, Dataset and DataTree: a thin face over :mod:`.layout`.

Registered when ``xarray_ome_zarr`` is imported. Registration is cheap; the writer is
imported only inside ``OmeAccessor.to_zarr``.

The coordinates are the truth: scale and translation are computed from them on every call
(:class:`.layout.ImageLevel`), so they are right after crops, ``isel``/``sel`` and
resampling. A length-1 axis keeps its scale in the coordinate's ``scale`` attribute (the
reader sets it); in an image tree whose coordinates lack it (trees made by
multiscale-spatial-image), it is inferred from the level above by the pixel-centre rule.
"""

from __future__ import annotations

from typing import Any

import xarray as xr

from .layout import (
    DATAARRAY_GROUP_KEYS,
    AxisGeometry,
    ImageLevel,
    image_level,
    level_names,
    tree_attrs,
    tree_levels,
)
from .node_attrs import attached_group_attrs


# ---- the accessors ------------------------------------------------------------------------
class OmeAccessor:
    """OME-Zarr geometry of an image level, computed from its coordinates.

    The dicts are keyed by the positional dims, in order: space and time axes, and custom
    axes with a numeric coordinate. Channel axes (and custom axes without a coordinate)
    have scale 1 and translation 0 in OME-Zarr and appear only in ``axes`` and
    ``transforms``. These are the values ``xarray_ome_zarr.to_ome_zarr`` writes.
    """

    def __init__(self, obj: xr.DataArray | xr.Dataset) -> None:
        self._obj = obj

    def _level(self) -> ImageLevel:
        return image_level(self._obj)

    def _positional(self) -> list[AxisGeometry]:
        return [axis for axis in self._level().geometry() if axis.positional]

    @property
    def scale(self) -> dict[str, float]:
        """Pixel spacing per positional dim."""
        return {axis.name: axis.scale for axis in self._positional()}

    @property
    def translation(self) -> dict[str, float]:
        """Centre of the first pixel per positional dim."""
        return {axis.name: axis.translation for axis in self._positional()}

    @property
    def units(self) -> dict[str, str | None]:
        """Unit per positional dim, as OME-Zarr spells it (``None`` where none is given)."""
        return {axis.name: axis.unit for axis in self._positional()}

    @property
    def axes(self) -> list[dict[str, str]]:
        """The OME ``axes`` list: ``{"name", "type", "unit"}`` per dim, in order."""
        return [axis.as_ome() for axis in self._level().geometry()]

    @property
    def transforms(self) -> list[dict[str, Any]]:
        """The OME ``coordinateTransformations``: a scale, then a translation, over all axes."""
        geometry = self._level().geometry()
        return [
            {"type": "scale", "scale": [axis.scale for axis in geometry]},
            {"type": "translation", "translation": [axis.translation for axis in geometry]},
        ]

    @property
    def group_attrs(self) -> dict[str, Any]:
        """The zarr group's attributes of this node (the image's; a plate's, a well's...).

        The very dict ``attrs["ome_group_attrs"]``, where the reader keeps them verbatim, so
        editing it in place is what ``xoz.to_ome_zarr`` and ``xoz.write_metadata`` write:
        ``ds.ome.group_attrs["ome"]["omero"]["channels"][0]["color"] = "FF00FF"``. Other
        top-level attrs of a Dataset or DataTree node (``ds.attrs["experiment"] = "x"``)
        are written as group attributes too, beside these, and stay where they are. On an
        object without ``ome_group_attrs``, the OME blocks spelled at the top level of
        ``attrs`` (``attrs={"ome": {...}}``, ``"omero"``...) are moved into a new one first:
        what is written does not change.
        """
        attrs = self._obj.attrs
        blocks = [k for k in attrs if k in DATAARRAY_GROUP_KEYS]
        if isinstance(self._obj, xr.DataArray) and blocks:
            # a DataArray's attrs are all its group's when it carries an OME block
            return attached_group_attrs(attrs, list(attrs))
        return attached_group_attrs(attrs, blocks)

    @property
    def coordinate_systems(self) -> dict[str, list[dict[str, Any]]]:
        """OME-Zarr 0.6: every coordinate system, ``{name: axes}``, verbatim.

        Systems of a scene's images are keyed ``"<path>/<name>"``.
        """
        from .points import coordinate_systems

        return coordinate_systems(self._obj)

    @property
    def coordinate_transformations(self) -> list[dict[str, Any]]:
        """OME-Zarr 0.6: the transforms between coordinate systems (the multiscale's and a
        scene's ``coordinateTransformations``), verbatim. ``transforms`` stays this level's
        scale and translation."""
        from .points import coordinate_transformations

        return coordinate_transformations(self._obj)

    def affine(self, target: Any, source: Any = None) -> Any:
        """OME-Zarr 0.6: the homogeneous matrix from ``source`` to ``target``.

        ``source`` defaults to the system the coordinates are in (the image's own, or the
        one chosen by ``coordinate_system=`` at open). A matrix stored in an array is read
        from the store the object was opened from. An ``OmeZarrError`` says so where the
        chain of transforms is not affine.
        """
        from .points import graph_of, own_system, source_loader

        return graph_of(self._obj).affine(
            own_system(self._obj) if source is None else source,
            target,
            source_loader(self._obj, None),
        )

    def render(self, *, project: Any = None, **selection: Any) -> xr.DataArray:
        """An RGB composite of one plane, as viewers show it: see :func:`.render.render`.

        ``ds.ome.render(z=8.5, t=0)``, ``ds.ome.render(project="z", c=["DAPI", "GFP"])``.
        """
        from .render import render

        return render(self._obj, project=project, **selection)

    def show(self, *, ax: Any = None, project: Any = None, **selection: Any) -> Any:
        """Plot :meth:`render` the right way up (y down): see :func:`.render.show`."""
        from .render import show

        return show(self._obj, ax=ax, project=project, **selection)

    def to_zarr(self, store: Any, **kwargs: Any) -> None:
        """Write as OME-Zarr: ``xoz.to_ome_zarr(obj, store, **kwargs)``."""
        from .writer import to_ome_zarr

        to_ome_zarr(self._obj, store, **kwargs)


class OmeTreeAccessor(OmeAccessor):
    """The ``.ome`` accessor of a DataTree image node.

    Properties describe ``scale0``; ``level(i)`` and ``levels`` give the others.
    On a level node (``dt["scale1"]``) they describe that level.
    """

    _obj: xr.DataTree  # type: ignore[assignment]  # the tree, where the base holds a level

    def __init__(self, obj: xr.DataTree) -> None:  # type: ignore[override]
        self._obj = obj

    def _level(self) -> ImageLevel:
        return image_level(self._obj, 0)

    def level(self, level: int | str) -> OmeLevelView:
        """The OME view of one level: ``dt.ome.level(1).scale``, ``dt.ome.level(-1)``."""
        found = image_level(self._obj, level)
        return OmeLevelView(self._level_dataset(found), found)

    @property
    def levels(self) -> list[OmeLevelView]:
        """One OME view per level, highest resolution first."""
        if not level_names(self._obj):
            return [self.level(0)]
        return [OmeLevelView(self._level_dataset(lv), lv) for lv in tree_levels(self._obj)]

    def _level_dataset(self, level: ImageLevel) -> xr.Dataset:
        """The level as ``xr.open_dataset(level=...)`` gives it: image attrs included."""
        image_attrs = self._obj.attrs if level_names(self._obj) else tree_attrs(self._obj)
        ds = level.dataset if level.dataset is not None else level.array.to_dataset()
        return ds.assign_attrs({**image_attrs, **ds.attrs})


class OmeLevelView(OmeAccessor):
    """The OME view of one level of an image tree; ``to_zarr`` writes that level alone."""

    _obj: xr.Dataset

    def __init__(self, dataset: xr.Dataset, level: ImageLevel) -> None:
        self._obj = dataset
        self._image_level = level

    def _level(self) -> ImageLevel:
        return self._image_level

    @property
    def dataset(self) -> xr.Dataset:
        """The level's Dataset with the image's attrs, as ``xr.open_dataset`` gives it."""
        return self._obj


xr.register_dataarray_accessor("ome")(OmeAccessor)
xr.register_dataset_accessor("ome")(OmeAccessor)
xr.register_datatree_accessor("ome")(OmeTreeAccessor)


class _MissingMsiAccessor:
    """``dt.msi`` without multiscale-spatial-image installed: say which extra provides it."""

    def __init__(self, obj: xr.DataTree) -> None:
        from .errors import OmeZarrError

        raise OmeZarrError(
            "the .msi accessor comes from multiscale-spatial-image, which is not installed: "
            "pip install 'xarray-ome-zarr[msi]' (then import multiscale_spatial_image)"
        )


def _register_msi_placeholder() -> None:
    """Register :class:`_MissingMsiAccessor` only where the real one cannot come (a cheap
    look-up: nothing is imported)."""
    import importlib.util

    if importlib.util.find_spec("multiscale_spatial_image") is None and not hasattr(
        xr.DataTree, "msi"
    ):
        xr.register_datatree_accessor("msi")(_MissingMsiAccessor)


_register_msi_placeholder()
