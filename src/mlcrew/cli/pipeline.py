"""`mlcrew run`, `status` and `reproduce`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from mlcrew.cli.common import JsonOption, ProjectOption, console, emit_json, short
from mlcrew.cli.progress import stage_progress

app = typer.Typer()


def print_run(result: dict[str, Any]) -> None:
    verdict = result.get("verdict")
    if verdict:
        style = "green" if verdict["passed"] else "red"
        console.print(f"[{style}]verdict: {'passed' if verdict['passed'] else 'FAILED'}[/]")
        for reason in verdict["reasons"]:
            console.print(f"  {reason}")
    champion = result.get("champion")
    console.print(
        f"champion: {champion['name']} v{champion['version']}" if champion else "champion: none"
    )
    console.print(f"run: {result['run_id']}", style="dim")


@app.command("run")
def run_cmd(
    project: Path = ProjectOption,
    force: bool = typer.Option(False, "--force", help="Bypass the cache: execute every stage."),
    json_out: bool = JsonOption,
) -> None:
    """Run the pipeline; stages whose inputs and config are unchanged come from the cache."""
    from mlcrew.errors import CheckFailed, MlcrewError
    from mlcrew.pipeline.runner import Runner, RunResult
    from mlcrew.pipeline.stages import STAGES
    from mlcrew.project import Project

    proj = Project.open(project)
    try:
        with stage_progress(len(STAGES), enabled=not json_out) as progress:
            runner = Runner(proj.root, proj.store, proj.spec, proj.spec_text, progress)
            result = runner.run(force=force)
    except MlcrewError as exc:
        # A failed run is still a recorded run: --json readers get its document too.
        if json_out and isinstance(exc.run, RunResult):
            doc = exc.run.to_json()
            if isinstance(exc, CheckFailed):
                doc["report"] = exc.report
            emit_json(doc)
        raise
    if json_out:
        emit_json(result.to_json())
    else:
        print_run(result.to_json())


@app.command("status")
def status_cmd(project: Path = ProjectOption, json_out: bool = JsonOption) -> None:
    """Show each stage as fresh, stale (and why) or never run."""
    from mlcrew.pipeline.runner import status
    from mlcrew.project import Project

    proj = Project.open(project)
    rows = status(proj.root, proj.store, proj.spec)
    if json_out:
        emit_json({"project": proj.spec.name, "stages": rows})
        return
    table = Table(title=f"{proj.spec.name}: pipeline status")
    for col in ("stage", "state", "why / outputs"):
        table.add_column(col)
    colors = {"fresh": "green", "stale": "yellow", "never": "dim"}
    for row in rows:
        detail = row.get("why") or ", ".join(
            f"{k}={short(v)}" for k, v in row.get("outputs", {}).items()
        )
        table.add_row(row["name"], f"[{colors[row['state']]}]{row['state']}[/]", detail)
    console.print(table)


@app.command("reproduce")
def reproduce_cmd(
    run_id: str = typer.Argument(..., help="The run to re-execute (see 'mlcrew status')."),
    project: Path = ProjectOption,
    json_out: bool = JsonOption,
) -> None:
    """Re-execute a run with the cache bypassed and compare every output digest."""
    from mlcrew.pipeline.runner import reproduce
    from mlcrew.project import Project

    proj = Project.open(project)
    with stage_progress(6, enabled=not json_out) as progress:
        report = reproduce(proj.store, run_id, progress)
    if json_out:
        emit_json(report)
        if not report["identical"]:
            raise typer.Exit(1)
        return
    if report["identical"]:
        n = sum(len(s["outputs"]) for s in report["stages"])
        console.print(
            f"[green]identical[/]: all {n} outputs of run {run_id} reproduced bit for bit"
        )
        return
    console.print(f"[red]different[/]: run {run_id} did not reproduce")
    for d in report["differences"]:
        if d.get("output"):
            console.print(
                f"  {d['stage']}.{d['output']}: recorded {short(d['recorded'])}, "
                f"reproduced {short(d['reproduced'])}"
            )
        else:
            console.print(f"  {d['stage']}: {d['why']}")
    raise typer.Exit(1)
