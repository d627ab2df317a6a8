"""Each labeler's queue: which task comes next, and what a submit, skip, flag or undo does.

The rules that must hold under any number of labelers at once, on SQLite and PostgreSQL:
- A task is handed to at most `needed` (the spec's overlap) labelers: the claim is one
  conditional UPDATE (`assigned < needed`), which the database serialises, never a read followed
  by a write.
- A labeler holds a task once (a unique key on task + labeler), so a repeated submit (a retry, a
  double click) finds the label already there and is not a second label.
- Blind: a task as a labeler sees it carries the item and their own label only.
- Gold items are served apart, at the spec's share, to everyone, without a mark.

No decision rests on an earlier read: every write checks its own condition. On SQLite the
driver begins a transaction at its first write (the reads before it take no snapshot), so a
writer waits for the lock (busy_timeout) instead of failing on a snapshot that went stale. The
queue runs on SQLAlchemy Core with its statements built once (a next task or a submit is a
handful of indexed statements, about a millisecond at a million tasks), so each statement names
the project itself (tables.py). A next task and the progress it answers with are one
transaction on one connection: each connection taken and each transaction is a round trip to
a PostgreSQL server.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, Protocol, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import BindParameter

from mlcrew.errors import ConflictError, LabelError, NotFoundError
from mlcrew.labeling.labelspec import LabelSpec
from mlcrew.labeling.tables import ASSIGNMENTS, EVENTS, TASKS
from mlcrew.spec import Labeling
from mlcrew.store import now

CANDIDATES = 8  # open tasks looked at per claim: labelers start at different ones
MAX_AHEAD = 3
RECLAIM_BATCH = 500
EVENT_OF = {"skipped": "skip", "flagged": "flag"}
T, A = TASKS.c, ASSIGNMENTS.c
R = TypeVar("R")


class QueueDb(Protocol):
    """What the queue needs of a store: an engine, and the project its statements name."""

    @property
    def engine(self) -> Engine: ...

    @property
    def project_name(self) -> str: ...


@dataclass(frozen=True)
class Labeler:
    """Who is labeling: their name, and whether they may label any task of the project (the
    `label` action) or only what is in their own queue (an external labeler)."""

    name: str
    any_task: bool = False


@dataclass(frozen=True)
class TaskView:
    """A task as its labeler sees it: never another labeler's label, never whether it is gold."""

    id: int
    item: str
    payload: dict[str, Any]
    state: str
    suggestion: dict[str, Any] | None = None
    label: Any = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "item": self.item,
            "payload": self.payload,
            "state": self.state,
            "suggestion": self.suggestion,
            "label": self.label,
            "note": self.note,
        }


@dataclass(frozen=True)
class Submitted:
    task_id: int
    label: Any
    confirmed: bool
    duplicate: bool  # the same submission came before: nothing new was stored

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "label": self.label,
            "confirmed": self.confirmed,
            "duplicate": self.duplicate,
        }


@dataclass(frozen=True)
class Progress:
    labeled: int
    skipped: int
    held: int

    def to_json(self) -> dict[str, int]:
        return {"labeled": self.labeled, "skipped": self.skipped, "held": self.held}


def check_label(labeling: Labeling, label: Any) -> Any:
    """The label as stored (a class name, or a sorted list of them for multi-label tasks), or a
    LabelError naming the valid classes."""
    classes = labeling.class_names()
    valid = ", ".join(classes)
    if labeling.task == "multi":
        if not isinstance(label, list) or not all(isinstance(x, str) for x in label):
            raise LabelError(f"this task takes a list of classes (multi-label); valid: {valid}")
        bad = [x for x in label if x not in classes]
        if bad:
            raise LabelError(f"{bad[0][:64]!r} is not a class; valid: {valid}")
        return sorted(set(label))
    if not isinstance(label, str) or label not in classes:
        shown = repr(label)[:64]
        raise LabelError(f"{shown} is not a class; valid: {valid}")
    return label


# ---------------------------------------------------------------------------- helpers

_TASK_COLUMNS = (T.id, T.item, T.payload, T.prelabel)

