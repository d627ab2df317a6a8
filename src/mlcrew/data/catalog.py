"""The project's datasets: every source and transform output, versioned (data/nodes.py).

`list_datasets`, `show_dataset` (schema, rows, profile, checks, lineage), `diff_datasets`
(schema changes, row counts, per-column statistic deltas, changed rows by a key) and
`profile_dataset` / `suggest_checks`; the statistics are computed in DuckDB over the version's
Parquet file. `NAME` means the latest version, `NAME@3` version 3.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from mlcrew.checks.rules import jsonable, q
from mlcrew.data.tables import connect
from mlcrew.errors import DataError, NotFoundError
from mlcrew.store import Store
from mlcrew.store.models import DatasetVersion, StageExecution

REF = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:@(\d+))?$")
TOP_VALUES = 5
CHANGED_SAMPLES = 5


def parse_ref(ref: str) -> tuple[str, int | None]:
    found = REF.match(ref.strip())
    if not found:
        raise DataError(f"{ref[:80]!r} is not a dataset: write NAME or NAME@VERSION (trips@3)")
    return found.group(1), int(found.group(2)) if found.group(2) else None


def list_datasets(store: Store) -> list[dict[str, Any]]:
    """The latest version of each dataset, with how many versions it has, by name."""
    with store.session() as s:
        counts = dict(
            s.execute(select(DatasetVersion.name, func.count()).group_by(DatasetVersion.name)).all()
        )
        latest = s.execute(
            select(DatasetVersion.name, func.max(DatasetVersion.version)).group_by(
                DatasetVersion.name
            )
        ).all()
        rows = []
        for name, version in sorted(latest):
            v = _get(s, name, version)
            if v is not None:
                rows.append({**_summary(v), "versions": int(counts[name])})
    return rows


def resolve(store: Store, ref: str) -> DatasetVersion:
    """The version `ref` names; an unknown name or version says what there is."""
    name, version = parse_ref(ref)
    with store.session() as s:
        if version is None:
            version = s.scalar(
                select(func.max(DatasetVersion.version)).where(DatasetVersion.name == name)
            )
        found = _get(s, name, version) if version is not None else None
        if found is not None:
            return found
        names = list(s.scalars(select(DatasetVersion.name).distinct()))
        versions = sorted(
            s.scalars(select(DatasetVersion.version).where(DatasetVersion.name == name))
        )
    if versions:
        raise NotFoundError(
            f"dataset {name!r} has no version {version}; versions: "
            + ", ".join(str(v) for v in versions)
        )
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    known = ", ".join(sorted(names)) if names else "none yet: run `mlcrew run` first"
    raise NotFoundError(f"no dataset {name!r}{hint}; datasets: {known}")


def latest(store: Store, ref: str) -> tuple[int, str]:
    """(version, digest) of what `ref` names, in one query: the query API's path (resolve
    says what there is when nothing matches)."""
    name, version = parse_ref(ref)
    query = select(DatasetVersion.version, DatasetVersion.digest).where(DatasetVersion.name == name)
    if version is not None:
        query = query.where(DatasetVersion.version == version)
    with store.session() as s:
        row = s.execute(query.order_by(DatasetVersion.version.desc()).limit(1)).first()
    if row is None:
        found = resolve(store, ref)  # raises, naming the datasets or versions there are
        return found.version, found.digest
    return int(row[0]), str(row[1])


def _get(s: Any, name: str, version: int) -> DatasetVersion | None:
    found: DatasetVersion | None = s.scalars(
        select(DatasetVersion).where(DatasetVersion.name == name, DatasetVersion.version == version)
    ).first()
    return found


def _summary(v: DatasetVersion) -> dict[str, Any]:
    return {
        "name": v.name,
        "version": v.version,
        "kind": v.kind,
        "rows": v.rows,
        "columns": len(v.columns),
        "digest": v.digest,
        "created_at": v.created_at.isoformat(),
    }


def data_path(store: Store, v: DatasetVersion) -> Path:
    """A local Parquet file of the version (the blob itself in a local store)."""
    return store.artifacts.local_path(v.digest)


def _view(con: Any, name: str, path: Path) -> None:
    quoted = "'" + str(path).replace("'", "''") + "'"
    con.execute(f"CREATE VIEW {q(name)} AS SELECT * FROM read_parquet({quoted})")


def show_dataset(store: Store, ref: str, *, profile: bool = True) -> dict[str, Any]:
    """One version: {"name", "version", "rows", "schema": [{"name", "type"}], ...} with its
    lineage (parents and children), its profile and the latest checks that read it."""
    v = resolve(store, ref)
    doc: dict[str, Any] = {
        "name": v.name,
        "version": v.version,
        "rows": v.rows,
        "schema": list(v.columns),
        "kind": v.kind,
        "digest": v.digest,
        "created_at": v.created_at.isoformat(),
        "run_id": v.run_id,
        "detail": dict(v.detail),
        "parents": list(v.parents),
        "children": _children(store, v),
        "versions": _versions(store, v.name),
    }
    if profile:
        doc["profile"] = profile_dataset(store, v)
    doc["checks"] = check_history(store, v.name)
    return doc


def _versions(store: Store, name: str) -> list[dict[str, Any]]:
    with store.session() as s:
        found = s.scalars(
            select(DatasetVersion)
            .where(DatasetVersion.name == name)
            .order_by(DatasetVersion.version)
        ).all()
        return [
            {"version": v.version, "rows": v.rows, "created_at": v.created_at.isoformat()}
            for v in found
        ]


def _children(store: Store, v: DatasetVersion) -> list[dict[str, Any]]:
    """Versions made from this one (their parents name it)."""
    out = []
    with store.session() as s:
        for other in s.scalars(select(DatasetVersion).order_by(DatasetVersion.id)):
            if any(
                p.get("name") == v.name and p.get("version") == v.version for p in other.parents
            ):
                out.append({"name": other.name, "version": other.version})
    return out


def lineage(store: Store) -> dict[str, Any]:
    """The latest version of every dataset and the edges between them (for the graph)."""
    nodes = list_datasets(store)
    latest = {(n["name"], n["version"]) for n in nodes}
    edges = []
    with store.session() as s:
        for v in s.scalars(select(DatasetVersion)):
            if (v.name, v.version) not in latest:
                continue
            for p in v.parents:
                edges.append({"from": p.get("name"), "to": v.name})
    return {"nodes": nodes, "edges": edges}


def check_history(store: Store, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The results of checks on this table in recent pipeline runs, newest first."""
    out: list[dict[str, Any]] = []
    with store.session() as s:
        executions = s.scalars(
            select(StageExecution)
            .where(StageExecution.stage == "check", StageExecution.state != "cached")
            .order_by(StageExecution.id.desc())
            .limit(limit)
        ).all()
        for ex in executions:
            digest = ex.outputs.get("report")
            report = _json(store, digest) if digest else ex.record.get("report", {})
            for result in (report or {}).get("checks", []):
                if result.get("table") == name:
                    out.append(
                        {
                            "run_id": ex.run_id,
                            "at": ex.finished_at.isoformat(),
                            "check": result.get("check"),
                            "rule": result.get("rule"),
                            "level": result.get("level"),
                            "failing": result.get("failing"),
                            "passed": result.get("passed"),
                        }
                    )
    return out


