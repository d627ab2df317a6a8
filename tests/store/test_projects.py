"""Many projects in one store: nothing of one project reaches another, through the CLI, REST or
Python; and a store made before projects existed upgrades with every record under its project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from mlcrew.api.host import HostApp, open_host_store
from mlcrew.errors import StoreError
from mlcrew.project import EXAMPLES
from mlcrew.registry import history, promote
from mlcrew.registry.versions import list_versions, register_version
from mlcrew.serving.server import BackgroundServer
from mlcrew.store import Store
from mlcrew.store.db import HEAD_REVISION, MIGRATIONS, current_revision, make_engine

MLCREW = [sys.executable, "-m", "mlcrew.cli.main"]
FOUNDATION = Path(__file__).parents[1] / "resources" / "foundation-store-0002.json"
OWNED = (
    "runs", "stage_executions", "lineage", "model_versions", "aliases", "alias_events",
    "monitor_reports",
)  # fmt: skip


def make_project(root: Path, name: str) -> Path:
    shutil.copytree(EXAMPLES / "bikeshare", root, ignore=shutil.ignore_patterns(".mlcrew"))
    spec = root / "mlcrew.yaml"
    spec.write_text(spec.read_text().replace("name: bike-demand", f"name: {name}", 1))
    return root


def cli(env: dict[str, str], *args: str, ok: bool = True) -> Any:
    """Run `mlcrew ARGS --json` against the shared store; the JSON document it printed."""
    proc = subprocess.run(
        [*MLCREW, *args, "--json"], capture_output=True, text=True, env=env, timeout=300
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip() else proc


@pytest.fixture()
def shared_env(tmp_path: Path, db_url: str) -> dict[str, str]:
    """The environment of two project folders pointing at one database and artifact store."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS",)}
    env["MLCREW_DB_URL"] = db_url
    env["MLCREW_ARTIFACTS"] = str(tmp_path / "shared-artifacts")
    return env


def test_two_projects_in_one_store_never_see_each_other(
    tmp_path: Path, db_url: str, shared_env: dict[str, str]
) -> None:
    alpha = make_project(tmp_path / "alpha", "alpha")
    beta = make_project(tmp_path / "beta", "beta")
    run_a = cli(shared_env, "run", "-p", str(alpha))
    run_b = cli(shared_env, "run", "-p", str(beta))
    # The same data and config, but beta does not reuse alpha's cached executions: its own
    # records say what it ran.
    assert [s["state"] for s in run_b["stages"]] == ["executed"] * 6
    assert run_a["champion"] == {"name": "alpha", "version": 1}
    assert run_b["champion"] == {"name": "beta", "version": 1}
    newer = data_file(alpha, "bikeshare-jul-dec.csv")
    cli(shared_env, "monitor", "-p", str(alpha), "--data", str(newer))

    runs_a = cli(shared_env, "runs", "-p", str(alpha))
    runs_b = cli(shared_env, "runs", "-p", str(beta))
    assert [r["run_id"] for r in runs_a["runs"]] == [run_a["run_id"]]
    assert [r["run_id"] for r in runs_b["runs"]] == [run_b["run_id"]]
    models_b = cli(shared_env, "models", "-p", str(beta))
    assert [(v["name"], v["version"]) for v in models_b["versions"]] == [("beta", 1)]
    assert models_b["aliases"] == {"champion": 1}
    # alpha's model and its alias history do not exist as far as beta can tell
    assert cli(shared_env, "models", "history", "alpha", "-p", str(beta), ok=False).returncode
    history_a = cli(shared_env, "models", "history", "alpha", "-p", str(alpha))
    assert len(history_a["events"]) == 1
    status_b = cli(shared_env, "status", "-p", str(beta))
    assert [s["state"] for s in status_b["stages"]] == ["fresh"] * 6

    # REST, through `mlcrew server`'s application on a real port
    host = HostApp(open_host_store(shared_env["MLCREW_DB_URL"], shared_env["MLCREW_ARTIFACTS"]))
    with BackgroundServer(host) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        listed = http.get("/v1/projects").json()["projects"]
        assert [p["name"] for p in listed] == ["alpha", "beta"]
        a_runs = http.get("/p/alpha/v1/runs").json()["runs"]
        assert [r["run_id"] for r in a_runs] == [run_a["run_id"]]
        assert http.get("/p/alpha/v1/monitor/reports").json()["reports"]
        assert http.get("/p/beta/v1/monitor/reports").json()["reports"] == []
        assert http.get("/p/beta/v1/models/alpha").status_code == 404
        assert http.get("/p/beta/v1/models/alpha/history").status_code == 404
        assert http.get(f"/p/beta/v1/runs/{run_a['run_id']}").status_code == 404
        models = http.get("/p/beta/v1/models").json()
        assert [m["name"] for m in models["models"]] == ["beta"]


def data_file(project: Path, name: str) -> Path:
    return project / "data" / name


def test_the_same_model_name_in_two_projects(tmp_path: Path, db_url: str) -> None:
    one = Store(db_url, tmp_path / "artifacts", name="one")
    two = Store(db_url, tmp_path / "artifacts", name="two")
    for store, digest in ((one, "a" * 64), (two, "b" * 64), (two, "c" * 64)):
        register_version(
            store, "churn", digest, run_id="r", spec_digest="s" * 64, data_digests={},
            metrics={"mae": 1.0}, verdict={"passed": True}, metric="mae",
        )  # fmt: skip
    promote(one, "churn", 1, reason="first", actor="test")
    promote(two, "churn", 2, reason="second", actor="test", force=True)
    assert [v.version for v in list_versions(one, "churn")] == [1]
    assert [v.model_digest[0] for v in list_versions(two, "churn")] == ["b", "c"]
    assert [(e.to_version, e.reason) for e in history(one, "churn")] == [(1, "first")]
    assert [(e.to_version, e.reason) for e in history(two, "churn")] == [(2, "second")]
    assert [p.name for p in one.projects()] == ["one", "two"]
    one.close()
    two.close()


