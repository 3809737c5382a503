"""The chunks of an ``s3://`` store fetched through obstore, asking what s3fs would ask.

s3fs (botocore, aiobotocore) spends about twice the client CPU of obstore's Rust S3 client
on every chunk it fetches (signing, checksums, response parsing in Python): on a read that is
CPU-bound, that is most of what is left beside decoding. So a remote read of an fsspec store
on s3fs takes its chunks through obstore instead, when, and only when, the s3fs filesystem's
options say unambiguously who is asked and with which credentials:

- an explicit ``endpoint_url`` addressed path-style: its host an IP address (where botocore
  always uses path-style requests) or ``config_kwargs={"s3": {"addressing_style": "path"}}``;
- a region given (``client_kwargs={"region_name": ...}``, else ``AWS_DEFAULT_REGION``);
- credentials given (``key``/``secret``/``token``), or ``anon=True``, else the environment's
  ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SECURITY_TOKEN``, else
  ``AWS_SESSION_TOKEN``, in botocore's order): the first place botocore looks, and the only
  one mapped;
- no other option than these and s3fs's caching and concurrency ones, no other ``AWS_*``
  variable in the environment (profiles, configured endpoints, requester pays...; a CA bundle
  only over plain ``http``) and no proxy variable.

Anything else (profiles and the ``~/.aws`` files, region discovery, AWS's own endpoints,
unknown options) keeps s3fs, and so does a process forked from one that had imported obstore
(its runtime does not survive ``fork``). obstore is an optional dependency (the ``[remote]``
extra); the environment variable :data:`SWITCH` set to ``0`` turns this off. Metadata is always read
through the fsspec store; only chunk (and shard) requests go through obstore, one GET each as
before, so the requests are the same.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import threading
import weakref
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from .errors import OmeZarrError

#: Environment variable: ``0`` (or ``false``, ``off``, ``no``) keeps s3fs for chunk reads;
#: ``1`` (or unset, ``auto``) uses obstore where the options map exactly.
SWITCH = "XARRAY_OME_ZARR_OBSTORE"
_OFF = frozenset({"0", "false", "off", "no"})
_ON = frozenset({"", "1", "true", "on", "yes", "auto"})

#: s3fs options that do not change which server is asked, how, or with which credentials.
_NEUTRAL_OPTIONS = frozenset(
    {
        "asynchronous",
        "loop",
        "skip_instance_cache",
        "use_listings_cache",
        "listings_expiry_time",
        "max_paths",
        "max_concurrency",
        "default_block_size",
        "default_fill_cache",
        "default_cache_type",
    }
)
_MAPPED_OPTIONS = frozenset(
    {"key", "secret", "token", "anon", "endpoint_url", "client_kwargs", "config_kwargs", "use_ssl"}
)
#: ``AWS_*`` variables that are either mapped here or cannot change the requests mapped.
_KNOWN_ENV = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",  # not read by botocore; obstore's is overridden by the explicit region
        "AWS_EC2_METADATA_DISABLED",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
    }
)
_PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy")

#: botocore's (s3fs's) timeouts: 60 s to connect and 60 s for each read of the socket, no
#: limit on a whole request (obstore's default of 30 s would fail a large shard on a slow link).
CLIENT_TIMEOUTS = {
    "connect_timeout": timedelta(seconds=60),
    "read_timeout": timedelta(seconds=60),
    "timeout": timedelta(days=365),
}

#: Set in a child forked from a process that had imported obstore: obstore's Rust runtime
#: (tokio) does not survive ``fork`` (its threads are gone, requests would hang), so such a
#: process keeps s3fs for its chunk reads (a process started with ``spawn`` is fresh).
_FORKED_AFTER_OBSTORE = False

_STORES: dict[tuple[Any, ...], Any] = {}
_CONFIGS: dict[int, tuple[weakref.ref[Any], dict[str, Any] | None]] = {}
_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    """In a forked child: no obstore if the parent had it, no store or lock of the parent."""
    global _FORKED_AFTER_OBSTORE, _LOCK
    _FORKED_AFTER_OBSTORE = _FORKED_AFTER_OBSTORE or "obstore" in sys.modules
    _LOCK = threading.Lock()
    _STORES.clear()
    _CONFIGS.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether :data:`SWITCH` allows obstore; a value it does not know is refused."""
    value = (os.environ if env is None else env).get(SWITCH, "").strip().lower()
    if value in _OFF:
        return False
    if value in _ON:
        return True
    raise OmeZarrError(
        f"environment variable {SWITCH}={value!r}: use 0 to read S3 chunks through s3fs, "
        "1 (or unset) to use obstore where the options map exactly"
    )


