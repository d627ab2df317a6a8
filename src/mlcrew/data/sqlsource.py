"""SQL sources: a table or a query from any SQLAlchemy URL, read in batches into Arrow and
written as Parquet. The source's digest is the digest of that Parquet file (written with fixed
settings), so an unchanged table gives the same digest and the pipeline stays cached.

DuckDB's own postgres/sqlite extensions download at run time, which fails offline, so reading
goes through SQLAlchemy. Reads run in a read-only transaction where the database offers one
(PostgreSQL, SQLite): a query source can read, never write. A table is read in the order of
its primary key when it has one, so its digest does not depend on the physical row order.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from mlcrew.errors import DataError

BATCH_ROWS = 50_000
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_url(url: str, label: str) -> str:
    """`${NAME}` in a URL comes from the environment, so passwords stay out of mlcrew.yaml."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise DataError(f"{label}: the URL uses ${{{name}}}, which is not set; export it")
        return os.environ[name]

    return _VAR.sub(value, url)


def resolve_url(url: str, project: Path, label: str) -> str:
    """Environment variables expanded, a relative SQLite path taken from the project folder,
    and plain postgresql:// served by psycopg 3 (the driver mlcrew installs)."""
    url = expand_url(url, label)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rest = url.removeprefix("sqlite:///")
        if rest and not rest.startswith(":memory:"):
            url = f"sqlite:///{project / rest}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def read_sql(url: str, table: str | None, query: str | None, out: Path, label: str) -> int:
    """Read the table or query into the Parquet file `out`; return the row count. `url` is
    resolved already (resolve_url)."""
    import pyarrow as pa
    import sqlalchemy as sa
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, NoSuchTableError, SQLAlchemyError

    from mlcrew.data.tables import write_parquet

    try:
        engine = sa.create_engine(url)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise DataError(
            f"{label}: not a usable SQLAlchemy URL ({exc}); write it like "
            "postgresql://user@host/db or sqlite:///path/to/file.db"
        ) from None
    batches: list[pa.Table] = []
    try:
        with engine.connect() as conn:
            _read_only(conn)
            if table is not None:
                schema, _, name = table.rpartition(".")
                try:
                    t = sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=conn)
                except NoSuchTableError:
                    names = sa.inspect(conn).get_table_names(schema=schema or None)
                    raise DataError(
                        f"{label}: the database has no table {table!r}; tables: "
                        f"{', '.join(sorted(names)) or 'none'}"
                    ) from None
                stmt: Any = sa.select(t).order_by(*t.primary_key.columns)
            else:
                stmt = sa.text(query or "")
            result = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(stmt)
            columns = list(result.keys())
            for part in result.partitions(BATCH_ROWS):
                batches.append(_batch(columns, [tuple(r) for r in part]))
            if not batches:
                batches.append(pa.table({c: pa.array([], pa.null()) for c in columns}))
    except DataError:
        raise
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DataError(f"{label}: {exc.__class__.__name__}: {first}") from None
    finally:
        engine.dispose()
    combined = pa.concat_tables(batches, promote_options="permissive")
    write_parquet(combined, out)
    return int(combined.num_rows)


def _read_only(conn: Any) -> None:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    elif dialect == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")


def _batch(columns: list[str], rows: list[tuple[Any, ...]]) -> Any:
    """Rows to an Arrow table; exact decimals become float64 (what models and DuckDB's
    statistics work in)."""
    import pyarrow as pa

    arrays = []
    for i in range(len(columns)):
        values = [r[i] for r in rows]
        if any(isinstance(v, Decimal) for v in values):
            values = [None if v is None else float(v) for v in values]
        arrays.append(pa.array(values))
    return pa.table(dict(zip(columns, arrays, strict=True)))
