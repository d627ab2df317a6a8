"""Read-only SQL over the project's datasets, for people and programs (`mlcrew data query`,
`POST /v1/query`).

Each dataset is a table by name (its latest version) or `NAME@VERSION`. A query runs in a
fresh in-memory DuckDB connection that sees only the Parquet files of the tables it names,
with external access, extensions and settings locked (no files, network, ATTACH, COPY,
INSTALL, SET or PRAGMA), one SELECT only, a memory limit, a time limit and a row limit.
Results stream out in batches as JSON, CSV, Arrow IPC or Parquet.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from mlcrew.checks.rules import jsonable
from mlcrew.data.tables import connect, sandbox_views
from mlcrew.data.watchdog import WATCHDOG
from mlcrew.errors import (
    DataError,
    LimitExceeded,
    MlcrewError,
    NotFoundError,
    QueryError,
    QueryTimeout,
)
from mlcrew.store import Store

Format = Literal["json", "csv", "arrow", "parquet"]
FORMATS: tuple[Format, ...] = ("json", "csv", "arrow", "parquet")
MEDIA = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
}
BATCH_ROWS = 8192
_VERSIONED = re.compile(r'(?<![\w"@])([A-Za-z_][A-Za-z0-9_]*)@(\d+)\b')


@dataclass(frozen=True)
class Limits:
    seconds: float = 30.0
    rows: int = 100_000
    memory_mb: int = 2048
    threads: int | None = None  # None: every core

    @classmethod
    def of(cls, spec: Any, rows: int | None = None) -> Limits:
        """The limits of `serving.query` (a QueryLimits), `rows` overriding its row limit."""
        return cls(spec.seconds, spec.rows if rows is None else rows, spec.memory_mb, spec.threads)


@dataclass
class QueryResult:
    columns: list[str]
    batches: Iterator[Any]  # pyarrow.RecordBatch, at most `limit` rows in all
    limit: int
    schema: Any = None  # pyarrow.Schema of the batches
    tables: dict[str, int] = field(default_factory=dict)  # dataset -> version read
    _con: Any = None
    _timer: int | None = None  # the watchdog's handle for the time limit

    _release: Any = None

    def close(self) -> None:
        if self._timer is not None:
            WATCHDOG.cancel(self._timer)
            self._timer = None
        if self._con is not None:
            self._con.close()
            self._con = None
            if self._release is not None:
                self._release()


class Sandboxes:
    """Sandboxed in-memory DuckDB databases, kept by the tables they see (a database costs
    ~20 ms to open; a connection to an open one, microseconds). Each has views over exactly the
    Parquet files of its tables (`allowed_paths`), then external access and configuration
    locked; a query gets its own connection (cursor) to one, so concurrent queries do not
    share state, and a time limit interrupts only its own query. The memory limit is the
    database's, shared by the queries running on it at once."""

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._open: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._users: dict[int, int] = {}  # id(database) -> cursors not yet released
        self._evicted: dict[int, Any] = {}  # evicted databases, closed when their last goes

    def cursor(self, paths: dict[str, str], limits: Limits) -> tuple[Any, Any]:
        """(database, cursor); give the database back with `release` when the query ends."""
        key = (tuple(sorted(paths.items())), limits.memory_mb, limits.threads)
        with self._lock:
            db = self._open.get(key)
            if db is None:
                db = self._build(paths, limits)
                self._open[key] = db
                while len(self._open) > self.keep:
                    old = self._open.popitem(last=False)[1]
                    if self._users.get(id(old), 0):
                        self._evicted[id(old)] = old  # in use: closed by its last release
                    else:
                        old.close()
            self._open.move_to_end(key)
            self._users[id(db)] = self._users.get(id(db), 0) + 1
            return db, db.cursor()

    def release(self, db: Any) -> None:
        with self._lock:
            left = self._users.get(id(db), 1) - 1
            if left:
                self._users[id(db)] = left
                return
            self._users.pop(id(db), None)
            evicted = self._evicted.pop(id(db), None)
        if evicted is not None:
            evicted.close()

    @staticmethod
    def _build(paths: dict[str, str], limits: Limits) -> Any:
        con = connect()
        con.execute(f"SET memory_limit='{limits.memory_mb}MB'")
        con.execute(f"SET threads={limits.threads or os.cpu_count() or 1}")
        sandbox_views(con, paths)
        return con

    def close(self) -> None:
        with self._lock:
            while self._open:
                self._open.popitem()[1].close()


