"""SQL transforms on more than one thread: row-level queries use every core by default and still
write the same bytes; the rest keep one thread unless the spec says otherwise."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from mlcrew.data.tables import connect, sandbox_views
from mlcrew.data.transforms import one_query, run_sql, sql_threads
from mlcrew.spec import Transform
from mlcrew.store import file_digest

ROW_LEVEL = "SELECT id, amount * 1.2 AS gross, upper(code) AS code FROM orders WHERE amount > 10"
GROUPED = "SELECT code, sum(amount) AS total FROM orders GROUP BY code"


@pytest.fixture(scope="module")
def orders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600,000 rows in row groups of 20,000: many morsels for the threads to share."""
    path = tmp_path_factory.mktemp("threads") / "orders.parquet"
    con = duckdb.connect()
    con.execute(
        "COPY (SELECT range AS id, (range * 7919 % 1000) / 7.0 AS amount, "
        "chr(97 + (range % 26)::INT) || (range % 97)::VARCHAR AS code FROM range(600000)) "
        f"TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 20000)"
    )
    return path


def threads_for(sql: str, orders: Path, **kw: object) -> int:
    con = connect()
    sandbox_views(con, {"orders": orders}, lock=False)
    wrapped = one_query(con, sql, "t", "t")
    return sql_threads(con, Transform(sql=sql, **kw), wrapped)  # type: ignore[arg-type]


def test_row_level_queries_use_every_core_others_one(orders: Path) -> None:
    assert threads_for(ROW_LEVEL, orders) > 1  # CI machines have 2 cores or more
    assert threads_for(GROUPED, orders) == 1
    assert threads_for("SELECT *, row_number() OVER () AS n FROM orders", orders) == 1
    assert threads_for("SELECT * FROM orders ORDER BY code", orders) == 1
    assert threads_for(GROUPED, orders, threads=2) == 2  # the spec's word is used as given


def test_row_level_output_is_the_same_bytes_on_one_thread_and_many(
    orders: Path, tmp_path: Path
) -> None:
    ((expected,),) = duckdb.sql(f"SELECT count(*) FROM '{orders}' WHERE amount > 10").fetchall()
    digests = set()
    for i, threads in enumerate((1, None, None, 3)):
        out = tmp_path / f"out-{i}.parquet"
        rows = run_sql("gross", Transform(sql=ROW_LEVEL, threads=threads), {"orders": orders}, out)
        assert rows == expected
        digests.add(file_digest(out))
    assert len(digests) == 1


def test_threads_is_for_sql_transforms_only() -> None:
    with pytest.raises(ValueError, match="threads: is for SQL transforms"):
        Transform(python="pipeline.tidy:clean", threads=2)


def test_parquet_bytes_follow_the_rows_not_the_batches(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcrew.data.tables import ROW_GROUP, write_batches, write_parquet

    n = ROW_GROUP + 12_345  # two row groups
    table = pa.table({"id": pa.array(range(n)), "tag": pa.array([f"t{i % 13}" for i in range(n)])})
    write_parquet(table, tmp_path / "whole.parquet")
    digests = {file_digest(tmp_path / "whole.parquet")}
    for size in (1, 777, 100_000, ROW_GROUP):
        path = tmp_path / f"batches-{size}.parquet"
        batches = (
            table.to_batches(max_chunksize=size) if size > 1 else table.slice(0, 3).to_batches()
        )
        if size == 1:  # uneven batches: three tiny ones, then the rest
            batches = [*batches, *table.slice(3).to_batches(max_chunksize=65_536)]
        assert write_batches(table.schema, batches, path) == n
        digests.add(file_digest(path))
    for threads in (1, 3):  # row groups encoded on a pool of threads, then joined
        path = tmp_path / f"threads-{threads}.parquet"
        assert write_batches(table.schema, table.to_batches(65_536), path, threads) == n
        digests.add(file_digest(path))
    assert len(digests) == 1
    import duckdb

    joined = tmp_path / "whole.parquet"
    assert pq.read_table(joined).equals(table)
    assert pq.ParquetFile(joined).metadata.num_row_groups == 2
    # DuckDB finds the second row group's pages and prunes by its statistics.
    got = duckdb.sql(f"SELECT count(*), sum(id), max(tag) FROM '{joined}' WHERE id >= {ROW_GROUP}")
    assert got.fetchall() == [(12_345, sum(range(ROW_GROUP, n)), "t9")]
    empty = tmp_path / "empty.parquet"
    assert write_batches(table.schema, [], empty) == 0
    assert pq.read_table(empty).schema.names == ["id", "tag"]


def test_a_written_table_is_stored_without_reading_it_back(tmp_path: Path) -> None:
    import pyarrow as pa

    from mlcrew.data.tables import write_parquet
    from mlcrew.store.artifacts import ArtifactStore

    store = ArtifactStore(tmp_path / "store")
    table = pa.table({"id": pa.array(range(50_000))})
    out = store.scratch_file(".parquet")
    assert out is not None
    write_parquet(table, out)
    expected = file_digest(out)
    digest = store.adopt_file(out)
    assert digest == expected and not out.exists()
    assert file_digest(store.blob_path(digest)) == digest
    # A file changed after it was written is hashed again, never trusted.
    again = store.scratch_file(".parquet")
    assert again is not None
    write_parquet(table, again)
    with open(again, "ab") as f:
        f.write(b"tampered")
    tampered = file_digest(again)
    assert tampered != digest
    assert store.adopt_file(again) == tampered
