"""Transforms, one at a time: which tables each reads, and running it on its inputs alone.

A SQL transform runs in a fresh DuckDB connection that sees only its input tables (views over
their Parquet files, the only paths it may open) with external access, extensions and settings
locked, a memory limit, and a time limit enforced by interrupting the query. A Python
transform runs in a child process (pyrun.py). Either way a transform reads nothing but its
declared inputs, so its output is a function of them and its code: what its cache key says.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcrew.data.tables import (
    ROW_LEVEL,
    connect,
    lock_sandbox,
    plan_operators,
    sandbox_views,
    write_batches,
    write_parquet,
)
from mlcrew.errors import DataError
from mlcrew.spec import Transform
from mlcrew.wording import plural

# Rows per batch DuckDB hands over while a SQL transform streams into its Parquet file.
STREAM_BATCH = 122_880

if TYPE_CHECKING:
    import pyarrow as pa

WHERE = "mlcrew.yaml"


def sql_tables(sql: str) -> set[str] | None:
    """The table names a SELECT reads (CTE names excluded), from DuckDB's own parser: its
    syntax tree as JSON (no binding, so no table needs to exist), or for statements it cannot
    serialise its table-name finder. None when neither can tell (a PIVOT statement): the
    caller then takes every table it may read. Remembered per text: dashboards and the query
    API send the same statements again and again."""
    found = _tables_of(sql)
    return set(found) if found is not None else None


@lru_cache(maxsize=512)
def _tables_of(sql: str) -> frozenset[str] | None:
    found = _parse_tables(sql)
    return frozenset(found) if found is not None else None


def _parse_tables(sql: str) -> set[str] | None:
    import json

    import duckdb

    con = _parser()
    try:
        text = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0]
        try:
            tree = json.loads(text)
        except RecursionError:
            raise DataError("the statement is nested too deeply to read") from None
        if not tree.get("error"):
            tables: set[str] = set()
            ctes: set[str] = set()
            _walk(tree, tables, ctes)
            return tables - ctes
        if tree.get("error_type") == "parser":
            raise DataError(str(tree.get("error_message", "syntax error")).splitlines()[0])
        try:
            return set(con.get_table_names(sql))
        except duckdb.Error:
            return None
    except duckdb.Error as exc:
        raise DataError(str(exc).splitlines()[0]) from None
    finally:
        con.close()


_PARSER: list[Any] = []
_PARSER_LOCK = threading.Lock()


def _parser() -> Any:
    """A connection for parsing only: one database per process (opening one costs ~20 ms),
    a fresh connection to it per call (those cost microseconds and are not shared)."""
    import duckdb

    with _PARSER_LOCK:
        if not _PARSER:
            _PARSER.append(duckdb.connect(":memory:"))
        return _PARSER[0].cursor()


def _walk(node: object, tables: set[str], ctes: set[str]) -> None:
    # Iterative would avoid the limit; json.loads above refuses deeper trees than this reaches.
    if isinstance(node, dict):
        if node.get("type") == "BASE_TABLE" and node.get("table_name"):
            tables.add(str(node["table_name"]))
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            ctes.update(str(m.get("key")) for m in cte_map.get("map", []))
        for value in node.values():
            _walk(value, tables, ctes)
    elif isinstance(node, list):
        for value in node:
            _walk(value, tables, ctes)


def inputs_of(name: str, transform: Transform, known: list[str], project: Path | None) -> list[str]:
    """The tables a transform reads, each a source or a transform above it."""
    if transform.sql is not None:
        try:
            read = sql_tables(transform.sql)
        except DataError as exc:
            raise DataError(
                f"transform {name!r} is not valid SQL: {exc}; fix transforms.{name} in {WHERE}"
            ) from None
        if read is None:
            return list(known)
        # Case as DuckDB resolves names: a table written `Trips` is the source `trips`.
        by_lower = {k.lower(): k for k in known}
        unknown = sorted(t for t in read if t.lower() not in by_lower)
        found = {by_lower[t.lower()] for t in read if t.lower() in by_lower}
        if unknown:
            raise DataError(
                f"transform {name!r} reads {', '.join(map(repr, unknown))}, which "
                f"{'is' if len(unknown) == 1 else 'are'} neither a source nor a transform above "
                f"it; tables it may read: {', '.join(known) or 'none'}"
            )
        return [k for k in known if k in found]
    if transform.embed is not None:
        if transform.embed.table not in known:
            raise DataError(
                f"transform {name!r} embeds {transform.embed.table!r}, which is neither a source "
                f"nor a transform above it; tables it may read: {', '.join(known)}"
            )
        return [transform.embed.table]
    if transform.inputs is not None:
        names = list(transform.inputs)
    else:
        if project is None:
            raise DataError(f"transform {name!r} is Python code: it needs the project folder")
        from mlcrew.data.pycode import locate

        _, names = locate(project, str(transform.python), f"transforms.{name}")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DataError(
            f"transform {name!r} ({transform.python}) takes {', '.join(map(repr, unknown))}, "
            f"which {'is' if len(unknown) == 1 else 'are'} neither a source nor a transform "
            f"above it; name its parameters after tables it may read: {', '.join(known)}"
        )
    return names


def one_query(con: Any, sql: str, what: str, fix: str) -> str:
    """`sql` as a subquery, `SELECT * FROM (sql)`, if it is exactly one query. Only a query
    parses inside FROM (...): a PIVOT statement has the type MULTI, and so has a COPY or a
    CREATE that contains one, so the statement's type alone cannot tell them apart."""
    import duckdb

    wrapped = f"SELECT * FROM (\n{sql}\n)"
    try:
        if len(con.extract_statements(wrapped)) == 1:
            return wrapped
    except duckdb.Error:
        pass
    statements = con.extract_statements(sql)  # a syntax error is said by the caller
    found = (
        f"a {statements[0].type.name} statement"
        if len(statements) == 1
        else plural(len(statements), "statement")
    )
    raise DataError(f"{what} must be exactly one SELECT statement (found {found}); fix {fix}")


