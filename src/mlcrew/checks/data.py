"""The check stage: the spec's data checks evaluated in DuckDB over the dataset.

Every check reports how many rows fail and a few sample rows (with their 1-based row numbers);
an error-level failure stops the pipeline with that report, a warn-level one is only recorded.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from mlcrew.data.tables import connect, scalar
from mlcrew.errors import CheckFailed, DataError
from mlcrew.pipeline.stage import StageContext, StageResult
from mlcrew.spec import Check

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


def _sql_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


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
        conditions: list[str] = []
        if check.type:
            actual = columns[col].split("(")[0]
            if actual not in TYPE_GROUPS[check.type]:
                result["type_found"] = columns[col]
                conditions.append("true")
        if check.not_null:
            conditions.append(f"{quoted} IS NULL")
        if check.between is not None:
            lo, hi = check.between
            conditions.append(f"({quoted} < {lo!r} OR {quoted} > {hi!r})")
        if check.in_ is not None:
            # Compare as text so that `in: [1, 2]` works on integer and string columns alike.
            allowed = ", ".join(_sql_literal(str(v)) for v in check.in_) or "NULL"
            conditions.append(
                f"({quoted} IS NOT NULL AND CAST({quoted} AS VARCHAR) NOT IN ({allowed}))"
            )
        where = " OR ".join(conditions) or "false"
        numbered = f'(SELECT row_number() OVER () AS "__row", * FROM "{table}")'
        result["failing"] = int(scalar(con, f"SELECT count(*) FROM {numbered} WHERE {where}"))
        if result["failing"]:
            samples = con.execute(
                f'SELECT "__row", {quoted} FROM {numbered} WHERE {where} ORDER BY "__row" '
                f"LIMIT {SAMPLE_ROWS}"
            ).fetchall()
            result["samples"] = [{"row": int(r[0]), col: _jsonable(r[1])} for r in samples]
        result["passed"] = result["failing"] == 0
        results.append(result)
    return results


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return value if isinstance(value, int | float | str | bool | type(None)) else str(value)


def run(ctx: StageContext) -> StageResult:
    con = connect()
    path = str(ctx.inputs["ingest.dataset"]).replace("'", "''")
    con.execute(f"CREATE VIEW dataset AS SELECT * FROM read_parquet('{path}')")
    checks = [Check.model_validate(c) for c in ctx.config["checks"]]
    target = ctx.config["target"]
    columns = [r[0] for r in con.execute("DESCRIBE dataset").fetchall()]
    if target not in columns:
        raise DataError(
            f"target {target!r} is not a column of the dataset; columns: {', '.join(columns)}"
        )
    results = evaluate_checks(con, "dataset", checks)
    report = {"rows": int(scalar(con, "SELECT count(*) FROM dataset")), "checks": results}
    errors = [r for r in results if not r["passed"] and r["level"] == "error"]
    report["passed"] = not errors
    out = ctx.workdir / "checks.json"
    out.write_text(json.dumps(report, indent=2, sort_keys=True))
    if errors:
        first = errors[0]
        sample = first["samples"][0] if first["samples"] else {}
        example = (
            f", e.g. row {sample['row']}: {first['column']}={sample.get(first['column'])!r}"
            if sample
            else f" (found type {first.get('type_found')})"
        )
        more = f"; {len(errors) - 1} more failing check(s)" if len(errors) > 1 else ""
        raise CheckFailed(
            f"data check failed: checks[{first['check']}] ({first['rule']}): "
            f"{first['failing']} of {report['rows']} rows fail{example}{more}",
            report,
        )
    warnings = sum(1 for r in results if not r["passed"])
    return StageResult({"report": out}, {"checks": len(results), "warnings": warnings})
