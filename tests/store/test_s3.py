"""What only an object store has: the endpoint and credentials it needs, the errors when they
are wrong, and the local cache of downloaded blobs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mlcrew.errors import NotFoundError, StoreError
from mlcrew.serving.server import free_port
from mlcrew.store import ArtifactStore
from tests.s3 import S3Bucket

MLCREW = [sys.executable, "-m", "mlcrew.cli.main"]


def test_downloads_are_cached_verified_and_shared(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    cache = Path(os.environ["MLCREW_CACHE"])
    digest = ArtifactStore(s3_bucket.url).put_bytes(b"reference data" * 1000)
    paths: list[Path] = []

    def fetch() -> None:  # each like a server worker or a CLI: its own store object
        paths.append(ArtifactStore(s3_bucket.url).local_path(digest))

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(paths) == {cache / "artifacts" / "sha256" / digest[:2] / digest}
    assert paths[0].read_bytes() == b"reference data" * 1000
    assert list((cache / "artifacts" / "tmp").iterdir()) == []  # no partial download left
    # A cached blob is not downloaded again (the bucket no longer has it, the cache does).
    s3_bucket.client().delete_object(Bucket=s3_bucket.name, Key=f"artifacts/{digest_rel(digest)}")
    assert ArtifactStore(s3_bucket.url).local_path(digest) == paths[0]
    with pytest.raises(NotFoundError):
        ArtifactStore(s3_bucket.url).read_bytes(digest)
    # An explicit cache folder wins over MLCREW_CACHE.
    other = ArtifactStore(s3_bucket.url, cache_dir=tmp_path / "mine")
    digest2 = other.put_bytes(b"x")
    assert other.local_path(digest2).is_relative_to(tmp_path / "mine")


def digest_rel(digest: str) -> str:
    return f"sha256/{digest[:2]}/{digest}"


def test_the_spec_endpoint_is_used_and_the_environment_wins(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    digest = ArtifactStore(s3_bucket.url, endpoint_url=s3_bucket.endpoint).put_bytes(b"a")
    assert s3_bucket.keys() == [f"artifacts/{digest_rel(digest)}"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_bucket.endpoint)
    wrong = f"http://127.0.0.1:{free_port()}"
    assert ArtifactStore(s3_bucket.url, endpoint_url=wrong).read_bytes(digest) == b"a"


def test_a_missing_bucket_is_named_with_the_fix(s3_bucket: S3Bucket) -> None:
    store = ArtifactStore("s3://no-such-bucket-mlcrew/blobs")
    with pytest.raises(StoreError) as caught:
        store.put_bytes(b"x")
    assert str(caught.value) == (
        "the artifact store s3://no-such-bucket-mlcrew/blobs: bucket 'no-such-bucket-mlcrew' "
        f"does not exist at {s3_bucket.endpoint}; create it (for example 'aws s3 mb "
        "s3://no-such-bucket-mlcrew') or point store.artifacts (or MLCREW_ARTIFACTS) at a "
        "bucket that exists"
    )


def test_an_unreachable_endpoint_is_named_with_the_fix(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", nowhere)
    with pytest.raises(StoreError) as caught:
        ArtifactStore(s3_bucket.url).exists("0" * 64)
    assert str(caught.value) == (
        f"the artifact store {s3_bucket.url}: cannot reach the S3 endpoint {nowhere}; start it "
        "or set AWS_ENDPOINT_URL (or store.endpoint_url in mlcrew.yaml) to its address"
    )


def test_missing_credentials_say_what_to_set(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StoreError, match="no AWS credentials found; set AWS_ACCESS_KEY_ID and "):
        ArtifactStore(s3_bucket.url).read_bytes("0" * 64)


def test_the_cli_says_it_in_one_line(s3_bucket: S3Bucket, example_dir: Path) -> None:
    env = {**os.environ, "MLCREW_ARTIFACTS": "s3://no-such-bucket-mlcrew/x"}
    proc = subprocess.run(
        [*MLCREW, "store", "verify", "-p", str(example_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: the artifact store s3://no-such-bucket-mlcrew/x: bucket 'no-such-bucket-mlcrew' "
        f"does not exist at {s3_bucket.endpoint}; create it (for example 'aws s3 mb "
        "s3://no-such-bucket-mlcrew') or point store.artifacts (or MLCREW_ARTIFACTS) at a bucket "
        "that exists"
    ]


def test_a_wrong_endpoint_in_the_spec_is_one_line(
    s3_bucket: S3Bucket, example_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    nowhere = f"http://127.0.0.1:{free_port()}"
    spec = example_dir / "mlcrew.yaml"
    spec.write_text(
        spec.read_text() + f"store: {{artifacts: '{s3_bucket.url}', endpoint_url: '{nowhere}'}}\n"
    )
    proc = subprocess.run(
        [*MLCREW, "run", "-p", str(example_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: the artifact store {s3_bucket.url}: cannot reach the S3 endpoint {nowhere}; "
        "start it or set AWS_ENDPOINT_URL (or store.endpoint_url in mlcrew.yaml) to its address"
    ]


def test_no_secret_in_the_spec(example_dir: Path) -> None:
    from mlcrew.errors import SpecError
    from mlcrew.project import Project

    spec = example_dir / "mlcrew.yaml"
    text = spec.read_text()
    spec.write_text(text + "store: {endpoint_url: 'http://AKIAXYZ:hunter2@127.0.0.1:9000'}\n")
    with pytest.raises(SpecError) as caught:
        Project.open(example_dir)
    message = str(caught.value)
    assert "store.endpoint_url: a URL here must not carry a user or password" in message
    assert "AWS_SECRET_ACCESS_KEY" in message and "hunter2" not in message
    spec.write_text(text + "store: {endpoint_url: 'ftp://127.0.0.1'}\n")
    with pytest.raises(SpecError, match="expected http"):
        Project.open(example_dir)
