"""`mlcrew features cleanup`: which features can be deleted, with what removing each costs."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlcrew.cli.common import JsonOption, ProjectOption, console, emit_json, err_console

app = typer.Typer(name="features", help="The model's features: find the ones to delete.")


@app.command("cleanup")
def cleanup_cmd(
    tolerance: float | None = typer.Option(
        None,
        "--tolerance",
        "-t",
        help="How much worse the objective metric may get, in its own units, for the "
        "features removed together (default: the standard error of the score across folds).",
    ),
    folds: int | None = typer.Option(
        None, "--folds", min=2, max=20, help="Folds of the training split (default: the spec's)."
    ),
    project: Path = ProjectOption,
    json_out: bool = JsonOption,
) -> None:
    """Permutation importance plus drop-column ablation (one feature, then all removable ones
    together), retrained with the same folds and seed: the features whose removal costs less
    than the tolerance, the cost of removing each, and the spec change that removes them."""
    from mlcrew.pipeline.configs import train_config
    from mlcrew.project import Project
    from mlcrew.training.cleanup import cleanup, latest_training_split

    proj = Project.open(project)
    table = latest_training_split(proj.store)
    cfg = train_config(proj.spec)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} retrains"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=json_out or not err_console.is_terminal,
    ) as bar:
        task = bar.add_task("feature cleanup", total=None)

        def tick(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        doc = cleanup(cfg, table, tolerance=tolerance, folds=folds, progress=tick)
    if json_out:
        emit_json(doc)
        return
    table_out = Table(
        title=f"{doc['metric']} {doc['score']:.4g} on {doc['folds']} folds; cost = how much "
        f"worse without the feature (tolerance {doc['tolerance']:g}: {doc['tolerance_from']})"
    )
    for col in ("feature", "cost", "permutation", "removable"):
        table_out.add_column(col, justify="right" if col in ("cost", "permutation") else "left")
    for row in doc["features"]:
        table_out.add_row(
            escape(row["name"]),
            f"{row['cost']:+.4g}",
            f"{row['permutation']:+.4g}",
            "[green]yes[/]" if row["removable"] else "no",
        )
    console.print(table_out)
    together = doc["remove_together"]
    if together["features"]:
        console.print(
            f"removing the {len(together['features'])} removable features together costs "
            f"{together['cost']:+.4g} {doc['metric']}; in mlcrew.yaml:"
        )
        console.print(escape(doc["spec_change"]), highlight=False)
    else:
        console.print("every feature costs more than the tolerance to remove: keep them all")
