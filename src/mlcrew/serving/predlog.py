"""The prediction log: every prediction appended, off the request path, to Parquet segments.

A request only appends a record to a list in memory. A writer thread turns what gathered into
one Parquet segment per model version every `interval` seconds (1 s by default), scores the same
rows with the shadow challenger if there is one, and moves each finished segment into place with
an atomic rename, so a crash loses at most the last unwritten second and never a written segment.

Segments live under the artifact store, one folder per model and day:

    <artifacts>/predictions/<model>/<YYYY-MM-DD>/<UTC time>-<pid>-<seq>.parquet

Each row of a segment is one predicted row: `at` (UTC), `request_id`, `row` (its index in the
request), `model`, `version`, `alias`, `latency_ms` (validation and prediction in the service),
`consumer` (who asked: `consumer:NAME` for a declared consumer's token, the user for a
person's token or session, null for the local owner), `prediction`, `inputs` (a struct of
the model's input fields as sent) and `challenger_version`, `challenger_prediction`,
`challenger_error` (null without a shadow challenger). `read_predictions` reads them back.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from mlcrew.serving.validation import InputSchema
from mlcrew.store.logs import log_folder

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from mlcrew.serving.metrics import ServiceMetrics
    from mlcrew.serving.shadow import Shadow
    from mlcrew.store import Store

log = logging.getLogger("mlcrew.serving")

FLUSH_SECONDS = 1.0
# Rows waiting in memory that trigger an early write, and the most ever kept (then dropped).
FLUSH_ROWS = 20_000
MAX_PENDING_ROWS = 200_000


class LogEntry(NamedTuple):
    """One answered request, as the request path hands it over: a tuple holding the encoded
    rows (not the request's dicts), so waiting entries cost the garbage collector little."""

    at: float
    request_id: str
    name: str
    version: int
    alias: str | None
    inputs: InputSchema
    X: np.ndarray
    # (row, field index, text) of categories training never saw (X holds them as missing).
    unseen: tuple[tuple[int, int, str], ...] | None
    predictions: tuple[Any, ...]
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
        self.artifacts = store.artifacts
        self.root = store.artifacts.root
        self.project = store.project_name
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
        n = len(entry.predictions)
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
        failed: list[LogEntry] = []
        error: Exception | None = None
        for (name, version), entries in groups.items():
            try:
                table = self._table(name, version, entries)
                written.append(self._write(name, table))
            except Exception as exc:
                # Every group that could not be written goes back, to be tried again next
                # second (bounded by MAX_PENDING_ROWS); the others are still written now.
                failed.extend(entries)
                error = exc
                if self.metrics:
                    self.metrics.log_errors.inc()
                continue
            if self.metrics:
                self.metrics.log_rows.inc(table.num_rows)
        if failed:
            failed.sort(key=lambda e: e.at)
            with self._lock:
                self._pending[:0] = failed
                self._pending_rows += sum(len(e.predictions) for e in failed)
        if self.metrics:
            self.metrics.log_lag.set(max(0.0, time.time() - batch[0].at))
            self.metrics.log_pending.set(self._pending_rows)
        if error is not None:
            raise error
        return written

    def _table(self, name: str, version: int, entries: list[LogEntry]) -> pa.Table:
        """One row per predicted row; per-request values are gathered once per request and
        repeated by Arrow, inputs come from the matrix the request already built."""
        import numpy as np
        import pyarrow as pa

        counts = [len(e.predictions) for e in entries]
        total = sum(counts)
        one_row_each = total == len(entries)
        take = None if one_row_each else pa.array(np.repeat(np.arange(len(entries)), counts))

        def per_request(values: list[Any], type: pa.DataType) -> pa.Array:
            arr = pa.array(values, type)
            return arr if take is None else arr.take(take)

        if one_row_each:
            predictions = [e.predictions[0] for e in entries]
            index = pa.nulls(total, pa.int32()).fill_null(0)
        else:
            predictions = [p for e in entries for p in e.predictions]
            index = pa.array(np.concatenate([np.arange(c) for c in counts]), pa.int32())
        X = np.concatenate([e.X for e in entries])
        # Unseen categories, by (row of the segment, field index).
        unseen: dict[tuple[int, int], str] = {}
        first = 0
        for e, n in zip(entries, counts, strict=True):
            if e.unseen:
                unseen.update(((first + i, j), text) for i, j, text in e.unseen)
            first += n
        schema = entries[-1].inputs
        inputs = _inputs(schema, X, unseen)
        prediction = _column(predictions)
        shadow = None
        shadow_failure: str | None = None
        if self.shadow:
            try:
                shadow = self.shadow.score(name, version, X, inputs, schema)
            except Exception as exc:  # the challenger never holds back the champion's rows
                shadow_failure = f"challenger failed: {exc.__class__.__name__}: {exc}"[:200]
        if shadow is None:
            challenger_version = pa.nulls(total, pa.int32())
            challenger = pa.nulls(total, prediction.type)
            challenger_error = (
                pa.array([shadow_failure] * total, pa.string())
                if shadow_failure
                else pa.nulls(total, pa.string())
            )
        else:
            challenger_version = pa.nulls(total, pa.int32()).fill_null(shadow.version)
            challenger = _column(shadow.predictions, prediction.type)
            challenger_error = pa.array(shadow.errors, pa.string())
        return pa.table(
            {
                "at": per_request(
                    [int(e.at * 1_000_000) for e in entries], pa.timestamp("us", tz="UTC")
                ),
                "request_id": per_request([e.request_id for e in entries], pa.string()),
                "row": index,
                "model": pa.nulls(total, pa.string()).fill_null(name),
                "version": pa.nulls(total, pa.int32()).fill_null(version),
                "alias": per_request([e.alias for e in entries], pa.string()),
                "latency_ms": per_request([e.latency_ms for e in entries], pa.float64()),
                "consumer": per_request([e.consumer for e in entries], pa.string()),
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
            f"{log_folder(self.project, name)}/{stamp:%Y-%m-%d}/"
            f"{stamp:%Y%m%dT%H%M%S%fZ}-{os.getpid()}-{self._seq:06d}.parquet"
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        # Atomic on a disk (temporary file, fsync, rename) and on an object store (temporary
        # object, then moved): a reader never sees part of a segment.
        self.artifacts.write_file(rel, sink.getvalue().to_pybytes())
        return rel


def _inputs(schema: InputSchema, X: np.ndarray, unseen: dict[tuple[int, int], str]) -> pa.Array:
    """The inputs as one struct column typed by the model's fields, rebuilt from the encoded
    rows: numbers and booleans (missing values as nulls), categories as their text."""
    import pyarrow as pa

    children = []
    for j, f in enumerate(schema.fields):
        column = pa.array(X[:, j], pa.float64(), from_pandas=True)
        if f.kind == "category":
            levels = pa.array(f.categories, pa.string())
            codes = column.cast(pa.int32())
            text = levels.take(codes) if len(levels) else pa.nulls(len(codes), pa.string())
            if any(key[1] == j for key in unseen):
                values = text.to_pylist()
                for (i, k), raw in unseen.items():
                    if k == j:
                        values[i] = raw
                text = pa.array(values, pa.string())
            children.append(text)
        else:
            children.append(column.cast(pa.bool_()) if f.kind == "boolean" else column)
    if not children:
        return pa.nulls(X.shape[0], pa.struct([]))
    return pa.StructArray.from_arrays(children, [f.name for f in schema.fields])


def _column(values: list[Any], type: pa.DataType | None = None) -> pa.Array:
    import pyarrow as pa

    try:
        return pa.array(values, type)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def segments(store: Store, name: str) -> list[str]:
    """The written segments of a model, oldest first (paths relative to the artifact store)."""
    found = store.artifacts.list_files(f"{log_folder(store.project_name, name)}/*/*.parquet")
    return sorted(found, key=lambda p: p.rsplit("/", 1)[-1])


def read_predictions(store: Store, name: str, only: list[str] | None = None) -> pa.Table:
    """Every logged prediction of a model (or those of the segments `only`), in the order the
    segments were written, from a local folder or an object store alike."""
    return join_segments(segment_tables(store, segments(store, name) if only is None else only))


def segment_tables(store: Store, found: list[str]) -> list[pa.Table]:
    """The log segments `found`, each as its own table, in that order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return [pq.read_table(pa.BufferReader(b)) for b in store.artifacts.read_files(found)]


def join_segments(tables: list[pa.Table]) -> pa.Table:
    """Segments as one table (an older segment may lack a newer column: it reads as null)."""
    import pyarrow as pa

    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive")