# The statements of the hot path, built once (a request then costs no statement building or
# cache-key work); `bindparam`s carry the project, the labeler and the task.
_P: BindParameter[str] = bindparam("p_project")
_WHO: BindParameter[str] = bindparam("p_who")
_TASK: BindParameter[int] = bindparam("p_task")
_HELD = (
    select(*_TASK_COLUMNS, A.label, A.note)
    .join(ASSIGNMENTS, A.task_id == T.id)
    .where(A.project == _P, A.labeler == _WHO, A.state == "assigned", T.project == _P)
    .order_by(A.assigned_at, A.id)
    .limit(bindparam("p_count"))
)
_CANDIDATES = (
    select(T.id)
    .where(
        T.project == _P,
        T.open.is_(True),
        ~exists().where(A.project == _P, A.task_id == T.id, A.labeler == _WHO),
    )
    .order_by(T.priority, T.id)
    .limit(CANDIDATES)
)
_TAKE = (
    update(TASKS)
    .where(T.project == _P, T.id == _TASK, T.open.is_(True), T.assigned < T.needed)
    .values(assigned=T.assigned + 1, open=T.assigned + 1 < T.needed)
    .returning(*_TASK_COLUMNS)
)
_ASSIGN = insert(ASSIGNMENTS)
_EVENT = insert(EVENTS)
_SUBMIT = (
    update(ASSIGNMENTS)
    .where(A.project == _P, A.labeler == _WHO, A.task_id == _TASK, A.state == "assigned")
    .values(
        state="submitted",
        label=bindparam("p_label", type_=ASSIGNMENTS.c.label.type),
        confirmed=False,
        submitted_at=bindparam("p_at", type_=ASSIGNMENTS.c.submitted_at.type),
        seconds=bindparam("p_seconds", type_=ASSIGNMENTS.c.seconds.type),
        review=None,
    )
    .returning(A.id, A.suggested)
)
_COUNT_LABEL = (
    update(TASKS)
    .where(T.project == _P, T.id == _TASK)
    .values(labels=T.labels + bindparam("p_delta"))
)
_PROGRESS = (
    select(A.state, func.count()).where(A.project == _P, A.labeler == _WHO).group_by(A.state)
)


def _view(task: Any, state: str, label: Any, note: str | None, labeling: Labeling) -> TaskView:
    suggestion = None
    if labeling.prelabel != "none" and task.prelabel is not None:
        suggestion = {"label": task.prelabel.get("label"), "score": task.prelabel.get("score")}
    return TaskView(task.id, task.item, task.payload, state, suggestion, label, note)


def _event(
    conn: Connection, project: str, task_id: int, labeler: str, actor: str, kind: str, **kw: Any
) -> None:
    row = {"project": project, "task_id": task_id, "labeler": labeler, "actor": actor}
    conn.execute(_EVENT, {**row, "at": now(), "kind": kind, "label": None, "note": None, **kw})


def _write(store: QueueDb, work: Callable[[Connection], R]) -> R:
    """One transaction on a connection of the store's engine."""
    with _begin(store.engine) as conn:
        return work(conn)


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


