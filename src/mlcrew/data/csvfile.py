"""CSV files as people write them: dialects, encodings, bad lines, and messages that name the
file, the line, the column and the fix.

DuckDB reads the file (one pass, with its rejects table on, so a bad line is found with its line
number instead of failing the whole read with a generic message); what DuckDB cannot say is
worked out here: an encoding that is not UTF-8, binary data, duplicate header names, numbers
written with a decimal comma, text or non-finite values in a column of numbers. Files in other
encodings are re-encoded to UTF-8 in a temporary file first, so any codec Python knows works.
"""

from __future__ import annotations

import codecs
import csv
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcrew.errors import DataError
from mlcrew.wording import plural

if TYPE_CHECKING:
    import duckdb

# Written in a cell, each of these means "no value". "-" and "NaN" included: in a column of
# numbers they otherwise turn the whole column into text.
MISSING_DEFAULT = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "-")
TYPES = {
    "integer": "BIGINT",
    "float": "DOUBLE",
    "number": "DOUBLE",
    "string": "VARCHAR",
    "text": "VARCHAR",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}
SHOWN_SKIPPED = 20  # bad lines listed in the record under `bad_lines: skip`
HEAD_BYTES = 65536
# A column counts as numbers when at least this share of its values are numbers.
NUMERIC_SHARE = 0.5
STRUCTURAL = ("MISSING COLUMNS", "TOO MANY COLUMNS", "UNQUOTED VALUE", "INVALID STATE")
MAGIC = (
    (b"PAR1", "a Parquet file: set format: parquet"),
    (b"PK\x03\x04", "a zip archive (an .xlsx workbook is one): export the sheet as CSV"),
    (b"SQLite format 3", "a SQLite database: read a table of it with a sql source"),
    (b"\x1f\x8b", "gzip-compressed: give the file a .csv.gz name, or decompress it"),
    (b"%PDF", "a PDF document"),
)


@dataclass(frozen=True)
class CsvOptions:
    """A CSV source's dialect, as spelled in the spec."""

    delimiter: str | None = None  # None: detected from the first lines
    quote: str = '"'
    decimal: str = "."
    encoding: str = "utf-8"
    header: bool = True
    bad_lines: str = "error"  # error | skip
    missing: tuple[str, ...] = MISSING_DEFAULT
    types: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> CsvOptions:
        known = {k: v for k, v in options.items() if k in cls.__dataclass_fields__}
        if known.get("missing") is not None:
            known["missing"] = tuple(known["missing"])
        else:
            known.pop("missing", None)
        for key in ("quote", "decimal", "encoding", "bad_lines"):
            if known.get(key) is None:
                known.pop(key, None)
        known["types"] = dict(known.get("types") or {})
        return cls(**known)