def foundation_store(db_url: str) -> dict[str, Any]:
    """A database at revision 0002 holding what main's code wrote for the bikeshare example
    (two runs, two versions, a rollback, a monitor report: tests/resources)."""
    from alembic import command
    from alembic.config import Config

    dump = json.loads(FOUNDATION.read_text())
    assert dump["revision"] == "0002"
    engine = make_engine(db_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.begin() as conn:
        for table in ("artifacts", *OWNED):
            cols = meta.tables[table].c
            rows = [
                {
                    k: datetime.fromisoformat(v) if isinstance(cols[k].type, sa.DateTime) and v
                    else v
                    for k, v in row.items()
                }
                for row in dump[table]
            ]  # fmt: skip
            if rows:
                conn.execute(meta.tables[table].insert(), rows)
        if engine.dialect.name == "postgresql":  # the ids were given: move the sequences on
            for table in ("stage_executions", "lineage", "model_versions", "alias_events",
                          "monitor_reports"):  # fmt: skip
                conn.execute(
                    sa.text(
                        f"select setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(select max(id) from {table}))"
                    )
                )
    engine.dispose()
    return dump


def test_a_foundation_store_upgrades_with_every_record_under_its_project(
    tmp_path: Path, db_url: str, shared_env: dict[str, str]
) -> None:
    dump = foundation_store(db_url)
    # Its prediction log, in the folder layout of that era
    old_log = Path(shared_env["MLCREW_ARTIFACTS"]) / "predictions" / "bike-demand" / "2026-01-01"
    old_log.mkdir(parents=True)
    (old_log / "segment.parquet").write_bytes(b"PAR1")
    # The host cannot know whose records they are: it refuses, and says how to upgrade
    with pytest.raises(StoreError, match="made before projects existed"):
        open_host_store(db_url, shared_env["MLCREW_ARTIFACTS"])

    project = make_project(tmp_path / "bikes", "bike-demand")
    runs = cli(shared_env, "runs", "-p", str(project))
    assert [r["run_id"] for r in runs["runs"]] == sorted(
        (r["id"] for r in dump["runs"]), reverse=True
    )
    models = cli(shared_env, "models", "-p", str(project))
    assert [v["version"] for v in models["versions"]] == [1, 2]
    assert models["aliases"] == {"champion": 1}  # as the rollback left it
    moves = cli(shared_env, "models", "history", "bike-demand", "-p", str(project))
    assert [e["action"] for e in moves["events"]] == ["rollback", "promote", "promote"]
    status = {s["name"]: s for s in cli(shared_env, "status", "-p", str(project))["stages"]}
    # Its first run used the example's spec as it is: every stage's record is found under the
    # project (none says "never run"), so a stage is fresh unless its code changed since, or
    # its config, or a stage upstream did.
    assert {s["state"] for s in status.values()} <= {"fresh", "stale"}, status
    for stage in status.values():
        if stage["state"] == "stale":
            assert all(
                w.startswith(("code version", "upstream", "config", "library"))
                for w in stage["why"].split("; ")
            ), stage

    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == HEAD_REVISION
        with engine.connect() as conn:
            for table in OWNED:
                owners = conn.execute(sa.text(f"select project, count(*) from {table} group by 1"))
                assert dict(owners.all()) == {"bike-demand": len(dump[table])}, table
            (row,) = conn.execute(sa.text("select name, spec_digest from projects")).all()
        latest = max((r for r in dump["runs"] if r["kind"] == "run"), key=lambda r: r["started_at"])
        assert tuple(row) == ("bike-demand", latest["spec_digest"])
    finally:
        engine.dispose()
    moved = Path(shared_env["MLCREW_ARTIFACTS"]) / "predictions" / "bike-demand" / "bike-demand"
    assert (moved / "2026-01-01" / "segment.parquet").read_bytes() == b"PAR1"

    # A second project joins the upgraded store and sees none of it.
    other = make_project(tmp_path / "other", "other")
    assert cli(shared_env, "runs", "-p", str(other))["runs"] == []
    assert cli(shared_env, "models", "-p", str(other))["versions"] == []


def test_an_upgraded_store_s_prediction_log_moves_under_its_project(
    db_url: str, artifact_root: str
) -> None:
    """On a local disk and on a real S3-API server: segments of the old layout are found under
    the project that upgraded the store, and `read_predictions` reads exactly them."""
    from mlcrew.serving.predlog import segments
    from mlcrew.store.artifacts import ArtifactStore

    foundation_store(db_url)
    old = ArtifactStore(artifact_root)
    for day in ("2026-01-01", "2026-01-02"):
        old.write_file(f"predictions/bike-demand/{day}/{day}T000000Z-1-000001.parquet", b"PAR1")
    store = Store(db_url, artifact_root, name="bike-demand")
    try:
        assert segments(store, "bike-demand") == [
            "predictions/bike-demand/bike-demand/2026-01-01/2026-01-01T000000Z-1-000001.parquet",
            "predictions/bike-demand/bike-demand/2026-01-02/2026-01-02T000000Z-1-000001.parquet",
        ]
        assert store.artifacts.list_files("predictions/*/*/*.parquet") == []  # none left behind
        assert segments(store.for_project("other"), "bike-demand") == []
    finally:
        store.close()
