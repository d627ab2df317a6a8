"""Each labeler's queue: which task comes next, and what a submit, skip, flag or undo does.

The rules that must hold under any number of labelers at once, on SQLite and PostgreSQL:
- A task is handed to at most `needed` (the spec's overlap) labelers: the claim is one
  conditional UPDATE (`assigned < needed`), which the database serialises, never a read followed
  by a write.
- A labeler holds a task once (a unique key on task + labeler), so a repeated submit (a retry, a
  double click) finds the label already there and is not a second label.
- Blind: a task as a labeler sees it carries the item and their own label only.
- Gold items are served apart, at the spec's share, to everyone, without a mark.

Every write transaction starts with its write, so SQLite waits for the lock (busy_timeout)
instead of failing a read snapshot that went stale.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import case, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mlcrew.errors import ConflictError, LabelError, NotFoundError
from mlcrew.labeling.labelspec import LabelSpec
from mlcrew.labeling.tables import LabelAssignment, LabelEvent, LabelTask
from mlcrew.spec import Labeling
from mlcrew.store import Store, now

CANDIDATES = 8  # open tasks looked at per claim: labelers start at different ones
MAX_AHEAD = 3
RECLAIM_BATCH = 500
EVENT_OF = {"skipped": "skip", "flagged": "flag"}


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


Task = LabelTask
A = LabelAssignment


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


def _view(task: LabelTask, a: LabelAssignment, labeling: Labeling) -> TaskView:
    suggestion = None
    if labeling.prelabel != "none" and task.prelabel is not None:
        suggestion = {"label": task.prelabel.get("label"), "score": task.prelabel.get("score")}
    return TaskView(task.id, task.item, task.payload, a.state, suggestion, a.label, a.note)


def _event(s: Session, task_id: int, labeler: str, actor: str, kind: str, **kw: Any) -> None:
    s.add(LabelEvent(task_id=task_id, labeler=labeler, actor=actor, at=now(), kind=kind, **kw))


# ---------------------------------------------------------------------------- next task


def next_tasks(store: Store, spec: LabelSpec, who: Labeler, count: int = 1) -> list[TaskView]:
    """The labeler's next `count` tasks (the first is the one to label now, the rest are
    prefetched): tasks they already hold first, then new claims. Fewer when the queue is dry."""
    count = max(1, min(count, 1 + MAX_AHEAD))
    for attempt in range(3):
        try:
            return _next(store, spec, who, count)
        except IntegrityError:
            # Two requests of the same labeler claimed the same task at once: the loser's
            # transaction rolled back whole; the next round finds the task held.
            if attempt == 2:
                raise
    return []


def _held(s: Session, who: str, count: int) -> list[tuple[LabelTask, LabelAssignment]]:
    rows = s.execute(
        select(Task, A)
        .join(A, A.task_id == Task.id)
        .where(A.labeler == who, A.state == "assigned")
        .order_by(A.assigned_at, A.id)
        .limit(count)
    ).all()
    return [(t, a) for t, a in rows]


def _next(store: Store, spec: LabelSpec, who: Labeler, count: int) -> list[TaskView]:
    labeling = spec.labeling
    with store.session() as s:
        held = _held(s, who.name, count)
    while len(held) < count:
        claimed = _claim(store, labeling, who.name)
        if claimed is None:
            break
        held.append(claimed)
    return [_view(t, a, labeling) for t, a in held]


def _claim(store: Store, labeling: Labeling, who: str) -> tuple[LabelTask, LabelAssignment] | None:
    with store.session() as s:
        if _gold_due(s, labeling, who):
            got = _claim_gold(s, who)
            if got is not None:
                return got
        got = _claim_open(s, who)
        if got is not None:
            return got
    if _reclaim_expired(store, labeling):
        with store.session() as s:
            return _claim_open(s, who)
    return None


def _gold_due(s: Session, labeling: Labeling, who: str) -> bool:
    if labeling.gold is None or labeling.gold.share <= 0:
        return False
    total, gold = s.execute(
        select(func.count(), func.coalesce(func.sum(case((A.gold.is_(True), 1), else_=0)), 0))
        .select_from(A)
        .where(A.labeler == who)
    ).one()
    # Each labeler's gold items fall at their own (seeded) places, about one in 1/share.
    every = 1.0 / labeling.gold.share
    offset = int.from_bytes(hashlib.sha256(who.encode()).digest()[:4], "big") % max(1, int(every))
    return int(gold) < int((int(total) + 1 + offset) / every)


def _claim_gold(s: Session, who: str) -> tuple[LabelTask, LabelAssignment] | None:
    mine = exists().where(A.task_id == Task.id, A.labeler == who, A.project == Task.project)
    task = s.scalars(
        select(Task).where(Task.gold.is_not(None), ~mine).order_by(Task.priority, Task.id).limit(1)
    ).first()
    if task is None:
        return None
    a = A(
        task_id=task.id,
        labeler=who,
        state="assigned",
        gold=True,
        suggested=(task.prelabel or {}).get("label"),
        confirmed=False,
        assigned_at=now(),
    )
    s.add(a)
    s.flush()
    return task, a


def _claim_open(s: Session, who: str) -> tuple[LabelTask, LabelAssignment] | None:
    mine = exists().where(A.task_id == Task.id, A.labeler == who, A.project == Task.project)
    candidates = (
        select(Task.id)
        .where(Task.open.is_(True), ~mine)
        .order_by(Task.priority, Task.id)
        .limit(CANDIDATES)
    )
    # Labelers start at different candidates, so twenty of them do not all race for one row.
    start = int.from_bytes(hashlib.sha256(who.encode()).digest()[:2], "big")
    while ids := list(s.scalars(candidates)):
        at = start % len(ids)
        for task_id in ids[at:] + ids[:at]:
            claimed = s.execute(
                update(Task)
                .where(Task.id == task_id, Task.open.is_(True), Task.assigned < Task.needed)
                .values(assigned=Task.assigned + 1, open=Task.assigned + 1 < Task.needed)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount == 1:  # type: ignore[attr-defined]
                task = s.get_one(Task, task_id)
                s.refresh(task)
                a = A(
                    task_id=task_id,
                    labeler=who,
                    state="assigned",
                    gold=False,
                    suggested=(task.prelabel or {}).get("label"),
                    confirmed=False,
                    assigned_at=now(),
                )
                s.add(a)
                s.flush()
                return task, a
        # Others took every candidate meanwhile: look again (each round, the pool shrank).
    return None


def _reclaim_expired(store: Store, labeling: Labeling) -> bool:
    """Tasks held longer than the lease by someone who went away go back to the pool."""
    cutoff = now() - timedelta(minutes=labeling.lease_minutes)
    with store.session() as s:
        stale = s.execute(
            select(A.id, A.task_id)
            .where(A.state == "assigned", A.gold.is_(False), A.assigned_at < cutoff)
            .limit(RECLAIM_BATCH)
        ).all()
        freed = 0
        for a_id, task_id in stale:
            gone = s.execute(
                update(A)
                .where(A.id == a_id, A.state == "assigned")
                .values(state="expired")
                .execution_options(synchronize_session=False)
            )
            if gone.rowcount == 1:  # type: ignore[attr-defined]
                _release(s, task_id)
                freed += 1
        return freed > 0


def _release(s: Session, task_id: int) -> None:
    s.execute(
        update(Task)
        .where(Task.id == task_id, Task.gold.is_(None), Task.assigned > 0)
        .values(assigned=Task.assigned - 1, open=Task.assigned - 1 < Task.needed)
        .execution_options(synchronize_session=False)
    )


# ---------------------------------------------------------------------------- submit


def submit(
    store: Store,
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
    at = now()
    for attempt in range(2):
        try:
            with store.session() as s:
                done = s.execute(
                    update(A)
                    .where(A.task_id == task_id, A.labeler == who.name, A.state == "assigned")
                    .values(
                        state="submitted",
                        label=value,
                        confirmed=False,
                        submitted_at=at,
                        seconds=seconds,
                        review=None,
                    )
                    .execution_options(synchronize_session=False)
                )
                if done.rowcount == 1:  # type: ignore[attr-defined]
                    a = s.scalars(
                        select(A).where(A.task_id == task_id, A.labeler == who.name)
                    ).one()
                    # A confirmed suggestion is one the labeler took as it was shown.
                    a.confirmed = confirmed and a.suggested is not None and a.suggested == value
                    _count_label(s, task_id, +1)
                    _event(s, task_id, who.name, actor or who.name, "submit", label=value)
                    return Submitted(task_id, value, a.confirmed, False)
                return _submit_unheld(s, labeling, who, task_id, value, confirmed, seconds, actor)
        except IntegrityError:
            if attempt == 1:
                raise
    raise ConflictError(f"task {task_id} changed while it was being labeled; submit again")


def _submit_unheld(
    s: Session,
    labeling: Labeling,
    who: Labeler,
    task_id: int,
    value: Any,
    confirmed: bool,
    seconds: float | None,
    actor: str | None,
) -> Submitted:
    a = s.scalars(select(A).where(A.task_id == task_id, A.labeler == who.name)).first()
    if a is not None:
        if a.state == "submitted":
            if a.label == value:
                return Submitted(task_id, value, a.confirmed, True)
            raise ConflictError(
                f"you labeled task {task_id} {a.label!r} already; undo it (U) to change it"
            )
        raise ConflictError(f"you {a.state} task {task_id}; it is no longer in your queue")
    if not who.any_task:
        raise NotFoundError(f"task {task_id} is not in your queue")
    # Someone who may label any task labels one outside their queue: claim it first.
    claimed = s.execute(
        update(Task)
        .where(Task.id == task_id, Task.open.is_(True), Task.assigned < Task.needed)
        .values(assigned=Task.assigned + 1, open=Task.assigned + 1 < Task.needed)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        if s.get(Task, task_id) is None:
            raise NotFoundError(f"task {task_id} does not exist")
        raise ConflictError(
            f"task {task_id} has all the labelers it needs (overlap {labeling.overlap}); "
            "take the next task instead"
        )
    task = s.get_one(Task, task_id)
    suggested = (task.prelabel or {}).get("label")
    s.add(
        A(
            task_id=task_id,
            labeler=who.name,
            state="submitted",
            gold=False,
            label=value,
            suggested=suggested,
            confirmed=confirmed and suggested == value,
            assigned_at=now(),
            submitted_at=now(),
            seconds=seconds,
        )
    )
    s.flush()
    _count_label(s, task_id, +1)
    _event(s, task_id, who.name, actor or who.name, "submit", label=value)
    return Submitted(task_id, value, confirmed and suggested == value, False)


def _count_label(s: Session, task_id: int, delta: int) -> None:
    s.execute(
        update(Task)
        .where(Task.id == task_id)
        .values(labels=Task.labels + delta)
        .execution_options(synchronize_session=False)
    )


# ---------------------------------------------------------------------------- skip, flag, undo


def skip(
    store: Store,
    who: Labeler,
    task_id: int,
    *,
    kind: Literal["skipped", "flagged"] = "skipped",
    note: str | None = None,
) -> None:
    """Put a held task down (skip) or report a problem with it (flag): it goes back to the pool
    for others, never to this labeler again. Repeating it changes nothing."""
    with store.session() as s:
        done = s.execute(
            update(A)
            .where(A.task_id == task_id, A.labeler == who.name, A.state == "assigned")
            .values(state=kind, note=note)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount == 1:  # type: ignore[attr-defined]
            _release(s, task_id)
            _event(s, task_id, who.name, who.name, EVENT_OF[kind], note=note)
            return
        a = s.scalars(select(A).where(A.task_id == task_id, A.labeler == who.name)).first()
        if a is None:
            raise NotFoundError(f"task {task_id} is not in your queue")
        if a.state != kind:
            raise ConflictError(f"you {a.state} task {task_id} already")


def undo(store: Store, spec: LabelSpec, who: Labeler) -> TaskView | None:
    """Take back the labeler's latest submission that nobody reviewed yet: the task is theirs
    to label again (first in their queue, their label pre-selected). None: nothing to undo."""
    with store.session() as s:
        last = s.execute(
            select(A.id, A.task_id)
            .where(A.labeler == who.name, A.state == "submitted", A.review.is_(None))
            .order_by(A.submitted_at.desc(), A.id.desc())
            .limit(1)
        ).first()
        if last is None:
            return None
        done = s.execute(
            update(A)
            .where(A.id == last.id, A.state == "submitted", A.review.is_(None))
            .values(state="assigned", submitted_at=None)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise ConflictError("your last label changed meanwhile (reviewed?); try again")
        _count_label(s, last.task_id, -1)
        a = s.get_one(A, last.id)
        s.refresh(a)
        _event(s, last.task_id, who.name, who.name, "undo", label=a.label)
        task = s.get_one(Task, last.task_id)
        return _view(task, a, spec.labeling)


def task_view(store: Store, spec: LabelSpec, who: Labeler, task_id: int) -> TaskView:
    """One task as the labeler sees it: one of their own, or (with the `label` action) any."""
    with store.session() as s:
        row = s.execute(
            select(Task, A)
            .join(A, A.task_id == Task.id)
            .where(Task.id == task_id, A.labeler == who.name)
        ).first()
        if row is not None:
            return _view(row[0], row[1], spec.labeling)
        task = s.get(Task, task_id) if who.any_task else None
        if task is None or task.gold is not None:
            raise NotFoundError(f"task {task_id} is not in your queue")
        blank = A(task_id=task_id, labeler=who.name, state="unassigned", label=None, note=None)
        return _view(task, blank, spec.labeling)


def progress(store: Store, who: Labeler) -> Progress:
    with store.session() as s:
        rows = dict(
            s.execute(
                select(A.state, func.count()).where(A.labeler == who.name).group_by(A.state)
            ).all()
        )
    return Progress(
        int(rows.get("submitted", 0)),
        int(rows.get("skipped", 0)) + int(rows.get("flagged", 0)),
        int(rows.get("assigned", 0)),
    )
