"""`mlcrew models`: the registry's versions, their verdicts and aliases; `models history`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from mlcrew.cli.common import JsonOption, ProjectOption, console, emit_json, open_model_project

app = typer.Typer(
    name="models",
    help="List the project's model versions (and `models history NAME` for alias moves).",
    invoke_without_command=True,
    no_args_is_help=False,
)


@app.callback()
def models_cmd(
    ctx: typer.Context, project: Path = ProjectOption, json_out: bool = JsonOption
) -> None:
    """List the project's model versions with their metrics, verdict and aliases."""
    if ctx.invoked_subcommand is not None:
        return
    from dataclasses import asdict

    from mlcrew.project import Project
    from mlcrew.registry import aliases, list_versions

    proj = Project.open(project)
    name = proj.spec.name
    versions = list_versions(proj.store, name)
    names = aliases(proj.store, name)
    if json_out:
        emit_json({"name": name, "aliases": names, "versions": [asdict(v) for v in versions]})
        return
    if not versions:
        console.print(f"{name}: no model versions yet; run 'mlcrew run'")
        return
    from mlcrew.training.metrics import resolve_metric

    metric = resolve_metric(proj.spec.objective.metric, versions[-1].metrics)
    table = Table(title=f"{name}: model versions")
    for col in ("version", metric, "verdict", "aliases", "run", "created"):
        table.add_column(col, no_wrap=col in ("run", "aliases"))
    for v in versions:
        tags = ", ".join(a for a, n in sorted(names.items()) if n == v.version)
        value = v.metrics.get(metric)
        table.add_row(
            str(v.version),
            "—" if value is None else f"{value:.4g}",
            "[green]passed[/]" if v.verdict.get("passed") else "[red]failed[/]",
            tags,
            v.run_id,
            v.created_at[:16].replace("T", " "),
        )
    console.print(table)


@app.command("history")
def history_cmd(
    name: str = typer.Argument(..., help="The model's name (the spec's `name`)."),
    alias: str | None = typer.Option(None, "--alias", "-a", help="Only this alias."),
    limit: int = typer.Option(100, min=1, max=10_000, help="How many of the latest moves."),
    project: Path = ProjectOption,
    json_out: bool = JsonOption,
) -> None:
    """Every move of the model's aliases, newest first: when, who, from, to, why, forced."""
    from mlcrew.registry import history

    proj = open_model_project(project, name)
    events = history(proj.store, name, alias, limit)
    if json_out:
        emit_json({"name": name, "events": [e.to_json() for e in events]})
        return
    if not events:
        console.print(f"{name}: no alias has moved yet")
        return
    table = Table(title=f"{name}: alias history (newest first)")
    for col in ("when", "alias", "move", "who", "reason"):
        table.add_column(col, no_wrap=col in ("when", "move"))
    for e in events:
        before = f"v{e.from_version}" if e.from_version is not None else "none"
        move = f"{before} -> v{e.to_version}"
        tag = " [red](forced)[/]" if e.forced else ""
        tag += " [yellow](rollback)[/]" if e.action == "rollback" else ""
        table.add_row(
            e.at[:19].replace("T", " "),
            escape(e.alias),
            move + tag,
            escape(e.actor),
            escape(e.reason),
        )
    console.print(table)
