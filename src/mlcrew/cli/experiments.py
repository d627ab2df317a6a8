"""`mlcrew experiments list|show|compare`: the tracked runs of a project (training code's
`mlcrew.start_run` and the pipeline's trials), one run whole, and runs side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from mlcrew.cli.common import JsonOption, ProjectOption, console, emit_json

app = typer.Typer(
    name="experiments", help="Tracked runs: list, filter and sort them, show one, compare several."
)

STATUS_STYLE = {"finished": "green", "failed": "red", "running": "yellow", "lost": "red"}


def _value(value: Any) -> str:
    if isinstance(value, float):
        return "NaN" if value != value else f"{value:.6g}"
    return escape(str(value)) if value is not None else "-"


@app.command("list")
def experiments_list(
    project: Path = ProjectOption,
    filters: list[str] = typer.Option(
        [],
        "--filter",
        "-f",
        help="Keep runs where this holds, e.g. 'metrics.auc>=0.8' or 'params.model=lgbm' "
        "(repeat for and).",
    ),
    sort: str | None = typer.Option(
        None,
        "--sort",
        help="Sort by params.KEY, metrics.KEY or tags.KEY; -metrics.KEY: descending.",
    ),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=10_000, help="At most this many."),
    source: str | None = typer.Option(
        None, "--source", help="Only runs from 'api' (training code) or 'pipeline' (the search)."
    ),
    json_out: bool = JsonOption,
) -> None:
    """The project's tracked runs, newest first: status, params and the last metric values."""
    from mlcrew.experiments import list_runs
    from mlcrew.project import Project

    proj = Project.open(project)
    try:
        runs = list_runs(proj.store, filters=filters, sort=sort, limit=limit, source=source)
    finally:
        proj.close()
    if json_out:
        emit_json({"runs": [r.to_json() for r in runs]})
        return
    if not runs:
        console.print("no tracked runs yet: `with mlcrew.start_run(project) as run: ...`")
        return
    metric_keys = sorted({k for r in runs for k in r.metrics})[:6]
    param_keys = sorted({k for r in runs for k in r.params})
    # The params worth a column are those that differ between the runs shown.
    varying = [k for k in param_keys if len({r.params.get(k) for r in runs}) > 1][:6]
    table = Table(title=f"{len(runs)} tracked run{'s' if len(runs) != 1 else ''}")
    for column in ("id", "name", "status", "started", "s"):
        table.add_column(column, justify="right" if column == "s" else "left")
    for key in varying:
        table.add_column(escape(key))
    for key in metric_keys:
        table.add_column(escape(key), justify="right")
    for r in runs:
        style = STATUS_STYLE.get(r.status, "")
        table.add_row(
            r.id[:8],
            escape(r.name),
            f"[{style}]{r.status}[/]" if style else r.status,
            r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{r.seconds:.1f}" if r.seconds is not None else "-",
            *(_value(r.params.get(k)) for k in varying),
            *(_value(r.metrics.get(k)) for k in metric_keys),
        )
    console.print(table)


@app.command("show")
def experiments_show(
    run: str = typer.Argument(..., help="A run id, or its first 4+ characters."),
    project: Path = ProjectOption,
    json_out: bool = JsonOption,
) -> None:
    """One run: params, tags, artifacts and each metric's points (--json: every point)."""
    from mlcrew.experiments import show_run
    from mlcrew.project import Project

    proj = Project.open(project)
    try:
        doc = show_run(proj.store, run)
    finally:
        proj.close()
    if json_out:
        emit_json(doc)
        return
    style = STATUS_STYLE.get(doc["status"], "")
    console.print(
        f"[bold]{escape(doc['name'])}[/] {doc['id']} [{style}]{doc['status']}[/]"
        f"  started {doc['started_at']}"
        + (f", {doc['seconds']:.1f} s" if doc["seconds"] is not None else "")
    )
    if doc.get("error"):
        console.print(f"[red]{escape(doc['error'])}[/]")
    if doc["params"]:
        table = Table("param", "value", title="params")
        for key, value in doc["params"].items():
            table.add_row(escape(key), escape(value))
        console.print(table)
    if doc["metrics"]:
        table = Table("metric", "points", "steps", "first", "last", "min", "max", title="metrics")
        for key, points in doc["metrics"].items():
            values = [p["value"] for p in points if isinstance(p["value"], (int, float))]
            table.add_row(
                escape(key),
                str(len(points)),
                f"{points[0]['step']}-{points[-1]['step']}",
                _value(points[0]["value"]),
                _value(points[-1]["value"]),
                _value(min(values)) if values else "-",
                _value(max(values)) if values else "-",
            )
        console.print(table)
    for key, value in doc["tags"].items():
        console.print(f"tag {escape(key)} = {escape(value)}")
    for art in doc["artifacts"]:
        console.print(
            f"artifact {escape(art['path'])} ({art['size']:,} bytes, {art['digest'][:12]})"
        )


@app.command("compare")
def experiments_compare(
    runs: list[str] = typer.Argument(..., help="Two runs or more (ids or 4+ character prefixes)."),
    project: Path = ProjectOption,
    all_params: bool = typer.Option(False, "--all", help="Also the params that are the same."),
    json_out: bool = JsonOption,
) -> None:
    """Runs side by side: the params that differ, and each metric's last value (min-max)."""
    from mlcrew.experiments import compare_runs
    from mlcrew.project import Project

    proj = Project.open(project)
    try:
        doc = compare_runs(proj.store, runs)
    finally:
        proj.close()
    if json_out:
        emit_json(doc)
        return
    heads = [f"{escape(r['name'])}\n{r['id'][:8]}" for r in doc["runs"]]
    table = Table("", *heads, title="params" + ("" if all_params else " that differ"))
    shown = [p for p in doc["params"] if all_params or p["differs"]]
    for p in shown:
        cells = [_value(v) for v in p["values"]]
        table.add_row(escape(p["key"]), *(f"[bold]{c}[/]" if p["differs"] else c for c in cells))
    if shown:
        console.print(table)
    else:
        console.print("the runs' params are the same")
    table = Table("", *heads, title="metrics: last (min - max)")
    for m in doc["metrics"]:
        cells = []
        for cell in m["runs"]:
            if not cell["points"]:
                cells.append("-")
                continue
            span = f" ({_value(cell['min'])} - {_value(cell['max'])})" if cell["points"] > 1 else ""
            cells.append(_value(cell["last"]) + span)
        table.add_row(escape(m["key"]), *cells)
    if doc["metrics"]:
        console.print(table)
