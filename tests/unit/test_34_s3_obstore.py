"""``s3_obstore``: which s3fs options map exactly onto obstore's S3 client, and the switch.

Pure mapping of options and environment; the reads through obstore against moto's server
are in ``tests/integration/test_58_remote_read.py``.
"""

from __future__ import annotations

import pytest

from xarray_ome_zarr import OmeZarrError
from xarray_ome_zarr.s3_obstore import SWITCH, enabled, s3_config

ENDPOINT = "http://127.0.0.1:9000"
ENV = {"AWS_DEFAULT_REGION": "eu-west-1", "HOME": "/root"}
EXPLICIT = {"endpoint_url": ENDPOINT, "key": "k", "secret": "s", "max_concurrency": 1}


def test_explicit_endpoint_and_credentials_map():
    config = s3_config(EXPLICIT, ENV)
    assert config == {
        "endpoint": ENDPOINT,
        "region": "eu-west-1",
        "allow_http": True,
        "credentials": {"access_key_id": "k", "secret_access_key": "s", "token": None},
    }


def test_explicit_credentials_are_not_mixed_with_the_environment():
    env = {**ENV, "AWS_SESSION_TOKEN": "from-env", "AWS_ACCESS_KEY_ID": "env-key"}
    assert s3_config(EXPLICIT, env)["credentials"]["token"] is None  # type: ignore[index]
    env_only = {**env, "AWS_SECRET_ACCESS_KEY": "env-secret"}
    options = {"endpoint_url": ENDPOINT}
    assert s3_config(options, env_only)["credentials"] == {  # type: ignore[index]
        "access_key_id": "env-key",
        "secret_access_key": "env-secret",
        "token": "from-env",
    }
    both = {**env_only, "AWS_SECURITY_TOKEN": "old"}  # botocore takes the older name first
    assert s3_config(options, both)["credentials"]["token"] == "old"  # type: ignore[index]


def test_anonymous_and_region_and_path_style():
    anon = s3_config({"endpoint_url": ENDPOINT, "anon": True}, ENV)
    assert anon is not None and anon["anon"] is True and "credentials" not in anon
    named = {
        **EXPLICIT,
        "endpoint_url": "https://minio.example.org/",
        "client_kwargs": {"region_name": "us-west-2"},
        "config_kwargs": {"s3": {"addressing_style": "path"}},
    }
    config = s3_config(named, {})
    assert config is not None
    assert (config["endpoint"], config["region"], config["allow_http"]) == (
        "https://minio.example.org",
        "us-west-2",
        False,
    )


@pytest.mark.parametrize(
    ("options", "env"),
    [
        ({"key": "k", "secret": "s"}, ENV),  # AWS's own endpoints (virtual-hosted, regions)
        ({**EXPLICIT, "endpoint_url": "https://minio.example.org"}, ENV),  # botocore: virtual
        ({**EXPLICIT, "client_kwargs": {"endpoint_url": "http://127.0.0.2:1"}}, ENV),  # two
        ({**EXPLICIT, "endpoint_url": f"{ENDPOINT}/prefix"}, ENV),
        (EXPLICIT, {}),  # no region: botocore would look in the config file
        ({"endpoint_url": ENDPOINT}, ENV),  # no credentials: ~/.aws files, metadata service
        ({**EXPLICIT, "profile": "work"}, ENV),
        ({**EXPLICIT, "requester_pays": True}, ENV),
        ({**EXPLICIT, "s3_additional_kwargs": {"SSECustomerKey": "x"}}, ENV),
        ({**EXPLICIT, "config_kwargs": {"read_timeout": 5}}, ENV),
        ({**EXPLICIT, "client_kwargs": {"verify": False}}, ENV),
        ({**EXPLICIT, "use_ssl": False}, ENV),
        ({**EXPLICIT, "secret": None}, ENV),  # half the credentials
        ({**EXPLICIT, "anon": True}, ENV),  # anonymous with credentials
        (EXPLICIT, {**ENV, "AWS_PROFILE": "work"}),
        (EXPLICIT, {**ENV, "AWS_ENDPOINT_URL_S3": "http://elsewhere"}),
        ({**EXPLICIT, "endpoint_url": "https://127.0.0.1:9000"}, {**ENV, "AWS_CA_BUNDLE": "x"}),
        (EXPLICIT, {**ENV, "HTTPS_PROXY": "http://proxy:3128"}),
        (EXPLICIT, {**ENV, "http_proxy": "http://proxy:3128"}),
    ],
)
def test_what_does_not_map_exactly_keeps_s3fs(options, env):
    assert s3_config(options, env) is None


def test_a_ca_bundle_does_not_matter_over_plain_http():
    assert s3_config(EXPLICIT, {**ENV, "AWS_CA_BUNDLE": "/etc/ssl/certs/ca.crt"}) is not None


def test_the_switch():
    assert enabled({}) and enabled({SWITCH: "1"}) and enabled({SWITCH: "auto"})
    assert not enabled({SWITCH: "0"}) and not enabled({SWITCH: "off"})
    with pytest.raises(OmeZarrError, match=SWITCH):
        enabled({SWITCH: "fast"})


def test_the_obstore_client_waits_as_long_as_botocore():
    """60 s to connect, 60 s for each read, no limit on a whole request: obstore's default
    limit of 30 s a request would fail a large shard on a slow link where s3fs reads it."""
    from xarray_ome_zarr.s3_obstore import _object_store

    config = {"endpoint": ENDPOINT, "region": "us-east-1", "allow_http": True, "anon": True}
    options = _object_store("bucket", config).store.client_options
    assert (options["connect_timeout"], options["read_timeout"]) == ("1m", "1m")
    assert options["timeout"].startswith("11months")
