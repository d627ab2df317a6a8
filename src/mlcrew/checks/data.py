"""The check stage: the spec's data checks, evaluated in DuckDB over the project's tables.

Each check names its table (default: the dataset's). The tables are views over their Parquet
files from the ingest catalog, in the same sandbox as transforms (a custom `sql:` check reads
tables, never files). Every check reports how many rows fail and a few sample rows; an
error-level failure stops the pipeline with that report, a warn-level one is only recorded.
With a target, rows without a target value are refused here, before any training.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import duckdb

from mlcrew.checks.rules import (
    SAMPLE_ROWS,
    TYPE_GROUPS,
    columns_of,
    evaluate,
    evaluate_all,
    jsonable,
    q,
)
from mlcrew.data.ingest import read_catalog
from mlcrew.data.tables import connect, cores, lock_sandbox, sandbox_views, scalar
from mlcrew.data.transforms import sql_tables
from mlcrew.errors import CheckFailed, DataError
from mlcrew.pipeline.configs import CheckConfig
from mlcrew.pipeline.stage import StageContext, StageResult
from mlcrew.spec import Check
from mlcrew.wording import plural


def evaluate_checks(
    con: Any, table: str, checks: list[Check], as_of: str | None = None
) -> list[dict[str, Any]]:
    """Every check on one table (checks that name another table read that one)."""
    return evaluate_all(con, [(i, c, c.table or table) for i, c in enumerate(checks)], as_of)


# Perfect hashing: a group-by over integer keys whose range fits in this many bits may index
# an array (one per thread) instead of hashing: `unique` over 10M dense ids then takes a fifth
# of the time and a third of the memory. Allowed only where the range is dense, since the
# array's size follows the range, not the rows.
PERFECT_HASH_BITS = 24
PERFECT_HASH_DENSITY = 4  # at most this many array slots per row


def check_tables(
    paths: dict[str, str], items: list[tuple[int, Check, str]], as_of: str | None = None
) -> list[dict[str, Any]]:
    """Every check's result over tables read from their Parquet files, in the sandbox.

    The built-in rules run on every core first: a passing rule's answer is a count, which no
    thread count changes. A rule that fails is evaluated again on one thread, so its sample rows
    and numbers are the same from run to run and machine to machine; so is one that cannot be
    evaluated on every core (out of memory, say), and so are, always, `sql` checks (their own
    SQL may add floats or pick rows in an order that threads change) and distribution checks
    (their statistic sums floats)."""
    results: list[dict[str, Any] | None] = [None] * len(items)
    fast = _sandbox(paths, items, cores())
    try:
        for k, (i, check, table) in enumerate(items):
            if check.sql is None and check.distribution is None:
                # An error is said, or the check answered, by the one-thread pass.
                with contextlib.suppress(DataError):
                    results[k] = evaluate(fast, i, check, table, as_of)
    finally:
        fast.close()
    again = [k for k, r in enumerate(results) if r is None or not r["passed"]]
    if again:
        con = _sandbox(paths, items, 1)
        try:
            for k in again:
                i, check, table = items[k]
                results[k] = evaluate(con, i, check, table, as_of)
        finally:
            con.close()
    return [r for r in results if r is not None]


def _sandbox(paths: dict[str, str], items: list[tuple[int, Check, str]], threads: int) -> Any:
    """A sandboxed connection with views of `paths`, perfect hashing allowed as far as the
    uniqueness checks' integer keys are dense enough for it."""
    con = connect(threads=threads)
    sandbox_views(con, paths, lock=False)
    bits = max((_dense_bits(con, c, t) for _, c, t in items), default=0)
    if bits:
        con.execute(f"SET perfect_ht_threshold={bits}")
    lock_sandbox(con)
    return con


def _dense_bits(con: Any, check: Check, table: str) -> int:
    """Bits of a single integer unique key's range, if it is dense (else 0)."""
    key = check.unique if isinstance(check.unique, list) else [check.column]
    if not check.unique or len(key) != 1 or key[0] is None:
        return 0
    try:
        if columns_of(con, table).get(key[0], "").split("(")[0] not in TYPE_GROUPS["integer"]:
            return 0
        low, high, rows = con.execute(
            f"SELECT min({q(key[0])}), max({q(key[0])}), count(*) FROM {q(table)}"
        ).fetchall()[0]
    except duckdb.Error:  # an unknown table or column is said by the check itself
        return 0
    if low is None or rows == 0:
        return 0
    span = int(high) - int(low) + 1
    bits = max(1, span - 1).bit_length()
    return bits if bits <= PERFECT_HASH_BITS and span <= PERFECT_HASH_DENSITY * rows else 0


def tables_read(i: int, check: Check, default: str | None) -> set[str]:
    """The tables a check needs: its own, and what its references, reference or SQL read."""
    read: set[str] = set()
    if check.sql is not None:
        try:
            found = sql_tables(check.sql)
        except DataError as exc:
            raise DataError(f"checks[{i}]: sql is not valid SQL: {exc}") from None
        if found is None:
            raise DataError(f"checks[{i}]: sql must be one SELECT that returns the failing rows")
        read |= found
    else:
        table = check.table or default
        if table is None:
            raise DataError(
                f"checks[{i}] names no table, and this project has no dataset; add table: NAME"
            )
        read.add(table)
    if check.references is not None:
        read.add(check.references.table)
    if check.distribution is not None:
        read.add(check.distribution.reference)
    return read


