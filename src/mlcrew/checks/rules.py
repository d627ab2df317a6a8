"""Each kind of data check as DuckDB SQL over a table: the failing count and a few sample rows
(with their 1-based row numbers), computed in set operations, never row by row in Python.

Column rules that judge one row at a time (type, not_null, between, in, regex, references) are
one WHERE clause; the others (unique, freshness, distribution, row counts, custom SQL) are one
aggregate query each.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import duckdb

from mlcrew.errors import DataError
from mlcrew.spec import Check

SAMPLE_ROWS = 5
QUANTILES = 100  # quantiles per side for the Wasserstein distance

# DuckDB type names grouped the way a spec author thinks of them.
TYPE_GROUPS = {
    "integer": (
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
    ),
    "float": ("FLOAT", "DOUBLE", "DECIMAL", "REAL"),
    "string": ("VARCHAR",),
    "boolean": ("BOOLEAN",),
    "date": ("DATE",),
    "timestamp": (
        "TIMESTAMP",
        "TIMESTAMP WITH TIME ZONE",
        "TIMESTAMP_NS",
        "TIMESTAMP_MS",
        "TIMESTAMP_S",
    ),
}
TYPE_GROUPS["number"] = TYPE_GROUPS["integer"] + TYPE_GROUPS["float"]


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def describe(check: Check) -> str:
    """The rule as the report and messages say it."""
    parts = []
    if check.type:
        parts.append(f"type {check.type}")
    if check.not_null:
        parts.append("not null")
    if check.between is not None:
        parts.append(f"between {check.between[0]:g} and {check.between[1]:g}")
    if check.in_ is not None:
        parts.append(f"in {json.dumps(check.in_)}")
    if check.regex is not None:
        parts.append(f"matches {check.regex!r}")
    if check.references is not None:
        parts.append(f"in {check.references.table}.{check.references.column or check.column}")
    if check.unique is True:
        parts.append("unique")
    if check.fresh_hours is not None:
        parts.append(f"newest value at most {check.fresh_hours:g} h old")
    if check.distribution is not None:
        d = check.distribution
        parts.append(f"distribution within {d.max_distance:g} of {d.reference}")
    if isinstance(check.unique, list):
        return f"{check.table or 'dataset'}: unique ({', '.join(check.unique)})"
    if check.rows is not None:
        low = "" if check.rows.min is None else f">= {check.rows.min}"
        high = "" if check.rows.max is None else f"<= {check.rows.max}"
        return f"{check.table or 'dataset'}: rows {' and '.join(p for p in (low, high) if p)}"
    if check.sql is not None:
        first = " ".join(check.sql.split())
        return (
            f"{check.table or 'sql'}: no rows from {first[:60]}{'...' if len(first) > 60 else ''}"
        )
    return f"{check.column}: " + ", ".join(parts)


def columns_of(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {q(table)}").fetchall()}


def evaluate(
    con: duckdb.DuckDBPyConnection,
    i: int,
    check: Check,
    table: str,
    as_of: str | None = None,
) -> dict[str, Any]:
    """One check's result: {check, rule, table, column, level, failing, samples, passed, ...}."""
    result = _start(i, check, table)
    columns = columns_of(con, table)
    _known_column(i, check, table, columns)
    try:
        if isinstance(check.unique, list):
            _unique(con, i, table, check.unique, columns, result)
        elif check.unique is True:
            _unique(con, i, table, [str(check.column)], columns, result)
        elif check.rows is not None:
            _rows(con, table, check, result)
        elif check.sql is not None:
            _sql(con, i, check.sql, result)
        elif check.fresh_hours is not None:
            _fresh(con, i, table, check, columns, as_of, result)
        elif check.distribution is not None:
            _distribution(con, i, table, check, columns, result)
        else:
            _row_rules(con, i, table, check, columns, result)
    except duckdb.Error as exc:
        raise DataError(_cannot(i, result, exc)) from None
    result["passed"] = result["failing"] == 0
    return result


def _start(i: int, check: Check, table: str) -> dict[str, Any]:
    return {
        "check": i,
        "rule": describe(check),
        "table": table,
        "column": check.column,
        "level": check.level,
        "failing": 0,
        "samples": [],
    }


def _known_column(i: int, check: Check, table: str, columns: dict[str, str]) -> None:
    if check.column is not None and check.column not in columns:
        raise DataError(
            f"checks[{i}] names column {check.column!r}, which table {table!r} does not have; "
            f"columns: {', '.join(columns)}"
        )


