"""Prometheus metrics of the prediction service (prometheus_client).

Each app gets its own registry, so several services can live in one process (tests, notebooks).
With several worker processes (`mlcrew serve --workers N`) the CLI sets PROMETHEUS_MULTIPROC_DIR
before the workers start: every worker then writes its values to files there, and /metrics on
any worker reports the sum over all of them (gauges: the largest value of a live worker).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class ServiceMetrics:
    """Requests by route and status, latency, rows predicted, served versions, log health."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "mlcrew_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "mlcrew_http_request_duration_seconds",
            "Time from request to the last byte of the response, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Counter(
            "mlcrew_predicted_rows", "Rows predicted, by model and version.",
            ["model", "version"], registry=r,
        )  # fmt: skip
        self.model_version = Gauge(
            "mlcrew_model_version",
            "The version an alias of a model resolves to in this service.",
            ["model", "alias"],
            multiprocess_mode="livemax",
            registry=r,
        )
        self.log_lag = Gauge(
            "mlcrew_prediction_log_lag_seconds",
            "Age of the oldest record in the last segment written (0 when nothing waits).",
            multiprocess_mode="livemax",
            registry=r,
        )
        self.log_pending = Gauge(
            "mlcrew_prediction_log_pending_rows",
            "Predicted rows waiting in memory for the prediction log.",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.log_rows = Counter(
            "mlcrew_prediction_log_rows", "Rows written to prediction log segments.", registry=r
        )
        self.log_dropped = Counter(
            "mlcrew_prediction_log_dropped_rows",
            "Rows not logged because the writer fell too far behind.",
            registry=r,
        )
        self.log_errors = Counter(
            "mlcrew_prediction_log_errors", "Segments that failed to write (retried).", registry=r
        )
        self.alerts = Gauge(
            "mlcrew_monitor_alert",
            "1 while an alert rule fires on the model's newest monitoring window, else 0.",
            ["model", "rule"],
            multiprocess_mode="livemax",
            registry=r,
        )
        self._children: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[str, Any] = {}
        self._rows: dict[tuple[str, int], Any] = {}
        self._versions: dict[tuple[str, str], int] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        if method not in METHODS:  # a client can send any token: keep the label set bounded
            method = "other"
        key = (route, method, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(route, method, str(status))
        child.inc()
        timer = self._timers.get(route)
        if timer is None:
            timer = self._timers[route] = self.latency.labels(route)
        timer.observe(seconds)

    def predicted(self, model: str, version: int, rows: int, alias: str | None) -> None:
        key = (model, version)
        child = self._rows.get(key)
        if child is None:
            child = self._rows[key] = self.rows.labels(model, str(version))
        child.inc(rows)
        if alias is not None and self._versions.get((model, alias)) != version:
            self._versions[(model, alias)] = version
            self.model_version.labels(model, alias).set(version)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        if multiprocess():
            from prometheus_client import multiprocess as mp

            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
