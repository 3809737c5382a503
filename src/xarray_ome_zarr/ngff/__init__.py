"""The OME-NGFF metadata layer: parse and emit documents. Imports no xarray."""

from .model import (
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
from .parse import parse_node

__all__ = [
    "Axis",
    "Channel",
    "FieldRef",
    "ImageLabel",
    "Level",
    "Multiscale",
    "NodeMeta",
    "Omero",
    "Plate",
    "Transform",
    "Well",
    "WellRef",
    "parse_node",
]
