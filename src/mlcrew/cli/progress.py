"""A Rich progress display for pipeline runs (on stderr, so stdout stays clean for --json)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from mlcrew.cli.render import err_console, stage_line

if TYPE_CHECKING:
    from mlcrew.pipeline.runner import Progress as ProgressFn


@contextmanager
def stage_progress(total: int, enabled: bool = True) -> Iterator[ProgressFn]:
    if not enabled:
        # Even with --json (stdout is for the document), a pause is said on stderr.
        def quiet(stage: str, event: str, detail: dict[str, Any]) -> None:
            if event == "waiting":
                err_console.print(f"waiting: {detail.get('message', '')}", markup=False)

        yield quiet
        return
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} stages"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,  # the bar goes; the per-stage lines stay
    )
    task = progress.add_task("pipeline", total=total)

    def update(stage: str, event: str, detail: dict[str, Any]) -> None:
        if event == "start":
            progress.update(task, description=f"{stage}: running")
        elif event in ("executed", "cached"):
            progress.console.print(stage_line(stage, event, detail.get("seconds")))
            progress.advance(task)
            progress.update(task, description="pipeline")
        elif event == "waiting":
            progress.console.print(f"[yellow]waiting:[/] {detail.get('message', '')}")
        elif event == "failed":
            progress.console.print(f"  [red]✗[/] {stage:<9} [red]failed[/]")

    with progress:
        yield update
