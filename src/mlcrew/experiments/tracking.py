"""Experiment tracking for any training code: `with mlcrew.start_run(project) as run:`.

A call like `run.log_metric("loss", 0.3, step=7)` checks its arguments and appends to a buffer
in memory, nothing more (about a microsecond); a writer thread moves the buffer into the
metadata database every `flush_seconds`, or sooner when it grows past FLUSH_ROWS, in one
transaction. A process that dies loses at most what it logged since the last flush; leaving
the `with` block flushes everything and records how the run ended. The pipeline's own trials
log through the same object.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, update
from sqlalchemy.exc import SQLAlchemyError

from mlcrew.errors import MlcrewError, StoreError, TrackingError
from mlcrew.experiments.points import Series, Summary, encode, merge
from mlcrew.experiments.tables import (
    ARTIFACTS,
    KEY_LENGTH,
    LAST,
    METRICS,
    PARAMS,
    RUNS,
    TAGS,
    VALUE_LENGTH,
)
from mlcrew.store import Store, now

if TYPE_CHECKING:
    from mlcrew.project import Project

FLUSH_SECONDS = 1.0
FLUSH_ROWS = 20_000  # a buffer this long is written at once, not at the next tick
NAME_LENGTH = 200
MAX_STEP = 2**63
_KEY = re.compile(r"[A-Za-z0-9_\-. /:]+")
KEY_RULE = "letters, digits, and _ - . / : or spaces"


class ActiveRun:
    """A tracked run, as `start_run` yields it. Thread-safe: several threads may log at once."""

    def __init__(
        self,
        store: Store,
        name: str,
        *,
        source: str = "api",
        parent: str | None = None,
        pipeline_run: str | None = None,
        seed: int | None = None,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        if not isinstance(name, str) or not name.strip() or len(name) > NAME_LENGTH:
            raise TrackingError(
                f"a run's name is text of 1 to {NAME_LENGTH} characters, got {name!r:.80}"
            )
        if not flush_seconds > 0:
            raise TrackingError(f"flush_seconds must be more than 0, got {flush_seconds!r}")
        self.store = store
        self.id = uuid.uuid4().hex
        self.name = name
        self.flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._points: dict[str, Series] = {}
        self._waiting = 0  # points in self._points
        self._seq: dict[str, int] = {}  # the next chunk number of each metric
        self._summaries: dict[str, Summary] = {}
        self._params: dict[str, str] = {}  # every param logged, to refuse a changed value
        self._new_params: list[dict[str, Any]] = []
        self._tags: dict[str, str] = {}
        self._artifacts: dict[str, tuple[str, int]] = {}
        self._tags_changed = self._artifacts_changed = False
        self._steps: dict[str, int] = {}  # the next step of each metric logged without one
        self._keys: set[str] = set()  # keys already checked
        self._wake = threading.Event()
        self._stopping = False
        self._failure: BaseException | None = None
        self._ended = False
        stamp = now()
        try:
            with store.engine.begin() as conn:
                self._num: int = conn.execute(
                    insert(RUNS).returning(RUNS.c.num),
                    {
                        "id": self.id,
                        "project": store.project_name,
                        "name": name.strip(),
                        "status": "running",
                        "source": source,
                        "parent": parent,
                        "pipeline_run": pipeline_run,
                        "seed": seed,
                        "started_at": stamp,
                        "heartbeat_at": stamp,
                    },
                ).scalar_one()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot record the run: {str(exc).splitlines()[0]}") from exc
        self._writer = threading.Thread(
            target=self._write_loop, name=f"mlcrew-tracking-{self.id[:8]}", daemon=True
        )
        self._writer.start()

    # ------------------------------------------------------------------ logging

    def log_param(self, key: str, value: Any) -> None:
        """A param (kept as text). Logging it again with the same value is a no-op; with another
        value it is refused: a run's params describe it once."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Several params at once; all or none are kept."""
        checked = {self._key(k, "param"): _text(v, f"param {k!r}") for k, v in params.items()}
        with self._lock:
            self._live()
            for key, value in checked.items():
                had = self._params.get(key)
                if had is not None and had != value:
                    raise TrackingError(
                        f"param {key!r} was logged as {had!r:.80}; a run's params do not "
                        f"change (got {value!r:.80}): log it as a metric or start another run"
                    )
            for key, value in checked.items():
                if key not in self._params:
                    self._params[key] = value
                    self._new_params.append({"run": self._num, "key": key, "value": value})

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """A point of a metric. Without `step` it follows this metric's last step (0 first).
        NaN is kept as NaN; infinities as they are."""
        # The common case (a known key, a float, an int step) takes no function call.
        if key not in self._keys:
            self._key(key, "metric")
        number = value if type(value) is float else _number(key, value)
        at = time.time_ns() // 1_000_000
        with self._lock:
            if self._ended or self._failure is not None:
                self._live()
            if step is None:
                step = self._steps.get(key, 0)
            elif type(step) is not int or not 0 <= step < MAX_STEP:
                step = _step(key, step)
            self._append(key, step, number, at)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Several metrics at one step (each follows its own last step when `step` is None)."""
        for key in metrics:
            if key not in self._keys:
                self._key(key, "metric")
        values = [(k, _number(k, v)) for k, v in metrics.items()]
        if step is not None and (type(step) is not int or not 0 <= step < MAX_STEP):
            step = _step("step", step)
        at = time.time_ns() // 1_000_000
        with self._lock:
            self._live()
            for key, number in values:
                self._append(key, self._steps.get(key, 0) if step is None else step, number, at)

    def _append(self, key: str, step: int, number: float, at: int) -> None:
        """One point into its metric's buffer (the caller holds the lock)."""
        self._steps[key] = step + 1
        series = self._points.get(key)
        if series is None:
            series = self._points[key] = Series()
        series.steps.append(step)
        series.values.append(number)
        series.ats.append(at)
        self._waiting += 1
        if self._waiting >= FLUSH_ROWS:
            self._wake.set()

    def set_tag(self, key: str, value: Any) -> None:
        """A tag: free text about the run, which (unlike a param) may change."""
        key = self._key(key, "tag")
        text = _text(value, f"tag {key!r}")
        with self._lock:
            self._live()
            self._tags[key] = text
            self._tags_changed = True

    def log_artifact(self, path: str | Path, name: str | None = None) -> str:
        """Keep a file with the run (its content goes into the artifact store by digest, now,
        so a later change of the file does not change what was logged). Returns the digest."""
        source = Path(path)
        if not source.is_file():
            raise TrackingError(f"log_artifact: {source} is not a file")
        label = name or source.name
        if not label or len(label) > 500:
            raise TrackingError(f"an artifact's name is 1 to 500 characters, got {label!r:.80}")
        digest = self.store.artifacts.put_file(source)
        size = source.stat().st_size
        with self._lock:
            self._live()
            self._artifacts[label] = (digest, size)
            self._artifacts_changed = True
        return digest

    # ------------------------------------------------------------------ ending

    def flush(self) -> None:
        """Write everything logged so far now (the writer thread does it every interval)."""
        self._flush()

    def end(self, status: str = "finished", error: str | None = None) -> None:
        """Flush, stop the writer and record how the run ended (the `with` block does this)."""
        if self._ended:
            return
        self._stopping = True
        self._wake.set()
        self._writer.join()
        self._ended = True
        self._flush(final=(status, error))

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.end("finished")
        else:
            self.end("failed", f"{kind.__name__ if kind else 'Error'}: {exc}"[:2000])

    # ------------------------------------------------------------------ the writer

    def _write_loop(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._stopping:
                return
            try:
                self._flush()
            except MlcrewError as exc:  # kept: the rows stay buffered for the next round
                self._failure = exc

    def _flush(self, final: tuple[str, str | None] | None = None) -> None:
        with self._lock:
            points, self._points, self._waiting = self._points, {}, 0
            params, self._new_params = self._new_params, []
            tags = artifacts = None
            if self._tags_changed:
                tags = [{"run": self._num, "key": k, "value": v} for k, v in self._tags.items()]
            if self._artifacts_changed:
                artifacts = [
                    {"run": self._num, "path": p, "digest": d, "size": s}
                    for p, (d, s) in self._artifacts.items()
                ]
            self._tags_changed = self._artifacts_changed = False
        seq = {k: self._seq.get(k, 0) + 1 for k in points}
        summaries = {k: self._summaries.get(k, Summary()).add(v) for k, v in points.items()}
        stamp = now()
        state: dict[str, Any] = {"heartbeat_at": stamp}
        if final is not None:
            state.update(status=final[0], error=final[1], ended_at=stamp)
        try:
            with self.store.engine.begin() as conn:
                if points:  # one row per metric: its points as arrays
                    conn.execute(
                        insert(METRICS),
                        [
                            {"run": self._num, "key": k, "seq": seq[k] - 1, **encode(v)}
                            for k, v in points.items()
                        ],
                    )
                    conn.execute(
                        LAST.delete().where(LAST.c.run == self._num, LAST.c.key.in_(list(points)))
                    )
                    conn.execute(insert(LAST), [summaries[k].row(self._num, k) for k in points])
                if params:
                    conn.execute(insert(PARAMS), params)
                if tags:  # tags may change: the latest value wins
                    conn.execute(TAGS.delete().where(TAGS.c.run == self._num))
                    conn.execute(insert(TAGS), tags)
                if artifacts:
                    conn.execute(ARTIFACTS.delete().where(ARTIFACTS.c.run == self._num))
                    conn.execute(insert(ARTIFACTS), artifacts)
                conn.execute(update(RUNS).where(RUNS.c.num == self._num).values(**state))
            self._seq.update(seq)
            self._summaries.update(summaries)
        except SQLAlchemyError as exc:
            with self._lock:  # put them back in front: the next flush tries again
                self._points = merge(points, self._points)
                self._waiting += sum(len(v) for v in points.values())
                self._new_params[:0] = params
                self._tags_changed |= tags is not None
                self._artifacts_changed |= artifacts is not None
            raise StoreError(
                f"cannot write run {self.id}'s records: {str(exc).splitlines()[0]}"
            ) from exc

    # ------------------------------------------------------------------ checks

    def _live(self) -> None:
        if self._ended:
            raise TrackingError(f"run {self.id} has ended; start another run to log more")
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise TrackingError(f"the run's records could not be written: {failure}")

    def _key(self, key: Any, what: str) -> str:
        if not isinstance(key, str) or not 0 < len(key) <= KEY_LENGTH or not _KEY.fullmatch(key):
            raise TrackingError(f"a {what} name is 1 to {KEY_LENGTH} {KEY_RULE}, got {key!r:.80}")
        self._keys.add(key)
        return key


def _text(value: Any, what: str) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > VALUE_LENGTH:
        raise TrackingError(f"{what} is {len(text)} characters long; at most {VALUE_LENGTH}")
    return text


def _number(key: str, value: Any) -> float:
    if type(value) is float:
        return value
    if isinstance(value, (bool, str)):
        raise TrackingError(f"metric {key!r} takes a number, got {value!r:.80}")
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise TrackingError(f"metric {key!r} takes a number, got {value!r:.80}") from None


def _step(key: str, step: Any) -> int:
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        raise TrackingError(f"the step of metric {key!r} is a whole number, got {step!r:.80}")
    value = int(step)
    if not 0 <= value < MAX_STEP:
        raise TrackingError(f"the step of metric {key!r} is 0 to 2**63 - 1, got {value}")
    return value


@contextmanager
def start_run(
    project: Project | str | Path,
    name: str | None = None,
    *,
    flush_seconds: float = FLUSH_SECONDS,
    tags: Mapping[str, Any] | None = None,
    parent: str | None = None,
) -> Iterator[ActiveRun]:
    """Track a run of any training code in a project (a folder with mlcrew.yaml, or an open
    `mlcrew.Project`). Leaving the block flushes everything and records whether it finished
    or failed (the exception goes on)."""
    from mlcrew.project import Project as ProjectType

    owned = not isinstance(project, ProjectType)
    proj = project if isinstance(project, ProjectType) else ProjectType.open(project)
    try:
        run = ActiveRun(
            proj.store,
            name or time.strftime("run %Y-%m-%d %H:%M:%S"),
            parent=parent,
            flush_seconds=flush_seconds,
        )
        with run:
            for key, value in (tags or {}).items():
                run.set_tag(key, value)
            yield run
    finally:
        if owned:
            proj.close()
