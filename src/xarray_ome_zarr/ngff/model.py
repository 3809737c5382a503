"""Frozen dataclasses for OME-NGFF metadata, independent of any version's spelling."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .transformations import CoordinateSystem

#: Versions this package reads, oldest first.
READ_VERSIONS = ("0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.6rc0", "0.6.dev3", "0.6.dev4")
#: Versions this package writes.
WRITE_VERSIONS = ("0.4", "0.5")
#: Axis names assumed by 0.1 and 0.2, which store no axes.
IMPLIED_AXES = ("t", "c", "z", "y", "x")
#: The axis type implied by a well-known axis name.
TYPE_BY_NAME = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


@dataclass(frozen=True)
class Axis:
    """One axis of a multiscale image."""

    name: str
    type: str | None = None
    unit: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_spatial(self) -> bool:
        """Whether coordinates along this axis are positions (space or time)."""
        return self.type in ("space", "time")


@dataclass(frozen=True)
class Transform:
    """A coordinate transformation; ``values`` for scale and translation, else ``None``."""

    type: str
    values: tuple[float, ...] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Level:
    """One resolution level (a ``datasets`` entry) of a multiscale image."""

    path: str
    transforms: tuple[Transform, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Multiscale:
    """One entry of ``multiscales``: axes, levels and the multiscale-wide transforms."""

    version: str
    axes: tuple[Axis, ...]
    levels: tuple[Level, ...]
    transforms: tuple[Transform, ...] = ()
    name: str | None = None
    type: str | None = None
    metadata: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: 0.6: every coordinate system of the multiscale, and the name of the one the datasets'
    #: transforms output to (whose axes are ``axes``).
    coordinate_systems: tuple[CoordinateSystem, ...] = ()
    coordinate_system: str | None = None

    @property
    def axis_names(self) -> tuple[str, ...]:
        """The axis names, in the stored order."""
        return tuple(a.name for a in self.axes)


@dataclass(frozen=True)
class NodeMeta:
    """What the OME metadata of one zarr group says the group is.

    ``document`` is the OME document as stored (for 0.5 the content of
    ``attributes["ome"]``, before that the whole ``.zattrs``), kept verbatim.
    """

    version: str | None
    document: Mapping[str, Any]
    multiscales: tuple[Multiscale, ...] = ()
    labels: tuple[str, ...] | None = None
    plate: Mapping[str, Any] | None = None
    image_label: Mapping[str, Any] | None = None
    well: Mapping[str, Any] | None = None
    bioformats2raw_layout: int | None = None
    series: tuple[str, ...] | None = None
    #: 0.6: the ``scene`` block (coordinate systems and transforms joining images), verbatim.
    scene: Mapping[str, Any] | None = None

    @property
    def is_image(self) -> bool:
        """Whether the group is a multiscale image."""
        return bool(self.multiscales)

    @property
    def is_ome(self) -> bool:
        """Whether the group carries any OME metadata this package understands."""
        return bool(
            self.multiscales
            or self.labels is not None
            or self.plate is not None
            or self.image_label is not None
            or self.well is not None
            or self.bioformats2raw_layout is not None
            or self.series is not None
            or self.scene is not None
        )
