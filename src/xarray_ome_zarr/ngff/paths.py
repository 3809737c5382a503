"""Paths inside a store that OME metadata names (datasets, labels, wells, series)."""

from __future__ import annotations

from ..errors import OmeZarrError


def check_member_path(path: str, where: str, key: str) -> str:
    """A relative path inside the store: no empty, ``.`` or ``..`` segments."""
    parts = path.strip("/").split("/")
    if not path.strip("/") or any(p in ("", ".", "..") for p in parts):
        reason = f"{path!r} must be a relative path without '.' or '..' parts"
        raise OmeZarrError(f"{where}: {key}: {reason}", key=key, reason=reason)
    return path.strip("/")
