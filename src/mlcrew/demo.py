"""The demo: a fresh bikeshare project from raw CSV to a served, monitored model, in one go."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcrew.errors import MlcrewError
from mlcrew.pipeline.runner import Progress, Runner
from mlcrew.project import Project, init_project
from mlcrew.serving.server import BackgroundServer
from mlcrew.spec import SPEC_FILE

NEW_DATA = "data/bikeshare-jul-dec.csv"


@dataclass
class Month:
    """One month of July-December replayed through the live service, and what the loop's
    round after it found and did."""

    name: str
    rows: int
    served_by: int  # the version that served most of the month
    mae: float | None  # the serving model's error, on the rows whose labels arrived
    mae_first: float | None  # the first champion's error on the same rows: without the loop
    drifted: list[str]
    alerts: list[str]
    retrain: dict[str, Any] | None


@dataclass
class DemoResult:
    project: Path
    run: dict[str, Any]
    request: dict[str, Any]
    response: dict[str, Any]
    actual: Any
    monitor: dict[str, Any]
    url: str
    months: list[Month] = field(default_factory=list)
    server: BackgroundServer | None = field(default=None, repr=False)
    # True when the project lives in a temporary folder, which `close` removes.
    temporary: bool = False
    store: Any = field(default=None, repr=False)

    def close(self) -> None:
        """Stop the server if it still runs, close the store, remove a temporary project."""
        if self.server is not None:
            self.server.stop()
        if self.store is not None:
            self.store.close()
        if self.temporary:
            shutil.rmtree(self.project, ignore_errors=True)


def run_demo(
    directory: Path | None = None,
    *,
    progress: Progress | None = None,
    keep_serving: bool = False,
    port: int = 0,
    on_step: Callable[[str], None] = lambda _: None,
) -> DemoResult:
    """Create, run, serve, predict over HTTP and monitor. With `keep_serving` the server is left
    running in `result.server` for the caller to wait on. Without `directory` the project lives
    in a temporary folder that `result.close()` removes (a failure removes it at once), so
    repeated demos leave nothing behind."""
    temporary = directory is None
    root = Path(tempfile.mkdtemp(prefix="mlcrew-demo-")) if directory is None else Path(directory)
    project: Project | None = None
    try:
        if (root / SPEC_FILE).exists():
            on_step(f"using the project in {root}")
        else:
            on_step(f"creating {'a temporary' if temporary else 'the'} project in {root}")
            init_project(root, "bikeshare")
        project = Project.open(root)
        result = _run_serve_monitor(project, progress, keep_serving, port, on_step)
    except BaseException:
        if project is not None:
            project.close()
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
        raise
    result.temporary = temporary
    result.store = project.store
    return result


def _run_serve_monitor(
    project: Project,
    progress: Progress | None,
    keep_serving: bool,
    port: int,
    on_step: Callable[[str], None],
) -> DemoResult:
    import httpx

    from mlcrew.api.app import create_app
    from mlcrew.monitoring.monitor import monitor
    from mlcrew.training.model import TabularModel

    root = project.root
    on_step("running the pipeline")
    result = Runner(project.root, project.store, project.spec, project.spec_text, progress).run()
    if not result.champion:
        raise MlcrewError("the demo model did not pass its gates; see 'mlcrew status'")
    # No access log: the replay sends a request per day, and the summary tells the story.
    app = create_app(project.root, project.spec, project.store, access_log=False)
    server = BackgroundServer(app, port=port)
    server.start()
    try:
        on_step(f"serving on {server.url}")
        # A real July row the model has never seen, sent as a client would send it.
        import csv

        with open(root / NEW_DATA, newline="") as f:
            row = next(r for r in csv.DictReader(f) if r["hr"] == "17")
        model = TabularModel.from_json(
            project.store.artifacts.read_bytes(_champion_digest(project))
        )
        payload = {f["name"]: typed_value(row[f["name"]], f["type"]) for f in model.schema_}
        response = httpx.post(
            f"{server.url}/v1/models/{project.spec.name}/predict",
            json={"rows": [payload]},
            timeout=30,
        )
        response.raise_for_status()
        on_step(f"monitoring {NEW_DATA}")
        report = monitor(project.store, project.spec, root / NEW_DATA)
        months = replay(project, server.url, app.service, model.schema_, on_step)
    except BaseException:
        server.stop()
        raise
    if not keep_serving:
        server.stop()
    return DemoResult(
        project=root,
        run=result.to_json(),
        request=payload,
        response=response.json(),
        actual=row[project.spec.target],
        monitor=report,
        url=server.url,
        months=months,
        server=server if keep_serving else None,
    )


def replay(
    project: Project,
    url: str,
    service: Any,
    schema: list[dict[str, Any]],
    on_step: Callable[[str], None],
) -> list[Month]:
    """July-December through the live service, a day per request (its request id names the
    day), month by month. Each day's counts arrive as labels the next day; after each month
    one round of the loop judges it, fires alerts and retrains when they say so."""
    import csv
    from datetime import UTC, datetime

    import httpx

    from mlcrew.monitoring.labels import add_labels
    from mlcrew.monitoring.loop import run_round

    spec, store = project.spec, project.store
    target = spec.model_target
    with open(project.root / NEW_DATA, newline="") as f:
        rows = list(csv.DictReader(f))
    months: dict[str, dict[str, list[dict[str, str]]]] = {}
    for row in rows:
        months.setdefault(row["mnth"], {}).setdefault(row["day"], []).append(row)
    folder = project.root / "data" / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    late: list[tuple[str, int, str]] = []
    rounds: list[tuple[str, dict[str, Any]]] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for month, days in months.items():
            on_step(f"serving {month}: {sum(len(d) for d in days.values())} hours, then a round")
            for day, hours in days.items():
                body = {"rows": [{f["name"]: typed_value(h[f["name"]], f["type"]) for f in schema}
                                 for h in hours]}  # fmt: skip
                answer = client.post(
                    f"/v1/models/{spec.name}/predict",
                    json=body,
                    headers={"x-request-id": f"day-{day}"},
                )
                answer.raise_for_status()
            if service.log is not None:
                service.log.flush()  # the round reads what the service has written
            # Labels a day late: the month's days but its last, and the last month's last day.
            order = list(days)
            arrived = late + [(f"day-{d}", i, h[target]) for d in order[:-1]
                              for i, h in enumerate(days[d])]  # fmt: skip
            late = [(f"day-{order[-1]}", i, h[target]) for i, h in enumerate(days[order[-1]])]
            labels = folder / f"{month.lower()}.csv"
            with open(labels, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["request_id", "row", target])
                writer.writerows(arrived)
            add_labels(store, spec.name, target, labels, row_column="row")
            rounds.append((month, run_round(store, spec, project.root, until=datetime.now(UTC))))
    return _months(project, rounds)


def _months(project: Project, rounds: list[tuple[str, dict[str, Any]]]) -> list[Month]:
    """Each month's window as it stands after the last labels: the error of the model that
    served it, and of the first champion on the same rows."""
    from mlcrew.monitoring.labels import all_labels
    from mlcrew.monitoring.loop import list_windows, refresh_performance
    from mlcrew.monitoring.retrain import labelled, window_rows
    from mlcrew.registry.versions import get_version
    from mlcrew.store.models import MonitorWindow
    from mlcrew.training.evaluate import model_metrics
    from mlcrew.training.model import TabularModel

    store, name = project.store, project.spec.name
    refresh_performance(store, project.spec)
    windows = {w["id"]: w for w in list_windows(store, name)}
    known = all_labels(store, name)
    first = TabularModel.from_json(
        store.artifacts.read_bytes(get_version(store, name, 1).model_digest)
    )
    out = []
    for month, outcome in rounds:
        for w in outcome["windows"]:
            now = windows[w["id"]]
            with store.session() as s:
                row = s.get(MonitorWindow, w["id"])
                assert row is not None
                s.expunge(row)
            rows = labelled(window_rows(store, name, row, first, known), first)
            mae_first = model_metrics(first, rows, first.target_)["mae"] if rows.num_rows else None
            retrain = outcome["retrain"]
            out.append(
                Month(
                    month,
                    now["rows"],
                    now["version"],
                    (now["performance"].get("metrics") or {}).get("mae"),
                    mae_first,
                    now["drifted"],
                    [a["rule"] for a in outcome["alerts"]],
                    None
                    if retrain is None
                    else {"status": retrain["status"], "version": retrain["version"]},
                )
            )
    return out


def _champion_digest(project: Project) -> str:
    from mlcrew.registry.versions import get_version

    return get_version(project.store, project.spec.name).model_digest


def typed_value(value: str, kind: str) -> Any:
    if kind == "category":
        # A category over an integer column (weekday) is sent as the integer a client has.
        from mlcrew.overview import category_value

        return category_value(value)
    if kind == "integer":
        return int(value)
    if kind == "boolean":
        return value.lower() in ("1", "true")
    return float(value)
