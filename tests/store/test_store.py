"""The store on SQLite and PostgreSQL: schema by migration, transactions, atomic artifacts."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from mlcrew.errors import NotFoundError, StoreError
from mlcrew.store import ArtifactStore, Store, now
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


def _overwrite(root: str, rel: str, data: bytes) -> None:
    """Change a stored file behind the store's back (on disk or in the bucket)."""
    if "://" not in root:
        path = Path(root) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    import fsspec

    fs, base = fsspec.core.url_to_fs(root, skip_instance_cache=True)
    fs.pipe_file(f"{base}/{rel}", data)


def _delete(root: str, rel: str) -> None:
    if "://" not in root:
        (Path(root) / rel).unlink()
        return
    import fsspec

    fs, base = fsspec.core.url_to_fs(root, skip_instance_cache=True)
    fs.rm(f"{base}/{rel}")


def test_artifacts_are_content_addressed(artifact_root: str, tmp_path: Path) -> None:
    store = ArtifactStore(artifact_root)
    d1 = store.put_bytes(b"hello")
    d2 = store.put_bytes(b"hello")
    assert d1 == d2 == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert store.exists(d1) and not store.exists("0" * 64)
    assert store.read_bytes(d1) == b"hello"
    big = bytes(range(256)) * (9 << 12)  # 9 MiB: more than one upload part on S3
    (tmp_path / "big.bin").write_bytes(big)
    d3 = store.put_file(tmp_path / "big.bin")
    with open(tmp_path / "big.bin", "rb") as f:
        assert store.put_stream(f) == d3 == hashlib.sha256(big).hexdigest()
    assert store.read_bytes(d3) == big
    assert store.copy_to(d3, tmp_path / "copy" / "big.bin").read_bytes() == big
    assert store.local_path(d1).read_bytes() == b"hello"
    assert store.check(d1) is True and store.check("0" * 64) is None
    assert list(store.digests()) == sorted([d1, d3])
    assert store.location(d1).startswith(artifact_root.rstrip("/") + "/sha256/2c/")
    # Nothing is left under tmp/ by finished writes.
    assert store.clean_tmp(older_than=0) == 0


def test_a_changed_blob_is_caught_on_every_read(artifact_root: str, tmp_path: Path) -> None:
    store = ArtifactStore(artifact_root)
    digest = store.put_bytes(b"the model")
    _overwrite(artifact_root, f"sha256/{digest[:2]}/{digest}", b"the mod3l")
    with pytest.raises(StoreError, match=f"artifact {digest[:12]} is corrupt") as caught:
        store.read_bytes(digest)
    assert "mlcrew store verify" in str(caught.value)
    with pytest.raises(StoreError, match="is corrupt"):
        store.copy_to(digest, tmp_path / "out" / "model.json")
    assert not (tmp_path / "out" / "model.json").exists()
    assert list((tmp_path / "out").iterdir()) == []  # no partial copy either
    assert store.check(digest) is False
    if not store.is_local:  # a download never lands in the cache unverified
        with pytest.raises(StoreError, match="is corrupt"):
            store.local_path(digest)


def test_a_missing_blob_is_named(artifact_root: str) -> None:
    store = ArtifactStore(artifact_root)
    digest = store.put_bytes(b"soon gone")
    _delete(artifact_root, f"sha256/{digest[:2]}/{digest}")
    assert not store.exists(digest) and store.check(digest) is None
    for read in (store.read_bytes, store.local_path):
        with pytest.raises(NotFoundError, match=f"artifact {digest[:12]} is not in the store"):
            read(digest)