def _json(store: Store, digest: str) -> dict[str, Any]:
    import json

    try:
        doc: dict[str, Any] = json.loads(store.artifacts.read_bytes(digest))
    except Exception:  # a missing or unreadable report leaves a gap in the history
        return {}
    return doc


def profile_dataset(store: Store, v: DatasetVersion | str) -> dict[str, Any]:
    """Per-column statistics, computed in DuckDB: type, count, missing, distinct, min, max,
    mean, std, quartiles (numbers), lengths (text) and the most frequent values."""
    import duckdb

    version = resolve(store, v) if isinstance(v, str) else v
    con = connect()
    try:
        _view(con, "t", data_path(store, version))
        return {
            "name": version.name,
            "version": version.version,
            "rows": version.rows,
            "columns": profile_table(con, "t"),
        }
    except duckdb.Error as exc:
        raise DataError(
            f"cannot profile {version.name}@{version.version}: {str(exc).splitlines()[0]}"
        ) from None
    finally:
        con.close()


NUMERIC: tuple[str, ...] = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT")
NUMERIC += ("DOUBLE", "DECIMAL", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")


def profile_table(con: Any, table: str) -> list[dict[str, Any]]:
    columns = con.execute(f"DESCRIBE {q(table)}").fetchall()
    out: list[dict[str, Any]] = []
    for name, kind, *_ in columns:
        col = q(name)
        base = kind.split("(")[0]
        stats: dict[str, Any] = {"name": name, "type": kind}
        n, nulls, distinct = con.execute(
            f"SELECT count(*), count(*) - count({col}), count(DISTINCT {col}) FROM {q(table)}"
        ).fetchall()[0]
        stats.update({"count": int(n), "missing": int(nulls), "distinct": int(distinct)})
        if base in NUMERIC:
            # Statistics of the finite values: one NaN or infinity would make them all NaN.
            finite = f"WHERE isfinite(CAST({col} AS DOUBLE))"
            row = con.execute(
                f"SELECT min({col}), max({col}), avg({col}), stddev_samp({col}), "
                f"quantile_cont({col}, [0.25, 0.5, 0.75]) FROM {q(table)} {finite}"
            ).fetchall()[0]
            stats.update(
                {
                    "min": jsonable(row[0]),
                    "max": jsonable(row[1]),
                    "mean": _round(row[2]),
                    "std": _round(row[3]),
                    "quartiles": [_round(x) for x in (row[4] or [])],
                }
            )
            stats["histogram"] = _histogram(con, table, col, row[0], row[1])
        elif base == "VARCHAR":
            row = con.execute(
                f"SELECT min(length({col})), max(length({col})) FROM {q(table)}"
            ).fetchall()[0]
            stats.update({"min_length": jsonable(row[0]), "max_length": jsonable(row[1])})
        else:
            row = con.execute(f"SELECT min({col}), max({col}) FROM {q(table)}").fetchall()[0]
            stats.update({"min": jsonable(row[0]), "max": jsonable(row[1])})
        if base not in ("DOUBLE", "FLOAT") and distinct:
            top = con.execute(
                f"SELECT {col}, count(*) AS c FROM {q(table)} WHERE {col} IS NOT NULL "
                f"GROUP BY 1 ORDER BY c DESC, 1 LIMIT {TOP_VALUES}"
            ).fetchall()
            stats["top"] = [{"value": jsonable(v), "count": int(c)} for v, c in top]
        out.append(stats)
    return out


def _histogram(con: Any, table: str, col: str, low: Any, high: Any, bins: int = 20) -> list[int]:
    if low is None or high is None:
        return []
    low, high = float(low), float(high)
    if high <= low:
        return [int(con.execute(f"SELECT count({col}) FROM {q(table)}").fetchall()[0][0])]
    width = (high - low) / bins
    rows = con.execute(
        f"SELECT least(floor((CAST({col} AS DOUBLE) - ?) / ?)::BIGINT, {bins - 1}) AS b, "
        f"count(*) FROM {q(table)} WHERE isfinite(CAST({col} AS DOUBLE)) GROUP BY 1",
        [low, width],
    ).fetchall()
    counts = [0] * bins
    for b, c in rows:
        counts[int(b)] = int(c)
    return counts


def _round(x: Any) -> Any:
    return None if x is None else round(float(x), 6)


def suggest_checks(profile: dict[str, Any], table: str | None = None) -> list[dict[str, Any]]:
    """Checks that the profiled data passes, as a starting point for the spec: types, no
    missing values where there are none, ranges, allowed values of small categories, unique
    keys, and a lower bound on the row count."""
    checks: list[dict[str, Any]] = []
    rows = int(profile["rows"])
    where = {"table": table} if table else {}
    for col in profile["columns"]:
        base = col["type"].split("(")[0]
        check: dict[str, Any] = {**where, "column": col["name"]}
        kind = _type_group(base)
        if kind:
            check["type"] = kind
        if col["missing"] == 0 and rows:
            check["not_null"] = True
        if base in NUMERIC and col.get("min") is not None:
            check["between"] = [col["min"], col["max"]]
        elif base == "VARCHAR" and 0 < col["distinct"] <= 20 and col["distinct"] < rows:
            values = _all_values(col)
            if values is not None:
                check["in"] = values
        if len(check) > len(where) + 1:
            checks.append(check)
        if col["distinct"] == rows and rows > 1 and col["missing"] == 0 and _key_like(col):
            checks.append({**where, "column": col["name"], "unique": True})
    if rows:
        checks.append({**where, "rows": {"min": 1}})
    return checks


def _key_like(col: dict[str, Any]) -> bool:
    """A column that identifies rows: named like a key, or text with a value per row."""
    name = col["name"].lower()
    base = col["type"].split("(")[0]
    if base in ("DOUBLE", "FLOAT", "DECIMAL"):
        return False
    named = name in ("id", "key", "uuid", "code") or name.endswith(("_id", "_key", "_uuid"))
    return named or (base == "VARCHAR" and col["count"] >= 20)


def _type_group(base: str) -> str | None:
    from mlcrew.checks.rules import TYPE_GROUPS

    for group in ("integer", "float", "string", "boolean", "date", "timestamp"):
        if base in TYPE_GROUPS[group]:
            return group
    return None


def _all_values(col: dict[str, Any]) -> list[Any] | None:
    top = col.get("top") or []
    if len(top) >= col["distinct"]:
        return sorted(t["value"] for t in top)
    return None


def suggest_yaml(checks: list[dict[str, Any]]) -> str:
    import yaml

    body = yaml.safe_dump({"checks": checks}, sort_keys=False, default_flow_style=None, width=100)
    return (
        "# Suggested by `mlcrew data profile --suggest`: every check passes on the data it came\n"
        "# from. Keep what is a rule of the data, widen ranges that are only what was seen.\n"
        + body
    )


def diff_datasets(store: Store, a: str, b: str, key: list[str] | None = None) -> dict[str, Any]:
    """Two versions side by side: schema changes, row counts, per-column statistic deltas and,
    with a key (or a column both call unique, such as an id), the rows added, removed and
    changed."""
    import duckdb

    va, vb = resolve(store, a), resolve(store, b)
    con = connect()
    try:
        _view(con, "a", data_path(store, va))
        _view(con, "b", data_path(store, vb))
        cols_a = {c["name"]: c["type"] for c in va.columns}
        cols_b = {c["name"]: c["type"] for c in vb.columns}
        schema = {
            "added": [{"name": c, "type": cols_b[c]} for c in cols_b if c not in cols_a],
            "removed": [{"name": c, "type": cols_a[c]} for c in cols_a if c not in cols_b],
            "retyped": [
                {"name": c, "from": cols_a[c], "to": cols_b[c]}
                for c in cols_a
                if c in cols_b and cols_a[c] != cols_b[c]
            ],
        }
        prof_a = {c["name"]: c for c in profile_table(con, "a")}
        prof_b = {c["name"]: c for c in profile_table(con, "b")}
        stats = []
        for name in [c for c in cols_a if c in cols_b]:
            deltas = {}
            for stat in ("missing", "distinct", "min", "max", "mean", "std"):
                x, y = prof_a[name].get(stat), prof_b[name].get(stat)
                if x != y and (x is not None or y is not None):
                    delta = y - x if _numbers(x, y) else None  # type: ignore[operator]
                    deltas[stat] = {"from": x, "to": y, "delta": _round(delta)}
            if deltas:
                stats.append({"name": name, "changes": deltas})
        doc: dict[str, Any] = {
            "a": {"name": va.name, "version": va.version, "rows": va.rows},
            "b": {"name": vb.name, "version": vb.version, "rows": vb.rows},
            "rows": {"from": va.rows, "to": vb.rows, "delta": vb.rows - va.rows},
            "schema": schema,
            "columns": stats,
        }
        key = key or _natural_key(prof_a, prof_b, va.rows, vb.rows)
        if key:
            doc["by_key"] = _row_changes(con, key, [c for c in cols_a if c in cols_b])
        return doc
    except duckdb.Error as exc:
        raise DataError(f"cannot diff {a} and {b}: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()


def _numbers(x: Any, y: Any) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))


