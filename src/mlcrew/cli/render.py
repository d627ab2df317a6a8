"""Printing what a command did: the consoles, JSON on stdout, and a run's summary.

Only Rich is imported here (no Typer, no store), so the cached no-op replay prints exactly what
`mlcrew run` prints without paying for the rest of the CLI."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from mlcrew.pipeline.results import RunResult

# soft_wrap: a long line (a path, a command to copy) is never broken inside a word at 80
# columns when output goes to a pipe or a log; the terminal wraps it if it must.
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    sys.stdout.flush()


def stage_line(stage: str, event: str, seconds: float | None = None) -> str:
    """The line a finished stage leaves under the progress bar."""
    if event == "executed":
        note = f" in {seconds:.2f}s" if seconds else ""
        return f"  [green]✓[/] {stage:<9} [dim]executed{note}[/]"
    return f"  [cyan]↺[/] {stage:<9} [dim]cached[/]"


def print_run(result: RunResult) -> None:
    for warning in result.to_json()["warnings"]:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    training = result.training or {}
    reason = training.get("task_reason", "")
    if reason and not reason.startswith("task:"):  # task: auto decided: say what and why
        console.print(f"task: {training['task']} ({escape(reason)})")
    if training.get("model"):
        kinds = [
            f"{m['kind']} (trial {m['trial']}, weight {m['weight']:.2f})" for m in training["model"]
        ]
        where = ", ".join(f"{k} {v}" for k, v in (training.get("validation") or {}).items())
        console.print(
            f"model search: {training['trials']} trials, {training['metric']} "
            f"{training['valid_score']:.4g} on {where}; chose "
            + ("ensemble of " if len(kinds) > 1 else "")
            + ", ".join(kinds)
        )
    verdict = result.verdict
    if verdict:
        style = "green" if verdict["passed"] else "red"
        console.print(f"[{style}]verdict: {'passed' if verdict['passed'] else 'FAILED'}[/]")
        for reason in verdict["reasons"]:
            console.print(f"  {escape(reason)}")
    ingest = next((o for o in result.stages if o.name == "ingest"), None)
    if ingest is not None and not any(o.name == "train" for o in result.stages):
        # A data-only project: what the run made is its tables.
        for name, table in ingest.record.get("tables", {}).items():
            version = f"@{table['version']}" if "version" in table else ""
            console.print(
                f"  {escape(name)}{version}: {table['rows']:,} rows ({table['kind']}, "
                f"{'cached' if ingest.state == 'cached' else table['state']})"
            )
    else:
        console.print(escape(result.champion_story()))
    console.print(f"run: {result.run_id}", style="dim")
