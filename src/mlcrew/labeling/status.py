"""How far labeling has come: counts for `mlcrew label status`, the pages and REST."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, distinct, func, select

from mlcrew.labeling.labelspec import latest
from mlcrew.labeling.tables import LabelAssignment, LabelTask
from mlcrew.store import Store


@dataclass(frozen=True)
class LabelStatus:
    tasks: int  # every task, gold ones included
    gold: int
    labels: int  # submitted labels (one per labeler and task)
    labelled_items: int  # items (not gold) with at least one label
    complete_items: int  # items with as many labels as the overlap asks
    open_items: int  # items still waiting for a labeler
    held: int  # tasks in someone's queue, not submitted yet
    skipped: int
    flagged: int
    confirmed_suggestions: int
    labelers: int
    label_spec: str | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def label_status(store: Store) -> LabelStatus:
    T, A = LabelTask, LabelAssignment
    with store.session() as s:
        tasks, gold, labelled, complete, open_items = s.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((T.gold.is_not(None), 1), else_=0)), 0),
                func.coalesce(func.sum(case(((T.gold.is_(None)) & (T.labels > 0), 1), else_=0)), 0),
                func.coalesce(
                    func.sum(case(((T.gold.is_(None)) & (T.labels >= T.needed), 1), else_=0)), 0
                ),
                func.coalesce(func.sum(case((T.open.is_(True), 1), else_=0)), 0),
            ).select_from(T)
        ).one()
        states = dict(s.execute(select(A.state, func.count()).group_by(A.state)).all())
        confirmed = s.scalar(
            select(func.count()).where(A.state == "submitted", A.confirmed.is_(True))
        )
        labelers = s.scalar(select(func.count(distinct(A.labeler))))
    spec = latest(store)
    return LabelStatus(
        tasks=int(tasks),
        gold=int(gold),
        labels=int(states.get("submitted", 0)),
        labelled_items=int(labelled),
        complete_items=int(complete),
        open_items=int(open_items),
        held=int(states.get("assigned", 0)),
        skipped=int(states.get("skipped", 0)),
        flagged=int(states.get("flagged", 0)),
        confirmed_suggestions=int(confirmed or 0),
        labelers=int(labelers or 0),
        label_spec=spec.digest if spec else None,
    )
