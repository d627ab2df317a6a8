"""`mlcrew data list|show|diff|profile|query`: the project's datasets (every source and
transform output, versioned), their profiles, differences and read-only SQL over them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from mlcrew.cli.common import JsonOption, ProjectOption, console, emit_json

app = typer.Typer(name="data", help="Datasets: list, show, diff, profile and query them.")

Ref = typer.Argument(..., help="A dataset: NAME (its latest version) or NAME@VERSION.")


def _store(project: Path) -> Any:
    from mlcrew.project import Project

    return Project.open(project)


@app.command("list")
def list_cmd(project: Path = ProjectOption, json_out: bool = JsonOption) -> None:
    """Every dataset (sources and transforms) at its latest version."""
    from mlcrew.data.catalog import list_datasets

    proj = _store(project)
    try:
        rows = list_datasets(proj.store)
    finally:
        proj.close()
    if json_out:
        emit_json({"datasets": rows})
        return
    if not rows:
        console.print("no datasets yet: `mlcrew run` makes them from the spec's sources")
        return
    table = Table(title="datasets")
    for col in ("name", "version", "kind", "rows", "columns", "versions", "made"):
        right = col in ("rows", "columns", "version", "versions")
        table.add_column(col, justify="right" if right else "left", no_wrap=col == "name")
    for r in rows:
        table.add_row(
            r["name"],
            str(r["version"]),
            r["kind"],
            f"{r['rows']:,}",
            str(r["columns"]),
            str(r["versions"]),
            r["created_at"][:16].replace("T", " "),
        )
    console.print(table)


@app.command("show")
def show_cmd(
    ref: str = Ref,
    project: Path = ProjectOption,
    json_out: bool = JsonOption,
) -> None:
    """Schema, rows, profile, checks and lineage of one dataset version."""
    from mlcrew.data.catalog import show_dataset

    proj = _store(project)
    try:
        doc = show_dataset(proj.store, ref)
    finally:
        proj.close()
    if json_out:
        emit_json(doc)
        return
    console.print(
        f"[bold]{doc['name']}@{doc['version']}[/] ({doc['kind']}): {doc['rows']:,} rows, "
        f"{len(doc['schema'])} columns, made {doc['created_at'][:19].replace('T', ' ')}"
    )
    up = ", ".join(
        f"{p['name']}@{p['version']}" if p.get("version") else p["name"] for p in doc["parents"]
    )
    down = ", ".join(f"{c['name']}@{c['version']}" for c in doc["children"])
    console.print(f"made from: {escape(up) or '-'}")
    console.print(f"read by:   {escape(down) or '-'}")
    _print_profile(doc["profile"]["columns"])
    if doc["checks"]:
        latest = doc["checks"][0]["run_id"]
        table = Table(title=f"checks (run {latest})")
        for col in ("check", "rule", "level", "failing"):
            table.add_column(col)
        for c in [c for c in doc["checks"] if c["run_id"] == latest]:
            mark = "[green]passed[/]" if c["passed"] else f"[red]{c['failing']}[/]"
            table.add_row(f"checks[{c['check']}]", escape(str(c["rule"])), c["level"], mark)
        console.print(table)


def _print_profile(columns: list[dict[str, Any]]) -> None:
    table = Table(title="profile")
    for col in ("column", "type", "missing", "distinct", "min", "max", "mean", "top"):
        table.add_column(col)
    for c in columns:
        top = ", ".join(f"{t['value']} ({t['count']})" for t in c.get("top", [])[:3])
        table.add_row(
            escape(c["name"]),
            c["type"],
            str(c["missing"]),
            str(c["distinct"]),
            escape(str(c.get("min", c.get("min_length", "")))),
            escape(str(c.get("max", c.get("max_length", "")))),
            "" if c.get("mean") is None else f"{c['mean']:.4g}",
            escape(top),
        )
    console.print(table)


@app.command("diff")
def diff_cmd(
    a: str = typer.Argument(..., help="The first version: NAME@VERSION (or NAME: the latest)."),
    b: str = typer.Argument(..., help="The second version."),
    key: list[str] = typer.Option([], "--key", "-k", help="Column(s) that identify a row."),
    project: Path = ProjectOption,
    json_out: bool = JsonOption,
) -> None:
    """Schema changes, row counts, per-column statistic deltas, and rows added, removed and
    changed by a key (default: a column unique on both sides, such as an id)."""
    from mlcrew.data.catalog import diff_datasets

    proj = _store(project)
    try:
        doc = diff_datasets(proj.store, a, b, key or None)
    finally:
        proj.close()
    if json_out:
        emit_json(doc)
        return
    da, db = doc["a"], doc["b"]
    console.print(
        f"[bold]{da['name']}@{da['version']} -> {db['name']}@{db['version']}[/]: rows "
        f"{doc['rows']['from']:,} -> {doc['rows']['to']:,} ({doc['rows']['delta']:+,})"
    )
    schema = doc["schema"]
    for c in schema["added"]:
        console.print(f"  [green]+ column {escape(c['name'])}[/] ({c['type']})")
    for c in schema["removed"]:
        console.print(f"  [red]- column {escape(c['name'])}[/] ({c['type']})")
    for c in schema["retyped"]:
        console.print(f"  ~ column {escape(c['name'])}: {c['from']} -> {c['to']}")
    if doc["columns"]:
        table = Table(title="column statistics that changed")
        for col in ("column", "statistic", "from", "to", "delta"):
            table.add_column(col)
        for c in doc["columns"]:
            for stat, ch in c["changes"].items():
                delta = "" if ch["delta"] is None else f"{ch['delta']:+.4g}"
                table.add_row(escape(c["name"]), stat, str(ch["from"]), str(ch["to"]), delta)
        console.print(table)
    rows = doc.get("by_key")
    if rows:
        console.print(
            f"by {', '.join(rows['key'])}: {rows['added']} added, {rows['removed']} removed, "
            f"{rows['changed']} changed"
        )
        for s in rows["samples"]:
            changes = "; ".join(
                f"{k}: {v['from']!r} -> {v['to']!r}" for k, v in s["changes"].items()
            )
            console.print(f"  {escape(str(s['key']))}: {escape(changes)}")


@app.command("profile")
def profile_cmd(
    ref: str = Ref,
    suggest: bool = typer.Option(
        False, "--suggest", help="Print checks inferred from the data, as YAML for mlcrew.yaml."
    ),
    project: Path = ProjectOption,
    json_out: bool = JsonOption,
) -> None:
    """Per-column statistics computed in DuckDB; with --suggest, checks that the data passes,
    written as YAML to paste into the spec's checks:."""
    from mlcrew.data.catalog import profile_dataset, suggest_checks, suggest_yaml

    proj = _store(project)
    try:
        profile = profile_dataset(proj.store, ref)
        table = profile["name"]
        default = proj.spec.dataset.from_ if proj.spec.dataset else None
    finally:
        proj.close()
    checks = suggest_checks(profile, None if table == default else table) if suggest else None
    if json_out:
        emit_json({**profile, **({"suggested": checks} if suggest else {})})
        return
    if suggest:
        sys.stdout.write(suggest_yaml(checks or []))
        return
    console.print(f"[bold]{profile['name']}@{profile['version']}[/]: {profile['rows']:,} rows")
    _print_profile(profile["columns"])


