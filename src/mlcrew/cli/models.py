"""`mlcrew models`: the registry's versions, their verdicts and aliases."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mlcrew.cli.common import JsonOption, ProjectOption, console, emit_json

app = typer.Typer()


@app.command("models")
def models_cmd(project: Path = ProjectOption, json_out: bool = JsonOption) -> None:
    """List the project's model versions with their metrics, verdict and aliases."""
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
        table.add_column(col, no_wrap=col == "run")
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
