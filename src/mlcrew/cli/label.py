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


@app.command("assign")
def label_assign(
    labeler: str = typer.Argument(..., help="The user whose queue gets the tasks."),
    count: int = typer.Option(..., "--count", "-n", min=1, max=1_000_000, help="How many."),
    project: Path = ProjectOption,
    json_out: bool = JsonOption,
) -> None:
    """Put tasks in a labeler's queue (for example a batch for an outsourced labeler)."""
    from mlcrew.errors import NotFoundError
    from mlcrew.labeling.queue import assign
    from mlcrew.people.audit import record
    from mlcrew.people.identity import cli_identity, os_user
    from mlcrew.people.users import check_name, grant_identity
    from mlcrew.project import Project

    proj = Project.open(project)
    name = proj.spec.name
    who = grant_identity(proj.store, name, check_name(labeler), "cli")
    if labeler != os_user() and (who is None or not who.may("label_assigned")):
        raise NotFoundError(
            f"{labeler} is not a labeler of {name}: add them with `mlcrew user add {labeler} "
            "--role labeler` (with --external for an outsourced labeler)"
        )
    done = assign(proj.store, labeler, count)
    record(proj.store, name, cli_identity().actor, "label_assign", labeler, {"tasks": done})
    if json_out:
        emit_json({"labeler": labeler, "assigned": done})
        return
    more = "" if done == count else f" (only {done}: no more tasks are waiting)"
    console.print(f"assigned {done} tasks to {labeler}{more}")


@app.command("quality")
def label_quality_cmd(
    project: Path = ProjectOption,
    json_out: bool = JsonOption,
    every: str = typer.Option("day", help="Periods over time: 'day' or N submissions."),
) -> None:
    """Agreement, gold accuracy per labeler, consensus and likely label errors."""
    from mlcrew.labeling.project_quality import project_quality
    from mlcrew.labeling.quality import parse_every
    from mlcrew.labeling.quality_text import quality_tables
    from mlcrew.project import Project

    proj = Project.open(project)
    report = project_quality(
        proj.store, spec=proj.spec, project=proj.root, every=parse_every(every)
    )
    if json_out:
        emit_json(report.to_dict(items=False, issues=100))
        return
    for table in quality_tables(report):
        console.print(table)
