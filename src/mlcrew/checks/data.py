"""The check stage: the spec's data checks evaluated in DuckDB over the dataset.

Every check reports how many rows fail and a few sample rows (with their 1-based row numbers);
an error-level failure stops the pipeline with that report, a warn-level one is only recorded.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import duckdb

from mlcrew.data.tables import connect, scalar
from mlcrew.errors import CheckFailed, DataError
from mlcrew.pipeline.configs import CheckConfig
from mlcrew.pipeline.stage import StageContext, StageResult
from mlcrew.spec import Check
from mlcrew.wording import plural

SAMPLE_ROWS = 5

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


def _describe(check: Check) -> str:
    parts = []
    if check.type:
        parts.append(f"type {check.type}")
    if check.not_null:
        parts.append("not null")
    if check.between is not None:
        parts.append(f"between {check.between[0]:g} and {check.between[1]:g}")
    if check.in_ is not None:
        parts.append(f"in {json.dumps(check.in_)}")
    return f"{check.column}: " + ", ".join(parts)


def evaluate_checks(con: Any, table: str, checks: list[Check]) -> list[dict[str, Any]]:
    columns = {r[0]: r[1] for r in con.execute(f'DESCRIBE "{table}"').fetchall()}
    results: list[dict[str, Any]] = []
    for i, check in enumerate(checks):
        col = check.column
        result: dict[str, Any] = {
            "check": i,
            "rule": _describe(check),
            "column": col,
            "level": check.level,
            "failing": 0,
            "samples": [],
        }
        if col not in columns:
            raise DataError(
                f"checks[{i}] names column {col!r}, which the dataset does not have; "
                f"columns: {', '.join(columns)}"
            )
        quoted = '"' + col.replace('"', '""') + '"'
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
        where = " OR ".join(conditions) or "false"
        numbered = f'(SELECT row_number() OVER () AS "__row", * FROM "{table}")'
        try:
            rows = con.execute(f"SELECT count(*) FROM {numbered} WHERE {where}", params).fetchall()
            result["failing"] = int(rows[0][0])
            samples = (
                con.execute(
                    f'SELECT "__row", {quoted} FROM {numbered} WHERE {where} ORDER BY "__row" '
                    f"LIMIT {SAMPLE_ROWS}",
                    params,
                ).fetchall()
                if result["failing"]  # a passing check needs no second scan
                else []
            )
        except duckdb.Error as exc:
            raise DataError(
                f"checks[{i}] ({result['rule']}) cannot be evaluated: {str(exc).splitlines()[0]}"
            ) from None
        result["samples"] = [{"row": int(r[0]), col: _jsonable(r[1])} for r in samples]
        result["passed"] = result["failing"] == 0
        results.append(result)
    return results


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


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or infinity
    return value if isinstance(value, int | float | str | bool | type(None)) else str(value)


def run(ctx: StageContext[CheckConfig]) -> StageResult:
    con = connect()
    path = str(ctx.inputs.path("ingest.dataset")).replace("'", "''")
    con.execute(f"CREATE VIEW dataset AS SELECT * FROM read_parquet('{path}')")
    checks = list(ctx.config.checks)
    target = ctx.config.target
    columns = [r[0] for r in con.execute("DESCRIBE dataset").fetchall()]
    if target not in columns:
        raise DataError(
            f"target {target!r} is not a column of the dataset; columns: {', '.join(columns)}"
        )
    missing = missing_target(con, "dataset", target)
    rows = int(scalar(con, "SELECT count(*) FROM dataset"))
    if missing["count"] and ctx.config.missing_target == "error":
        raise DataError(
            f"target {target!r} has no value in {missing['count']} of {plural(rows, 'row')} "
            f"({_rows_said(missing['samples'])}); fill them in, fix the source, or set "
            "dataset.missing_target: drop in mlcrew.yaml to train without those rows"
        )
    results = evaluate_checks(con, "dataset", checks)
    report: dict[str, Any] = {"rows": rows, "checks": results}
    errors = [r for r in results if not r["passed"] and r["level"] == "error"]
    report["passed"] = not errors
    out = ctx.workdir / "checks.json"
    out.write_text(json.dumps(report, indent=2, sort_keys=True))
    if errors:
        more = f"; {plural(len(errors) - 1, 'more failing check')}" if len(errors) > 1 else ""
        raise CheckFailed(
            f"data check failed: {_summary(errors[0], report['rows'])}{more}; fix the data, or "
            f"the check (checks[{errors[0]['check']}] in mlcrew.yaml; level: warn only reports)",
            report,
        )
    warnings = [_summary(r, report["rows"]) for r in results if not r["passed"]]
    if missing["count"]:
        report["missing_target"] = missing
        warnings.append(
            f"target {target!r}: {plural(missing['count'], 'row')} without a value left out "
            "(dataset.missing_target: drop)"
        )
    return StageResult({"report": out}, {"checks": len(results), "warnings": warnings})


def missing_target(con: Any, table: str, target: str) -> dict[str, Any]:
    """Rows whose target is null, NaN or infinite: their count and the first few."""
    kind = con.execute(f'DESCRIBE "{table}"').fetchall()
    types = {r[0]: r[1] for r in kind}
    col = '"' + target.replace('"', '""') + '"'
    bad = f"{col} IS NULL"
    if types.get(target, "").split("(")[0] in ("DOUBLE", "FLOAT", "REAL"):
        bad += f" OR NOT isfinite({col})"
    numbered = f'(SELECT row_number() OVER () AS "__row", {col} FROM "{table}")'
    count = int(con.execute(f"SELECT count(*) FROM {numbered} WHERE {bad}").fetchall()[0][0])
    samples = con.execute(
        f'SELECT "__row", {col} FROM {numbered} WHERE {bad} ORDER BY "__row" LIMIT {SAMPLE_ROWS}'
    ).fetchall()
    return {"count": count, "samples": [{"row": int(r), target: _jsonable(v)} for r, v in samples]}


def _rows_said(samples: list[dict[str, Any]]) -> str:
    """`rows 5 (empty), 17 (nan)`"""
    said = []
    for sample in samples:
        value = next(v for k, v in sample.items() if k != "row")
        said.append(f"{sample['row']} ({'empty' if value is None else value})")
    return ("row " if len(said) == 1 else "rows ") + ", ".join(said)


def _summary(result: dict[str, Any], rows: int) -> str:
    """`checks[2] (hum: between 0 and 1): 3 of 4250 rows fail, e.g. row 17: hum=1.2`"""
    sample = result["samples"][0] if result["samples"] else {}
    if sample:
        value = sample.get(result["column"])
        example = f", e.g. row {sample['row']}: {result['column']}={value!r}"
    else:
        example = f" (found type {result.get('type_found')})"
    return (
        f"checks[{result['check']}] ({result['rule']}): {result['failing']} of "
        f"{plural(rows, 'row')} {'fails' if result['failing'] == 1 else 'fail'}{example}"
    )