@app.command("query")
def query_cmd(
    sql: str = typer.Argument(..., help="One SELECT over the datasets (NAME or NAME@VERSION)."),
    fmt: str = typer.Option(
        "table", "--format", "-f", help="table (for people), json, csv, arrow or parquet."
    ),
    limit: int = typer.Option(1000, "--limit", "-n", min=0, help="At most this many rows."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to FILE."),
    project: Path = ProjectOption,
) -> None:
    """Read-only SQL over the project's datasets, in the same sandbox as the query API."""
    from mlcrew.data.query import FORMATS, Limits, encode, run_query

    if fmt not in ("table", *FORMATS):
        raise typer.BadParameter(f"use one of table, {', '.join(FORMATS)}", param_hint="--format")
    proj = _store(project)
    try:
        limits = Limits.of(proj.spec.serving.query, rows=max(limit, 1))
        result = run_query(proj.store, sql, limit, limits)
        if fmt == "table":
            _print_rows(result)
            return
        out = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
        try:
            for chunk in encode(result, fmt):  # type: ignore[arg-type]
                out.write(chunk)
            if fmt == "json" and not output:
                out.write(b"\n")
        finally:
            if output:
                out.close()
            else:
                out.flush()
    finally:
        proj.close()


def _print_rows(result: Any) -> None:
    table = Table()
    for col in result.columns:
        table.add_column(escape(col))
    shown = 0
    for batch in result.batches:
        cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        for row in zip(*cols, strict=True):
            table.add_row(*(escape("" if v is None else str(v)) for v in row))
            shown += 1
    console.print(table)
    more = " (the limit; --limit N for more)" if shown == result.limit else ""
    console.print(f"{shown:,} rows{more}", style="dim")