def sql_threads(con: Any, transform: Transform, sql: str) -> int:
    """DuckDB threads for a SQL transform: the spec's `threads`, else every core for a
    row-level query (same rows, same order, same bytes on any thread count) and one for the
    rest (a parallel group-by orders its groups, and adds up floats, differently each run)."""
    import duckdb

    if transform.threads is not None:
        return int(transform.threads)
    try:
        row_level = plan_operators(con, sql) <= ROW_LEVEL
    except duckdb.Error:  # an invalid query is reported when it runs
        row_level = False
    return max(1, os.cpu_count() or 1) if row_level else 1


def run_sql(name: str, transform: Transform, inputs: dict[str, Path], out: Path) -> int:
    """Run one SQL transform over its inputs' Parquet files; write its table to `out`."""
    import duckdb

    sql = str(transform.sql)
    con = connect()
    try:
        con.execute(f"SET memory_limit='{transform.memory_mb}MB'")
        sandbox_views(con, inputs, lock=False)
        wrapped = one_query(con, sql, f"transform {name!r}", f"transforms.{name} in {WHERE}")
        con.execute(f"SET threads={sql_threads(con, transform, wrapped)}")
        lock_sandbox(con)
        timer = threading.Timer(transform.timeout_seconds, con.interrupt)
        timer.start()
        try:
            # Streamed: PyArrow writes one row group while DuckDB's threads make the next.
            relation = con.sql(wrapped)
            # DuckDB 2 renamed fetch_record_batch to to_arrow_reader.
            to_reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
            reader = to_reader(STREAM_BATCH)
            rows = write_batches(reader.schema, reader, out, transform.threads)
        except duckdb.InterruptException:
            raise DataError(
                f"transform {name!r} ran past its time limit of {transform.timeout_seconds:g} s "
                f"and was stopped; make it cheaper, or raise transforms.{name}.timeout_seconds"
            ) from None
        finally:
            timer.cancel()
    except duckdb.OutOfMemoryException:
        raise DataError(
            f"transform {name!r} ran out of its memory limit of {transform.memory_mb} MB; make it "
            f"lighter, or raise transforms.{name}.memory_mb"
        ) from None
    except duckdb.Error as exc:
        raise DataError(
            f"transform {name!r} failed: {str(exc).splitlines()[0]}; fix transforms.{name} in "
            f"{WHERE}"
        ) from None
    finally:
        con.close()
    return rows


