"""Alert rules (`monitoring.alerts`): which windows fire them, and what a firing does.

Each firing is a stored event (`alert_events`), a JSON POST to `monitoring.webhook` retried
with exponential backoff (on connection errors, timeouts, 429 and 5xx; other answers are
final), and a Prometheus gauge on the service's /metrics (`mlcrew_monitor_alert`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mlcrew.store import now
from mlcrew.store.models import AlertEvent, MonitorWindow

if TYPE_CHECKING:
    from mlcrew.spec import AlertRule, Webhook
    from mlcrew.store import Store


# A round never waits longer than this on one alert's webhook, nor this long between tries.
MAX_DELIVERY_SECONDS = 120.0
MAX_PAUSE_SECONDS = 30.0


@dataclass
class Firing:
    rule: str
    kind: str
    value: float | None
    message: str


def window_firings(rules: list[AlertRule], report: dict[str, Any]) -> list[Firing]:
    """The rules one window's report fires (log_lag is judged per round, not here)."""
    out = []
    perf = (report.get("performance") or {}).get("current", {})
    for rule in rules:
        if rule.when == "drift":
            hits = [
                f
                for f in report.get("features", [])
                if f.get("alert") and (rule.feature is None or f["feature"] == rule.feature)
            ]
            if hits:
                names = ", ".join(f["feature"] for f in hits)
                top = max((f.get("psi") or 0.0) for f in hits)
                out.append(Firing(rule.label, "drift", top, f"drift in {names} (PSI {top:.2f})"))
        elif rule.when == "prediction_drift":
            found = report.get("prediction_drift") or {}
            if found.get("drifted"):
                out.append(
                    Firing(
                        rule.label,
                        "prediction_drift",
                        found.get("score"),
                        f"predictions drifted ({found.get('method')} {found.get('score')})",
                    )
                )
        elif rule.when == "multivariate":
            found = report.get("multivariate") or {}
            if found.get("drifted"):
                out.append(
                    Firing(
                        rule.label,
                        "multivariate",
                        found["auc"],
                        f"a classifier tells the window from the reference (AUC {found['auc']})",
                    )
                )
        elif rule.when == "checks":
            failed = (report.get("checks") or {}).get("failed", [])
            if failed:
                first = failed[0]
                out.append(
                    Firing(
                        rule.label,
                        "checks",
                        float(len(failed)),
                        f"{len(failed)} data check(s) failed on the window, first: "
                        f"{first['check']} ({first['failing']} rows)",
                    )
                )
        elif rule.when == "metric":
            assert rule.metric is not None
            source = (report.get("estimated") or {}) if rule.estimated else perf
            value = source.get(rule.metric)
            if value is None:
                continue
            past_max = rule.max is not None and value > rule.max
            past_min = rule.min is not None and value < rule.min
            if past_max or past_min:
                bound = f"max {rule.max:g}" if past_max else f"min {rule.min:g}"
                what = f"estimated {rule.metric}" if rule.estimated else rule.metric
                out.append(
                    Firing(rule.label, "metric", float(value), f"{what} {value:.4g} ({bound})")
                )
    return out


def lag_firings(rules: list[AlertRule], newest: datetime | None, at: datetime) -> list[Firing]:
    out = []
    for rule in rules:
        if rule.when != "log_lag" or rule.seconds is None:
            continue
        lag = None if newest is None else (at - newest).total_seconds()
        if lag is None or lag > rule.seconds:
            said = "nothing is logged yet" if lag is None else f"the newest is {lag:.0f} s old"
            out.append(Firing(rule.label, "log_lag", lag, f"prediction log lags: {said}"))
    return out