@contextmanager
def _begin(engine: Engine) -> Iterator[Connection]:
    """A write transaction. On SQLite the queue's writers of one process take turns on a lock
    first: SQLite has one write lock per database, and a writer that finds it taken sleeps in
    the busy handler's growing steps (up to 100 ms a step) where a thread waiting here wakes as
    soon as the lock is free. Other processes still meet at SQLite's lock (busy_timeout)."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    lock = _SQLITE_WRITERS.get(engine)
    if lock is None:
        with _GUARD:
            lock = _SQLITE_WRITERS.setdefault(engine, threading.Lock())
    with lock, engine.begin() as conn:
        yield conn


def _mine(project: str, who: str) -> Any:
    return and_(A.project == project, A.labeler == who)


# ---------------------------------------------------------------------------- next task


def next_tasks(store: QueueDb, spec: LabelSpec, who: Labeler, count: int = 1) -> list[TaskView]:
    """The labeler's next `count` tasks (the first is the one to label now, the rest are
    prefetched): tasks they already hold first, then new claims. Fewer when the queue is dry."""
    return next_with_progress(store, spec, who, count)[0]


def next_with_progress(
    store: QueueDb, spec: LabelSpec, who: Labeler, count: int = 1
) -> tuple[list[TaskView], Progress]:
    """`next_tasks` and the labeler's progress after it, in one transaction on one connection
    (what a labeling page asks for on every item: each connection taken from the pool and each
    transaction is a round trip to a database server)."""
    count = max(1, min(count, 1 + MAX_AHEAD))
    for attempt in range(3):
        try:
            return _next(store, spec.labeling, who.name, count)
        except IntegrityError:
            # Two requests of the same labeler claimed the same task at once: the loser's
            # transaction rolled back whole; the next round finds the task held.
            if attempt == 2:
                raise
    return [], Progress(0, 0, 0)


def _next(
    store: QueueDb, labeling: Labeling, who: str, count: int
) -> tuple[list[TaskView], Progress]:
    project = store.project_name
    reclaimed = False
    while True:
        with _begin(store.engine) as conn:
            params = {"p_project": project, "p_who": who, "p_count": count}
            held = conn.execute(_HELD, params).all()
            views = [_view(r, "assigned", r.label, r.note, labeling) for r in held]
            while len(views) < count:
                claimed = _claim_in(conn, project, labeling, who)
                if claimed is None:
                    break
                views.append(_view(claimed, "assigned", None, None, labeling))
            if len(views) == count or reclaimed:
                return views, _progress(conn, project, who)
        # The pool ran dry: tasks held past their lease go back to it, then look once more.
        reclaimed = True
        if not _reclaim_expired(store, labeling):
            with store.engine.connect() as conn:
                return views, _progress(conn, project, who)


def assign(store: QueueDb, labeler: str, count: int) -> int:
    """Fill a labeler's queue with up to `count` more tasks (a manager handing a batch to an
    outsourced labeler): claimed like their own next tasks, under the same overlap. Returns how
    many were assigned (fewer when the pool runs dry)."""
    project = store.project_name

    def work(conn: Connection) -> int:
        done = 0
        while done < count and _claim_open(conn, project, labeler) is not None:
            done += 1
        return done

    return _write(store, work)


def _claim_in(conn: Connection, project: str, labeling: Labeling, who: str) -> Any:
    if _gold_due(conn, project, labeling, who):
        got = _claim_gold(conn, project, who)
        if got is not None:
            return got
    return _claim_open(conn, project, who)


def _gold_due(conn: Connection, project: str, labeling: Labeling, who: str) -> bool:
    if labeling.gold is None or labeling.gold.share <= 0:
        return False
    total, gold = conn.execute(
        select(func.count(), func.coalesce(func.sum(case((A.gold.is_(True), 1), else_=0)), 0))
        .select_from(ASSIGNMENTS)
        .where(_mine(project, who))
    ).one()
    # Each labeler's gold items fall at their own (seeded) places, about one in 1/share.
    every = 1.0 / labeling.gold.share
    offset = int.from_bytes(hashlib.sha256(who.encode()).digest()[:4], "big") % max(1, int(every))
    return int(gold) < int((int(total) + 1 + offset) / every)


def _not_mine(project: str, who: str) -> Any:
    return ~exists().where(A.project == project, A.task_id == T.id, A.labeler == who)


def _assign(conn: Connection, project: str, who: str, task: Any, gold: bool) -> None:
    conn.execute(
        _ASSIGN,
        {
            "project": project,
            "task_id": task.id,
            "labeler": who,
            "state": "assigned",
            "gold": gold,
            "suggested": (task.prelabel or {}).get("label"),
            "confirmed": False,
            "assigned_at": now(),
        },
    )


def _claim_gold(conn: Connection, project: str, who: str) -> Any:
    task = conn.execute(
        select(*_TASK_COLUMNS)
        .where(T.project == project, T.gold.is_not(None), _not_mine(project, who))
        .order_by(T.priority, T.id)
        .limit(1)
    ).first()
    if task is not None:
        _assign(conn, project, who, task, gold=True)
    return task


def _take(conn: Connection, project: str, task_id: int) -> Any:
    """The claim: one more labeler on the task, if it still has room; the task, or None."""
    return conn.execute(_TAKE, {"p_project": project, "p_task": task_id}).first()


def _claim_open(conn: Connection, project: str, who: str) -> Any:
    params = {"p_project": project, "p_who": who}
    # Labelers start at different candidates, so twenty of them do not all race for one row.
    start = int.from_bytes(hashlib.sha256(who.encode()).digest()[:2], "big")
    while ids := list(conn.scalars(_CANDIDATES, params)):
        at = start % len(ids)
        for task_id in ids[at:] + ids[:at]:
            task = _take(conn, project, task_id)
            if task is not None:
                _assign(conn, project, who, task, gold=False)
                return task
        # Others took every candidate meanwhile: look again (each round, the pool shrank).
    return None


def _reclaim_expired(store: QueueDb, labeling: Labeling) -> bool:
    """Tasks held longer than the lease by someone who went away go back to the pool."""
    project = store.project_name
    cutoff = now() - timedelta(minutes=labeling.lease_minutes)

    def work(conn: Connection) -> bool:
        stale = conn.execute(
            select(A.id, A.task_id)
            .where(
                A.project == project,
                A.state == "assigned",
                A.gold.is_(False),
                A.assigned_at < cutoff,
            )
            .limit(RECLAIM_BATCH)
        ).all()
        freed = 0
        for a_id, task_id in stale:
            gone = conn.execute(
                update(ASSIGNMENTS)
                .where(A.id == a_id, A.state == "assigned")
                .values(state="expired")
            )
            if gone.rowcount == 1:
                _release(conn, project, task_id)
                freed += 1
        return freed > 0

    return _write(store, work)


def _release(conn: Connection, project: str, task_id: int) -> None:
    """One labeler fewer on a task (never called for a gold item served apart: those do not
    count against the overlap)."""
    conn.execute(
        update(TASKS)
        .where(T.project == project, T.id == task_id, T.assigned > 0)
        .values(assigned=T.assigned - 1, open=T.assigned - 1 < T.needed)
    )


# ---------------------------------------------------------------------------- submit


def submit(
    store: QueueDb,
    spec: LabelSpec,
    who: Labeler,
    task_id: int,
    label: Any,
    *,
    confirmed: bool = False,
    seconds: float | None = None,
    actor: str | None = None,
) -> Submitted:
    """Store the labeler's label for a task in their queue. The same submission again is
    answered as before and stores nothing; a different label for a submitted task is refused
    (undo first)."""
    labeling = spec.labeling
    value = check_label(labeling, label)
    project = store.project_name
    acting = actor or who.name

    def work(conn: Connection) -> Submitted:
        at = now()
        done = conn.execute(
            _SUBMIT,
            {
                "p_project": project,
                "p_who": who.name,
                "p_task": task_id,
                "p_label": value,
                "p_at": at,
                "p_seconds": seconds,
            },
        ).first()
        if done is not None:
            # A confirmed suggestion is one the labeler took as it was shown.
            took = confirmed and done.suggested is not None and done.suggested == value
            if took:
                conn.execute(update(ASSIGNMENTS).where(A.id == done.id).values(confirmed=True))
            _count_label(conn, project, task_id, +1)
            _event(conn, project, task_id, who.name, acting, "submit", label=value)
            return Submitted(task_id, value, took, False)
        return _submit_unheld(
            conn, project, labeling, who, task_id, value, confirmed, seconds, acting
        )

    for attempt in range(2):
        try:
            return _write(store, work)
        except IntegrityError:
            if attempt == 1:
                raise
    raise ConflictError(f"task {task_id} changed while it was being labeled; submit again")


def _submit_unheld(
    conn: Connection,
    project: str,
    labeling: Labeling,
    who: Labeler,
    task_id: int,
    value: Any,
    confirmed: bool,
    seconds: float | None,
    actor: str,
) -> Submitted:
    mine = conn.execute(
        select(A.state, A.label, A.confirmed).where(_mine(project, who.name), A.task_id == task_id)
    ).first()
    if mine is not None:
        if mine.state == "submitted":
            if mine.label == value:
                return Submitted(task_id, value, bool(mine.confirmed), True)
            raise ConflictError(
                f"you labeled task {task_id} {mine.label!r} already; undo it (U) to change it"
            )
        raise ConflictError(_gone(mine.state, task_id))
    if not who.any_task:
        raise NotFoundError(f"task {task_id} is not in your queue")
    # Someone who may label any task labels one outside their queue: claim it first.
    task = _take(conn, project, task_id)
    if task is None:
        found = conn.execute(
            select(T.id).where(T.project == project, T.id == task_id, T.gold.is_(None))
        ).first()
        if found is None:
            raise NotFoundError(f"task {task_id} does not exist")
        raise ConflictError(
            f"task {task_id} has all the labelers it needs (overlap {labeling.overlap}); "
            "take the next task instead"
        )
    suggested = (task.prelabel or {}).get("label")
    took = confirmed and suggested is not None and suggested == value
    at = now()
    conn.execute(
        insert(ASSIGNMENTS).values(
            project=project,
            task_id=task_id,
            labeler=who.name,
            state="submitted",
            gold=False,
            label=value,
            suggested=suggested,
            confirmed=took,
            assigned_at=at,
            submitted_at=at,
            seconds=seconds,
        )
    )
    _count_label(conn, project, task_id, +1)
    _event(conn, project, task_id, who.name, actor, "submit", label=value)
    return Submitted(task_id, value, took, False)


def _gone(state: str, task_id: int) -> str:
    """Why a task is no longer the labeler's to label."""
    if state == "expired":
        return (
            f"your hold on task {task_id} expired (labeling.lease_minutes) and it went to "
            "someone else; take the next task"
        )
    if state == "submitted":
        return f"you labeled task {task_id} already"
    return f"you {state} task {task_id}; it is no longer in your queue"


