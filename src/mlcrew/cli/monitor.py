"""`mlcrew monitor`: drift and performance of the champion on new data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from mlcrew.cli.common import JsonOption, ProjectOption, console, emit_json
from mlcrew.wording import plural

app = typer.Typer(
    name="monitor",
    help="Drift and performance of the champion: one file (--data), or the loop over the "
    "prediction log (run, watch), late labels (labels), alerts and a report.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def drift_table(report: dict[str, Any], limit: int | None = None) -> Table:
    rows = plural(report["data"]["rows"], "new row")
    table = Table(title=f"drift vs training reference ({rows})")
    for col in ("feature", "method", "score", "threshold", "PSI", "drifted"):
        table.add_column(col)
    for f in report["features"][:limit]:
        table.add_row(
            escape(f["feature"]),
            "missing" if f.get("missing") else (f.get("method") or "—"),
            _number(f.get("p_value") if f.get("method") in ("ks", "chi2") else f.get("score")),
            _number(f.get("threshold")),
            _number(f.get("psi")),
            ("[red]ALERT[/]" if f.get("alert") else "[yellow]yes[/]")
            if f["drifted"]
            else ("no" if f["drifted"] is False else "[dim]too few rows[/]"),
        )
    return table


def _number(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"


@app.callback()
def monitor_cmd(
    ctx: typer.Context,
    data: Path | None = typer.Option(None, "--data", "-d", help="New data: .csv or .parquet."),
    from_log: bool = typer.Option(
        False,
        "--from-log",
        help="Use the inputs of the predictions the service logged (instead of --data).",
    ),
    project: Path = ProjectOption,
    alias: str = typer.Option("champion", help="Model alias or version to monitor."),
    as_given: bool = typer.Option(
        False, "--as-given", help="The file already has the model's columns: skip transforms."
    ),
    json_out: bool = JsonOption,
) -> None:
    """Compare new data with the champion's training data, per feature, and write a report."""
    if ctx.invoked_subcommand is not None:
        return
    from mlcrew.monitoring.monitor import monitor
    from mlcrew.project import Project

    proj = Project.open(project)
    report = monitor(
        proj.store,
        proj.spec,
        data.resolve() if data else None,
        alias,
        as_given,
        from_log=from_log,
    )
    if json_out:
        emit_json(report)
        return
    console.print(drift_table(report))
    if not report.get("judged", True):
        console.print(f"[yellow]{escape(report.get('note', 'too few rows to judge'))}[/]")
    perf = report.get("performance")
    if perf:
        from mlcrew.training.metrics import resolve_metric

        metric = resolve_metric(proj.spec.objective.metric, perf["current"])
        if metric in perf["current"]:
            console.print(
                f"{metric} on new data: {perf['current'][metric]:.4g} "
                f"(at training: {perf['at_training'].get(metric, float('nan')):.4g})"
            )
    console.print(f"alerts: {escape(', '.join(report['alerts']) or 'none')}")
    where = str(report.get("report_file", report["report_digest"]))
    console.print(f"report: {escape(where)}", style="dim")


@app.command("labels")
def labels_cmd(
    data: Path = typer.Option(..., "--data", "-d", help="Labels: .csv or .parquet."),
    id_column: str = typer.Option(
        "request_id", "--id", help="The column holding the request id each label answers."
    ),
    row_column: str | None = typer.Option(
        None, "--row", help="The column holding the row of a multi-row request (default 0)."
    ),
    key: list[str] = typer.Option(
        [], "--key", help="Join by these logged input columns instead of the request id."
    ),
    label: str | None = typer.Option(
        None, "--label", help="The column holding the label (default: the spec's target)."
    ),
    project: Path = ProjectOption,
    json_out: bool = JsonOption,
) -> None:
    """Join late ground truth to logged predictions; update the windows' real performance."""
    from mlcrew.monitoring.labels import add_labels
    from mlcrew.monitoring.loop import refresh_performance
    from mlcrew.project import Project

    proj = Project.open(project)
    spec = proj.spec
    result = add_labels(
        proj.store,
        spec.name,
        spec.model_target,
        data.resolve(),
        id_column=id_column,
        row_column=row_column,
        key=key,
        label_column=label,
    )
    result["windows_updated"] = refresh_performance(proj.store, spec)
    if json_out:
        emit_json(result)
        return
    console.print(
        f"{plural(result['matched'], 'label')} joined to logged predictions"
        + (
            f", {result['unmatched']} matched none (rows {result['unmatched_rows']})"
            if result["unmatched"]
            else ""
        )
    )
    if result["windows_updated"]:
        from mlcrew.monitoring.loop import list_windows

        console.print(performance_table(list_windows(proj.store, spec.name)))


