"""Windows over the prediction log.

A window is the predictions of one model logged at `start` <= at < `end`. Rounds of the loop
close windows one after another, so the end of the newest window is the watermark: the next
round reads only later rows, from the segments written since (a segment's name is the time it
was written, which is after every prediction in it). How windows are cut is `monitoring.window`:
every N rows (closed where one request ends and the next begins), every period of time
(aligned to UTC), or (neither) everything new in one window once it holds enough rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from mlcrew.serving.predlog import join_segments, segment_tables, segments
from mlcrew.store.models import MonitorWindow

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcrew.spec import Window
    from mlcrew.store import Store


# How long after a prediction its segment may still be written (the writer retries).
WRITE_SLACK = timedelta(hours=1)


@dataclass
class Cut:
    start: datetime
    end: datetime
    rows: pa.Table  # log rows, in the order they were logged


def watermark(store: Store, name: str) -> datetime | None:
    """The end of the newest closed window of `name` (None before the first)."""
    with store.session() as s:
        found = s.scalar(select(func.max(MonitorWindow.end_at)).where(MonitorWindow.name == name))
    if found is not None and found.tzinfo is None:
        found = found.replace(tzinfo=UTC)
    return found


def segment_time(rel: str) -> datetime:
    """When a segment was written, from its name (`20261123T172732123456Z-pid-seq.parquet`)."""
    text = rel.rsplit("/", 1)[-1].split("-", 1)[0]
    return datetime.strptime(text, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)


def log_rows(
    store: Store, name: str, start: datetime | None, end: datetime, closed: bool = False
) -> pa.Table:
    """The logged predictions of `name` at `start` <= at < `end`, oldest first. `closed`: the
    window ended long ago, so segments written more than WRITE_SLACK after its end are not
    read (a service writes a prediction within seconds, or keeps retrying for minutes)."""
    return read_log(store, name, start, end, closed=closed)[0]


def read_log(
    store: Store,
    name: str,
    start: datetime | None,
    end: datetime,
    *,
    closed: bool = False,
    since: datetime | None = None,
) -> tuple[pa.Table, int]:
    """`log_rows`, and (with `since`, when the last round listed the segments) how many rows
    came too late: logged before `start` in segments written after `since`, so after their
    window had closed (a writer that retried for long, clocks that disagree). They are counted,
    not judged."""
    import pyarrow as pa
    import pyarrow.compute as pc

    found = segments(store, name)
    if start is not None:
        found = [rel for rel in found if segment_time(rel) >= start]
    if closed:
        found = [rel for rel in found if segment_time(rel) < end + WRITE_SLACK]
    tables = segment_tables(store, found)
    late = 0
    if start is not None and since is not None:
        for rel, t in zip(found, tables, strict=True):
            if segment_time(rel) > since and t.num_rows:
                at = t.column("at")
                late += int(pc.sum(pc.less(at, pa.scalar(start, at.type))).as_py() or 0)
    table = join_segments(tables)
    if table.num_rows == 0:
        return table, late
    at = table.column("at")
    keep = pc.less(at, pa.scalar(end, at.type))
    if start is not None:
        keep = pc.and_(keep, pc.greater_equal(at, pa.scalar(start, at.type)))
    table = table.filter(keep)
    order = pc.sort_indices(table, [("at", "ascending"), ("request_id", "ascending"),
                                    ("row", "ascending")])  # fmt: skip
    return table.take(order), late


def cut(
    rows: pa.Table, window: Window, min_rows: int, after: datetime | None, until: datetime
) -> tuple[list[Cut], int]:
    """The windows `rows` close, and how many rows stay pending for a later round."""
    import numpy as np

    if rows.num_rows == 0:
        return [], 0
    at = rows.column("at").to_numpy(zero_copy_only=False).astype("datetime64[us]")
    micros = at.astype("int64")
    first = after or _to_datetime(int(micros[0]))
    if window.rows is not None:
        cuts: list[Cut] = []
        begin = 0
        while rows.num_rows - begin >= window.rows:
            end = begin + window.rows
            # Close where the next request starts: a request's rows share one `at`.
            while end < rows.num_rows and micros[end] == micros[end - 1]:
                end += 1
            stop = _to_datetime(int(micros[end])) if end < rows.num_rows else until
            start = first if begin == 0 else cuts[-1].end
            cuts.append(Cut(start, stop, rows.slice(begin, end - begin)))
            begin = end
            if end == rows.num_rows:
                break
        return cuts, rows.num_rows - begin
    if window.seconds is not None:
        period = int(window.seconds * 1_000_000)
        slots = micros // period
        cuts = []
        for slot in np.unique(slots):
            end_us = (int(slot) + 1) * period
            if _to_datetime(end_us) > until:
                break
            index = np.flatnonzero(slots == slot)
            start = max(first, _to_datetime(int(slot) * period))
            cuts.append(Cut(start, _to_datetime(end_us), rows.take(index)))
        pending = rows.num_rows - sum(c.rows.num_rows for c in cuts)
        return cuts, pending
    if rows.num_rows < min_rows:
        return [], rows.num_rows
    return [Cut(first, until, rows)], 0


def _to_datetime(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def model_rows(rows: pa.Table, schema: list[dict[str, Any]] | None = None) -> pa.Table:
    """The logged inputs as a table in the model's columns. The log keeps numbers as floats;
    with the model's `schema`, integer fields whose values are all whole become integers
    again, so the spec's type checks see what training saw."""
    import pyarrow as pa

    inputs = rows.column("inputs").combine_chunks()
    table = pa.Table.from_arrays(inputs.flatten(), names=[f.name for f in inputs.type])
    for field in schema or ():
        name = field["name"]
        if field["type"] != "integer" or name not in table.column_names:
            continue
        try:
            whole = table.column(name).cast(pa.int64())  # safe: refuses 2.5
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        table = table.set_column(table.column_names.index(name), name, whole)
    return table


def served_by(rows: pa.Table) -> tuple[int, dict[int, int]]:
    """The version that served most of the rows, and the rows each version served."""
    import pyarrow.compute as pc

    counts: dict[int, int] = {}
    for entry in pc.value_counts(rows.column("version")).to_pylist():
        counts[int(entry["values"])] = int(entry["counts"])
    main = max(counts, key=lambda v: (counts[v], v))
    return main, counts