SANDBOXES = Sandboxes()


_LITERALS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.DOTALL)


def _quote_versions(sql: str) -> str:
    """`trips@3` -> `"trips@3"`, so a version reads as one table name; text in quotes and
    comments is left as it is."""
    out, at = [], 0
    for literal in _LITERALS.finditer(sql):
        out.append(_VERSIONED.sub(_quoted, sql[at : literal.start()]))
        out.append(literal.group(0))
        at = literal.end()
    out.append(_VERSIONED.sub(_quoted, sql[at:]))
    return "".join(out)


def _quoted(m: re.Match[str]) -> str:
    return f'"{m.group(1)}@{m.group(2)}"'


def run_query(
    store: Store, sql: str, limit: int | None = None, limits: Limits = Limits()
) -> QueryResult:
    """Start a query; its batches stream from the result (close it when done)."""
    import duckdb

    from mlcrew.data.catalog import latest
    from mlcrew.data.transforms import sql_tables

    cap = limits.rows if limit is None else limit
    if cap < 0 or cap > limits.rows:
        raise LimitExceeded(f"limit {cap} is more than this server allows ({limits.rows} rows)")
    text = _quote_versions(sql.strip().rstrip(";"))
    try:
        named = sql_tables(text)
    except DataError as exc:
        raise QueryError(f"not valid SQL: {exc}") from None
    if named is None:
        raise QueryError("forbidden statement: a query is one SELECT (or WITH ... SELECT)")
    versions = {name: latest(store, name) for name in sorted(named)}
    paths = {n: str(store.artifacts.local_path(digest)) for n, (_, digest) in versions.items()}
    db, con = SANDBOXES.cursor(paths, limits)  # a connection of a sandboxed database
    timer: int | None = None
    try:
        statements = con.extract_statements(text)
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            raise QueryError("forbidden statement: a query is one SELECT (or WITH ... SELECT)")
        timer = WATCHDOG.after(limits.seconds, con.interrupt)
        # On its own lines: a trailing `-- comment` must not swallow the parenthesis.
        relation = con.sql(f"SELECT * FROM (\n{text}\n) LIMIT {int(cap)}")
        columns = list(relation.columns)
        # DuckDB 2 renamed fetch_record_batch to to_arrow_reader.
        to_reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
        reader = to_reader(BATCH_ROWS)
        # The first batch here: most errors (a bad cast, the time limit) show up by then and
        # become a 4xx, instead of a body cut short after a 200.
        first = _next(reader, limits)
    except BaseException as exc:
        if timer is not None:
            WATCHDOG.cancel(timer)
        con.close()
        SANDBOXES.release(db)
        if isinstance(exc, duckdb.InterruptException):
            raise QueryTimeout(_timeout(limits)) from None
        if isinstance(exc, duckdb.Error):
            raise _translate(exc, limits) from None
        raise
    result = QueryResult(columns, iter(()), cap, tables={n: v for n, (v, _) in versions.items()})
    result._con, result._timer, result.schema = con, timer, reader.schema
    result._release = lambda: SANDBOXES.release(db)
    result.batches = _guarded(reader, first, result, limits)
    return result


def _next(reader: Any, limits: Limits) -> Any:
    """The reader's next batch (None at the end), its errors said as the library's: DuckDB's
    errors reach the Arrow reader as OSError or ArrowException."""
    import duckdb
    import pyarrow as pa

    try:
        return reader.read_next_batch()
    except StopIteration:
        return None
    except duckdb.InterruptException:
        raise QueryTimeout(_timeout(limits)) from None
    except duckdb.Error as exc:
        raise _translate(exc, limits) from None
    except (OSError, pa.ArrowException) as exc:
        if "INTERRUPT" in str(exc).upper():
            raise QueryTimeout(_timeout(limits)) from None
        raise QueryError(str(exc).strip().splitlines()[0]) from None


def _guarded(reader: Any, first: Any, result: QueryResult, limits: Limits) -> Iterator[Any]:
    try:
        batch = first
        while batch is not None:
            yield batch
            batch = _next(reader, limits)
    finally:
        result.close()