def deliver(webhook: Webhook, payload: dict[str, Any]) -> dict[str, Any]:
    """POST the payload; retry with backoff. {"delivered", "attempts", "status", "error"}."""
    import httpx

    attempts = 0
    status: int | None = None
    error: str | None = None
    deadline = time.monotonic() + MAX_DELIVERY_SECONDS
    for attempt in range(webhook.retries + 1):
        if attempt:
            pause = min(webhook.backoff_seconds * 2 ** (attempt - 1), MAX_PAUSE_SECONDS)
            if time.monotonic() + pause > deadline:
                error = f"{error}; gave up after {MAX_DELIVERY_SECONDS:g} s"
                break
            time.sleep(pause)
        attempts += 1
        try:
            answer = httpx.post(webhook.url, json=payload, timeout=webhook.timeout_seconds)
        except httpx.HTTPError as exc:
            status, error = None, f"{exc.__class__.__name__}: {exc}"[:300]
            continue
        status = answer.status_code
        if answer.is_success:
            return {"delivered": True, "attempts": attempts, "status": status, "error": None}
        error = f"HTTP {status}: {answer.text[:200]}"
        if status != 429 and status < 500:
            break  # the receiver refused the alert itself: sending it again will not help
    return {"delivered": False, "attempts": attempts, "status": status, "error": error}


def fire(
    store: Store,
    name: str,
    firings: list[Firing],
    webhook: Webhook | None,
    window_id: int | None = None,
) -> list[dict[str, Any]]:
    """Store each firing, then deliver it; return the events as stored."""
    events = []
    for f in firings:
        with store.session() as s:
            row = AlertEvent(
                name=name,
                rule=f.rule,
                kind=f.kind,
                window_id=window_id,
                value=f.value,
                message=f.message,
                delivery={},
                fired_at=now(),
            )
            s.add(row)
            s.flush()
            event = _event(row)
        if webhook is not None:
            payload = {"project": store.project_name, "model": name, **event}
            outcome = deliver(webhook, payload)
            with store.session() as s:
                stored = s.get(AlertEvent, event["id"])
                if stored is not None:
                    stored.delivery = outcome
            event["delivery"] = outcome
        events.append(event)
    return events


def _event(row: AlertEvent) -> dict[str, Any]:
    return {
        "id": row.id,
        "rule": row.rule,
        "kind": row.kind,
        "window_id": row.window_id,
        "value": row.value,
        "message": row.message,
        "fired_at": row.fired_at.isoformat(),
        "delivery": row.delivery,
    }


def fired_on(store: Store, name: str, window_id: int) -> set[str]:
    """The rules that already fired on a window."""
    with store.session() as s:
        return set(
            s.scalars(
                select(AlertEvent.rule).where(
                    AlertEvent.name == name, AlertEvent.window_id == window_id
                )
            )
        )


def last_fired(store: Store, name: str, rule: str) -> datetime | None:
    with store.session() as s:
        return s.scalar(
            select(AlertEvent.fired_at)
            .where(AlertEvent.name == name, AlertEvent.rule == rule)
            .order_by(AlertEvent.id.desc())
            .limit(1)
        )


def list_alerts(store: Store, name: str, limit: int = 100) -> list[dict[str, Any]]:
    with store.session() as s:
        rows = s.scalars(
            select(AlertEvent)
            .where(AlertEvent.name == name)
            .order_by(AlertEvent.id.desc())
            .limit(limit)
        )
        return [_event(r) for r in rows]


def firing_now(store: Store, name: str) -> dict[str, int]:
    """Per rule that ever fired for the model: 1 if it fired on the newest window (a log-lag
    rule: since that window closed), else 0; what the Prometheus gauge shows."""
    with store.session() as s:
        newest = s.execute(
            select(MonitorWindow.id, MonitorWindow.created_at)
            .where(MonitorWindow.name == name)
            .order_by(MonitorWindow.id.desc())
            .limit(1)
        ).first()
        rows = s.scalars(
            select(AlertEvent)
            .where(AlertEvent.name == name)
            .order_by(AlertEvent.id.desc())
            .limit(1000)
        ).all()
    state: dict[str, int] = {}
    for r in rows:
        if r.rule in state:
            continue
        if r.window_id is not None:
            state[r.rule] = int(newest is not None and r.window_id == newest[0])
        else:
            state[r.rule] = int(newest is None or r.fired_at >= _aware(newest[1]))
    return state


def _aware(at: datetime) -> datetime:
    from datetime import UTC

    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
