"""The OME-NGFF metadata layer: parse and emit documents. Imports no xarray."""

from .model import Axis, Level, Multiscale, NodeMeta, Transform
from .parse import parse_node

__all__ = ["Axis", "Level", "Multiscale", "NodeMeta", "Transform", "parse_node"]
