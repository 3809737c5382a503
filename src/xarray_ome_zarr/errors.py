"""The one exception type of the package, and its warning.

Both carry where the problem is as attributes (``store``, ``node``, ``key``) beside the
message that names them, so callers (the validator, a dask.distributed client) never parse
message text; ``reason`` is the message without that location prefix, and ``rule`` a stable
id of the rule concerned where there is one (the ids of ``docs/errors.md``).
"""

from __future__ import annotations

from typing import Any, Self


def where(store: object, node: str) -> str:
    """Describe a node of a store for an error message."""
    node = node.strip("/")
    return f"store {str(store)!r}, node {('/' + node)!r}"


def located_message(
    reason: str, *, store: object = None, node: str | None = None, key: str | None = None
) -> str:
    """``store 'S', node '/N': key: reason``, leaving out the parts that are not known."""
    place = []
    if store is not None:
        place.append(f"store {str(store)!r}")
    if node is not None:
        place.append(f"node {'/' + node.strip('/')!r}")
    prefix = ", ".join(place)
    if key:
        prefix = f"{prefix}: {key}" if prefix else key
    return f"{prefix}: {reason}" if prefix else reason


class _Located:
    """Location fields and constructors shared by the error and the warning."""

    store: str | None
    node: str | None
    key: str | None
    reason: str
    rule: str | None

    def __init__(
        self,
        message: str,
        *,
        store: object = None,
        node: str | None = None,
        key: str | None = None,
        reason: str | None = None,
        rule: str | None = None,
    ) -> None:
        super().__init__(message)  # type: ignore[call-arg]  # next in the MRO: the exception
        self.store = None if store is None else str(store)
        self.node = None if node is None else "/" + node.strip("/")
        self.key = key
        self.reason = message if reason is None else reason
        self.rule = rule

    @classmethod
    def at(
        cls,
        reason: str,
        *,
        store: object = None,
        node: str | None = None,
        key: str | None = None,
        rule: str | None = None,
    ) -> Self:
        """An instance whose message is composed from its location and ``reason``."""
        message = located_message(reason, store=store, node=node, key=key)
        return cls(message, store=store, node=node, key=key, reason=reason, rule=rule)

    def _fields(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "node": self.node,
            "key": self.key,
            "reason": self.reason,
            "rule": self.rule,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle their args only; keep the fields (dask.distributed workers raise
        # these errors in another process).
        return (_rebuild, (type(self), str(self), self._fields()))


class OmeZarrError(_Located, ValueError):
    """Something about an OME-Zarr store, its metadata or a request is wrong.

    The message names the store, the node inside it and the offending key or value; the
    same are attributes: ``store``, ``node`` (``"/"``-rooted), ``key``, each ``None`` where
    not known, ``reason`` (the message without its location) and ``rule`` (a rule id).
    ``OmeZarrError.at(reason, store=, node=, key=)`` composes the message.

    Examples
    --------
    >>> err = OmeZarrError.at("must be a list", store="a.zarr", node="/", key="plate/wells")
    >>> str(err)
    "store 'a.zarr', node '/': plate/wells: must be a list"
    >>> (err.node, err.key, err.reason)
    ('/', 'plate/wells', 'must be a list')
    """

    def in_store(self, store: object) -> OmeZarrError:
        """This error with the store named in front (for errors raised before it was known).

        The message reads ``store 'S', <message>``; the other fields are kept. Raise the
        result ``from`` this error, or ``from None`` where the cause adds nothing.
        """
        fields = {**self._fields(), "store": store}
        return type(self)(f"store {str(store)!r}, {self}", **fields)


def _rebuild(cls: type[Any], message: str, fields: dict[str, Any]) -> Any:
    return cls(message, **fields)


class OmeZarrWarning(_Located, UserWarning):
    """Metadata that is wrong but does not affect the pixels or their coordinates.

    Carries the same ``store``, ``node``, ``key``, ``reason`` and ``rule`` attributes, and
    the same ``at`` constructor, as :class:`OmeZarrError`.
    """
