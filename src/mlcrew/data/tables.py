"""Reading and writing tables: DuckDB in, Arrow in memory, Parquet on disk (deterministically)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcrew.errors import DataError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa


def connect(threads: int = 1) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB. One thread (the default) keeps row order and floating-point
    sums identical from run to run; more are for queries whose answers are exact counts."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute(f"SET threads={max(1, int(threads))}")
    con.execute("SET preserve_insertion_order=true")
    con.execute("SET enable_progress_bar=false")  # DuckDB would draw it on our stderr
    return con


def sandbox_views(
    con: duckdb.DuckDBPyConnection, paths: dict[str, str] | dict[str, Path], *, lock: bool = True
) -> None:
    """A view per table over its Parquet file (the only paths DuckDB may then open), then
    external access and every setting locked: what runs after reads these tables, nothing
    else. Transforms, checks and queries all run in this sandbox. With `lock=False` the caller
    may still change settings, and must call `lock_sandbox` before running anything it did
    not write."""
    con.execute("SET allowed_paths=$paths", {"paths": [str(p) for p in paths.values()]})
    for table, path in paths.items():
        quoted = "'" + str(path).replace("'", "''") + "'"
        name = '"' + table.replace('"', '""') + '"'
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({quoted})")
    if lock:
        lock_sandbox(con)


def lock_sandbox(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET enable_external_access=false")
    con.execute("SET lock_configuration=true")


# Operators that keep their input's row order and compute each output row from one input row,
# so a plan made only of them gives the same rows in the same order on any number of threads
# (DuckDB's preserve_insertion_order): scans, filters, projections, limits.
ROW_LEVEL = frozenset(
    {"PROJECTION", "FILTER", "READ_PARQUET", "TABLE_SCAN", "SEQ_SCAN", "LIMIT", "STREAMING_LIMIT"}
)


def plan_operators(con: duckdb.DuckDBPyConnection, sql: str) -> set[str]:
    """The physical operators of a query's plan (EXPLAIN, nothing is run)."""
    import json

    rows = con.execute(f"EXPLAIN (FORMAT JSON) {sql}").fetchall()
    found: set[str] = set()
    stack = [node for _, plan in rows for node in json.loads(plan)]
    while stack:
        node = stack.pop()
        found.add(str(node.get("name", "")).strip())
        stack.extend(node.get("children", []))
    return found


def reader_sql(path: Path, fmt: str, options: dict[str, Any] | None = None) -> str:
    """A DuckDB table function reading a Parquet or JSON file (or a glob of them)."""
    options = options or {}
    quoted = "'" + str(path).replace("'", "''") + "'"
    if fmt == "parquet":
        return f"read_parquet({quoted})"
    if fmt == "json":
        return f"read_json_auto({quoted})"
    raise DataError(f"{path}: unknown format {fmt!r}; use csv, parquet or json")


def load_file(
    con: duckdb.DuckDBPyConnection,
    name: str,
    path: Path,
    fmt: str,
    label: str,
    options: dict[str, Any] | None = None,
) -> int:
    """Materialise a file as table `name`; return its row count. Errors name the file."""
    return int(load_table(con, name, path, fmt, label, options)["rows"])


