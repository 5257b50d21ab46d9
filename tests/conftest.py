"""Fixtures the whole suite shares: a real S3 API on the loopback interface (moto's server)."""

from __future__ import annotations

import os
import uuid

import pytest


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on 127.0.0.1, found through the standard AWS settings (AWS_ENDPOINT_URL and
    credentials in the environment), as a user's own endpoint would be; stopped after the session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    settings = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "tagmill-test",
                "AWS_SECRET_ACCESS_KEY": "tagmill-test", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    yield settings
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A new empty bucket on the S3 server, as an `s3://` URL."""
    import fsspec

    name = f"tagmill-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3").mkdir(name)
    return f"s3://{name}"
