"""Sources from databases (SQLite and a real PostgreSQL) and from an S3-API object store: read
into the pipeline, cached while the data is unchanged, re-run when a row changes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from mlcrew.errors import DataError
from mlcrew.pipeline.runner import Runner
from mlcrew.project import Project
from mlcrew.spec import parse_spec
from tests.conftest import _pg_database
from tests.s3 import S3Bucket

ROWS = [(i, i % 7 * 1.5, i % 3, 2 * i + i % 3) for i in range(1, 61)]


def _fill(url: str) -> None:
    """A `trips` table with a primary key, rows inserted in shuffled order."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE trips "
                "(id INTEGER PRIMARY KEY, dist NUMERIC(6,2), kind INTEGER, y REAL)"
            )
        )
        rows = sorted(ROWS, key=lambda r: (r[0] * 37) % 61)
        conn.execute(
            text("INSERT INTO trips VALUES (:i, :d, :k, :y)"),
            [{"i": i, "d": d, "k": k, "y": y} for i, d, k, y in rows],
        )
    engine.dispose()


def _update(url: str, sql: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()


def _project(root: Path, source: str) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    (root / "mlcrew.yaml").write_text(
        f"name: t\nsources:\n  trips: {source}\ndataset: {{from: trips}}\ntarget: y\n"
        "task: regression\ntraining: {budget: {trials: 1, rounds: 10}}\n"
    )
    return Project.open(root, db_url=f"sqlite:///{root / 'meta.db'}")


def _states(proj: Project) -> dict[str, str]:
    spec = parse_spec((proj.root / "mlcrew.yaml").read_text())
    result = Runner(proj.root, proj.store, spec, (proj.root / "mlcrew.yaml").read_text()).run()
    return {o.name: o.state for o in result.stages}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'shop.db'}" if request.param == "sqlite" else _pg_database()
    _fill(url)
    yield url


def test_a_table_source_is_cached_until_a_row_changes(database: str, tmp_path: Path) -> None:
    proj = _project(tmp_path / "p", f"{{url: '{database}', table: trips}}")
    first = _states(proj)
    assert first["ingest"] == "executed"
    with proj.store.session() as s:
        from sqlalchemy import select

        from mlcrew.store.models import StageExecution

        ingest = s.scalars(select(StageExecution).where(StageExecution.stage == "ingest")).one()
        dataset = ingest.outputs["dataset"]
    import pyarrow.parquet as pq

    table = pq.read_table(proj.store.artifacts.local_path(dataset))
    assert table.column("id").to_pylist() == list(range(1, 61))  # primary-key order
    assert table.column("dist").to_pylist()[:3] == [1.5, 3.0, 4.5]  # NUMERIC as float64
    assert set(_states(proj).values()) == {"cached"}  # unchanged table: nothing re-runs
    _update(database, "UPDATE trips SET y = y + 1 WHERE id = 5")
    assert _states(proj)["ingest"] == "executed"
    proj.close()


def test_a_query_source_reads_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    _fill(url)
    proj = _project(
        tmp_path / "p", "{url: 'sqlite:///../shop.db', query: 'SELECT * FROM trips WHERE kind > 0'}"
    )
    assert _states(proj)["train"] == "executed"  # a relative SQLite path: from the project
    proj.close()
    proj = _project(tmp_path / "q", f"{{url: '{url}', query: 'DELETE FROM trips'}}")
    with pytest.raises(DataError, match=r"source 'trips' \(sqlite:///.*query\): OperationalError"):
        _states(proj)
    assert sqlite3.connect(tmp_path / "shop.db").execute(
        "SELECT count(*) FROM trips"
    ).fetchone() == (60,)
    proj.close()
    proj = _project(tmp_path / "r", f"{{url: '{url}', table: tirps}}")
    with pytest.raises(DataError, match=r"the database has no table 'tirps'; tables: trips"):
        _states(proj)
    proj.close()


def test_a_password_comes_from_the_environment_and_never_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = _project(
        tmp_path / "p", "{url: 'postgresql://me:${SHOP_PW}@127.0.0.1:1/shop', table: t}"
    )
    with pytest.raises(DataError, match=r"uses \$\{SHOP_PW\}, which is not set"):
        _states(proj)
    monkeypatch.setenv("SHOP_PW", "hunter2")
    with pytest.raises(DataError) as info:
        _states(proj)
    assert "hunter2" not in str(info.value) and "***@127.0.0.1:1/shop" in str(info.value)
    proj.close()


def _put(bucket: S3Bucket, key: str, body: str) -> None:
    bucket.client().put_object(Bucket=bucket.name, Key=key, Body=body.encode())


def test_object_store_files_and_globs_are_fetched_only_when_changed(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    from mlcrew.pipeline.sources import digest_cache, source_digest

    body = "id,x,y\n" + "".join(f"{i},{i % 5},{i * 2}\n" for i in range(40))
    _put(s3_bucket, "raw/2024-01.csv", body)
    _put(s3_bucket, "raw/2024-02.csv", body.replace("id,x,y\n", "id,x,y\n99,1,2\n"))
    proj = _project(tmp_path / "p", f"{{path: 's3://{s3_bucket.name}/raw/*.csv', filename: file}}")
    assert _states(proj)["ingest"] == "executed"
    src: Any = parse_spec((proj.root / "mlcrew.yaml").read_text()).sources["trips"]
    cache = digest_cache(proj.root)
    before = source_digest(proj.root, proj.store, "trips", src, cache, keep=True)
    assert cache.hashed == 0  # both objects' stamps are known: nothing downloaded
    assert _states(proj)["ingest"] == "cached"
    _put(s3_bucket, "raw/2024-02.csv", body)
    cache = digest_cache(proj.root)
    assert source_digest(proj.root, proj.store, "trips", src, cache, keep=True) != before
    assert cache.hashed == 1  # only the changed object was fetched
    assert _states(proj)["ingest"] == "executed"
    proj.close()
    proj = _project(tmp_path / "q", f"{{path: 's3://{s3_bucket.name}/raw/nothing-*.csv'}}")
    with pytest.raises(DataError, match=r"raw/nothing-\*.csv matches no object"):
        _states(proj)
    proj.close()
