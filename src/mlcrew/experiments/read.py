"""Reading tracked runs back: a list to filter and sort, one run whole, and runs side by side.
The CLI, REST and the pages all call these."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from mlcrew.errors import NotFoundError, TrackingError
from mlcrew.experiments.points import decode
from mlcrew.experiments.tables import ARTIFACTS, LAST, METRICS, PARAMS, RUNS, TAGS
from mlcrew.store import Store, now

# A run still "running" whose writer has not flushed for this long has lost its process.
LOST_AFTER = timedelta(seconds=60)
_ID_PREFIX = re.compile(r"[0-9a-f]{4,32}")
_FILTER = re.compile(
    r"\s*(params|metrics|tags)\.(.+?)\s*(<=|>=|!=|=|<|>)\s*(.*?)\s*", flags=re.DOTALL
)
# The same rules as patterns for REST's query parameters (api/routers/experiments.py).
FILTER_PATTERN = r"^\s*(params|metrics|tags)\..+(<=|>=|!=|=|<|>).*$"
SORT_PATTERN = r"^[-+]*(params|metrics|tags)\..+$"
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
FILTER_RULE = "params.KEY, metrics.KEY or tags.KEY, then =, !=, <, <=, > or >=, then a value"


@dataclass
class RunSummary:
    """A run with its params, tags and the last value of each metric (what a runs table shows)."""

    id: str
    name: str
    status: str
    source: str
    parent: str | None
    seed: int | None
    started_at: datetime
    ended_at: datetime | None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        return (self.ended_at - self.started_at).total_seconds() if self.ended_at else None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "source": self.source,
            "parent": self.parent,
            "seed": self.seed,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "seconds": self.seconds,
            "params": self.params,
            "metrics": {k: _json_number(v) for k, v in self.metrics.items()},
            "tags": self.tags,
        }


def _json_number(value: float | None) -> float | str | None:
    """NaN and infinities as JSON has no numbers for them: "NaN", "Infinity", "-Infinity"."""
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _status(status: str, heartbeat: datetime) -> str:
    if status == "running" and now() - heartbeat > LOST_AFTER:
        return "lost"
    return status


def resolve(conn: Connection, project: str, run: str) -> str:
    """A run id from a whole id or a unique prefix of at least 4 characters."""
    text = run.strip().lower()
    if not _ID_PREFIX.fullmatch(text):
        raise NotFoundError(f"no tracked run {run!r}: a run id is 4 to 32 hex digits")
    rows = conn.execute(
        select(RUNS.c.id)
        .where(RUNS.c.project == project, RUNS.c.id.startswith(text, autoescape=True))
        .limit(3)
    ).all()
    if not rows:
        raise NotFoundError(
            f"no tracked run {run!r} in project {project!r} (mlcrew experiments list)"
        )
    if len(rows) > 1:
        raise NotFoundError(f"{run!r} starts more than one run's id; give more of it")
    return str(rows[0][0])


def list_runs(
    store: Store,
    *,
    filters: Iterable[str] = (),
    sort: str | None = None,
    limit: int = 100,
    source: str | None = None,
) -> list[RunSummary]:
    """The project's tracked runs, newest first (or by `sort`: `metrics.auc`, `-params.lr`, a
    leading minus for descending), keeping those that pass every filter (`metrics.auc>=0.8`)."""
    tests = [_parse_filter(f) for f in filters]
    order = _parse_sort(sort) if sort else None
    with store.engine.connect() as conn:
        query = select(RUNS).where(RUNS.c.project == store.project_name)
        if source:
            query = query.where(RUNS.c.source == source)
        # Filters and sorts read params and metrics: fetch generously, then cut.
        fetch = limit if not tests and order is None else max(limit, 10_000)
        rows = conn.execute(query.order_by(RUNS.c.started_at.desc()).limit(fetch)).all()
        runs = {
            r.num: RunSummary(
                r.id,
                r.name,
                _status(r.status, r.heartbeat_at),
                r.source,
                r.parent,
                r.seed,
                r.started_at,
                r.ended_at,
            )
            for r in rows
        }
        _fill(conn, runs)
    found = [r for r in runs.values() if all(test(r) for test in tests)]
    if order is not None:
        section, key, descending = order
        have = [r for r in found if key in getattr(r, section)]
        rest = [r for r in found if key not in getattr(r, section)]
        have.sort(key=lambda r: _sortable(getattr(r, section)[key]), reverse=descending)
        found = have + rest
    return found[:limit]


def _fill(conn: Connection, runs: dict[int, RunSummary]) -> None:
    ids = list(runs)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for r in conn.execute(select(PARAMS).where(PARAMS.c.run.in_(chunk))):
            runs[r.run].params[r.key] = r.value
        for r in conn.execute(select(TAGS).where(TAGS.c.run.in_(chunk))):
            runs[r.run].tags[r.key] = r.value
        for r in conn.execute(
            select(LAST.c.run, LAST.c.key, LAST.c.value).where(LAST.c.run.in_(chunk))
        ):
            runs[r.run].metrics[r.key] = r.value if r.value is not None else math.nan


def _sortable(value: Any) -> Any:
    number = _as_number(value)
    return (0, number, "") if number is not None else (1, 0.0, str(value))


def _as_number(value: Any) -> float | None:
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _parse_sort(sort: str) -> tuple[str, str, bool]:
    descending = sort.startswith("-")
    text = sort.lstrip("-+")
    section, _, key = text.partition(".")
    if section not in ("params", "metrics", "tags") or not key:
        raise TrackingError(
            f"cannot sort by {sort!r}: use params.KEY, metrics.KEY or tags.KEY (a leading - "
            "sorts descending)"
        )
    return section, key, descending


def _parse_filter(text: str) -> Callable[[RunSummary], bool]:
    match = _FILTER.fullmatch(text)
    if match is None:
        raise TrackingError(f"cannot read the filter {text!r}: {FILTER_RULE}")
    section, key, op, wanted = match.groups()
    compare = _OPS[op]
    target = _as_number(wanted)

    def test(run: RunSummary) -> bool:
        values: dict[str, Any] = getattr(run, section)
        if key not in values:
            return False
        have = values[key]
        number = _as_number(have)
        if target is not None and number is not None:
            return compare(number, target)
        if op in ("=", "!="):
            return compare(str(have), wanted)
        return False

    return test


def show_run(store: Store, run: str) -> dict[str, Any]:
    """One run whole: `{"id", "name", "status", ..., "params", "metrics": {KEY: [{"step",
    "value"}, ...]}, "tags", "artifacts"}`."""
    with store.engine.connect() as conn:
        run_id = resolve(conn, store.project_name, run)
        row = conn.execute(select(RUNS).where(RUNS.c.id == run_id)).one()
        num = row.num
        summary = RunSummary(
            row.id,
            row.name,
            _status(row.status, row.heartbeat_at),
            row.source,
            row.parent,
            row.seed,
            row.started_at,
            row.ended_at,
        )
        params = {
            r.key: r.value
            for r in conn.execute(select(PARAMS).where(PARAMS.c.run == num).order_by(PARAMS.c.key))
        }
        tags = {
            r.key: r.value
            for r in conn.execute(select(TAGS).where(TAGS.c.run == num).order_by(TAGS.c.key))
        }
        metrics = _points(conn, num)
        artifacts = [
            {"path": r.path, "digest": r.digest, "size": r.size}
            for r in conn.execute(
                select(ARTIFACTS).where(ARTIFACTS.c.run == num).order_by(ARTIFACTS.c.path)
            )
        ]
    doc = summary.to_json()
    doc.update(params=params, metrics=metrics, tags=tags, artifacts=artifacts, error=row.error)
    return doc


def _points(conn: Connection, num: int) -> dict[str, list[dict[str, Any]]]:
    """Every point of every metric of a run, by step (points of one step in logged order)."""
    series: dict[str, list[tuple[int, int, float, int]]] = {}
    chunks = conn.execute(
        select(METRICS.c.key, METRICS.c.steps, METRICS.c["values"], METRICS.c.ats)
        .where(METRICS.c.run == num)
        .order_by(METRICS.c.key, METRICS.c.seq)
    )
    for row in chunks:
        steps, values, ats = decode(row)
        into = series.setdefault(row.key, [])
        base = len(into)
        into.extend(zip(steps, range(base, base + len(steps)), values, ats, strict=True))
    out: dict[str, list[dict[str, Any]]] = {}
    for key, points in series.items():
        points.sort()
        out[key] = [{"step": s, "value": _json_number(v), "at": a} for s, _, v, a in points]
    return out


def compare_runs(store: Store, runs: list[str]) -> dict[str, Any]:
    """Runs side by side: every param (with whether it differs) and the last, best (lowest and
    highest) value of every metric."""
    return compare_docs([show_run(store, r) for r in runs])


def compare_docs(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """`compare_runs` of runs already read with `show_run` (a page that also draws their
    curves reads each run once)."""
    if len(docs) < 2:
        raise TrackingError("compare takes two runs or more")
    ids = [d["id"] for d in docs]
    if len(set(ids)) < len(ids):
        raise TrackingError("compare takes different runs; one was named twice")
    keys = sorted({k for d in docs for k in d["params"]})
    params = [
        {
            "key": k,
            "values": [d["params"].get(k) for d in docs],
            "differs": len({d["params"].get(k) for d in docs}) > 1,
        }
        for k in keys
    ]
    metric_keys = sorted({k for d in docs for k in d["metrics"]})
    metrics = []
    for k in metric_keys:
        cells = []
        for d in docs:
            series = [p["value"] for p in d["metrics"].get(k, [])]
            numbers = [v for v in series if isinstance(v, (int, float))]
            cells.append(
                {
                    "last": series[-1] if series else None,
                    "min": min(numbers) if numbers else None,
                    "max": max(numbers) if numbers else None,
                    "points": len(series),
                }
            )
        metrics.append({"key": k, "runs": cells})
    return {
        "runs": [{k: d[k] for k in ("id", "name", "status", "started_at")} for d in docs],
        "params": params,
        "metrics": metrics,
    }
