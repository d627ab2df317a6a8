"""The prediction log: every prediction appended, off the request path, to Parquet segments.

A request only appends a record to a list in memory. A writer thread turns what gathered into
one Parquet segment per model version every `interval` seconds (1 s by default), scores the same
rows with the shadow challenger if there is one, and moves each finished segment into place with
an atomic rename, so a crash loses at most the last unwritten second and never a written segment.

Segments live under the artifact store, one folder per model and day:

    <artifacts>/predictions/<model>/<YYYY-MM-DD>/<UTC time>-<pid>-<seq>.parquet

Each row of a segment is one predicted row: `at` (UTC), `request_id`, `row` (its index in the
request), `model`, `version`, `alias`, `latency_ms` (validation and prediction in the service),
`consumer` (who asked; empty until callers are identified), `prediction`, `inputs` (a struct of
the model's input fields as sent) and `challenger_version`, `challenger_prediction`,
`challenger_error` (null without a shadow challenger). `read_predictions` reads them back.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcrew.serving.validation import InputSchema, category_text

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcrew.serving.metrics import ServiceMetrics
    from mlcrew.serving.shadow import Shadow
    from mlcrew.store import Store

log = logging.getLogger("mlcrew.serving")

FOLDER = "predictions"
FLUSH_SECONDS = 1.0
# Rows waiting in memory that trigger an early write, and the most ever kept (then dropped).
FLUSH_ROWS = 20_000
MAX_PENDING_ROWS = 500_000


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One answered request, as the request path hands it over."""

    at: float
    request_id: str
    name: str
    version: int
    alias: str | None
    inputs: InputSchema
    rows: list[dict[str, Any]]
    predictions: list[Any]
    latency_ms: float
    consumer: str | None = None