def run(ctx: StageContext[CheckConfig]) -> StageResult:
    cfg = ctx.config
    catalog = read_catalog(ctx.inputs.bytes("ingest.catalog"))
    needed: set[str] = {cfg.dataset} if cfg.dataset else set()
    for i, check in enumerate(cfg.checks):
        for table in tables_read(i, check, cfg.dataset):
            if table not in catalog:
                raise DataError(
                    f"checks[{i}] reads table {table!r}, which is neither a source nor a "
                    f"transform; tables: {', '.join(catalog)}"
                )
            needed.add(table)
    paths = {t: str(ctx.inputs.artifact("ingest.catalog", catalog[t])) for t in sorted(needed)}
    con = connect()
    try:
        sandbox_views(con, paths)
        rows = {t: int(scalar(con, f"SELECT count(*) FROM {q(t)}")) for t in paths}
        missing: dict[str, Any] = {"count": 0, "samples": []}
        if cfg.target is not None and cfg.dataset is not None:
            missing = _target(con, cfg, rows[cfg.dataset])
    finally:
        con.close()
    items = [(i, c, c.table or str(cfg.dataset)) for i, c in enumerate(cfg.checks)]
    results = check_tables(paths, items, cfg.as_of)
    report: dict[str, Any] = {
        "rows": rows.get(cfg.dataset or ""),
        "tables": rows,
        "checks": results,
    }
    errors = [r for r in results if not r["passed"] and r["level"] == "error"]
    report["passed"] = not errors
    if missing["count"]:
        report["missing_target"] = missing
    out = ctx.workdir / "checks.json"
    out.write_text(json.dumps(report, indent=2, sort_keys=True))
    if errors:
        more = f"; {plural(len(errors) - 1, 'more failing check')}" if len(errors) > 1 else ""
        raise CheckFailed(
            f"data check failed: {summary(errors[0], rows)}{more}; fix the data, or the check "
            f"(checks[{errors[0]['check']}] in mlcrew.yaml; level: warn only reports)",
            report,
        )
    warnings = [summary(r, rows) for r in results if not r["passed"]]
    if missing["count"]:
        warnings.append(
            f"target {cfg.target!r}: {plural(missing['count'], 'row')} without a value left out "
            "(dataset.missing_target: drop)"
        )
    return StageResult({"report": out}, {"checks": len(results), "warnings": warnings})


def _target(con: Any, cfg: CheckConfig, rows: int) -> dict[str, Any]:
    target, dataset = str(cfg.target), str(cfg.dataset)
    columns = [r[0] for r in con.execute(f"DESCRIBE {q(dataset)}").fetchall()]
    if target not in columns:
        raise DataError(
            f"target {target!r} is not a column of the dataset; columns: {', '.join(columns)}"
        )
    missing = missing_target(con, dataset, target)
    if missing["count"] and cfg.missing_target == "error":
        raise DataError(
            f"target {target!r} has no value in {missing['count']} of {plural(rows, 'row')} "
            f"({_rows_said(missing['samples'])}); fill them in, fix the source, or set "
            "dataset.missing_target: drop in mlcrew.yaml to train without those rows"
        )
    return missing


def missing_target(con: Any, table: str, target: str) -> dict[str, Any]:
    """Rows whose target is null, NaN or infinite: their count and the first few."""
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE {q(table)}").fetchall()}
    col = q(target)
    bad = f"{col} IS NULL"
    if types.get(target, "").split("(")[0] in ("DOUBLE", "FLOAT", "REAL"):
        bad += f" OR NOT isfinite({col})"
    numbered = f'(SELECT row_number() OVER () AS "__row", {col} FROM {q(table)})'
    count = int(con.execute(f"SELECT count(*) FROM {numbered} WHERE {bad}").fetchall()[0][0])
    samples = con.execute(
        f'SELECT "__row", {col} FROM {numbered} WHERE {bad} ORDER BY "__row" LIMIT {SAMPLE_ROWS}'
    ).fetchall()
    return {"count": count, "samples": [{"row": int(r), target: jsonable(v)} for r, v in samples]}


def _rows_said(samples: list[dict[str, Any]]) -> str:
    """`rows 5 (empty), 17 (nan)`"""
    said = []
    for sample in samples:
        value = next(v for k, v in sample.items() if k != "row")
        said.append(f"{sample['row']} ({'empty' if value is None else value})")
    return ("row " if len(said) == 1 else "rows ") + ", ".join(said)


def summary(result: dict[str, Any], rows: dict[str, int] | int) -> str:
    """`checks[2] (hum: between 0 and 1): 3 of 4250 rows fail, e.g. row 17: hum=1.2`"""
    head = f"checks[{result['check']}] ({result['rule']})"
    if "distance" in result:
        return f"{head}: distance {result['distance']:.4g} ({result['method']})"
    if "age_hours" in result or "newest" in result:
        return f"{head}: the newest value is {result.get('newest')} (as of {result['as_of']})"
    if "rows" in result and not result.get("column") and "duplicate_keys" not in result:
        return f"{head}: the table has {plural(result['rows'], 'row')}"
    total = rows if isinstance(rows, int) else rows.get(result["table"], 0)
    verb = "fails" if result["failing"] == 1 else "fail"
    fail = f"{result['failing']} of {plural(total, 'row')} {verb}"
    sample = result["samples"][0] if result["samples"] else {}
    if "duplicate_keys" in result:
        keys = ", ".join(f"{k}={v!r}" for k, v in sample.items() if k != "rows")
        return f"{head}: {fail}, e.g. {keys} appears {sample.get('rows')} times"
    if sample and "row" in sample and result.get("column"):
        value = sample.get(result["column"])
        return f"{head}: {fail}, e.g. row {sample['row']}: {result['column']}={value!r}"
    if sample:
        return f"{head}: {fail}, e.g. {json.dumps(sample, default=str)}"
    return f"{head}: {fail} (found type {result.get('type_found')})"
