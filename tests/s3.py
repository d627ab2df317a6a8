"""A real S3-API server for the tests: moto's server mode, started once per session on a free
port of 127.0.0.1 and stopped by its process id. MLCREW_TEST_S3_ENDPOINT points the suite at an
S3-API server that is already running instead (MinIO, for example)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

# Dummy credentials for the throwaway server; real ones are never needed by the suite.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "mlcrew-test",
    "AWS_SECRET_ACCESS_KEY": "mlcrew-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Bucket:
    """A fresh bucket on the test server, and the environment that reaches it."""

    endpoint: str
    name: str

    @property
    def url(self) -> str:
        return f"s3://{self.name}/artifacts"

    @property
    def env(self) -> dict[str, str]:
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def client(self) -> Any:
        """A boto3 client, to look at the bucket from outside mlcrew."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def keys(self, prefix: str = "") -> list[str]:
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a running S3-API server on loopback."""
    given = os.environ.get("MLCREW_TEST_S3_ENDPOINT")
    if given:
        yield given
        return
    try:
        import moto.server  # noqa: F401
    except ImportError:
        pytest.skip("moto is not installed: install the dev extra (pip install -e '.[dev]')")
    from mlcrew.serving.server import free_port

    log = tmp_path_factory.mktemp("moto") / "server.log"
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"moto's S3 server exited at start: {log.read_text()[-2000:]}")
            try:
                if httpx.get(endpoint, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"moto's S3 server did not answer on {endpoint}")
            time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture()
def s3_bucket(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> S3Bucket:
    """A new, empty bucket; this test's process (and the CLIs it starts) reach it through the
    standard AWS variables, and keep downloads in a cache of their own."""
    bucket = S3Bucket(s3_endpoint, f"t-{uuid.uuid4().hex[:16]}")
    for key, value in bucket.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLCREW_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket.client().create_bucket(Bucket=bucket.name)
    return bucket