def s3_config(
    options: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """obstore ``S3Store`` settings asking what s3fs with ``options`` asks, or ``None``.

    Returns ``endpoint``, ``region``, ``allow_http``, and either ``anon=True`` or
    ``credentials`` (``access_key_id``, ``secret_access_key``, ``token``).
    """
    env = os.environ if env is None else env
    if not set(options) <= _NEUTRAL_OPTIONS | _MAPPED_OPTIONS:
        return None
    if options.get("use_ssl", True) is not True:
        return None
    if any(env.get(n) or env.get(n.upper()) for n in _PROXY_ENV):
        return None
    client = dict(options.get("client_kwargs") or {})
    if not set(client) <= {"endpoint_url", "region_name"}:
        return None
    endpoints = {e for e in (options.get("endpoint_url"), client.get("endpoint_url")) if e}
    if len(endpoints) != 1:  # none (AWS's own endpoints), or two that differ
        return None
    endpoint = str(endpoints.pop())
    path_style = _path_style(options.get("config_kwargs"))
    if path_style is None:
        return None
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    if not path_style and not _is_ip(parts.hostname):
        return None
    known = _KNOWN_ENV | ({"AWS_CA_BUNDLE"} if parts.scheme == "http" else set())
    if any(n.startswith("AWS_") and n not in known for n in env):
        return None
    region = client.get("region_name") or env.get("AWS_DEFAULT_REGION")
    if not region:
        return None
    config: dict[str, Any] = {
        "endpoint": endpoint.rstrip("/"),
        "region": str(region),
        "allow_http": parts.scheme == "http",
    }
    key, secret, token = (options.get(k) for k in ("key", "secret", "token"))
    if options.get("anon"):
        if key or secret or token:
            return None
        return {**config, "anon": True}
    if key or secret or token:
        if not (key and secret):
            return None
    else:
        key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        # botocore's order: the older name first (its EnvProvider.TOKENS)
        token = env.get("AWS_SECURITY_TOKEN") or env.get("AWS_SESSION_TOKEN")
        if not (key and secret):
            return None
    credentials = {"access_key_id": key, "secret_access_key": secret, "token": token or None}
    return {**config, "credentials": credentials}


def _path_style(config_kwargs: Any) -> bool | None:
    """Whether ``config_kwargs`` ask for path-style requests (``False``: nothing asked),
    ``None`` for any other setting."""
    if not config_kwargs:
        return False
    if config_kwargs == {"s3": {"addressing_style": "path"}}:
        return True
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def chunk_store(store: Any) -> tuple[Any, str] | None:
    """zarr's ``ObjectStore`` over obstore for the fsspec S3 store ``store``, and the key
    prefix of ``store``'s root in it; ``None`` where s3fs keeps the chunk reads."""
    fs = getattr(store, "fs", None)
    if type(fs).__name__ != "S3FileSystem" or type(fs).__module__.split(".")[0] != "s3fs":
        return None
    if not enabled() or _FORKED_AFTER_OBSTORE:
        return None
    config = _config_of(fs)
    bucket, _, root = str(getattr(store, "path", "")).strip("/").partition("/")
    if config is None or not bucket:
        return None
    try:
        import obstore.store  # noqa: F401
        from zarr.storage import ObjectStore  # noqa: F401
    except ImportError:  # the optional extra is not installed: s3fs reads
        return None
    key = (bucket, repr(sorted(config.items())))
    with _LOCK:
        twin = _STORES.get(key)
        if twin is None:
            twin = _STORES[key] = _object_store(bucket, config)
    return twin, root


def _config_of(fs: Any) -> dict[str, Any] | None:
    """:func:`s3_config` of the filesystem ``fs``, found once per filesystem object: s3fs
    resolves environment credentials once, when it first connects (before the first chunk
    read, for the metadata), so a later change of the environment changes neither."""
    with _LOCK:
        known = _CONFIGS.get(id(fs))
        if known is not None and known[0]() is fs:
            return known[1]
    config = s3_config(getattr(fs, "storage_options", None) or {})
    with _LOCK:
        _CONFIGS[id(fs)] = (weakref.ref(fs), config)
        weakref.finalize(fs, _CONFIGS.pop, id(fs), None)
    return config


def _object_store(bucket: str, config: dict[str, Any]) -> Any:
    """A read-only zarr ``ObjectStore`` over an obstore ``S3Store`` of ``bucket``."""
    from obstore.store import S3Store
    from zarr.storage import ObjectStore

    settings: dict[str, Any] = {
        "endpoint": config["endpoint"],
        "region": config["region"],
        "virtual_hosted_style_request": False,
    }
    if config.get("anon"):
        settings["skip_signature"] = True
        provider = None
    else:
        credentials = dict(config["credentials"])

        def provider() -> dict[str, Any]:
            return {**credentials, "expires_at": None}

    make: Any = S3Store  # settings built from a dict: obstore's TypedDicts checked above
    s3 = make(
        bucket,
        config=settings,
        client_options={"allow_http": config["allow_http"], **CLIENT_TIMEOUTS},
        credential_provider=provider,
    )
    return ObjectStore(s3, read_only=True)
