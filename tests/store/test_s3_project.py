"""A whole project with its artifacts on a real S3-API server: the run gives the digests of a
local run, served predictions are logged to the bucket and monitored from there, a changed
blob in the bucket is caught on load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlcrew.pipeline.runner import Runner
from mlcrew.project import Project
from mlcrew.serving.server import free_port
from tests.s3 import S3Bucket
from tests.serving.conftest import GOOD_ROW, copy_example

MLCREW = [sys.executable, "-m", "mlcrew.cli.main"]


@dataclass
class S3Project:
    root: Path
    bucket: S3Bucket
    run: dict[str, Any]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MLCREW, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


@pytest.fixture(scope="module")
def s3_project(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Project]:
    """The example run by `mlcrew run` with `store.artifacts` on S3; the endpoint is in the
    spec, the credentials in the environment."""
    bucket = S3Bucket(s3_endpoint, f"p-{uuid.uuid4().hex[:16]}")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in bucket.env.items():
            mp.setenv(key, value)
        for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "MLCREW_ARTIFACTS", "MLCREW_DB_URL"):
            mp.delenv(key, raising=False)
        mp.setenv("MLCREW_CACHE", str(tmp_path_factory.mktemp("cache")))
        bucket.client().create_bucket(Bucket=bucket.name)
        root = copy_example(tmp_path_factory.mktemp("s3") / "bikeshare")
        spec = root / "mlcrew.yaml"
        spec.write_text(
            spec.read_text()
            + f"store: {{artifacts: '{bucket.url}', endpoint_url: '{bucket.endpoint}'}}\n"
        )
        proc = cli("run", "-p", str(root), "--json")
        assert proc.returncode == 0, proc.stderr
        yield S3Project(root, bucket, json.loads(proc.stdout))


def test_a_run_on_s3_gives_the_digests_of_a_local_run(
    s3_project: S3Project, trained_project: Project
) -> None:
    local = Runner(
        trained_project.root, trained_project.store, trained_project.spec, trained_project.spec_text
    ).run()
    outputs = {s["name"]: s["outputs"] for s in local.to_json()["stages"]}
    assert {s["name"]: s["outputs"] for s in s3_project.run["stages"]} == outputs
    keys = set(s3_project.bucket.keys())
    for digests in outputs.values():
        for d in digests.values():
            assert f"artifacts/sha256/{d[:2]}/{d}" in keys
    assert not (s3_project.root / ".mlcrew" / "artifacts").exists()  # nothing local
    assert not any(k.startswith("artifacts/tmp/") for k in keys)
    verify = cli("store", "verify", "-p", str(s3_project.root), "--json")
    assert verify.returncode == 0, verify.stderr
    report = json.loads(verify.stdout)
    assert report["healthy"] and report["ok"] == report["checked"] > 6


def test_served_predictions_are_logged_to_s3_and_monitored(
    s3_project: S3Project, tmp_path: Path
) -> None:
    port = free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below
    serve = subprocess.Popen(
        [*MLCREW, "serve", "-p", str(s3_project.root), "--port", str(port), "--workers", "2"],
        stdout=log,
        stderr=log,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "mlcrew serve did not become ready"
            time.sleep(0.1)
        sent = 0
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as client:
            for i in range(30):
                rows = [{**GOOD_ROW, "hr": (i + k) % 24} for k in range(1 + i % 2)]
                r = client.post(f"{base}/v1/models/bike-demand/predict", json={"rows": rows})
                assert r.status_code == 200, r.text
                sent += len(rows)
        serve.send_signal(signal.SIGINT)  # Ctrl-C: each worker writes what is pending
        assert serve.wait(timeout=60) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait(timeout=30)
        log.close()
    segments = s3_project.bucket.keys("artifacts/predictions/bike-demand/bike-demand/")
    assert segments and all(k.endswith(".parquet") for k in segments)
    assert not (s3_project.root / ".mlcrew" / "artifacts").exists()
    proc = cli("monitor", "-p", str(s3_project.root), "--from-log", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["data"]["rows"] == sent
    assert report["data"]["prepared"] == "prediction log"
    # The log of model bike-demand in project bike-demand (projects may share a store).
    logs = "predictions/bike-demand/bike-demand/"
    assert report["data"]["file"] == f"{s3_project.bucket.url}/{logs}"
    by_feature = {f["feature"]: f for f in report["features"]}
    assert set(by_feature) >= {"hr", "temp", "weathersit"}
    assert by_feature["temp"]["drifted"]  # every logged row has temp 0.8: unlike training


def test_a_changed_blob_in_the_bucket_is_caught_on_load(s3_project: S3Project) -> None:
    from mlcrew.errors import StoreError
    from mlcrew.serving.package import load_package

    client = s3_project.bucket.client()
    model = next(s for s in s3_project.run["stages"] if s["name"] == "train")["outputs"]["model"]
    key = f"artifacts/sha256/{model[:2]}/{model}"
    original = client.get_object(Bucket=s3_project.bucket.name, Key=key)["Body"].read()
    client.put_object(Bucket=s3_project.bucket.name, Key=key, Body=original.replace(b'"', b"'", 1))
    try:
        project = Project.open(s3_project.root)
        try:
            with pytest.raises(StoreError, match=f"artifact {model[:12]} is corrupt"):
                load_package(project.store, "bike-demand")
        finally:
            project.close()
        verify = cli("store", "verify", "-p", str(s3_project.root), "--json")
        assert verify.returncode == 1
        assert json.loads(verify.stdout)["corrupt"] == [
            {
                "digest": model,
                "kind": "train.model",
                "location": f"{s3_project.bucket.url}/sha256/{model[:2]}/{model}",
            }
        ]
    finally:
        client.put_object(Bucket=s3_project.bucket.name, Key=key, Body=original)