@app.command("run")
def run_cmd(
    project: Path = ProjectOption,
    no_retrain: bool = typer.Option(False, "--no-retrain", help="Judge and alert only."),
    json_out: bool = JsonOption,
) -> None:
    """One round of the loop: close and judge windows, fire alerts, retrain if due."""
    from mlcrew.monitoring.loop import run_round
    from mlcrew.project import Project

    proj = Project.open(project)
    say = (lambda _: None) if json_out else (lambda text: console.print(escape(text)))
    outcome = run_round(proj.store, proj.spec, proj.root, say=say, retrain_ok=not no_retrain)
    if json_out:
        emit_json(outcome)


@app.command("watch")
def watch_cmd(
    project: Path = ProjectOption,
    every: float = typer.Option(60.0, "--every", min=0.5, help="Seconds between rounds."),
    rounds: int = typer.Option(0, "--rounds", min=0, help="Stop after this many (0: never)."),
) -> None:
    """Run rounds of the loop until stopped (Ctrl-C), showing each round's outcome."""
    import time

    from rich.live import Live
    from rich.spinner import Spinner

    from mlcrew.monitoring.loop import run_round
    from mlcrew.project import Project

    proj = Project.open(project)
    done = 0
    try:
        while rounds == 0 or done < rounds:
            with Live(Spinner("dots", text=f"round {done + 1}: reading the log"), console=console,
                      transient=True):  # fmt: skip
                outcome = run_round(proj.store, proj.spec, proj.root)
            done += 1
            console.print(round_line(done, outcome))
            if rounds and done >= rounds:
                break
            with Live(Spinner("dots", text=f"next round in {every:g} s"), console=console,
                      transient=True):  # fmt: skip
                time.sleep(every)
    except KeyboardInterrupt:
        console.print(f"stopped after {plural(done, 'round')}")


@app.command("alerts")
def alerts_cmd(
    project: Path = ProjectOption,
    limit: int = typer.Option(50, "--limit", min=1),
    json_out: bool = JsonOption,
) -> None:
    """The alerts fired, newest first, with how their webhook delivery went."""
    from mlcrew.monitoring.alerts import list_alerts
    from mlcrew.project import Project

    proj = Project.open(project)
    events = list_alerts(proj.store, proj.spec.name, limit)
    if json_out:
        emit_json({"alerts": events})
        return
    table = Table(title=f"alerts of {escape(proj.spec.name)}")
    for col in ("fired", "rule", "window", "message", "webhook"):
        table.add_column(col)
    for e in events:
        d = e["delivery"]
        sent = (
            "—"
            if not d
            else ("delivered" if d["delivered"] else f"[red]failed[/] after {d['attempts']}")
        )
        table.add_row(e["fired_at"][:19], escape(e["rule"]), str(e["window_id"] or "—"),
                      escape(e["message"]), sent)  # fmt: skip
    console.print(table)


@app.command("report")
def report_cmd(
    html: Path = typer.Option(..., "--html", help="Write a self-contained HTML report here."),
    project: Path = ProjectOption,
) -> None:
    """A self-contained HTML report: drift per feature over windows, performance, alerts,
    retrains and promotions on one timeline."""
    from mlcrew.monitoring.pages import write_report
    from mlcrew.project import Project

    proj = Project.open(project)
    out = write_report(proj.store, proj.spec.name, html)
    console.print(f"report: {escape(str(out))}")


def round_line(n: int, outcome: dict[str, Any]) -> str:
    windows = outcome["windows"]
    text = f"round {n}: {plural(len(windows), 'window')}"
    for w in windows:
        text += f" | #{w['id']} {w['rows']} rows, drifted {len(w['drifted'])}"
    if outcome["alerts"]:
        text += f" | alerts: {', '.join(escape(a['rule']) for a in outcome['alerts'])}"
    if outcome["retrain"]:
        text += f" | retrain {outcome['retrain']['status']}"
    return text + f" | pending {outcome['pending_rows']}"


def performance_table(windows: list[dict[str, Any]]) -> Table:
    table = Table(title="windows")
    for col in ("window", "version", "rows", "labelled", "drifted", "metrics"):
        table.add_column(col)
    for w in windows[-24:]:
        perf = w["performance"]
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in (perf.get("metrics") or {}).items())
        table.add_row(str(w["id"]), f"v{w['version']}", str(w["rows"]),
                      str(perf.get("labelled_rows", 0)), escape(", ".join(w["drifted"]) or "—"),
                      metrics or "—")  # fmt: skip
    return table