def run_transform(
    name: str,
    transform: Transform,
    inputs: dict[str, Path],
    out: Path,
    project: Path | None,
) -> tuple[int, dict[str, Any]]:
    """Run one transform of any kind; return its row count and what to record about it."""
    if transform.sql is not None:
        return run_sql(name, transform, inputs, out), {}
    if transform.embed is not None:
        return run_embed(name, transform, inputs, out)
    if project is None:
        raise DataError(f"transform {name!r} is Python code: it needs the project folder")
    from mlcrew.data.pyrun import run_python

    run_python(
        name,
        str(transform.python),
        project,
        inputs,
        out,
        timeout=transform.timeout_seconds,
        memory_mb=transform.memory_mb,
    )
    import pyarrow.parquet as pq

    return int(pq.read_metadata(out).num_rows), {}


def needed(
    transforms: dict[str, Transform], sources: list[str], want: str, project: Path | None
) -> list[str]:
    """The transforms that `want` is made from (itself included), in spec order."""
    known = list(sources)
    parents: dict[str, list[str]] = {}
    for name, transform in transforms.items():
        parents[name] = inputs_of(name, transform, known, project)
        known.append(name)
    keep: set[str] = set()
    todo = [want]
    while todo:
        name = todo.pop()
        if name in transforms and name not in keep:
            keep.add(name)
            todo += parents[name]
    return [n for n in transforms if n in keep]


def compute(
    tables: dict[str, pa.Table],
    transforms: dict[str, Transform],
    want: str,
    project: Path | None,
) -> pa.Table:
    """Table `want`, made from the given source tables through the transforms it needs, with
    nothing cached (new data for monitoring, items to label)."""
    import tempfile

    import pyarrow.parquet as pq

    if want in tables:
        return tables[want]
    with tempfile.TemporaryDirectory(prefix="mlcrew-transforms-") as tmp:
        paths: dict[str, Path] = {}
        for name, table in tables.items():
            paths[name] = Path(tmp) / f"{name}.parquet"
            write_parquet(table, paths[name])
        known = list(tables)
        for name in needed(transforms, known, want, project):
            inputs = inputs_of(name, transforms[name], list(paths), project)
            out = Path(tmp) / f"{name}.parquet"
            run_transform(name, transforms[name], {i: paths[i] for i in inputs}, out, project)
            paths[name] = out
        return pq.read_table(paths[want])


def embedding_model() -> str:
    """name@version of the packaged embedding model, without loading it (for cache keys)."""
    import importlib.metadata

    from mlcrew.data.embeddings import MODEL_DISTRIBUTION, MODEL_NAME

    try:
        return f"{MODEL_NAME}@{importlib.metadata.version(MODEL_DISTRIBUTION)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{MODEL_NAME}@not installed"


def run_embed(
    name: str, transform: Transform, inputs: dict[str, Path], out: Path
) -> tuple[int, dict[str, Any]]:
    """The table with the text column's embeddings added as float32 columns; the row count
    and what was embedded (texts, embedded now, found in the cache)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcrew.data.embeddings import TextEmbedder

    spec = transform.embed
    assert spec is not None
    table = pq.read_table(inputs[spec.table])
    if spec.column not in table.column_names:
        raise DataError(
            f"transform {name!r}: {spec.table!r} has no column {spec.column!r}; columns: "
            f"{', '.join(table.column_names)}"
        )
    column = table.column(spec.column)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = column.cast(pa.string())
    embedder = TextEmbedder()
    vectors = embedder.embed(column.to_pylist())
    if spec.dimensions is not None and spec.dimensions < vectors.shape[1]:
        # A fixed Gaussian projection (seed 0): distances are kept approximately, and the
        # same text always gets the same reduced vector, whatever else is in the table.
        rng = np.random.default_rng(0)
        basis = rng.standard_normal((vectors.shape[1], spec.dimensions)) / np.sqrt(spec.dimensions)
        vectors = (vectors.astype(np.float64) @ basis).astype(np.float32)
    prefix = spec.prefix if spec.prefix is not None else f"{spec.column}_emb_"
    clash = [c for c in table.column_names if c.startswith(prefix)]
    if clash:
        raise DataError(
            f"transform {name!r}: {spec.table!r} already has columns starting with {prefix!r} "
            f"({', '.join(clash[:3])}); set embed.prefix to another name"
        )
    for i in range(vectors.shape[1]):
        table = table.append_column(f"{prefix}{i}", pa.array(vectors[:, i], pa.float32()))
    write_parquet(table, out)
    counts = embedder.counts
    return int(table.num_rows), {
        "model": embedder.model_key,
        "texts": counts.texts,
        "embedded": counts.embedded,
        "cached": counts.cached,
    }
