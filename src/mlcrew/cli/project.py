"""`mlcrew init` and `mlcrew demo`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.panel import Panel

from mlcrew.cli.common import console, err_console
from mlcrew.cli.progress import stage_progress
from mlcrew.wording import plural

if TYPE_CHECKING:
    from mlcrew.demo import DemoResult

app = typer.Typer()


@app.command("init")
def init_cmd(
    directory: Path = typer.Argument(..., help="Folder for the new project (empty or new)."),
    example: str = typer.Option("bikeshare", "--example", "-e", help="Example to start from."),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty folder."),
) -> None:
    """Create a project from a shipped example."""
    from mlcrew.project import init_project
    from mlcrew.spec import load_spec

    root = init_project(directory, example, force)
    console.print(f"created {escape(example)} project in {escape(str(root))}")
    where = escape(str(directory))
    if load_spec(root).labeling is not None:  # labels come first, then training
        console.print(f"next: mlcrew label import -p {where}, then label at /label (mlcrew serve)")
    else:
        console.print(f"next: mlcrew run -p {where}")


@app.command("demo")
def demo_cmd(
    directory: Path | None = typer.Option(
        None, "--dir", help="Project folder to keep (default: a temporary one, removed at the end)."
    ),
    serve: bool = typer.Option(False, "--serve", help="Keep the service and page up afterwards."),
    port: int = typer.Option(0, help="Port for the service (default: a free one)."),
) -> None:
    """Raw CSV -> checked data -> model -> gates -> registry -> HTTP prediction -> drift report."""
    from mlcrew.demo import run_demo
    from mlcrew.pipeline.stages import STAGES

    with stage_progress(len(STAGES)) as progress:
        result = run_demo(
            directory,
            progress=progress,
            keep_serving=serve,
            port=port,
            on_step=lambda msg: err_console.print(f"[bold]→[/] {escape(msg)}"),
        )
    try:
        console.print(Panel(_summary(result), title="mlcrew demo: bike-demand", expand=False))
        if result.server is not None:
            console.print(f"overview page: {result.url}/  (Ctrl-C to stop)")
            result.server.wait()
    finally:
        result.close()
    if result.temporary:
        console.print("temporary project removed; keep one with --dir DIR", style="dim")
    else:
        console.print(f"next: mlcrew status -p {escape(str(result.project))}", style="dim")


def _summary(result: DemoResult) -> str:
    run = result.run
    verdict = run["verdict"]
    lines = [
        f"[bold]project[/]   {escape(str(result.project))}"
        + (" [dim](temporary: removed at the end)[/]" if result.temporary else ""),
        "[bold]verdict[/]   " + ("[green]passed[/]" if verdict["passed"] else "[red]failed[/]"),
        *[f"            {escape(r)}" for r in verdict["reasons"]],
        f"[bold]champion[/]  {run['champion']['name']} v{run['champion']['version']}",
        f"[bold]predict[/]   POST {result.url}/v1/models/{run['champion']['name']}/predict",
        f"            July, 17h: predicted {result.response['predictions'][0]:.0f} bikers "
        f"(actual {result.actual})",
        *[
            f"            [yellow]warning[/] {w['field']}: {escape(w['warning'])}"
            for w in result.response.get("warnings", [])
        ],
    ]
    monitor = result.monitor
    perf = monitor.get("performance", {}).get("current", {})
    drifted = [f for f in monitor["features"] if f["drifted"]]
    lines.append(
        f"[bold]monitor[/]   July-December, {plural(monitor['data']['rows'], 'row')}: "
        + (f"mae {perf['mae']:.1f} " if "mae" in perf else "")
        + f"({len(drifted)} of {plural(len(monitor['features']), 'feature')} drifted)"
    )
    # Every drifted feature, so the count and the list agree, with the score that judged it.
    lines += [f"            {escape(f['feature'])}: {_drift_text(f)}" for f in drifted]
    if result.months:
        lines += _loop_lines(result)
    return "\n".join(lines)


def _loop_lines(result: DemoResult) -> list[str]:
    """Month by month: who served, its error, the first champion's error on the same hours
    (without the loop), and what the round did."""
    lines = [f"[bold]loop[/]        {'month':<5} {'served':<6} {'MAE':>5} {'v1 alone':>9}  round"]
    for m in result.months:
        mae = "—" if m.mae is None else f"{m.mae:.1f}"
        first = "—" if m.mae_first is None else f"{m.mae_first:.1f}"
        did = f"{len(m.drifted)} drifted"
        if m.retrain:
            did += ", " + m.retrain["status"].replace("_", " ")
            if m.retrain["version"] is not None:
                did += f" v{m.retrain['version']}"
        served = f"v{m.served_by}"
        lines.append(f"            {m.name[:3]:<5} {served:<6} {mae:>5} {first:>9}  {did}")
    promoted = [
        m.retrain["version"]
        for m in result.months
        if m.retrain and m.retrain["status"] == "promoted"
    ]
    if promoted:
        lines.append(f"            champion now v{promoted[-1]}: see mlcrew models history")
    return lines


def _drift_text(feature: dict[str, Any]) -> str:
    if feature.get("missing"):
        return "missing from the new data"
    names = {"wasserstein": "Wasserstein/sd", "jensen_shannon": "Jensen-Shannon"}
    method = feature.get("method")
    if method in ("ks", "chi2"):
        text = f"{method} p={feature['p_value']:.2g}"
    else:
        text = f"{names.get(str(method), method)} {feature['score']:.2f}"
    if feature.get("psi") is not None:
        text += f", PSI {feature['psi']:.2f}" + (" (alert)" if feature.get("alert") else "")
    return text