def _natural_key(
    a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]], rows_a: int, rows_b: int
) -> list[str] | None:
    """A column unique and complete on both sides, preferring one named like an id."""
    shared = [n for n in a if n in b]
    unique = [
        n
        for n in shared
        if a[n]["distinct"] == rows_a
        and b[n]["distinct"] == rows_b
        and not a[n]["missing"]
        and not b[n]["missing"]
        and a[n]["type"].split("(")[0] not in ("DOUBLE", "FLOAT")
    ]
    named = [n for n in unique if n.lower() in ("id", "key") or n.lower().endswith("_id")]
    chosen = named or unique
    return [chosen[0]] if chosen else None


def _row_changes(con: Any, key: list[str], shared: list[str]) -> dict[str, Any]:
    missing = [k for k in key if k not in shared]
    if missing:
        raise DataError(f"diff key {missing} is not a column of both versions; columns: {shared}")
    on = " AND ".join(
        f"CAST(a.{q(k)} AS VARCHAR) IS NOT DISTINCT FROM CAST(b.{q(k)} AS VARCHAR)" for k in key
    )
    values = [c for c in shared if c not in key]
    # Compared as text, so a column whose type changed (BIGINT -> VARCHAR) compares at all.
    differs = (
        " OR ".join(
            f"CAST(a.{q(c)} AS VARCHAR) IS DISTINCT FROM CAST(b.{q(c)} AS VARCHAR)" for c in values
        )
        or "false"
    )
    first = q(key[0])
    joined = f"FROM a FULL OUTER JOIN b ON {on}"
    added, removed, changed = con.execute(
        f"SELECT count(*) FILTER (WHERE a.{first} IS NULL), "
        f"count(*) FILTER (WHERE b.{first} IS NULL), "
        f"count(*) FILTER (WHERE a.{first} IS NOT NULL AND b.{first} IS NOT NULL AND "
        f"({differs})) {joined}"
    ).fetchall()[0]
    keys = ", ".join(f"coalesce(a.{q(k)}, b.{q(k)}) AS {q(k)}" for k in key)
    samples = []
    if changed:
        cols = ", ".join(f"a.{q(c)}, b.{q(c)}" for c in values)
        rows = con.execute(
            f"SELECT {keys}, {cols} {joined} WHERE a.{first} IS NOT NULL AND b.{first} IS NOT "
            f"NULL AND ({differs}) ORDER BY ALL LIMIT {CHANGED_SAMPLES}"
        ).fetchall()
        for r in rows:
            ident = dict(zip(key, (jsonable(x) for x in r[: len(key)]), strict=True))
            pairs = r[len(key) :]
            change = {
                c: {"from": jsonable(pairs[2 * i]), "to": jsonable(pairs[2 * i + 1])}
                for i, c in enumerate(values)
                if pairs[2 * i] != pairs[2 * i + 1]
            }
            samples.append({"key": ident, "changes": change})
    return {
        "key": key,
        "added": int(added),
        "removed": int(removed),
        "changed": int(changed),
        "samples": samples,
    }
