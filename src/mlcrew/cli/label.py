"""`mlcrew label import|refresh|status|export`: turn the spec's items into labeling tasks, order
them and suggest labels from the labels so far, see how far labeling has come, and write the
consensus labels."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mlcrew.cli.common import JsonOption, ProjectOption, console, emit_json, err_console

app = typer.Typer(
    name="label", help="Labeling: import tasks, refresh pre-labels and order, see progress, export."
)


@app.command("import")
def label_import(project: Path = ProjectOption, json_out: bool = JsonOption) -> None:
    """Turn the rows of labeling.from into tasks (again: only new items are added)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from mlcrew.labeling.importer import import_tasks
    from mlcrew.people.identity import cli_identity
    from mlcrew.project import Project

    proj = Project.open(project)
    with Progress(
        TextColumn("[bold]importing items"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
        disable=json_out,
    ) as bar:
        task = bar.add_task("import", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = import_tasks(
            proj.store,
            proj.spec,
            proj.root,
            actor=cli_identity().actor,
            progress=update,
            spec_text=proj.spec_text,
        )
    if json_out:
        emit_json(result.to_json())
        return
    console.print(
        f"imported {result.items} items: {result.added} new, {result.kept} already there"
        + (f", {result.gold} gold" if result.gold else "")
    )
    console.print("next: labelers open [bold]/label[/] on `mlcrew serve`, or GET /v1/labeling/next")


@app.command("status")
def label_status_cmd(project: Path = ProjectOption, json_out: bool = JsonOption) -> None:
    """Tasks, labels and labeled items so far."""
    from mlcrew.labeling.status import label_status
    from mlcrew.project import Project

    status = label_status(Project.open(project).store)
    if json_out:
        emit_json(status.to_json())
        return
    table = Table(show_header=False, box=None)
    rows = [
        ("tasks", f"{status.tasks} ({status.gold} gold)"),
        ("labels", str(status.labels)),
        ("labeled items", str(status.labelled_items)),
        ("complete items", f"{status.complete_items} (as many labels as the overlap asks)"),
        ("waiting for a labeler", str(status.open_items)),
        ("in queues", str(status.held)),
        ("skipped / flagged", f"{status.skipped} / {status.flagged}"),
        ("labelers", str(status.labelers)),
    ]
    for name, value in rows:
        table.add_row(f"[bold]{name}[/]", value)
    console.print(table)


@app.command("refresh")
def label_refresh(project: Path = ProjectOption, json_out: bool = JsonOption) -> None:
    """Recompute pre-labels and the labeling order from the labels so far (labeling.order,
    labeling.prelabel); run it after a batch of labels, or after a new champion."""
    from mlcrew.labeling.refresh import refresh
    from mlcrew.people.identity import cli_identity
    from mlcrew.project import Project

    proj = Project.open(project)
    with err_console.status("training on the labels so far", spinner="dots"):
        result = refresh(proj.store, proj.spec, proj.root, actor=cli_identity().actor)
    if json_out:
        emit_json(result.to_json())
        return
    model = {
        None: "no model yet (fewer than two classes labeled)",
        "given": "the champion",
        "logistic": "logistic regression on the labels so far",
        "lightgbm": "LightGBM on the labels so far",
    }[result.model]
    console.print(
        f"refreshed {result.items} items from {result.labelled} labeled: order {result.order}, "
        f"{result.prelabels} pre-labels; model: {model}"
    )


@app.command("export")
def label_export(
    out: Path = typer.Option(
        Path("labels.parquet"), "--out", "-o", help="File to write (.parquet or .csv)."
    ),
    project: Path = ProjectOption,
    json_out: bool = JsonOption,
) -> None:
    """Write the consensus labels (one row per labeled item) with their lineage."""
    from mlcrew.labeling.export import export_labels
    from mlcrew.people.identity import cli_identity
    from mlcrew.project import Project

    proj = Project.open(project)
    done = export_labels(proj.store, out, actor=cli_identity().actor)
    if json_out:
        emit_json(done.to_json())
        return
    console.print(
        f"wrote {done.rows} labeled items to {out} (sha256 {done.digest[:12]}, label spec "
        f"{done.label_spec[:12]}, {len(done.labelers)} labelers)"
    )