def _timeout(limits: Limits) -> str:
    return (
        f"the query ran past the time limit of {limits.seconds:g} s and was stopped; "
        "aggregate more, select fewer rows or columns, or run it in a transform"
    )


def _translate(exc: Exception, limits: Limits) -> MlcrewError:
    import duckdb

    first = str(exc).strip().splitlines()[0]
    if isinstance(exc, duckdb.OutOfMemoryException):
        return LimitExceeded(
            f"the query needs more than the memory limit of {limits.memory_mb} MB: {first}"
        )
    if isinstance(exc, duckdb.PermissionException):
        return QueryError(f"forbidden: {first}; a query reads the project's datasets only")
    if isinstance(exc, duckdb.CatalogException):
        return NotFoundError(first)
    return QueryError(first)


def prefetch(
    chunks: Iterator[bytes], size: int = 256 * 1024
) -> tuple[bytes, Iterator[bytes] | None]:
    """Up to `size` bytes of a response, and the rest (None when that was all): a small result
    goes out in one piece, without a hop to a worker thread per chunk."""
    head: list[bytes] = []
    held = 0
    for chunk in chunks:
        head.append(chunk)
        held += len(chunk)
        if held >= size:
            return b"".join(head), chunks
    return b"".join(head), None


def encode(result: QueryResult, fmt: Format) -> Iterator[bytes]:
    """The result as bytes, batch by batch: JSON {"columns", "rows"}, CSV with a header,
    an Arrow IPC stream or a Parquet file."""
    import pyarrow as pa

    if fmt == "json":
        yield b'{"columns": ' + json.dumps(result.columns).encode() + b', "rows": ['
        first = True
        for batch in result.batches:
            cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            rows = [[jsonable(v) for v in row] for row in zip(*cols, strict=True)]
            if not rows:
                continue
            body = ", ".join(json.dumps(r, default=str) for r in rows)
            yield (b"" if first else b", ") + body.encode()
            first = False
        yield b"]}"
        return
    if fmt == "csv":
        import pyarrow.csv as pcsv

        header = True
        for batch in result.batches:
            out = io.BytesIO()
            pcsv.write_csv(
                _flat(pa.Table.from_batches([batch])),
                out,
                pcsv.WriteOptions(include_header=header),
            )
            header = False
            yield out.getvalue()
        if header:  # no rows: still the header
            yield (",".join(json.dumps(c) for c in result.columns) + "\n").encode()
        return
    if fmt == "parquet":
        # Spooled to a temporary file batch by batch (a Parquet footer comes last), then sent
        # in chunks: a large result never sits in memory whole.
        import tempfile

        import pyarrow.parquet as pq

        with tempfile.TemporaryFile() as spool:
            schema = result.schema if result.schema is not None else _empty(result).schema
            with pq.ParquetWriter(spool, schema, compression="zstd") as parquet:
                for batch in result.batches:
                    parquet.write_batch(batch)
            spool.seek(0)
            while chunk := spool.read(1 << 20):
                yield chunk
        return
    sink = io.BytesIO()
    writer = None
    for batch in result.batches:
        if writer is None:
            writer = pa.ipc.new_stream(sink, batch.schema)
        writer.write_batch(batch)
        yield sink.getvalue()
        sink.seek(0)
        sink.truncate()
    if writer is None:
        writer = pa.ipc.new_stream(sink, _empty(result).schema)
    writer.close()
    yield sink.getvalue()


def _flat(table: Any) -> Any:
    """Lists, structs and maps as JSON text: CSV has no nested values."""
    import pyarrow as pa

    for i, column in enumerate(table.schema):
        if pa.types.is_nested(column.type):
            values = [
                None if v is None else json.dumps(v, default=str)
                for v in table.column(i).to_pylist()
            ]
            table = table.set_column(i, column.name, pa.array(values, pa.string()))
    return table


def _empty(result: QueryResult) -> Any:
    import pyarrow as pa

    if result.schema is not None:
        return result.schema.empty_table()
    return pa.table({c: pa.array([], pa.null()) for c in result.columns})


def query_json(store: Store, sql: str, limit: int | None = None) -> dict[str, Any]:
    """The whole result as {"columns": [...], "rows": [[...], ...]} (for small results)."""
    result = run_query(store, sql, limit)
    doc: dict[str, Any] = json.loads(b"".join(encode(result, "json")))
    return doc
