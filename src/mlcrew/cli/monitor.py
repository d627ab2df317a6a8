"""`mlcrew monitor`: drift and performance of the champion on new data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from mlcrew.cli.common import JsonOption, ProjectOption, console, emit_json
from mlcrew.wording import plural

app = typer.Typer()


def drift_table(report: dict[str, Any], limit: int | None = None) -> Table:
    rows = plural(report["data"]["rows"], "new row")
    table = Table(title=f"drift vs training reference ({rows})")
    for col in ("feature", "method", "score", "threshold", "PSI", "drifted"):
        table.add_column(col)
    for f in report["features"][:limit]:
        table.add_row(
            escape(f["feature"]),
            "missing" if f.get("missing") else (f.get("method") or "—"),
            _number(f.get("p_value") if f.get("method") in ("ks", "chi2") else f.get("score")),
            _number(f.get("threshold")),
            _number(f.get("psi")),
            ("[red]ALERT[/]" if f.get("alert") else "[yellow]yes[/]")
            if f["drifted"]
            else ("no" if f["drifted"] is False else "[dim]too few rows[/]"),
        )
    return table


def _number(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"


@app.command("monitor")
def monitor_cmd(
    data: Path | None = typer.Option(None, "--data", "-d", help="New data: .csv or .parquet."),
    from_log: bool = typer.Option(
        False,
        "--from-log",
        help="Use the inputs of the predictions the service logged (instead of --data).",
    ),
    project: Path = ProjectOption,
    alias: str = typer.Option("champion", help="Model alias or version to monitor."),
    as_given: bool = typer.Option(
        False, "--as-given", help="The file already has the model's columns: skip transforms."
    ),
    json_out: bool = JsonOption,
) -> None:
    """Compare new data with the champion's training data, per feature, and write a report."""
    from mlcrew.monitoring.monitor import monitor
    from mlcrew.project import Project

    proj = Project.open(project)
    report = monitor(
        proj.store,
        proj.spec,
        data.resolve() if data else None,
        alias,
        as_given,
        from_log=from_log,
    )
    if json_out:
        emit_json(report)
        return
    console.print(drift_table(report))
    if not report.get("judged", True):
        console.print(f"[yellow]{escape(report.get('note', 'too few rows to judge'))}[/]")
    perf = report.get("performance")
    if perf:
        from mlcrew.training.metrics import resolve_metric

        metric = resolve_metric(proj.spec.objective.metric, perf["current"])
        if metric in perf["current"]:
            console.print(
                f"{metric} on new data: {perf['current'][metric]:.4g} "
                f"(at training: {perf['at_training'].get(metric, float('nan')):.4g})"
            )
    console.print(f"alerts: {escape(', '.join(report['alerts']) or 'none')}")
    where = str(report.get("report_file", report["report_digest"]))
    console.print(f"report: {escape(where)}", style="dim")