def _cannot(i: int, result: dict[str, Any], exc: Exception) -> str:
    return f"checks[{i}] ({result['rule']}) cannot be evaluated: {str(exc).splitlines()[0]}"


def _numbered(table: str) -> str:
    return f'(SELECT row_number() OVER () AS "__row", * FROM {q(table)})'


def _row_condition(
    con: duckdb.DuckDBPyConnection,
    i: int,
    check: Check,
    columns: dict[str, str],
    result: dict[str, Any],
) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) that a failing row of a column-rule check meets."""
    col = str(check.column)
    quoted = q(col)
    kind = columns[col].split("(")[0]
    conditions: list[str] = []
    params: list[Any] = []
    if check.type and kind not in TYPE_GROUPS[check.type]:
        result["type_found"] = columns[col]
        conditions.append("true")
    if check.not_null:
        conditions.append(f"{quoted} IS NULL")
    if check.between is not None:
        value = quoted
        if kind not in TYPE_GROUPS["number"]:
            # Text where numbers belong (one "hot" in a temperature column makes the whole
            # column text): every value that is not a number fails, and is shown.
            value = f"TRY_CAST({quoted} AS DOUBLE)"
            conditions.append(f"({quoted} IS NOT NULL AND {value} IS NULL)")
            result["type_found"] = columns[col]
        conditions.append(f"({value} < ? OR {value} > ?)")
        params += [float(check.between[0]), float(check.between[1])]
    if check.in_ is not None:
        values = _typed_values(i, col, kind, check.in_)
        if kind in TYPE_GROUPS["number"] or kind == "BOOLEAN":
            target = quoted
        else:  # text, dates, ...: compare as text, as written in the spec
            target = f"CAST({quoted} AS VARCHAR)"
        marks = ", ".join("?" for _ in values)
        conditions.append(
            f"({quoted} IS NOT NULL AND {target} NOT IN ({marks}))"
            if values
            else f"({quoted} IS NOT NULL)"
        )
        params += values
    if check.regex is not None:
        conditions.append(
            f"({quoted} IS NOT NULL AND NOT regexp_full_match(CAST({quoted} AS VARCHAR), ?))"
        )
        params.append(check.regex)
    if check.references is not None:
        ref = check.references
        ref_cols = columns_of(con, ref.table)
        ref_col = ref.column or col
        if ref_col not in ref_cols:
            raise DataError(
                f"checks[{i}]: references names column {ref_col!r}, which table {ref.table!r} "
                f"does not have; columns: {', '.join(ref_cols)}"
            )
        conditions.append(
            f"({quoted} IS NOT NULL AND {quoted} NOT IN "
            f"(SELECT {q(ref_col)} FROM {q(ref.table)} WHERE {q(ref_col)} IS NOT NULL))"
        )
    return " OR ".join(conditions) or "false", params


def _samples(
    con: duckdb.DuckDBPyConnection,
    table: str,
    col: str,
    where: str,
    params: list[Any],
    result: dict[str, Any],
) -> None:
    numbered = _numbered(table)
    rows = con.execute(
        f'SELECT "__row", {q(col)} FROM {numbered} WHERE {where} ORDER BY "__row" '
        f"LIMIT {SAMPLE_ROWS}",
        params,
    ).fetchall()
    result["samples"] = [{"row": int(r[0]), col: jsonable(r[1])} for r in rows]


def _row_rules(
    con: duckdb.DuckDBPyConnection,
    i: int,
    table: str,
    check: Check,
    columns: dict[str, str],
    result: dict[str, Any],
) -> None:
    where, params = _row_condition(con, i, check, columns, result)
    failing = con.execute(f"SELECT count(*) FROM {q(table)} WHERE {where}", params).fetchall()
    result["failing"] = int(failing[0][0])
    if result["failing"]:  # a passing check needs no second scan
        _samples(con, table, str(check.column), where, params, result)


def evaluate_all(
    con: duckdb.DuckDBPyConnection,
    items: list[tuple[int, Check, str]],
    as_of: str | None = None,
) -> list[dict[str, Any]]:
    """Every check's result, in order, one query each. Not one scan with a `count(*) FILTER
    (WHERE ...)` per check: a WHERE clause reaches DuckDB's Parquet reader, which answers
    from column statistics and dictionaries (`id IS NULL` on 2M rows: 1 ms as a WHERE,
    40 ms as a FILTER; an `in` list: 28 ms against 380 ms)."""
    return [evaluate(con, i, check, table, as_of) for i, check, table in items]


def _unique(
    con: duckdb.DuckDBPyConnection,
    i: int,
    table: str,
    key: list[str],
    columns: dict[str, str],
    result: dict[str, Any],
) -> None:
    unknown = [c for c in key if c not in columns]
    if unknown:
        raise DataError(
            f"checks[{i}]: unique names {unknown}, not columns of table {table!r}; columns: "
            f"{', '.join(columns)}"
        )
    cols = ", ".join(q(c) for c in key)
    if len(key) == 1:
        # The usual answer first, from one distinct count: as many distinct keys as rows means
        # no key repeats (count(DISTINCT) skips NULLs, so a NULL key goes on to the group-by).
        # Not for several columns: a row value per row makes it slower than the group-by.
        rows, distinct = con.execute(
            f"SELECT count(*), count(DISTINCT {cols}) FROM {q(table)}"
        ).fetchall()[0]
        if rows == distinct:
            result["failing"] = result["duplicate_keys"] = 0
            return
    groups = f"SELECT {cols}, count(*) AS __n FROM {q(table)} GROUP BY ALL HAVING count(*) > 1"
    total = con.execute(f"SELECT coalesce(sum(__n), 0), count(*) FROM ({groups})").fetchall()[0]
    result["failing"] = int(total[0])  # rows that share their key with another row
    result["duplicate_keys"] = int(total[1])
    if result["failing"]:
        rows = con.execute(f"{groups} ORDER BY __n DESC, {cols} LIMIT {SAMPLE_ROWS}").fetchall()
        result["samples"] = [
            {**{c: jsonable(v) for c, v in zip(key, r[:-1], strict=True)}, "rows": int(r[-1])}
            for r in rows
        ]


def _rows(con: duckdb.DuckDBPyConnection, table: str, check: Check, result: dict[str, Any]) -> None:
    bounds = check.rows
    assert bounds is not None
    n = int(con.execute(f"SELECT count(*) FROM {q(table)}").fetchall()[0][0])
    result["rows"] = n
    low_ok = bounds.min is None or n >= bounds.min
    high_ok = bounds.max is None or n <= bounds.max
    result["failing"] = 0 if low_ok and high_ok else 1
    if result["failing"]:
        result["samples"] = [{"rows": n}]


def _sql(con: duckdb.DuckDBPyConnection, i: int, sql: str, result: dict[str, Any]) -> None:
    from mlcrew.data.transforms import one_query

    wrapped = one_query(con, sql, f"checks[{i}]: sql", "it: it returns the failing rows")
    relation = con.sql(wrapped)
    names = relation.columns
    result["failing"] = int(con.execute(f"SELECT count(*) FROM ({wrapped})").fetchall()[0][0])
    if result["failing"]:
        rows = con.execute(f"{wrapped} LIMIT {SAMPLE_ROWS}").fetchall()
        result["samples"] = [{c: jsonable(v) for c, v in zip(names, r, strict=True)} for r in rows]


def _fresh(
    con: duckdb.DuckDBPyConnection,
    i: int,
    table: str,
    check: Check,
    columns: dict[str, str],
    as_of: str | None,
    result: dict[str, Any],
) -> None:
    col = str(check.column)
    kind = columns[col]
    if kind.split("(")[0] not in (*TYPE_GROUPS["date"], *TYPE_GROUPS["timestamp"]):
        raise DataError(
            f"checks[{i}]: fresh_hours needs a date or timestamp column, and {col!r} is {kind}; "
            "convert it in a transform (CAST(... AS TIMESTAMP))"
        )
    # A time zone-aware column is read in UTC, never in this machine's zone.
    value_sql = (
        f"timezone('UTC', {q(col)})"
        if "TIME ZONE" in kind.upper()
        else f"CAST({q(col)} AS TIMESTAMP)"
    )
    newest = con.execute(f"SELECT max({value_sql}) FROM {q(table)}").fetchall()
    value = newest[0][0]
    now = datetime.fromisoformat(as_of) if as_of else datetime.now(UTC)
    result["as_of"] = now.isoformat()
    result["newest"] = value.isoformat() if value is not None else None
    if value is None:
        result["failing"] = 1
        return
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    age = (now - value).total_seconds() / 3600
    result["age_hours"] = round(age, 3)
    assert check.fresh_hours is not None
    if age > check.fresh_hours:
        result["failing"] = 1
        result["samples"] = [{col: result["newest"], "age_hours": round(age, 1)}]


def _distribution(
    con: duckdb.DuckDBPyConnection,
    i: int,
    table: str,
    check: Check,
    columns: dict[str, str],
    result: dict[str, Any],
) -> None:
    dist = check.distribution
    assert dist is not None
    col = str(check.column)
    ref_cols = columns_of(con, dist.reference)
    if col not in ref_cols:
        raise DataError(
            f"checks[{i}]: the reference {dist.reference!r} has no column {col!r}; columns: "
            f"{', '.join(ref_cols)}"
        )
    numeric = columns[col].split("(")[0] in TYPE_GROUPS["number"]
    if numeric and ref_cols[col].split("(")[0] in TYPE_GROUPS["number"]:
        distance, method = _wasserstein(con, table, dist.reference, col), "wasserstein/std"
    else:
        distance, method = _jensen_shannon(con, table, dist.reference, col), "jensen-shannon"
    result["distance"] = round(distance, 6)
    result["method"] = method
    if distance > dist.max_distance:
        result["failing"] = 1
        result["samples"] = [{"distance": round(distance, 4), "max": dist.max_distance}]


def _wasserstein(con: duckdb.DuckDBPyConnection, table: str, reference: str, col: str) -> float:
    """Wasserstein-1 distance from quantiles computed in DuckDB, over the reference's standard
    deviation (so 0.1 means "a tenth of a standard deviation", whatever the units)."""
    probs = [(k + 0.5) / QUANTILES for k in range(QUANTILES)]
    listed = "[" + ", ".join(f"{p:.6f}" for p in probs) + "]"

    def quantiles(t: str) -> tuple[list[float], float]:
        row = con.execute(
            f"SELECT quantile_cont(CAST({q(col)} AS DOUBLE), {listed}), "
            f"stddev_pop(CAST({q(col)} AS DOUBLE)) FROM {q(t)} WHERE {q(col)} IS NOT NULL"
        ).fetchall()[0]
        return list(row[0] or []), float(row[1] or 0.0)

    ours, _ = quantiles(table)
    theirs, spread = quantiles(reference)
    if not ours or not theirs:
        return math.inf if bool(ours) != bool(theirs) else 0.0
    distance = sum(abs(a - b) for a, b in zip(ours, theirs, strict=True)) / QUANTILES
    return distance / spread if spread > 0 else (0.0 if distance == 0 else math.inf)


def _jensen_shannon(con: duckdb.DuckDBPyConnection, table: str, reference: str, col: str) -> float:
    from scipy.spatial.distance import jensenshannon

    def shares(t: str) -> dict[str, int]:
        rows = con.execute(
            f"SELECT CAST({q(col)} AS VARCHAR), count(*) FROM {q(t)} GROUP BY 1"
        ).fetchall()
        return {str(k): int(n) for k, n in rows}

    ours, theirs = shares(table), shares(reference)
    keys = sorted(set(ours) | set(theirs))
    if not sum(ours.values()) or not sum(theirs.values()):
        return 1.0
    p = [ours.get(k, 0) for k in keys]
    r = [theirs.get(k, 0) for k in keys]
    return float(jensenshannon(p, r, base=2))


def _typed_values(i: int, col: str, kind: str, values: list[Any]) -> list[Any]:
    """Allowed values in the column's own type, so `in: [true]` or `in: [1, 2.5]` mean what
    they say; a mismatch is the spec author's mistake and is named as such."""
    if kind in TYPE_GROUPS["number"]:
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int | float)]
        if bad:
            raise DataError(f"checks[{i}]: {col!r} is numeric, but in: lists {bad}; use numbers")
        return [float(v) for v in values]
    if kind == "BOOLEAN":
        bad = [v for v in values if not isinstance(v, bool)]
        if bad:
            raise DataError(f"checks[{i}]: {col!r} is boolean, but in: lists {bad}; use true/false")
        return list(values)
    return [str(v) for v in values]


def jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or infinity
    return value if isinstance(value, int | float | str | bool | type(None)) else str(value)