def _count_label(conn: Connection, project: str, task_id: int, delta: int) -> None:
    conn.execute(_COUNT_LABEL, {"p_project": project, "p_task": task_id, "p_delta": delta})


# ---------------------------------------------------------------------------- skip, flag, undo


def skip(
    store: QueueDb,
    who: Labeler,
    task_id: int,
    *,
    kind: Literal["skipped", "flagged"] = "skipped",
    note: str | None = None,
) -> None:
    """Put a held task down (skip) or report a problem with it (flag): it goes back to the pool
    for others, never to this labeler again. Repeating it changes nothing."""
    project = store.project_name

    def work(conn: Connection) -> None:
        done = conn.execute(
            update(ASSIGNMENTS)
            .where(_mine(project, who.name), A.task_id == task_id, A.state == "assigned")
            .values(state=kind, note=note)
            .returning(A.gold)
        ).first()
        if done is not None:
            if not done.gold:
                _release(conn, project, task_id)
            _event(conn, project, task_id, who.name, who.name, EVENT_OF[kind], note=note)
            return
        state = conn.scalar(select(A.state).where(_mine(project, who.name), A.task_id == task_id))
        if state is None:
            raise NotFoundError(f"task {task_id} is not in your queue")
        if state != kind:
            raise ConflictError(_gone(state, task_id))

    _write(store, work)