def load_table(
    con: duckdb.DuckDBPyConnection,
    name: str,
    path: Path,
    fmt: str,
    label: str,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Materialise a file as table `name`; return what was read (rows, skipped bad lines)."""
    import duckdb

    from mlcrew.data.csvfile import CsvOptions, load_csv

    if fmt == "csv":
        return load_csv(con, name, path, CsvOptions.from_options(options or {}), label).record()
    try:
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM {reader_sql(path, fmt, options)}')
    except duckdb.Error as exc:
        reason = str(exc).splitlines()[0]
        for quoted in (f'"{path}"', f"'{path}'", str(path)):
            reason = reason.replace(quoted, "the file")
        raise DataError(f"{label}: cannot read as {fmt}: {reason}") from None
    return {"rows": int(scalar(con, f'SELECT count(*) FROM "{name}"'))}


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    """The single value of a query; fetchall() completes the result, as DuckDB 2 requires."""
    rows = con.execute(sql).fetchall()
    return rows[0][0] if rows else None


def fetch_arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """Run a query and return an Arrow table (DuckDB 2 renamed the method)."""
    relation = con.sql(sql)
    method = getattr(relation, "to_arrow_table", None) or relation.arrow
    return method()


def format_of(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    fmt = {"pq": "parquet", "jsonl": "json", "ndjson": "json", "tsv": "csv"}.get(suffix, suffix)
    if fmt not in ("csv", "parquet", "json"):
        raise DataError(f"{path}: cannot tell the format from the extension; use .csv or .parquet")
    return fmt


# Rows per Parquet row group: PyArrow's default, fixed here because the bytes depend on it.
ROW_GROUP = 1024 * 1024


def write_parquet(table: pa.Table, path: Path, threads: int | None = None) -> None:
    """Parquet with fixed settings, so equal tables give equal bytes (see write_batches)."""
    write_batches(table.schema, table.to_batches(), path, threads)


def cores() -> int:
    """The CPUs this process may run on (its affinity mask, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# Encoder threads at most, and Arrow bytes of row groups waiting for one: what the writer adds
# to a process's memory stays bounded on a machine with many cores.
WRITE_THREADS = 4
WRITE_BUDGET = 512 * 1024 * 1024


def write_batches(
    schema: pa.Schema, batches: Iterable[pa.RecordBatch], path: Path, threads: int | None = None
) -> int:
    """Write a stream of batches as Parquet; return the row count.

    The rows are regrouped into row groups of exactly ROW_GROUP rows (the last one smaller),
    each written from contiguous columns, so the bytes depend only on the rows: not on how they
    arrived in batches, which depends on the thread count that produced them. Each row group is
    encoded as a Parquet file of its own on a pool of `threads` (default: this process's cores,
    up to WRITE_THREADS), and the parts are joined into one file without re-encoding (see
    parquetjoin), so the bytes do not depend on the pool's size either. Streaming overlaps the
    encoding with the query that makes the batches, and holds only a few row groups in memory."""
    from concurrent.futures import ThreadPoolExecutor

    from mlcrew.data.parquetjoin import join
    from mlcrew.store.artifacts import HashingFile

    workers = max(1, threads or min(cores(), WRITE_THREADS))
    counted = [0]
    with ThreadPoolExecutor(workers, thread_name_prefix="parquet") as pool:
        parts = _encoded(pool, _row_groups(schema, batches, counted), ahead=workers)
        head = [next(parts)]
        second = next(parts, None)
        # Hashed as it is written: storing the file afterwards need not read it back.
        with HashingFile(path) as sink:
            if second is None:  # one row group: the part is the file
                sink.write(head.pop())
            else:
                head.append(second)
                del second
                join(_drained(head, parts), sink)
    return counted[0]


def _row_groups(
    schema: pa.Schema, batches: Iterable[pa.RecordBatch], counted: list[int]
) -> Iterator[pa.Table]:
    """Tables of exactly ROW_GROUP rows (the last one smaller; one empty table if no rows)."""
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        counted[0] += batch.num_rows
        while batch.num_rows:
            take = min(ROW_GROUP - held, batch.num_rows)
            pending.append(batch.slice(0, take))
            held += take
            batch = batch.slice(take)
            if held == ROW_GROUP:
                yield pa.Table.from_batches(pending, schema=schema).combine_chunks()
                pending, held = [], 0
    if pending or counted[0] == 0:
        yield pa.Table.from_batches(pending, schema=schema).combine_chunks()


def _encode(group: pa.Table) -> memoryview:
    """One row group as a whole Parquet file, with the fixed settings the bytes depend on."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(
        group,
        sink,
        row_group_size=ROW_GROUP,
        compression="zstd",
        use_dictionary=True,
        write_statistics=True,
        store_schema=True,
    )
    return memoryview(sink.getvalue())  # no copy: join slices it


def _encoded(pool: Any, groups: Iterator[pa.Table], ahead: int) -> Iterator[memoryview]:
    """The groups encoded on `pool` (PyArrow releases the GIL), yielded in order, with at
    most `ahead` + 1 groups in flight, and fewer when they hold more than WRITE_BUDGET."""
    from collections import deque

    flight: deque[tuple[Any, int]] = deque()
    held = 0
    for group in groups:
        flight.append((pool.submit(_encode, group), group.nbytes))
        held += group.nbytes
        del group  # the encoder's reference is the only one left
        while len(flight) > ahead or (held > WRITE_BUDGET and len(flight) > 1):
            future, size = flight.popleft()
            held -= size
            yield future.result()
    while flight:
        yield flight.popleft()[0].result()


def _drained(head: list[memoryview], rest: Iterator[memoryview]) -> Iterator[memoryview]:
    """`head`'s parts, then `rest`'s, each let go of once it is handed on."""
    while head:
        yield head.pop(0)
    yield from rest


def parquet_bytes(table: pa.Table) -> bytes:
    """A table as Parquet bytes with the same fixed settings as write_parquet."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.parquet"
        write_parquet(table, path)
        return path.read_bytes()


def read_parquet(path: Path) -> pa.Table:
    import pyarrow.parquet as pq

    return pq.read_table(path)


def read_parquet_bytes(data: bytes) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(data))


def schema_of(table: pa.Table) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in table.schema]
