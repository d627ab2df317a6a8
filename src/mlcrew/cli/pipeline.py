"""`mlcrew run`, `status` and `reproduce`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from mlcrew.cli.common import JsonOption, ProjectOption, console, emit_json, short
from mlcrew.cli.progress import stage_progress
from mlcrew.cli.render import print_run

if TYPE_CHECKING:
    pass

app = typer.Typer()

# `mlcrew run` exits with this code when the model failed a gate, so CI can stop on it.
GATES_FAILED = 3


VerifyOption = typer.Option(
    False,
    "--verify",
    help="Re-hash every source file instead of trusting the digest cache (path, size, "
    "modification time, inode).",
)


@app.command("run")
def run_cmd(
    project: Path = ProjectOption,
    force: bool = typer.Option(False, "--force", help="Bypass the cache: execute every stage."),
    verify: bool = VerifyOption,
    executor: str | None = typer.Option(
        None,
        "--executor",
        help="Where training trials run: local or ray (default: execution.engine in the spec).",
    ),
    address: str | None = typer.Option(
        None, "--address", help="The Ray cluster's HOST:PORT (default: execution.address)."
    ),
    json_out: bool = JsonOption,
) -> None:
    """Run the pipeline; unchanged stages come from the cache.

    Exit code: 0 if the model passed every gate; 3 if it failed one, or its automatic promotion
    was refused (registered, not promoted); 1 if the pipeline stopped (a failed check, bad data)."""
    from mlcrew.errors import CheckFailed, MlcrewError
    from mlcrew.pipeline.executors import make_executor
    from mlcrew.pipeline.runner import Runner
    from mlcrew.pipeline.stages import stages_for
    from mlcrew.project import Project

    proj = Project.open(project)
    chosen = make_executor(proj.spec.execution, executor, address)
    try:
        with stage_progress(len(stages_for(proj.spec)), enabled=not json_out) as progress:
            runner = Runner(
                proj.root,
                proj.store,
                proj.spec,
                proj.spec_text,
                progress,
                executor=chosen,
                verify=verify,
                replayable=executor is None and address is None,
            )
            result = runner.run(force=force)
    except MlcrewError as exc:
        # A failed run is still a recorded run: --json readers get its document too.
        from mlcrew.pipeline.runs import RunResult

        if json_out and isinstance(exc.run, RunResult):
            doc = exc.run.to_json()
            if isinstance(exc, CheckFailed):
                doc["report"] = exc.report
            emit_json(doc)
        raise
    finally:
        chosen.close()
    if json_out:
        emit_json(result.to_json())
    else:
        print_run(result)
    refused = result.promotion is not None and not result.promotion.promoted
    if (result.verdict and not result.verdict["passed"]) or refused:
        raise typer.Exit(GATES_FAILED)


@app.command("status")
def status_cmd(
    project: Path = ProjectOption, verify: bool = VerifyOption, json_out: bool = JsonOption
) -> None:
    """Show each stage as fresh, stale (and why) or never run."""
    from mlcrew.pipeline.status import status
    from mlcrew.project import Project

    proj = Project.open(project)
    rows = status(proj.root, proj.store, proj.spec, verify=verify)
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
        table.add_row(row["name"], f"[{colors[row['state']]}]{row['state']}[/]", escape(detail))
    console.print(table)


@app.command("runs")
def runs_cmd(
    project: Path = ProjectOption,
    limit: int = typer.Option(20, min=1, help="How many of the latest runs."),
    json_out: bool = JsonOption,
) -> None:
    """List the latest runs: id, status, what executed, verdict and champion."""
    from mlcrew.pipeline.runs import list_runs
    from mlcrew.project import Project

    proj = Project.open(project)
    runs = list_runs(proj.store, limit, proj.spec.name)
    if json_out:
        emit_json({"project": proj.spec.name, "runs": runs})
        return
    if not runs:
        console.print("no runs yet; start one with 'mlcrew run'")
        return
    # Fits 80 columns: light rules, short dates that never wrap, and only `executed` may wrap.
    table = Table(
        title=f"{proj.spec.name}: latest runs",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for col in ("run", "status", "started", "verdict", "champion"):
        table.add_column(col, no_wrap=True)
    table.add_column("executed", min_width=9)
    for r in runs:
        verdict = r["verdict"]
        table.add_row(
            r["run_id"],
            r["status"] if r["status"] == "ok" else f"[red]{r['status']}[/]",
            r["started_at"][:16].replace("T", " "),
            "—" if not verdict else ("[green]passed[/]" if verdict["passed"] else "[red]failed[/]"),
            f"v{r['champion']['version']}" if r["champion"] else "—",
            ", ".join(r["executed"]) or "[dim]all cached[/]",
        )
    console.print(table)


@app.command("reproduce")
def reproduce_cmd(
    run_id: str = typer.Argument(..., help="The run to re-execute (see 'mlcrew runs')."),
    project: Path = ProjectOption,
    json_out: bool = JsonOption,
) -> None:
    """Re-execute a run with the cache bypassed and compare every output digest."""
    from mlcrew.pipeline.reproduce import reproduce
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
            f"[green]identical[/]: all {n} outputs of run {escape(run_id)} reproduced bit for bit"
        )
        return
    console.print(f"[red]different[/]: run {escape(run_id)} did not reproduce")
    for d in report["differences"]:
        if d.get("output"):
            console.print(
                f"  {d['stage']}.{d['output']}: recorded {short(d['recorded'])}, "
                f"reproduced {short(d['reproduced'])}"
            )
        else:
            console.print(f"  {d['stage']}: {escape(d['why'])}")
    raise typer.Exit(1)
