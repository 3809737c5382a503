"""The one exception type of the package."""

from __future__ import annotations


class OmeZarrError(ValueError):
    """Something about an OME-Zarr store, its metadata or a request is wrong.

    The message names the store, the node inside it and the offending key or value.
    """


def where(store: object, node: str) -> str:
    """Describe a node of a store for an error message."""
    node = node.strip("/")
    return f"store {str(store)!r}, node {('/' + node)!r}"


class OmeZarrWarning(UserWarning):
    """Metadata that is wrong but does not affect the pixels or their coordinates."""
