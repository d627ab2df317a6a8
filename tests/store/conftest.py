"""The store tests run on both artifact backends: a local folder and a real S3-API server."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["local", "s3"])
def artifact_root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the test's artifact store lives: a folder, or a fresh bucket on the S3 server."""
    if request.param == "local":
        return str(tmp_path / "artifacts")
    bucket = request.getfixturevalue("s3_bucket")
    return str(bucket.url)
