"""One round of the monitoring loop (`mlcrew monitor run`), and `watch`, which repeats it.

A round: close the windows of the prediction log that are complete, judge each against the
version that served it (drift, prediction drift, the domain classifier, data checks, estimated
performance), refresh the real performance of recent windows as late labels arrive, fire the
alert rules, and retrain when `monitoring.retrain` says so."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from mlcrew.errors import DataError
from mlcrew.monitoring.alerts import Firing, fire, lag_firings, window_firings
from mlcrew.monitoring.assess import assess, finite, save_report
from mlcrew.monitoring.windows import cut, model_rows, read_log, served_by, watermark
from mlcrew.registry.versions import get_version
from mlcrew.store import now
from mlcrew.store.models import MonitorWindow

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcrew.spec import Spec
    from mlcrew.store import Store

# Rows logged in the last seconds may still be in a service's memory: a round leaves them to
# the next one, so no window closes before all of its rows are written.
SETTLE_SECONDS = 5.0
# Windows whose real performance is refreshed each round (labels arrive for recent ones).
RECENT_WINDOWS = 24

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def run_round(
    store: Store,
    spec: Spec,
    project: Path,
    *,
    until: datetime | None = None,
    actor: str = "monitor",
    say: Say = _quiet,
    retrain_ok: bool = True,
) -> dict[str, Any]:
    """One round; returns {"windows", "alerts", "pending_rows", "late_rows", "refreshed",
    "retrain"}. Rounds of one model never overlap (a lock in the metadata database), so a
    cron job and a `watch` never judge the same rows twice."""
    check_loggable(spec)
    with store.lock(f"mlcrew:monitor:{store.project_name}:{spec.name}").hold():
        return _round(store, spec, project, until, actor, say, retrain_ok)


def _round(
    store: Store,
    spec: Spec,
    project: Path,
    until: datetime | None,
    actor: str,
    say: Say,
    retrain_ok: bool,
) -> dict[str, Any]:
    from mlcrew.errors import MlcrewError

    name = spec.name
    until = until or datetime.now(UTC) - timedelta(seconds=SETTLE_SECONDS)
    after = watermark(store, name)
    read_at = datetime.now(UTC)  # segments written after this are the next round's to read
    rows, late = read_log(store, name, after, until, since=last_round(store, name))
    if late:
        say(f"{late} logged rows arrived after their window closed: not judged")
    cuts, pending = cut(rows, spec.monitoring.window, spec.monitoring.drift.min_rows, after, until)
    say(f"{rows.num_rows} new logged rows: {len(cuts)} window(s) to judge, {pending} pending")
    windows, events = [], []
    for c in cuts:
        try:
            window, report = judge_window(store, spec, c.start, c.end, c.rows, read_at)
        except MlcrewError as exc:
            # The window is kept, with why it could not be judged, and the loop moves on:
            # a bad window must not stop every later one.
            failed = failed_window(store, spec, c.start, c.end, c.rows, str(exc), read_at)
            window, report = failed, {}
            say(f"window {window['id']}: not judged: {exc}")
        windows.append(window)
        firings = window_firings(spec.monitoring.alerts, report)
        events += fire(store, name, firings, spec.monitoring.webhook, window["id"])
        if report:
            say(_window_line(window, firings))
    refreshed = refresh_performance(store, spec)
    events += alert_refreshed(store, spec, refreshed)
    lag = lag_firings(spec.monitoring.alerts, newest_segment(store, name), datetime.now(UTC))
    events += fire(store, name, _unsaid(store, name, lag), spec.monitoring.webhook)
    outcome: dict[str, Any] = {
        "model": name,
        "until": until.isoformat(),
        "windows": windows,
        "alerts": events,
        "pending_rows": pending,
        "late_rows": late,
        "refreshed": refreshed,
        "retrain": None,
    }
    trigger = retrain_trigger(store, spec, events, windows)
    if trigger and retrain_ok:
        from mlcrew.monitoring.retrain import retrain

        say(f"retraining: {trigger}")
        result = retrain(store, spec, project, reason=trigger, actor=actor)
        outcome["retrain"] = {"trigger": trigger, **result.to_json()}
        say(f"retrain {result.status}: {result.why}")
    return outcome


def last_round(store: Store, name: str) -> datetime | None:
    """When the last round that closed a window listed the log's segments."""
    with store.session() as s:
        found = s.execute(
            select(MonitorWindow.summary, MonitorWindow.created_at)
            .where(MonitorWindow.name == name)
            .order_by(MonitorWindow.id.desc())
            .limit(1)
        ).first()
    if found is None:
        return None
    read_at = (found[0] or {}).get("read_at")
    return datetime.fromisoformat(read_at) if read_at else found[1]


