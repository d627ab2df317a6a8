"""Where pre-labels and the labeling order are written: one transaction per refresh, so a
labeler's next task never sees half of a new order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, update

from mlcrew.labeling.tables import TASKS
from mlcrew.store import Store

BATCH = 5_000


def write_suggestions(
    store: Store,
    prelabels: Mapping[str, tuple[Any, float]] | None = None,
    priorities: Mapping[str, float] | None = None,
) -> int:
    """Set items' pre-labels ({item: (label, score)}) and priorities ({item: value}, lower
    comes sooner); returns how many items were named. Items not named keep theirs."""
    table = TASKS
    rows: dict[str, dict[str, Any]] = {}
    for item, (label, score) in (prelabels or {}).items():
        rows.setdefault(item, {})["prelabel"] = {"label": label, "score": float(score)}
    for item, value in (priorities or {}).items():
        rows.setdefault(item, {})["priority"] = float(value)
    if not rows:
        return 0
    with store.session() as s:
        for kind in ("prelabel", "priority"):
            params = [
                {"b_item": item, "b_value": values[kind]}
                for item, values in rows.items()
                if kind in values
            ]
            statement = (
                update(table)
                .where(table.c.project == store.project_name, table.c.item == bindparam("b_item"))
                .values({kind: bindparam("b_value")})
            )
            for start in range(0, len(params), BATCH):
                s.connection().execute(statement, params[start : start + BATCH])
    return len(rows)
