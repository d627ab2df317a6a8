"""Reading and writing tables: DuckDB in, Arrow in memory, Parquet on disk (deterministically)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcrew.errors import DataError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa


def connect() -> duckdb.DuckDBPyConnection:
    import duckdb

    con = duckdb.connect(":memory:")
    # One thread keeps row order and floating-point sums identical from run to run.
    con.execute("SET threads=1")
    con.execute("SET preserve_insertion_order=true")
    return con


def reader_sql(path: Path, fmt: str, options: dict[str, Any] | None = None) -> str:
    """A DuckDB table function reading a file; the format comes from the spec, not the name."""
    options = options or {}
    quoted = "'" + str(path).replace("'", "''") + "'"
    if fmt == "csv":
        args = [f"header={'true' if options.get('header', True) else 'false'}"]
        if options.get("delimiter"):
            args.append("delim='" + str(options["delimiter"]).replace("'", "''") + "'")
        return f"read_csv({quoted}, {', '.join(args)})"
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
    import duckdb

    options = dict(options or {})
    if fmt == "csv" and not options.get("delimiter"):
        # Decide the delimiter here and pass it on: DuckDB's own sniffer reads a file with one
        # ragged line as a single column, which only surfaces later as a confusing error.
        options["delimiter"] = sniff_delimiter(path)
    try:
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM {reader_sql(path, fmt, options)}')
    except duckdb.Error as exc:
        if fmt == "csv":
            found = ragged_line(path, options["delimiter"])
            if found:
                raise DataError(f"{label} {found}; fix the file") from None
        reason = str(exc).splitlines()[0].replace(f'"{path}"', "the file").replace(str(path), "")
        raise DataError(f"{label}: cannot read as {fmt}: {reason}") from None
    rows = int(scalar(con, f'SELECT count(*) FROM "{name}"'))
    if fmt == "csv" and rows != _data_lines(path, options.get("header", True)):
        # Fewer rows than lines: quoted newlines, or a ragged line DuckDB took for a header.
        found = ragged_line(path, options["delimiter"])
        if found:
            raise DataError(f"{label} {found}; fix the file")
    return rows


def sniff_delimiter(path: Path) -> str:
    """The delimiter of a CSV file, from its first lines (comma when unsure)."""
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        sample = "".join(f.readline() for _ in range(20))
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _data_lines(path: Path, header: bool) -> int:
    with open(path, "rb") as f:
        lines = sum(1 for line in f if line.strip())
    return lines - 1 if header else lines


def ragged_line(path: Path, delimiter: str) -> str | None:
    """The first line whose field count differs from the header's, said as a person would."""
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return "is empty"
        for row in reader:
            if row and len(row) != len(header):
                return (
                    f"line {reader.line_num}: {len(row)} fields where the header has "
                    f"{len(header)} ({delimiter!r}-separated)"
                )
    return None


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


def write_parquet(table: pa.Table, path: Path) -> None:
    """Parquet with fixed settings, so equal tables give equal bytes."""
    import pyarrow.parquet as pq

    pq.write_table(
        table,
        path,
        compression="zstd",
        use_dictionary=True,
        write_statistics=True,
        store_schema=True,
    )


def read_parquet(path: Path) -> pa.Table:
    import pyarrow.parquet as pq

    return pq.read_table(path)


def read_parquet_bytes(data: bytes) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(data))


def schema_of(table: pa.Table) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in table.schema]
