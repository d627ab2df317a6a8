"""`mlcrew score`: batch predictions for a CSV or Parquet file, recorded as a scoring run."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from mlcrew.cli.common import JsonOption, ProjectOption, console, emit_json, err_console

app = typer.Typer()


@app.command("score")
def score_cmd(
    data: Path = typer.Option(..., "--data", "-d", help="Rows to score: .csv or .parquet."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Where to write them with predictions: .parquet or .csv."
    ),
    alias: str | None = typer.Option(None, help="Model alias to score with (default: champion)."),
    version: int | None = typer.Option(
        None, "--version", min=1, help="Model version number (instead of --alias)."
    ),
    project: Path = ProjectOption,
    chunk_rows: int = typer.Option(
        65_536, "--chunk-rows", min=1, help="Rows per chunk (memory use grows with it)."
    ),
    json_out: bool = JsonOption,
) -> None:
    """Score every row of a file: one output row per input row, its columns + `prediction`."""
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from mlcrew.errors import MlcrewError
    from mlcrew.project import Project
    from mlcrew.registry import CHAMPION
    from mlcrew.serving.batch import file_format, score_file

    if alias is not None and version is not None:
        raise MlcrewError("give --alias or --version, not both")
    proj = Project.open(project)
    ref: str | int = version if version is not None else (alias or CHAMPION)
    file_format(data, "input")  # a clear error before anything is loaded
    columns = [
        TextColumn("[bold]scoring"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed:,.0f} rows"),
    ]
    # A bar only on a terminal: piped stderr gets the result and errors, not redraws.
    bar = Progress(
        *columns,
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )
    with bar:
        task = bar.add_task("score", total=None)
        result = score_file(
            proj.store,
            proj.spec.name,
            data.resolve(),
            out.resolve(),
            ref,
            chunk_rows=chunk_rows,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if json_out:
        emit_json(result.to_json())
        return
    rate = f"{result.rows / result.seconds:,.0f} rows/s" if result.seconds else ""
    console.print(
        f"scored {result.rows:,} row{'s' if result.rows != 1 else ''} with "
        f"{escape(result.name)} version {result.version} in {result.seconds:.2f}s ({rate}) -> "
        f"{escape(str(out))}"
    )
    console.print(f"run {result.run_id}", style="dim")