def undo(store: QueueDb, spec: LabelSpec, who: Labeler) -> TaskView | None:
    """Take back the labeler's latest submission that nobody reviewed yet: the task is theirs
    to label again (first in their queue, their label pre-selected). None: nothing to undo."""
    project = store.project_name

    def work(conn: Connection) -> TaskView | None:
        last = conn.execute(
            select(A.id, A.task_id, A.label)
            .where(_mine(project, who.name), A.state == "submitted", A.review.is_(None))
            .order_by(A.submitted_at.desc(), A.id.desc())
            .limit(1)
        ).first()
        if last is None:
            return None
        done = conn.execute(
            update(ASSIGNMENTS)
            .where(A.id == last.id, A.state == "submitted", A.review.is_(None))
            .values(state="assigned", submitted_at=None)
        )
        if done.rowcount != 1:
            raise ConflictError("your last label changed meanwhile (reviewed?); try again")
        _count_label(conn, project, last.task_id, -1)
        _event(conn, project, last.task_id, who.name, who.name, "undo", label=last.label)
        task = conn.execute(
            select(*_TASK_COLUMNS).where(T.project == project, T.id == last.task_id)
        ).one()
        return _view(task, "assigned", last.label, None, spec.labeling)

    return _write(store, work)


def task_view(store: QueueDb, spec: LabelSpec, who: Labeler, task_id: int) -> TaskView:
    """One task as the labeler sees it: one of their own, or (with the `label` action) any."""
    project = store.project_name
    with store.engine.connect() as conn:
        row = conn.execute(
            select(*_TASK_COLUMNS, A.state, A.label, A.note)
            .join(ASSIGNMENTS, A.task_id == T.id)
            .where(T.project == project, T.id == task_id, _mine(project, who.name))
        ).first()
        if row is not None:
            return _view(row, row.state, row.label, row.note, spec.labeling)
        task = None
        if who.any_task:
            task = conn.execute(
                select(*_TASK_COLUMNS).where(
                    T.project == project, T.id == task_id, T.gold.is_(None)
                )
            ).first()
    if task is None:
        raise NotFoundError(f"task {task_id} is not in your queue")
    return _view(task, "unassigned", None, None, spec.labeling)


def progress(store: QueueDb, who: Labeler) -> Progress:
    with store.engine.connect() as conn:
        return _progress(conn, store.project_name, who.name)


def _progress(conn: Connection, project: str, who: str) -> Progress:
    rows = {
        state: int(n)
        for state, n in conn.execute(_PROGRESS, {"p_project": project, "p_who": who}).all()
    }
    return Progress(
        rows.get("submitted", 0),
        rows.get("skipped", 0) + rows.get("flagged", 0),
        rows.get("assigned", 0),
    )
