"""The store on SQLite and PostgreSQL: schema by migration, transactions, atomic artifacts."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from mlcrew.errors import StoreError
from mlcrew.store import Store, now
from mlcrew.store.db import HEAD_REVISION, current_revision
from mlcrew.store.models import Run


def test_open_migrates_to_head_and_reopens(tmp_path: Path, db_url: str) -> None:
    store = Store(db_url, tmp_path / "artifacts")
    assert current_revision(store.engine) == HEAD_REVISION
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "runs",
        "stage_executions",
        "artifacts",
        "lineage",
        "model_versions",
        "aliases",
        "monitor_reports",
        "projects",
    } <= tables
    store.close()
    again = Store(db_url, tmp_path / "artifacts")  # a second open is a no-op migration
    assert current_revision(again.engine) == HEAD_REVISION
    again.close()


def test_sqlite_default_uses_wal(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert (tmp_path / ".mlcrew" / "mlcrew.db").exists()
    store.close()


def test_failed_transaction_leaves_nothing(tmp_path: Path, db_url: str) -> None:
    store = Store(db_url, tmp_path / "artifacts")
    with pytest.raises(RuntimeError), store.session() as s:
        s.add(
            Run(
                id="r1",
                kind="run",
                status="running",
                spec_digest="x" * 64,
                started_at=now(),
                summary={},
            )
        )
        s.flush()
        raise RuntimeError("killed mid-transaction")
    with store.session() as s:
        assert s.scalars(select(Run)).all() == []
    store.close()


def test_bad_database_url_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the metadata database"):
        Store("postgresql://nobody:secret@127.0.0.1:1/none", tmp_path / "a")


def test_artifacts_are_content_addressed(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "artifacts")
    d1 = store.artifacts.put_bytes(b"hello")
    d2 = store.artifacts.put_bytes(b"hello")
    assert d1 == d2 == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert store.artifacts.read_bytes(d1) == b"hello"
    assert list(store.artifacts.digests()) == [d1]


WRITER = """
import sys
from mlcrew.store.artifacts import ArtifactStore
store = ArtifactStore(sys.argv[1])
print("ready", flush=True)
store.put_stream(sys.stdin.buffer)
print("done", flush=True)
"""


def test_writer_killed_mid_write_leaves_no_visible_artifact(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    store = Store(f"sqlite:///{tmp_path / 'm.db'}", root)
    kept = store.artifacts.put_bytes(b"already stored")
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == b"ready"
    proc.stdin.write(b"x" * (3 << 20))  # three chunks in, never finished
    proc.stdin.flush()
    deadline = time.monotonic() + 20
    tmp_dir = root / "tmp"
    while time.monotonic() < deadline:  # wait until the partial write is really on disk
        parts = list(tmp_dir.glob("*")) if tmp_dir.exists() else []
        if parts and parts[0].stat().st_size >= 2 << 20:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert parts and parts[0].stat().st_size > 0, "the writer never started writing"
    assert list(store.artifacts.digests()) == [kept]  # the half-written blob is not visible
    assert store.artifacts.read_bytes(kept) == b"already stored"
    assert store.artifacts.clean_tmp() == 0  # too recent: it could be a live writer's
    assert store.artifacts.clean_tmp(older_than=0) == 1
    assert list((root / "tmp").iterdir()) == []
    store.close()


def test_relative_store_locations_are_relative_to_the_project(
    example_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from mlcrew.project import Project

    monkeypatch.delenv("MLCREW_DB_URL", raising=False)
    monkeypatch.delenv("MLCREW_ARTIFACTS", raising=False)
    spec = example_dir / "mlcrew.yaml"
    spec.write_text(spec.read_text() + "store: {db: 'sqlite:///meta.db', artifacts: blobs}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    project = Project.open(example_dir)
    project.store.artifacts.put_bytes(b"x")
    project.close()
    assert (example_dir / "meta.db").exists() and (example_dir / "blobs" / "sha256").is_dir()
    assert list(elsewhere.iterdir()) == []


def test_upgrade_from_0001_keeps_aliases_and_logs_them(tmp_path: Path, db_url: str) -> None:
    """A store made by the first release upgrades in place: its alias gets an audit entry."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from mlcrew.registry import history
    from mlcrew.store.db import MIGRATIONS, make_engine

    engine = make_engine(db_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(
            text(
                "insert into model_versions (name, version, model_digest, run_id, spec_digest,"
                " data_digests, metrics, verdict, created_at) values ('m', 1, :d, 'r', :d,"
                " '{}', '{}', '{\"passed\": true}', :t)"
            ),
            {"d": "a" * 64, "t": now()},
        )
        conn.execute(
            text(
                "insert into aliases (name, alias, version, updated_at)"
                " values ('m', 'champion', 1, :t)"
            ),
            {"t": now()},
        )
    engine.dispose()
    store = Store(db_url, tmp_path / "artifacts")
    assert current_revision(store.engine) == HEAD_REVISION
    (event,) = history(store, "m")
    assert (event.alias, event.from_version, event.to_version) == ("champion", None, 1)
    assert "before the audit log existed" in event.reason
    store.close()