def alert_refreshed(store: Store, spec: Spec, refreshed: list[int]) -> list[dict[str, Any]]:
    """Real-metric rules on windows whose labels just arrived: each (rule, window) fires once,
    as labels may keep arriving for a window over several rounds."""
    from mlcrew.monitoring.alerts import fired_on

    rules = [r for r in spec.monitoring.alerts if r.when == "metric" and not r.estimated]
    if not rules or not refreshed:
        return []
    events = []
    with store.session() as s:
        rows = {
            r.id: r.performance
            for r in s.scalars(select(MonitorWindow).where(MonitorWindow.id.in_(refreshed)))
        }
    for window_id in refreshed:
        perf = rows.get(window_id) or {}
        report = {"performance": {"current": perf.get("metrics") or {}}}
        done = fired_on(store, spec.name, window_id)
        firings = [f for f in window_firings(rules, report) if f.rule not in done]
        events += fire(store, spec.name, firings, spec.monitoring.webhook, window_id)
    return events


def _unsaid(store: Store, name: str, lag: list[Firing]) -> list[Firing]:
    """A log-lag alert fires once per silence: not again while no new segment was written
    since it last fired."""
    from mlcrew.monitoring.alerts import last_fired

    newest = newest_segment(store, name)
    out = []
    for f in lag:
        before = last_fired(store, name, f.rule)
        if before is not None and (newest is None or before >= newest):
            continue
        out.append(f)
    return out