class PredictionLog:
    """Buffers prediction records and writes them as Parquet segments from one thread."""

    def __init__(
        self,
        store: Store,
        *,
        interval: float = FLUSH_SECONDS,
        shadow: Shadow | None = None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.root = store.artifacts.root
        self.interval = interval
        self.shadow = shadow
        self.metrics = metrics
        self._pending: list[LogEntry] = []
        self._pending_rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self.dropped = 0

    # -- request path: one list append under a lock
    def append(self, entry: LogEntry) -> None:
        n = len(entry.rows)
        with self._lock:
            if self._pending_rows + n > MAX_PENDING_ROWS:
                self.dropped += n
                if self.metrics:
                    self.metrics.log_dropped.inc(n)
                return
            self._pending.append(entry)
            self._pending_rows += n
            if self._thread is None:
                self._start()
        if self._pending_rows >= FLUSH_ROWS:
            self._wake.set()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mlcrew-prediction-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the writer must outlive any one bad batch
                log.exception("prediction log: a segment could not be written")

    def close(self) -> None:
        """Write what is pending and stop the writer."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self.flush()

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    # -- writer thread
    def flush(self) -> list[str]:
        """Write every pending record; return the segments written."""
        with self._lock:
            batch, self._pending = self._pending, []
            self._pending_rows = 0
        if not batch:
            if self.metrics:
                self.metrics.log_lag.set(0)
                self.metrics.log_pending.set(0)
            return []
        groups: dict[tuple[str, int], list[LogEntry]] = {}
        for entry in batch:
            groups.setdefault((entry.name, entry.version), []).append(entry)
        written = []
        for (name, version), entries in groups.items():
            try:
                table = self._table(name, version, entries)
                written.append(self._write(name, table))
            except Exception:
                # Put them back to try again next second (bounded by MAX_PENDING_ROWS).
                with self._lock:
                    self._pending[:0] = entries
                    self._pending_rows += sum(len(e.rows) for e in entries)
                if self.metrics:
                    self.metrics.log_errors.inc()
                raise
            if self.metrics:
                self.metrics.log_rows.inc(table.num_rows)
        if self.metrics:
            self.metrics.log_lag.set(max(0.0, time.time() - batch[0].at))
            self.metrics.log_pending.set(self._pending_rows)
        return written

    def _table(self, name: str, version: int, entries: list[LogEntry]) -> pa.Table:
        import pyarrow as pa

        at: list[int] = []
        request_ids: list[str] = []
        index: list[int] = []
        aliases: list[str | None] = []
        latency: list[float] = []
        consumers: list[str | None] = []
        predictions: list[Any] = []
        rows: list[dict[str, Any]] = []
        for e in entries:
            n = len(e.rows)
            at.extend([int(e.at * 1_000_000)] * n)
            request_ids.extend([e.request_id] * n)
            index.extend(range(n))
            aliases.extend([e.alias] * n)
            latency.extend([e.latency_ms] * n)
            consumers.extend([e.consumer] * n)
            predictions.extend(e.predictions)
            rows.extend(e.rows)
        inputs = _inputs(entries[-1].inputs, rows)
        prediction = _column(predictions)
        shadow = self.shadow.score(name, version, rows) if self.shadow else None
        if shadow is None:
            challenger_version = pa.nulls(len(rows), pa.int32())
            challenger = pa.nulls(len(rows), prediction.type)
            challenger_error = pa.nulls(len(rows), pa.string())
        else:
            challenger_version = pa.array([shadow.version] * len(rows), pa.int32())
            challenger = _column(shadow.predictions, prediction.type)
            challenger_error = pa.array(shadow.errors, pa.string())
        return pa.table(
            {
                "at": pa.array(at, pa.timestamp("us", tz="UTC")),
                "request_id": pa.array(request_ids, pa.string()),
                "row": pa.array(index, pa.int32()),
                "model": pa.array([name] * len(rows), pa.string()),
                "version": pa.array([version] * len(rows), pa.int32()),
                "alias": pa.array(aliases, pa.string()),
                "latency_ms": pa.array(latency, pa.float64()),
                "consumer": pa.array(consumers, pa.string()),
                "prediction": prediction,
                "inputs": inputs,
                "challenger_version": challenger_version,
                "challenger_prediction": challenger,
                "challenger_error": challenger_error,
            }
        )

    def _write(self, name: str, table: pa.Table) -> str:
        """Write one segment atomically: a temporary file first, renamed when complete."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        stamp = datetime.now(UTC)
        self._seq += 1
        rel = (
            f"{FOLDER}/{name}/{stamp:%Y-%m-%d}/"
            f"{stamp:%Y%m%dT%H%M%S%fZ}-{os.getpid()}-{self._seq:06d}.parquet"
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        data = sink.getvalue().to_pybytes()
        if "://" not in self.root or self.root.startswith("file://"):
            base = Path(self.root.removeprefix("file://"))
            final = base / rel
            tmp = base / FOLDER / ".tmp" / f"{uuid.uuid4().hex}.part"
            tmp.parent.mkdir(parents=True, exist_ok=True)
            final.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, final)
        else:
            import fsspec

            fs, base_url = fsspec.core.url_to_fs(self.root)
            tmp_url = f"{base_url}/{FOLDER}/.tmp/{uuid.uuid4().hex}.part"
            with fs.open(tmp_url, "wb") as out:
                out.write(data)
            fs.mv(tmp_url, f"{base_url}/{rel}")
        return rel


def _inputs(schema: InputSchema, rows: list[dict[str, Any]]) -> pa.Array:
    """The rows as one struct column typed by the model's input fields."""
    import pyarrow as pa

    children = []
    for f in schema.fields:
        values = [row.get(f.name) for row in rows]
        if f.kind == "category":
            children.append(
                pa.array([None if v is None else category_text(v) for v in values], pa.string())
            )
        elif f.kind == "boolean":
            children.append(pa.array(values, pa.bool_()))
        else:
            children.append(
                pa.array([None if v is None else float(v) for v in values], pa.float64())
            )
    if not children:
        return pa.nulls(len(rows), pa.struct([]))
    return pa.StructArray.from_arrays(children, [f.name for f in schema.fields])


def _column(values: list[Any], type: pa.DataType | None = None) -> pa.Array:
    import pyarrow as pa

    try:
        return pa.array(values, type)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def segments(store: Store, name: str) -> list[str]:
    """The written segments of a model, oldest first (paths relative to the artifact store)."""
    root = store.artifacts.root
    pattern = f"{FOLDER}/{name}/*/*.parquet"
    if "://" not in root or root.startswith("file://"):
        base = Path(root.removeprefix("file://"))
        found = [p.relative_to(base).as_posix() for p in base.glob(pattern)]
    else:
        import fsspec

        fs, base_url = fsspec.core.url_to_fs(root)
        found = [
            p.removeprefix(base_url.rstrip("/") + "/") for p in fs.glob(f"{base_url}/{pattern}")
        ]
    return sorted(found, key=lambda p: p.rsplit("/", 1)[-1])


def read_predictions(store: Store, name: str) -> pa.Table:
    """Every logged prediction of a model, in the order the segments were written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = store.artifacts.root
    tables = []
    for rel in segments(store, name):
        if "://" not in root or root.startswith("file://"):
            tables.append(pq.read_table(Path(root.removeprefix("file://")) / rel))
        else:
            import fsspec

            fs, base_url = fsspec.core.url_to_fs(root)
            with fs.open(f"{base_url}/{rel}", "rb") as f:
                tables.append(pq.read_table(f))
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive")
