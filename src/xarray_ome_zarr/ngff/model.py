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
WRITE_VERSIONS = ("0.4", "0.5", "0.6")
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
class Channel:
    """One ``omero`` channel: its label, colour and window where they are well-formed.

    ``raw`` is the entry as stored (``{}`` when the entry is not a JSON object).
    """

    label: str | None = None
    color: str | None = None
    window: Mapping[str, Any] | None = None
    active: bool | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Omero:
    """The transitional ``omero`` block: rendering settings of an image's channels.

    ``channels`` is ``None`` when the block holds no list of channels; ``raw`` is the block
    as stored, kept verbatim for round trips.
    """

    channels: tuple[Channel, ...] | None
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> tuple[str, ...] | None:
        """The channel labels when every channel has one (``None`` otherwise, or for none)."""
        if not self.channels:
            return None
        labels = tuple(c.label for c in self.channels if c.label is not None)
        return labels if len(labels) == len(self.channels) else None


@dataclass(frozen=True)
class ImageLabel:
    """The ``image-label`` block of a label image: colours, properties and source."""

    colors: tuple[Mapping[str, Any], ...] = ()
    properties: tuple[Mapping[str, Any], ...] = ()
    source_image: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WellRef:
    """One entry of a plate's ``wells``: the well's path and its row and column indices."""

    path: str | None
    row_index: int | None = None
    column_index: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plate:
    """The ``plate`` block: row and column names, the wells, the acquisitions."""

    rows: tuple[str | None, ...]
    columns: tuple[str | None, ...]
    wells: tuple[WellRef, ...]
    name: str | None = None
    field_count: int | None = None
    acquisitions: tuple[Mapping[str, Any], ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)

    def expected_path(self, well: WellRef) -> str | None:
        """``<row>/<column>`` by the well's indices; ``None`` when they do not name one."""
        row, col = well.row_index, well.column_index
        if row is None or col is None:
            return None
        if not (0 <= row < len(self.rows) and 0 <= col < len(self.columns)):
            return None
        return f"{self.rows[row]}/{self.columns[col]}"


@dataclass(frozen=True)
class FieldRef:
    """One entry of a well's ``images``: a field of view's path and acquisition."""

    path: str | None
    acquisition: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Well:
    """The ``well`` block: its fields of view (``None`` when ``images`` is not a list)."""

    images: tuple[FieldRef, ...] | None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeMeta:
    """What the OME metadata of one zarr group says the group is.

    ``document`` is the OME document as stored (for 0.5 the content of
    ``attributes["ome"]``, before that the whole ``.zattrs``), kept verbatim; the parsed
    blocks keep theirs in ``raw``.
    """

    version: str | None
    document: Mapping[str, Any]
    multiscales: tuple[Multiscale, ...] = ()
    labels: tuple[str, ...] | None = None
    plate: Plate | None = None
    image_label: ImageLabel | None = None
    well: Well | None = None
    bioformats2raw_layout: int | None = None
    series: tuple[str, ...] | None = None
    #: 0.6: the ``scene`` block (coordinate systems and transforms joining images), verbatim.
    scene: Mapping[str, Any] | None = None
    omero: Omero | None = None

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
