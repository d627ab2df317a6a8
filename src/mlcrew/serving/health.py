"""What /healthz, /readyz and /metrics answer, in one place: the service's outer layer answers
them without the web framework, and the documented FastAPI routes give the same documents."""

from __future__ import annotations

from typing import Any

from mlcrew.errors import MlcrewError
from mlcrew.serving.metrics import ServiceMetrics
from mlcrew.serving.predict import PredictionService

MAX_REASON = 500


def liveness(project: str) -> dict[str, Any]:
    """The process is up; names the project it serves."""
    return {"status": "ok", "project": project}


def readiness(
    service: PredictionService, model: str, modeled: bool = True
) -> tuple[int, dict[str, Any]]:
    """(200, ready document) when the model's champion is loaded and can answer, else (503,
    the reason), e.g. before the first version passes its gates. A data-only project has no
    model to wait for: it is ready (its datasets and queries are served)."""
    if not modeled:
        reason = "data-only project: no model to serve; datasets and queries are"
        return 200, {"status": "ready", "model": model, "version": None, "reason": reason}
    try:
        loaded = service.ready(model)
    except MlcrewError as exc:
        reason = str(exc)[:MAX_REASON]
        return 503, {"status": "not ready", "model": model, "version": None, "reason": reason}
    return 200, {"status": "ready", "model": model, "version": loaded.info.version, "reason": None}


def exposition(service: PredictionService, metrics: ServiceMetrics) -> tuple[bytes, str]:
    """The Prometheus text exposition (with the prediction log's lag as of now) and its
    content type."""
    if service.log is not None:
        metrics.log_pending.set(service.log.pending_rows)
    _alert_state(service, metrics)
    return metrics.render()


def _alert_state(service: PredictionService, metrics: ServiceMetrics) -> None:
    """The monitoring loop's alerts as of now, read from the store at scrape time (the loop
    runs in its own process: `mlcrew monitor run|watch`)."""
    from mlcrew.monitoring.alerts import firing_now

    for name in service.models.served_names():
        try:
            state = firing_now(service.store, name)
        except Exception:  # a scrape must answer even while the store is unreachable
            continue
        for rule, value in state.items():
            metrics.alerts.labels(name, rule).set(value)