@dataclass
class CsvRead:
    rows: int
    skipped: int = 0
    skipped_lines: list[dict[str, Any]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rows": self.rows}
        if self.skipped:
            out["bad_lines"] = {"skipped": self.skipped, "lines": self.skipped_lines}
        return out


def load_csv(
    con: duckdb.DuckDBPyConnection, table: str, path: Path, opts: CsvOptions, where: str
) -> CsvRead:
    """Materialise the CSV file at `path` as `table`. `where` names it in messages."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    if size == 0 or not head.strip():
        raise DataError(f"{where} is empty (no header, no rows); check that it was fully written")
    encoding = _codec(opts.encoding, where)
    _refuse_binary(head, encoding, where)
    scratch = Path(tempfile.mkdtemp(prefix="mlcrew-csv-"))
    try:
        text = path if encoding == "utf-8" else _to_utf8(path, encoding, scratch, where)
        delimiter = opts.delimiter or sniff_delimiter(text)
        header = _header(text, delimiter, opts.quote) if opts.header else []
        _check_header(header, where)
        _read(con, table, text, opts, delimiter, where)
        skipped = _rejects(con, text, opts, delimiter, where)
        if opts.types:
            columns = [r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()]
            unknown = sorted(set(opts.types) - set(columns))
            if unknown:
                raise DataError(
                    f"{where}: types names {', '.join(map(repr, unknown))}, which the file does "
                    f"not have; columns: {', '.join(columns)}"
                )
        rejected = {int(s["line"]) for s in skipped}
        _check_values(con, table, text, opts, delimiter, where, rejected)
        rows = int(con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0])
        return CsvRead(rows, len(skipped), skipped[:SHOWN_SKIPPED])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _codec(name: str, where: str) -> str:
    try:
        found = codecs.lookup(name).name
    except LookupError:
        raise DataError(
            f"{where}: encoding {name!r} is unknown; use a name Python knows, such as utf-8, "
            "latin-1, cp1252 or utf-16"
        ) from None
    return "utf-8" if found in ("utf-8", "utf-8-sig") else found


def _refuse_binary(head: bytes, encoding: str, where: str) -> None:
    for magic, what in MAGIC:
        if head.startswith(magic) and not (magic == b"\x1f\x8b" and where.endswith(".gz")):
            raise DataError(f"{where} is not a CSV file: it is {what}")
    if encoding.startswith("utf-16") or encoding.startswith("utf-32"):
        return
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{where} is UTF-16 text: add encoding: utf-16 to the source")
    nul = head.find(b"\x00")
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    if nul >= 0 or controls > len(head) // 20:
        at = f" (a NUL byte at byte {nul})" if nul >= 0 else ""
        raise DataError(
            f"{where} is not a text file: it holds binary data{at}; check that the path names "
            "the CSV file you meant, or give the source its real format (format: parquet)"
        )


def _to_utf8(path: Path, encoding: str, scratch: Path, where: str) -> Path:
    """Re-encode to UTF-8, line by line; an undecodable byte is named by line."""
    out = scratch / "utf8.csv"
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 1
    with open(path, "rb") as src, open(out, "w", encoding="utf-8", newline="") as dst:
        while chunk := src.read(1 << 20):
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                before = chunk[: exc.start].count(b"\n")
                raise DataError(
                    f"{where}: line {line + before}: byte {chunk[exc.start]:#04x} is not "
                    f"{encoding}; set the source's encoding to the one the file was saved in"
                ) from None
            line += text.count("\n")
            dst.write(text)
        try:
            dst.write(decoder.decode(b"", final=True))
        except UnicodeDecodeError:
            raise DataError(
                f"{where}: the file ends in the middle of a character (line {line}); it is cut "
                f"short, or not {encoding}"
            ) from None
    return out


def sniff_delimiter(path: Path) -> str:
    """The delimiter of a CSV file, from its first lines (comma when unsure)."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        sample = "".join(f.readline() for _ in range(20))
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _header(path: Path, delimiter: str, quote: str) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        return next(csv.reader(f, delimiter=delimiter, quotechar=quote), [])


def _check_header(header: list[str], where: str) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(header, start=1):
        key = name.strip()
        if key and key in seen:
            raise DataError(
                f"{where}: line 1: columns {seen[key]} and {i} are both named {key!r}; give each "
                "column its own name in the file (or read it with header: false)"
            )
        seen[key] = i


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _read(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path,
    opts: CsvOptions,
    delimiter: str,
    where: str,
) -> None:
    import duckdb

    args = [
        _sql_str(str(path)),
        f"delim={_sql_str(delimiter)}",
        f"quote={_sql_str(opts.quote)}",
        f"escape={_sql_str(opts.quote)}",
        f"header={'true' if opts.header else 'false'}",
        f"decimal_separator={_sql_str(opts.decimal)}",
        "nullstr=[" + ", ".join(_sql_str(m) for m in opts.missing) + "]",
        "store_rejects=true, rejects_table='__rejects', rejects_scan='__rejects_scan'",
    ]
    if opts.types:
        pairs = ", ".join(f"{_sql_str(k)}: {_sql_str(TYPES[v])}" for k, v in opts.types.items())
        args.append("types={" + pairs + "}")
    try:
        con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM read_csv({", ".join(args)})')
    except duckdb.Error as exc:
        raise DataError(f"{where}: cannot read as CSV: {str(exc).splitlines()[0]}") from None


def _rejects(
    con: duckdb.DuckDBPyConnection, path: Path, opts: CsvOptions, delimiter: str, where: str
) -> list[dict[str, Any]]:
    """The lines DuckDB could not read: an error, or (bad_lines: skip) the skipped lines."""
    rows = con.execute(
        "SELECT line, error_type::VARCHAR, csv_line, column_name, error_message "
        "FROM __rejects ORDER BY line, column_idx"
    ).fetchall()
    con.execute("DROP TABLE __rejects")
    con.execute("DROP TABLE __rejects_scan")
    skipped: list[dict[str, Any]] = []
    for line, kind, text, column, message in rows:
        if kind == "INVALID ENCODING":
            raise DataError(_encoding_problem(path, where))
        if kind == "CAST":
            raise DataError(_cast_problem(int(line), str(column), text, message, delimiter, where))
        reason = _reason(kind, message, opts.quote)
        if opts.bad_lines != "skip":
            raise DataError(
                f"{where}: line {line}: {reason} ({text!r}); fix the line, or set bad_lines: "
                "skip on the source to drop such lines (they are counted and listed)"
            )
        if not skipped or skipped[-1]["line"] != int(line):
            skipped.append({"line": int(line), "reason": reason, "text": text})
    return skipped


def _reason(kind: str, message: str, quote: str) -> str:
    if kind in ("TOO MANY COLUMNS", "MISSING COLUMNS"):
        # "Expected Number of Columns: 2 Found: 3"
        numbers = [w for w in message.replace(":", " ").split() if w.isdigit()]
        if len(numbers) >= 2:
            return f"{numbers[1]} fields where the header has {numbers[0]}"
        return "a different number of fields than the header"
    if kind == "UNQUOTED VALUE":
        return f"a {quote} inside a field that is not quoted"
    if kind == "LINE SIZE OVER MAXIMUM":
        return f"a line too long to be a row: probably a {quote} that is never closed"
    return f"malformed quoting ({message.strip()})"


def _cast_problem(
    line: int, column: str, text: str, message: str, delimiter: str, where: str
) -> str:
    value = ""
    if 'string "' in message:
        value = message.split('string "', 1)[1].rsplit('" to', 1)[0]
    kind = message.rsplit("to '", 1)[-1].rstrip("'") if "to '" in message else "the column's type"
    return (
        f"{where}: line {line}, column {column!r}: {value!r} is not a {kind.lower()} like the "
        f"values before it; fix it, list it under missing: if it means no value, or read the "
        f"column as text with types: {{{column}: text}}"
    )


def _encoding_problem(path: Path, where: str) -> str:
    """Where the file stops being UTF-8, and what it probably is instead."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            try:
                line += decoder.decode(chunk).count("\n")
            except UnicodeDecodeError as exc:
                at = line + chunk[: exc.start].count(b"\n")
                start = chunk.rfind(b"\n", 0, exc.start) + 1
                end = chunk.find(b"\n", exc.start)
                snippet = chunk[start : end if end >= 0 else len(chunk)][:80]
                return (
                    f"{where}: line {at} is not UTF-8 (byte {chunk[exc.start]:#04x} in "
                    f"{snippet.decode('cp1252', errors='replace')!r}); the file looks like "
                    "latin-1 or Windows-1252: add encoding: latin-1 (or cp1252) to the source, "
                    "or save the file as UTF-8"
                )
    return f"{where} is not UTF-8: set the source's encoding to the one the file was saved in"


def _check_values(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path,
    opts: CsvOptions,
    delimiter: str,
    where: str,
    rejected: set[int],
) -> None:
    """Numbers that DuckDB left as text, and numbers that are not finite, named by line."""
    described = con.execute(f'DESCRIBE "{table}"').fetchall()
    for name, kind, *_ in described:
        if name in opts.types:
            continue
        col = '"' + name.replace('"', '""') + '"'
        if kind == "VARCHAR":
            n, numbers, commas = con.execute(
                f"SELECT count({col}), count(TRY_CAST({col} AS DOUBLE)), "
                f"count(*) FILTER (WHERE regexp_full_match(trim({col}), "
                f"'[+-]?[0-9]*,[0-9]+')) FROM \"{table}\""
            ).fetchall()[0]
            if n and opts.decimal == "." and commas >= NUMERIC_SHARE * n:
                row, value = _first(con, table, f"regexp_full_match(trim({col}), '.*,.*')", col)
                line = _line_of_row(path, row, opts, delimiter, rejected)
                raise DataError(
                    f"{where}: column {name!r} holds numbers written with a decimal comma "
                    f"(line {line}: {value!r}); add decimal: ',' to the source (and delimiter: "
                    "';' if fields are separated by semicolons)"
                )
            zeros = con.execute(
                f'SELECT count(*) FROM "{table}" WHERE regexp_full_match(trim({col}), '
                "'[+-]?0[0-9]+')"
            ).fetchall()[0][0]
            # Codes with leading zeros (zip codes, account numbers) stay text, as written.
            if n and numbers >= NUMERIC_SHARE * n and not zeros:
                _numbers_as_text(con, table, name, col, path, opts, delimiter, where, rejected)
        elif kind in ("DOUBLE", "FLOAT"):
            bad = f"NOT isfinite({col})"
            count = con.execute(f'SELECT count(*) FROM "{table}" WHERE {bad}').fetchall()[0][0]
            if count:
                row, value = _first(con, table, bad, col)
                line, fields = _record_at(path, row, opts, delimiter, rejected)
                position = [r[0] for r in described].index(name)
                if position < len(fields):
                    value = fields[position]  # as written in the file: 'NaN', '1e400'
                raise DataError(_non_finite(where, name, line, value, count))


def _numbers_as_text(
    con: duckdb.DuckDBPyConnection,
    table: str,
    name: str,
    col: str,
    path: Path,
    opts: CsvOptions,
    delimiter: str,
    where: str,
    rejected: set[int],
) -> None:
    text = f"({col} IS NOT NULL AND TRY_CAST({col} AS DOUBLE) IS NULL)"
    count = con.execute(f'SELECT count(*) FROM "{table}" WHERE {text}').fetchall()[0][0]
    if count:
        row, value = _first(con, table, text, col)
        line = _line_of_row(path, row, opts, delimiter, rejected)
        raise DataError(
            f"{where}: column {name!r} holds numbers, but {plural(count, 'value')} "
            f"{'is' if count == 1 else 'are'} not, first at line {line}: {value!r}; fix "
            f"{'it' if count == 1 else 'them'}, list {value!r} under missing: if it means no "
            f"value, or read the column as text with types: {{{name}: text}}"
        )
    bad = f"NOT isfinite(TRY_CAST({col} AS DOUBLE))"
    count = con.execute(f'SELECT count(*) FROM "{table}" WHERE {bad}').fetchall()[0][0]
    if count:
        row, value = _first(con, table, bad, col)
        line = _line_of_row(path, row, opts, delimiter, rejected)
        raise DataError(_non_finite(where, name, line, value, count))
    # Numbers DuckDB's sniffer did not take as numbers (e.g. past its sample): make them so.
    con.execute(f'ALTER TABLE "{table}" ALTER {col} TYPE DOUBLE USING TRY_CAST({col} AS DOUBLE)')


def _non_finite(where: str, name: str, line: int, value: Any, count: int) -> str:
    verb = "is" if count == 1 else "are"
    return (
        f"{where}: column {name!r} has {plural(count, 'value')} that {verb}"
        f" not a finite number, first at line {line}: {str(value)!r} (infinite, too large for a "
        "64-bit float, or NaN); fix the value, or list it under missing: if it means no value"
    )


def _first(con: duckdb.DuckDBPyConnection, table: str, where_sql: str, col: str) -> tuple[int, Any]:
    row = con.execute(
        f'SELECT __row, {col} FROM (SELECT row_number() OVER () AS __row, * FROM "{table}") '
        f"WHERE {where_sql} ORDER BY __row LIMIT 1"
    ).fetchall()[0]
    return int(row[0]), row[1]


def _line_of_row(path: Path, row: int, opts: CsvOptions, delimiter: str, rejected: set[int]) -> int:
    return _record_at(path, row, opts, delimiter, rejected)[0]


def _record_at(
    path: Path, row: int, opts: CsvOptions, delimiter: str, rejected: set[int]
) -> tuple[int, list[str]]:
    """The file line where data row `row` (1-based) starts, and its fields: quoted newlines
    and skipped lines counted."""
    for number, (start, fields) in enumerate(_records(path, opts, delimiter, rejected), start=1):
        if number == row:
            return start, fields
    return -1, []


def _records(
    path: Path, opts: CsvOptions, delimiter: str, rejected: set[int]
) -> Iterator[tuple[int, list[str]]]:
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f, delimiter=delimiter, quotechar=opts.quote)
        end = 0
        for i, record in enumerate(reader):
            start, end = end + 1, reader.line_num
            if (i == 0 and opts.header) or not record or start in rejected:
                continue
            yield start, record
