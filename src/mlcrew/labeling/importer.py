"""`mlcrew label import`: the label spec and the items become tasks. Idempotent: an item already
imported is kept as it is (with its labels); a changed overlap applies to every task."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from mlcrew.errors import DataError
from mlcrew.labeling.labelspec import guidelines_text, publish, require_labeling
from mlcrew.labeling.tables import TASKS, LabelTask
from mlcrew.people.audit import record_in
from mlcrew.spec import Spec
from mlcrew.store import Store, now

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ImportResult:
    items: int  # rows in the labeling table
    added: int
    kept: int
    gold: int
    spec_digest: str

    def to_json(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "added": self.added,
            "kept": self.kept,
            "gold": self.gold,
            "label_spec": self.spec_digest,
        }


def priority_of(seed: int, item: str) -> float:
    """A seeded random order that does not depend on the order of import."""
    digest = hashlib.sha256(f"{seed}:{item}".encode()).digest()
    return int.from_bytes(digest[:6], "big") / float(1 << 48)


def import_tasks(
    store: Store,
    spec: Spec,
    project: Path,
    *,
    actor: str,
    progress: Progress | None = None,
    spec_text: str | None = None,
) -> ImportResult:
    """Import the items of `spec.labeling` as tasks. With `spec_text` (the spec file's text), it
    also becomes the project's spec in force, so `mlcrew server` can serve the project's
    labeling before any pipeline run."""
    from mlcrew.labeling.items import check_keys, items, read_gold, read_table

    labeling = require_labeling(spec)
    guidelines = guidelines_text(spec, project)
    table = read_table(spec, project, labeling, store)
    if table.num_rows == 0:
        raise DataError(f"{labeling.from_!r} has no rows: there is nothing to label")
    # Every check before the first write: bad input leaves the tasks as they were.
    keys = check_keys(table, labeling)
    gold = read_gold(project, labeling)
    missing = sorted(set(gold) - set(keys))
    if missing:
        raise DataError(
            f"{labeling.gold.path if labeling.gold else 'gold'}: {len(missing)} gold item(s) are "
            f"not items of {labeling.from_!r} (first: {missing[0]!r}); fix the gold file"
        )
    # Gold items are served apart (to everyone, at the share); with share 0 they are ordinary
    # tasks whose answers are known.
    apart = labeling.gold is not None and labeling.gold.share > 0
    seed = spec.labeling_seed
    insert = _insert_ignoring_duplicates(store)
    with store.session() as s:
        before = s.scalar(select(func.count()).select_from(LabelTask)) or 0
    done = 0
    at = now()
    for batch in items(table, labeling, project, store.artifacts, keys):
        rows = []
        for item in batch:
            answer = gold.get(item.key)
            rows.append(
                {
                    "project": store.project_name,
                    "item": item.key,
                    "payload": item.payload,
                    "gold": answer,
                    "prelabel": None,
                    "priority": priority_of(seed, item.key),
                    "needed": labeling.overlap,
                    "assigned": 0,
                    "labels": 0,
                    "open": answer is None or not apart,
                    "created_at": at,
                }
            )
        with store.session() as s:
            s.execute(insert, rows)
        done += len(batch)
        if progress is not None:
            progress(done, table.num_rows)
    with store.session() as s:
        # The overlap of the spec applies to every task, imported now or before.
        regular = LabelTask.gold.is_(None) if apart else LabelTask.id.is_not(None)
        s.execute(
            update(LabelTask)
            .where(regular)
            .values(needed=labeling.overlap, open=LabelTask.assigned < labeling.overlap)
        )
        if apart:
            s.execute(update(LabelTask).where(LabelTask.gold.is_not(None)).values(open=False))
        after = s.scalar(select(func.count()).select_from(LabelTask)) or 0
        # The label spec in force changes once the tasks are in.
        label_spec = publish(s, labeling, guidelines)
        if spec_text is not None:
            data = spec_text.encode()
            digest = store.artifacts.put_bytes(data)
            store.record_artifact(digest, len(data), "spec", s)
            store.set_spec(digest, s)
        gold_count = s.scalar(
            select(func.count()).select_from(LabelTask).where(LabelTask.gold.is_not(None))
        )
        record_in(
            s,
            store.project_name,
            actor,
            "label_import",
            labeling.from_,
            {"added": after - before, "items": table.num_rows, "label_spec": label_spec.digest},
        )
    return ImportResult(
        table.num_rows,
        after - before,
        table.num_rows - (after - before),
        gold_count or 0,
        label_spec.digest,
    )


def _insert_ignoring_duplicates(store: Store) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING in the store's dialect: an item imported before stays."""
    table = TASKS
    if store.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(constraint="uq_label_tasks_item")
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()
