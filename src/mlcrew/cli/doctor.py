"""`mlcrew doctor`: production readiness (the ML Test Score) and technical debt."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from mlcrew.cli.common import JsonOption, ProjectOption, console, emit_json

app = typer.Typer()

BADGE = {
    "ok": "[green]ok     [/]",
    "partial": "[yellow]partial[/]",
    "missing": "[red]missing[/]",
}


@app.command("doctor")
def doctor_cmd(project: Path = ProjectOption, json_out: bool = JsonOption) -> None:
    """Score the project on the ML Test Score rubric and list its technical debt, each
    finding with what was found and how to fix it."""
    from mlcrew.doctor import doctor
    from mlcrew.project import Project

    proj = Project.open(project)
    result = doctor(proj.store, proj.spec)
    if json_out:
        emit_json(result)
        return
    for section in result["sections"]:
        console.print(f"[bold]{section['name']}[/]  {section['score']:g} of {section['max']:g}")
        for f in section["findings"]:
            console.print(f"  {BADGE[f['status']]:<8} {escape(f['title'])}")
            console.print(f"           [dim]found:[/] {escape(f['found'])}")
            if f["status"] != "ok" and f["fix"]:
                console.print(f"           [dim]fix:[/]   {escape(f['fix'])}")
    console.print(
        f"[bold]ML Test Score: {result['score']:g}[/] (the lowest of the data, model, "
        "infrastructure and monitoring sections; Breck et al. 2017)"
    )
