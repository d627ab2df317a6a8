"""The reviewer queue: a reviewer accepts a submitted label, rejects it (the task goes back to
its labeler's queue with the note) or corrects it. Every step is a label_events row; nobody
reviews their own work, nor labels on an item they labeled themselves.

The queue serves labels that miss their gold answer first, then labels on items whose labelers
disagree, then the rest, oldest first within each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import exists, select, true, update
from sqlalchemy.orm import Session, aliased

from mlcrew.errors import ConflictError, LabelError, NotFoundError
from mlcrew.labeling.labelspec import LabelSpec
from mlcrew.labeling.queue import check_label
from mlcrew.labeling.tables import LabelAssignment, LabelEvent, LabelTask
from mlcrew.store import Store, now

Decision = Literal["accept", "reject", "correct"]
REVIEW_OF: dict[str, str] = {"accept": "accepted", "reject": "rejected", "correct": "corrected"}
CANDIDATES = 500  # unreviewed labels looked at per request, oldest first
Why = Literal["gold miss", "disagreement", "unreviewed"]
T, A = LabelTask, LabelAssignment


@dataclass(frozen=True)
class Other:
    labeler: str
    label: Any


@dataclass(frozen=True)
class ReviewItem:
    """One label to review, with what the reviewer needs to judge it: the item as labelers saw
    it, the other labels on the item, and the gold answer when the item is gold."""

    task_id: int
    item: str
    payload: dict[str, Any]
    labeler: str
    label: Any
    confirmed: bool
    submitted_at: datetime | None
    why: Why
    others: tuple[Other, ...]
    gold: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "item": self.item,
            "payload": self.payload,
            "labeler": self.labeler,
            "label": self.label,
            "confirmed": self.confirmed,
            "submitted_at": self.submitted_at.isoformat() if self.submitted_at else None,
            "why": self.why,
            "others": [{"labeler": o.labeler, "label": o.label} for o in self.others],
            "gold": self.gold,
        }


@dataclass(frozen=True)
class Reviewed:
    task_id: int
    labeler: str
    decision: Decision
    label: Any  # the label as it stands after the review
    reviewer: str
    note: str | None
    duplicate: bool  # the same review came before; nothing changed

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "labeler": self.labeler,
            "decision": self.decision,
            "label": self.label,
            "reviewer": self.reviewer,
            "note": self.note,
            "duplicate": self.duplicate,
        }


def _why(a: LabelAssignment, task: LabelTask, labels: list[Any]) -> Why:
    if task.gold is not None and a.label != task.gold:
        return "gold miss"
    if len({repr(x) for x in labels}) > 1:
        return "disagreement"
    return "unreviewed"


def next_reviews(
    store: Store, reviewer: str, count: int = 1, *, item: str | None = None
) -> list[ReviewItem]:
    """The reviewer's next labels to review (gold misses, then disagreements, then the rest);
    with `item`, only labels on that item (a likely label error picked from the report)."""
    own = aliased(A)
    mine = exists().where(own.task_id == T.id, own.labeler == reviewer, own.project == T.project)
    with store.session() as s:
        rows = s.execute(
            select(A, T)
            .join(T, T.id == A.task_id)
            .where(A.state == "submitted", A.review.is_(None), A.labeler != reviewer, ~mine)
            .where(T.item == item if item is not None else true())
            .order_by(A.submitted_at, A.id)
            .limit(CANDIDATES)
        ).all()
        task_ids = {t.id for _, t in rows}
        labels: dict[int, list[tuple[str, Any]]] = {}
        if task_ids:
            for task_id, labeler, label in s.execute(
                select(A.task_id, A.labeler, A.label)
                .where(A.task_id.in_(task_ids), A.state == "submitted")
                .order_by(A.labeler)
            ):
                labels.setdefault(task_id, []).append((labeler, label))
    ranked = []
    for n, (a, t) in enumerate(rows):
        on_item = labels.get(t.id, [])
        why = _why(a, t, [x for _, x in on_item])
        others = tuple(Other(name, x) for name, x in on_item if name != a.labeler)
        entry = ReviewItem(
            t.id, t.item, t.payload, a.labeler, a.label, a.confirmed, a.submitted_at, why,
            others, t.gold,
        )  # fmt: skip
        ranked.append(((("gold miss", "disagreement", "unreviewed").index(why), n), entry))
    ranked.sort(key=lambda pair: pair[0])
    return [entry for _, entry in ranked[:count]]


def _event(
    s: Session, a: LabelAssignment, actor: str, kind: str, label: Any, note: str | None
) -> None:
    s.add(
        LabelEvent(
            task_id=a.task_id, labeler=a.labeler, actor=actor, at=now(), kind=kind, label=label,
            note=note,
        )
    )  # fmt: skip


def review(
    store: Store,
    spec: LabelSpec,
    task_id: int,
    labeler: str,
    reviewer: str,
    decision: Decision,
    *,
    label: Any = None,
    note: str | None = None,
    actor: str | None = None,
) -> Reviewed:
    """Accept, reject or correct `labeler`'s submitted label on a task.

    Reject: the assignment returns to `assigned` in the labeler's queue with the note (which a
    reject needs), their label pre-selected. Correct: the label becomes the reviewer's (which a
    correct needs); the labeler's own label stays in the history. Repeating a review changes
    nothing; a different review of a reviewed label is refused.
    """
    if decision not in REVIEW_OF:
        raise LabelError(f"decision must be accept, reject or correct, not {decision!r}")
    if decision == "correct":
        if label is None:
            raise LabelError("a correction needs the corrected label: send label")
        label = check_label(spec.labeling, label)
    elif label is not None:
        raise LabelError(f"label is for decision correct only; a {decision} keeps the label")
    if decision == "reject" and not (note and note.strip()):
        raise LabelError("a rejection needs a note telling the labeler what to change: send note")
    if labeler == reviewer:
        raise ConflictError(f"nobody reviews their own work: the label on task {task_id} is yours")
    with store.session() as s:
        a = s.scalars(select(A).where(A.task_id == task_id, A.labeler == labeler)).first()
        if a is None:
            if s.get(T, task_id) is None:
                raise NotFoundError(f"task {task_id} does not exist")
            raise NotFoundError(f"{labeler} has no label on task {task_id}")
        own = s.scalars(select(A.state).where(A.task_id == task_id, A.labeler == reviewer)).first()
        if own in ("submitted", "assigned"):  # a label of one's own, or one to come
            raise ConflictError(
                f"you labeled task {task_id} yourself (or hold it in your queue): leave its "
                "review to someone who did not"
            )
        done = REVIEW_OF[decision]
        if (
            a.review == done
            and a.reviewer == reviewer
            and (decision != "correct" or a.label == label)
        ):
            return Reviewed(task_id, labeler, decision, a.label, reviewer, a.note, True)
        if a.state != "submitted" or a.review is not None:
            state = f"reviewed ({a.review} by {a.reviewer})" if a.review else a.state
            raise ConflictError(
                f"{labeler}'s label on task {task_id} is {state}: there is no label to review"
            )
        if decision == "correct" and label == a.label:
            raise LabelError(f"the label is {label!r} already: accept it instead")
        values: dict[str, Any] = {"review": done, "reviewer": reviewer, "note": note}
        if decision == "reject":
            # Back in the labeler's queue, with a fresh lease so it is not reclaimed at once.
            values |= {"state": "assigned", "submitted_at": None, "assigned_at": now()}
        if decision == "correct":
            values["label"] = label
        changed = s.execute(
            update(A)
            .where(A.id == a.id, A.state == "submitted", A.review.is_(None))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            raise ConflictError(f"{labeler}'s label on task {task_id} changed meanwhile; reload")
        if decision == "reject":
            s.execute(
                update(T)
                .where(T.id == task_id)
                .values(labels=T.labels - 1)
                .execution_options(synchronize_session=False)
            )
        after = label if decision == "correct" else a.label
        _event(s, a, actor or reviewer, decision, after, note)
        return Reviewed(task_id, labeler, decision, after, reviewer, note, False)