def judge_window(
    store: Store,
    spec: Spec,
    start: datetime,
    end: datetime,
    rows: pa.Table,
    read_at: datetime | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Judge one closed window against the version that served most of it; store both."""
    from mlcrew.monitoring.labels import all_labels, with_labels
    from mlcrew.monitoring.monitor import recorded_spec
    from mlcrew.training.model import TabularModel

    name = spec.name
    main, counts = served_by(rows)
    version = get_version(store, name, main)
    model = TabularModel.from_json(store.artifacts.read_bytes(version.model_digest))
    mine = rows.filter(_version_mask(rows, main))
    inputs = with_labels(
        mine, model_rows(mine, model.schema_), all_labels(store, name), model.target_
    )
    info = {
        "file": f"prediction log {start.isoformat()} .. {end.isoformat()}",
        "digest": _digest(name, start, end, rows.num_rows),
        "prepared": "prediction log",
        "start": start.isoformat(),
        "end": end.isoformat(),
        "versions": {str(v): n for v, n in counts.items()},
    }
    checks = recorded_spec(store, version).checks
    found = assess(
        store, spec, version, model, inputs, info, checks=checks, logged=mine.column("prediction")
    )
    report = save_report(store, found)
    summary = {**summarize(report), "served_rows": counts[main]}
    if read_at is not None:
        summary["read_at"] = read_at.isoformat()
    with store.session() as s:
        row = MonitorWindow(
            name=name,
            version=main,
            start_at=start,
            end_at=end,
            rows=rows.num_rows,
            report_id=report["report_id"],
            summary=summary,
            performance=_performance(report),
            created_at=now(),
        )
        s.add(row)
        s.flush()
        window = window_json(row)
    return window, report


def failed_window(
    store: Store,
    spec: Spec,
    start: datetime,
    end: datetime,
    rows: pa.Table,
    error: str,
    read_at: datetime,
) -> dict[str, Any]:
    """Store a window that could not be judged, with the reason, so the watermark moves on."""
    main, counts = served_by(rows)
    with store.session() as s:
        row = MonitorWindow(
            name=spec.name,
            version=main,
            start_at=start,
            end_at=end,
            rows=rows.num_rows,
            report_id=None,
            summary={
                "judged": False,
                "drifted": [],
                "alerts": [],
                "error": error[:500],
                "served_rows": counts[main],
                "read_at": read_at.isoformat(),
            },
            performance={"labelled_rows": 0},
            created_at=now(),
        )
        s.add(row)
        s.flush()
        return window_json(row)


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """What a window's row keeps of its report: enough for pages, alerts and the timeline."""
    return {
        "judged": report["judged"],
        "drifted": report["drifted"],
        "alerts": report["alerts"],
        "scores": {
            f["feature"]: f.get("score") for f in report["features"] if f.get("score") is not None
        },
        "psi": {f["feature"]: f.get("psi") for f in report["features"] if f.get("psi") is not None},
        "prediction_drift": (report.get("prediction_drift") or {}).get("drifted"),
        "domain_auc": (report.get("multivariate") or {}).get("auc"),
        "checks_failed": len((report.get("checks") or {}).get("failed", [])),
        "estimated": report.get("estimated"),
    }


def _performance(report: dict[str, Any]) -> dict[str, Any]:
    perf = report.get("performance")
    if not perf:
        return {"labelled_rows": 0}
    return {"labelled_rows": perf["labelled_rows"], "metrics": finite(perf["current"])}


def refresh_performance(store: Store, spec: Spec) -> list[int]:
    """Recompute the real metrics of recent windows that are not fully labelled yet; return
    the ids of those whose labelled rows grew."""
    from mlcrew.monitoring.retrain import labelled, window_rows
    from mlcrew.training.evaluate import model_metrics
    from mlcrew.training.model import TabularModel

    name = spec.name
    with store.session() as s:
        recent = s.scalars(
            select(MonitorWindow)
            .where(MonitorWindow.name == name)
            .order_by(MonitorWindow.id.desc())
            .limit(RECENT_WINDOWS)
        ).all()
        todo = [
            (r.id, r.version, served, (r.performance or {}).get("labelled_rows", 0))
            for r in recent
            if not (r.summary or {}).get("error")
            and (r.performance or {}).get("labelled_rows", 0)
            < (served := (r.summary or {}).get("served_rows", r.rows))
        ]
    grown: list[int] = []
    if not todo:
        return grown
    from mlcrew.monitoring.labels import all_labels

    known = all_labels(store, name)
    models: dict[int, Any] = {}
    for window_id, version, _, before in todo:
        if version not in models:
            info = get_version(store, name, version)
            models[version] = TabularModel.from_json(store.artifacts.read_bytes(info.model_digest))
        model = models[version]
        with store.session() as s:
            row = s.get(MonitorWindow, window_id)
            assert row is not None
            s.expunge(row)
        table = window_rows(store, name, row, model, known)
        mask = None
        if "version" in table.column_names:
            mask = _version_mask(table, version)
        rows = labelled(table.filter(mask) if mask is not None else table, model)
        if rows.num_rows <= before:
            continue
        metrics = finite(model_metrics(model, rows, model.target_))
        with store.session() as s:
            stored = s.get(MonitorWindow, window_id)
            if stored is not None:
                stored.performance = {"labelled_rows": rows.num_rows, "metrics": metrics}
        grown.append(window_id)
    return grown


def retrain_trigger(
    store: Store, spec: Spec, events: list[dict[str, Any]], windows: list[dict[str, Any]]
) -> str | None:
    """Why this round should retrain (None: it should not)."""
    cfg = spec.monitoring.retrain
    if cfg is None:
        return None
    kinds = {e["kind"] for e in events}
    if "drift" in cfg.when and kinds & {"drift", "prediction_drift", "multivariate"}:
        return "drift alert"
    if "performance" in cfg.when and "metric" in kinds:
        return "performance alert"
    if "schedule" in cfg.when and cfg.every_windows and windows:
        with store.session() as s:
            count = (
                s.scalar(
                    select(func.count())
                    .select_from(MonitorWindow)
                    .where(MonitorWindow.name == spec.name)
                )
                or 0
            )
        # A multiple of every_windows was reached in this round (it may close several).
        if (count - len(windows)) // cfg.every_windows < count // cfg.every_windows:
            return f"schedule (every {cfg.every_windows} windows)"
    return None


def window_json(row: MonitorWindow) -> dict[str, Any]:
    return {
        "id": row.id,
        "version": row.version,
        "start": row.start_at.isoformat(),
        "end": row.end_at.isoformat(),
        "rows": row.rows,
        "report_id": row.report_id,
        **row.summary,
        "performance": row.performance,
    }


def list_windows(store: Store, name: str, limit: int = 200) -> list[dict[str, Any]]:
    with store.session() as s:
        rows = s.scalars(
            select(MonitorWindow)
            .where(MonitorWindow.name == name)
            .order_by(MonitorWindow.id.desc())
            .limit(limit)
        ).all()
        return [window_json(r) for r in reversed(rows)]


def _version_mask(rows: pa.Table, version: int) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.equal(rows.column("version"), pa.scalar(version, rows.column("version").type))


def _digest(name: str, start: datetime, end: datetime, rows: int) -> str:
    import hashlib

    return hashlib.sha256(
        f"{name}|{start.isoformat()}|{end.isoformat()}|{rows}".encode()
    ).hexdigest()


def newest_segment(store: Store, name: str) -> datetime | None:
    """When the newest segment of the model's log was written (None: nothing logged)."""
    from mlcrew.monitoring.windows import segment_time
    from mlcrew.serving.predlog import segments

    found = segments(store, name)
    return segment_time(found[-1]) if found else None


def _window_line(window: dict[str, Any], firings: list[Firing]) -> str:
    drifted = ", ".join(window["drifted"]) or "none"
    fired = f"; alerts: {', '.join(f.rule for f in firings)}" if firings else ""
    return f"window {window['id']}: {window['rows']} rows, drifted: {drifted}{fired}"


def check_loggable(spec: Spec) -> None:
    if not spec.serving.prediction_log:
        raise DataError(
            "serving.prediction_log is off: the loop reads the prediction log; turn it on"
        )
