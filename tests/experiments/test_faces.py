"""Tracked runs through the CLI and REST: list with filters and sorting, one run whole
(`mlcrew experiments show RUN --json`), and runs compared side by side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import httpx

import mlcrew
from mlcrew.api.app import create_app
from mlcrew.project import Project
from tests.asgi import in_thread


def _sweep(proj: Project) -> list[str]:
    ids = []
    for lr, auc in ((0.1, 0.81), (0.05, 0.86), (0.01, 0.84)):
        with mlcrew.start_run(proj, name=f"lr {lr}") as run:
            run.log_params({"lr": lr, "depth": 6})
            for step in range(3):
                run.log_metric("auc", auc - 0.1 + 0.05 * step)
            ids.append(run.id)
    return ids


def _mlcrew(proj: Project, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLCREW_DB_URL": proj.store.db_url, "COLUMNS": "160"}
    return subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", *args, "-p", str(proj.root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _cli(proj: Project, *args: str) -> Any:
    result = _mlcrew(proj, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_cli_lists_shows_and_compares(proj: Project) -> None:
    ids = _sweep(proj)
    shown = _cli(proj, "experiments", "show", ids[1][:6])
    assert shown["id"] == ids[1]
    assert shown["params"] == {"depth": "6", "lr": "0.05"}
    assert shown["metrics"]["auc"] == [
        {"step": s, "value": v, "at": shown["metrics"]["auc"][s]["at"]}
        for s, v in enumerate([0.86 - 0.1 + 0.05 * step for step in range(3)])
    ]
    listed = _cli(proj, "experiments", "list", "--sort", "-metrics.auc")
    assert [r["id"] for r in listed["runs"]] == [ids[1], ids[2], ids[0]]
    kept = _cli(proj, "experiments", "list", "--filter", "metrics.auc>0.82",
                "--filter", "params.lr!=0.01")  # fmt: skip
    assert [r["id"] for r in kept["runs"]] == [ids[1]]
    compared = _cli(proj, "experiments", "compare", ids[0], ids[1])
    by_key = {p["key"]: p for p in compared["params"]}
    assert by_key["lr"] == {"key": "lr", "values": ["0.1", "0.05"], "differs": True}
    assert by_key["depth"]["differs"] is False
    (auc,) = compared["metrics"]
    assert [c["points"] for c in auc["runs"]] == [3, 3]
    bad = _mlcrew(proj, "experiments", "list", "-f", "auc>1")
    assert bad.returncode == 1 and "cannot read the filter 'auc>1'" in bad.stderr
    missing = _mlcrew(proj, "experiments", "show", "beef")
    assert missing.returncode == 1 and "no tracked run 'beef'" in missing.stderr
    table = _mlcrew(proj, "experiments", "list", "--sort", "-metrics.auc")
    assert table.returncode == 0 and "lr 0.05" in table.stdout and "auc" in table.stdout
    side = _mlcrew(proj, "experiments", "compare", ids[0][:6], ids[1][:6])
    assert "params that differ" in side.stdout and "depth" not in side.stdout


def test_rest_routes(proj: Project) -> None:
    ids = _sweep(proj)
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return [
                await http.get("/v1/experiments/runs", params={"sort": "metrics.auc"}),
                await http.get("/v1/experiments/runs", params={"filter": "params.lr=0.1"}),
                await http.get(f"/v1/experiments/runs/{ids[0]}"),
                await http.get("/v1/experiments/compare", params={"runs": ids}),
                await http.get("/v1/experiments/runs/0000"),
                await http.get("/v1/experiments/runs", params={"sort": "auc"}),
            ]

    try:
        ordered, filtered, one, compared, missing, bad = in_thread(go)
    finally:
        app.shutdown()
    assert [r["id"] for r in ordered.json()["runs"]] == [ids[0], ids[2], ids[1]]
    assert [r["params"]["lr"] for r in filtered.json()["runs"]] == ["0.1"]
    assert one.json()["metrics"]["auc"][2]["value"] == 0.81 - 0.1 + 0.05 * 2
    assert len(compared.json()["runs"]) == 3
    assert missing.status_code == 404 and "no tracked run" in missing.json()["detail"]
    assert bad.status_code == 422 and [p["field"] for p in bad.json()["detail"]] == ["sort"]
