"""Promotion and history through the CLI and over REST, as an MLOps engineer uses them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlcrew.api.app import create_app
from mlcrew.project import Project
from mlcrew.serving.server import BackgroundServer
from tests.registry.test_promotion import two_versions
from tests.test_cli import mlcrew


def test_cli_promote_rollback_and_history(tmp_path: Path) -> None:
    mlcrew("init", "--example", "bikeshare", str(tmp_path / "p"))
    p = str(tmp_path / "p")
    mlcrew("run", "-p", p)
    spec = tmp_path / "p" / "mlcrew.yaml"
    spec.write_text(spec.read_text().replace("rounds: 300", "rounds: 200"))
    mlcrew("run", "-p", p)
    refused = mlcrew("promote", "bike-demand", "1", "--reason", "try", "-p", p, ok=False)
    assert refused.returncode == 3
    assert "v1 is worse than champion v2 on mae" in refused.stderr
    no_reason = mlcrew("promote", "bike-demand", "1", "--force", "-p", p, ok=False)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    forced = mlcrew("promote", "bike-demand", "1", "--force", "--reason", "drill", "-p", p)
    assert "champion of bike-demand: v2 -> v1 (forced)" in forced.stdout
    back = mlcrew("rollback", "bike-demand", "-p", p)
    assert "rolled back: v1 -> v2" in back.stdout
    doc = json.loads(mlcrew("models", "history", "bike-demand", "--json", "-p", p).stdout)
    events = doc["events"]
    assert [(e["from"], e["to"], e["forced"]) for e in events] == [
        (1, 2, False),
        (2, 1, True),
        (1, 2, False),
        (None, 1, False),
    ]
    assert events[1]["reason"] == "drill" and events[1]["actor"]
    # `mlcrew models --json` keeps its shape: aliases map alias -> version.
    models = json.loads(mlcrew("models", "--json", "-p", p).stdout)
    assert models["aliases"] == {"champion": 2}
    assert mlcrew("models", "history", "nope", "-p", p, ok=False).returncode == 1


@pytest.fixture()
def served(project: Project) -> Iterator[tuple[Project, str]]:
    two_versions(project)
    app = create_app(project.root, project.spec, project.store)
    with BackgroundServer(app) as srv:
        yield project, srv.url


def test_rest_promotion_is_gated_with_409_reasons(served: tuple[Project, str]) -> None:
    _project, url = served
    route = f"{url}/v1/models/bike-demand/aliases/champion"
    refused = httpx.post(route, json={"version": 1, "reason": "try"})
    assert refused.status_code == 409
    body = refused.json()
    assert body["reasons"] and "worse than champion v2" in body["reasons"][0]
    missing = httpx.post(route, json={"version": 1})
    assert missing.status_code == 422
    forced = httpx.post(route, json={"version": 1, "reason": "drill", "force": True})
    assert forced.status_code == 200, forced.text
    assert forced.json()["event"]["forced"] is True and forced.json()["moved"] is True
    again = httpx.post(route, json={"version": 1, "reason": "again"})
    assert again.status_code == 200 and again.json()["moved"] is False
    hist = httpx.get(f"{url}/v1/models/bike-demand/history").json()
    top = hist["events"][0]
    assert (top["from"], top["to"], top["forced"], top["reason"]) == (2, 1, True, "drill")
    # No people: the caller is the local owner, named by the OS user.
    from mlcrew.people.identity import os_user

    assert top["actor"] == os_user()
    assert httpx.get(f"{url}/v1/models/nope/history").status_code == 404
    unknown = httpx.post(route, json={"version": 99, "reason": "x"})
    assert unknown.status_code == 404
    bad_alias = httpx.post(
        f"{url}/v1/models/bike-demand/aliases/NOT-OK", json={"version": 1, "reason": "x"}
    )
    assert bad_alias.status_code == 422
    page = httpx.get(f"{url}/").text
    assert "Alias history" in page and "drill" in page