def test_verify_names_corrupt_and_missing_artifacts(artifact_root: str, tmp_path: Path) -> None:
    from mlcrew.store.verify import verify_store

    store = Store(f"sqlite:///{tmp_path / 'm.db'}", artifact_root)
    digests = [store.artifacts.put_bytes(f"blob {i}".encode()) for i in range(3)]
    with store.session() as s:
        for d in digests:
            store.record_artifact(d, 6, "test", s)
    store.artifacts.put_bytes(b"nobody recorded me")
    _good, changed, gone = digests
    _overwrite(artifact_root, f"sha256/{changed[:2]}/{changed}", b"blob X")
    _delete(artifact_root, f"sha256/{gone[:2]}/{gone}")
    report = verify_store(store)
    assert (report.checked, report.ok, report.unrecorded) == (3, 1, 1)
    assert [e["digest"] for e in report.corrupt] == [changed]
    assert [e["location"] for e in report.missing] == [store.artifacts.location(gone)]
    assert not report.healthy
    store.close()


def test_files_by_path_are_written_whole(artifact_root: str) -> None:
    """What is kept by path (prediction log segments) is written atomically and listed."""
    store = ArtifactStore(artifact_root)
    store.write_file("predictions/m/2026-01-01/a.parquet", b"one")
    store.write_file("predictions/m/2026-01-02/b.parquet", b"two")
    assert store.list_files("predictions/m/*/*.parquet") == [
        "predictions/m/2026-01-01/a.parquet",
        "predictions/m/2026-01-02/b.parquet",
    ]
    assert store.read_file("predictions/m/2026-01-02/b.parquet") == b"two"
    assert store.read_files(store.list_files("predictions/m/*/*.parquet")) == [b"one", b"two"]
    with pytest.raises(NotFoundError, match="predictions/x is not in the artifact store"):
        store.read_file("predictions/x")
    assert list(store.digests()) == [] and store.clean_tmp(older_than=0) == 0


WRITER = """
import sys
from mlcrew.store.artifacts import ArtifactStore
store = ArtifactStore(sys.argv[1])
print("ready", flush=True)
store.put_stream(sys.stdin.buffer)
print("done", flush=True)
"""


def _wait_for_partial_write(root: str, s3: object) -> bool:
    """True once a killed writer would leave something behind: bytes in tmp/ on disk, an
    upload with parts in it on S3."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if s3 is None:
            parts = list((Path(root) / "tmp").glob("*")) if (Path(root) / "tmp").exists() else []
            if parts and parts[0].stat().st_size >= 2 << 20:
                return True
        else:
            client = s3.client()  # type: ignore[attr-defined]
            uploads = client.list_multipart_uploads(Bucket=s3.name).get("Uploads", [])  # type: ignore[attr-defined]
            for u in uploads:
                listed = client.list_parts(Bucket=s3.name, Key=u["Key"], UploadId=u["UploadId"])  # type: ignore[attr-defined]
                if listed.get("Parts"):
                    return True
        time.sleep(0.05)
    return False


def test_writer_killed_mid_write_leaves_no_visible_artifact(
    artifact_root: str, request: pytest.FixtureRequest
) -> None:
    s3 = request.getfixturevalue("s3_bucket") if "://" in artifact_root else None
    store = ArtifactStore(artifact_root)
    kept = store.put_bytes(b"already stored")
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, artifact_root],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == b"ready"
    # Three chunks on disk; on S3 more than one upload part, so one part is in, never finished.
    proc.stdin.write(b"x" * ((3 << 20) if s3 is None else (12 << 20)))
    proc.stdin.flush()
    started = _wait_for_partial_write(artifact_root, s3)
    proc.kill()
    proc.wait()
    assert started, "the writer never started writing"
    assert list(store.digests()) == [kept]  # the half-written blob is not visible
    assert store.read_bytes(kept) == b"already stored"
    assert store.clean_tmp() == 0  # too recent: it could be a live writer's
    assert store.clean_tmp(older_than=0) == 1
    if s3 is None:
        assert list((Path(artifact_root) / "tmp").iterdir()) == []
    else:
        assert s3.keys() == [f"artifacts/sha256/{kept[:2]}/{kept}"]
        assert s3.client().list_multipart_uploads(Bucket=s3.name).get("Uploads", []) == []


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
