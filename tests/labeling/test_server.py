"""The labeling REST API under `mlcrew server` at /p/{project}/..., for a project that was
imported but never run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from mlcrew.api.host import HostApp, open_host_store
from mlcrew.people.host import SignedInHost
from mlcrew.project import Project
from mlcrew.serving.server import BackgroundServer
from tests.labeling.conftest import add_labelers, write_project


def test_labeling_under_mlcrew_server(tmp_path: Path, db_url: str) -> None:
    env = {**os.environ, "MLCREW_DB_URL": db_url, "MLCREW_ARTIFACTS": str(tmp_path / "blobs")}
    root = write_project(tmp_path / "pets", items=20)
    done = subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", "label", "import", "-p", str(root)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    proj = Project.open(root, db_url=db_url)
    token = add_labelers(proj, ["ann"])["ann"]
    store = open_host_store(db_url, env["MLCREW_ARTIFACTS"])
    host = HostApp(store, authorizer=SignedInHost(store), require_sign_in=True)
    auth = {"authorization": f"Bearer {token}"}
    with BackgroundServer(host) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        assert http.get("/p/pets/v1/labeling/next").status_code == 401
        task = http.get("/p/pets/v1/labeling/next", headers=auth).json()["task"]
        assert task is not None and task["payload"]["text"].startswith("animal number")
        url = f"/p/pets/v1/labeling/tasks/{task['id']}/labels"
        first = http.post(url, json={"label": "cat"}, headers=auth)
        again = http.post(url, json={"label": "cat"}, headers=auth)
        assert first.status_code == again.status_code == 201
        assert again.json()["duplicate"] is True
        spec = http.get("/p/pets/v1/labeling/spec", headers=auth).json()
        assert "<strong>animal</strong>" in spec["guidelines_html"]
    status = subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", "label", "status", "--json", "-p", str(root)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert '"labels": 1' in status.stdout
    proj.close()
