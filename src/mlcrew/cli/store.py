"""`mlcrew store verify`: check every artifact against its digest."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from mlcrew.cli.common import JsonOption, ProjectOption, console, emit_json, err_console

app = typer.Typer(name="store", help="The project's store: metadata and artifacts.")


@app.command("verify")
def verify_cmd(project: Path = ProjectOption, json_out: bool = JsonOption) -> None:
    """Re-hash every recorded artifact; report missing or corrupt ones (exit code 1 if any)."""
    from mlcrew.project import Project
    from mlcrew.store.verify import verify_store

    proj = Project.open(project)
    bar = Progress(
        TextColumn("verifying artifacts"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
        disable=json_out,
    )
    with bar:
        task = bar.add_task("verify", total=None)
        report = verify_store(
            proj.store, lambda done, total: bar.update(task, completed=done, total=total)
        )
    if json_out:
        emit_json(report.to_json())
    else:
        console.print(
            f"{report.checked} artifacts checked: {report.ok} ok, {len(report.corrupt)} corrupt, "
            f"{len(report.missing)} missing"
            + (f", {report.unrecorded} unrecorded blob(s)" if report.unrecorded else "")
        )
        for entry in report.corrupt:
            console.print(f"  [red]corrupt[/] {entry['kind']}: {escape(entry['location'])}")
        for entry in report.missing:
            console.print(f"  [red]missing[/] {entry['kind']}: {escape(entry['location'])}")
        if not report.healthy:
            console.print(
                "restore these files from a backup, or delete them and re-create what can be "
                "re-created with 'mlcrew run --force'"
            )
    if not report.healthy:
        raise typer.Exit(1)
