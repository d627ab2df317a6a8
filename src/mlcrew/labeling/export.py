"""Labels as a dataset: one row per labeled item with its consensus label, and lineage back to
the tasks, the labelers and the label spec (columns, and the Parquet file's metadata).

The bytes depend only on the labels: the same labels give the same file and digest, so a
pipeline source `labels: consensus` re-runs its downstream stages exactly when labels change.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mlcrew.errors import NotFoundError
from mlcrew.labeling.labelspec import NOT_IMPORTED, LabelSpec, latest
from mlcrew.labeling.tables import ASSIGNMENTS, TASKS
from mlcrew.store import Store
from mlcrew.store.artifacts import file_digest

if TYPE_CHECKING:
    import pyarrow as pa

LABEL_COLUMN = "label"


@dataclass(frozen=True)
class LabelExport:
    path: Path
    digest: str
    rows: int
    label_spec: str
    labelers: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "digest": self.digest,
            "rows": self.rows,
            "label_spec": self.label_spec,
            "labelers": self.labelers,
        }


def _text(label: Any) -> str:
    """A label as one text value: a class, or classes joined by '|' (multi-label)."""
    return "|".join(label) if isinstance(label, list) else str(label)


def majority(votes: list[str], order: list[str]) -> tuple[str, float]:
    """The most frequent label and its share of the votes; a tie goes to the label that comes
    first in the label spec's class order (then alphabetically), so it never depends on time."""
    counts = Counter(votes)
    rank = {name: i for i, name in enumerate(order)}
    best = min(counts, key=lambda v: (-counts[v], rank.get(v, len(rank)), v))
    return best, counts[best] / len(votes)


def consensus_table(store: Store, spec: LabelSpec) -> pa.Table:
    """One row per item with at least one submitted label (gold items carry their known answer),
    sorted by item."""
    import pyarrow as pa

    labeling = spec.labeling
    project = store.project_name
    T, A = TASKS.c, ASSIGNMENTS.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(T.id, T.item, T.gold, A.labeler, A.label, A.confirmed)
            .join(ASSIGNMENTS, A.task_id == T.id)
            .where(T.project == project, A.project == project, A.state == "submitted")
            .order_by(T.item, A.labeler)
        ).all()
    by_item: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_item[row.item].append(row)
    order = labeling.class_names()
    out: dict[str, list[Any]] = defaultdict(list)
    for item in sorted(by_item):
        votes = by_item[item]
        first = votes[0]
        texts = [_text(v.label) for v in votes]
        if first.gold is not None:
            label, share = _text(first.gold), texts.count(_text(first.gold)) / len(texts)
            source = "gold"
        else:
            label, share = majority(texts, order)
            source = "majority"
        out[labeling.id].append(item)
        out[LABEL_COLUMN].append(label)
        out["votes"].append(len(votes))
        out["agreement"].append(round(share, 6))
        out["confirmed_suggestions"].append(sum(1 for v in votes if v.confirmed))
        out["source"].append(source)
        out["task_id"].append(int(first.id))
        out["labelers"].append(",".join(v.labeler for v in votes))
    schema = pa.schema(
        [
            (labeling.id, pa.string()),
            (LABEL_COLUMN, pa.string()),
            ("votes", pa.int32()),
            ("agreement", pa.float64()),
            ("confirmed_suggestions", pa.int32()),
            ("source", pa.string()),
            ("task_id", pa.int64()),
            ("labelers", pa.string()),
        ]
    )
    labelers = sorted({v.labeler for v in rows})
    # Only what the labels decide goes into the bytes: a new guideline text alone must not
    # re-run training. The label spec a file came from is in the export's record (audit log).
    meta = {"mlcrew.labelers": json.dumps(labelers), "mlcrew.consensus": "majority"}
    return pa.table({f.name: out[f.name] for f in schema}, schema=schema).replace_schema_metadata(
        meta
    )


def export_labels(store: Store, path: Path, *, actor: str | None = None) -> LabelExport:
    """Write the consensus labels to `path` (Parquet, or CSV by its extension) atomically. With
    an `actor`, the export is recorded in the audit log with its digest and label spec."""
    from mlcrew.data.tables import write_parquet

    spec = latest(store)
    if spec is None:
        raise NotFoundError(NOT_IMPORTED)
    table = consensus_table(store, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, tmp)
    else:
        write_parquet(table, tmp)
    tmp.replace(path)
    labelers = json.loads((table.schema.metadata or {}).get(b"mlcrew.labelers", b"[]"))
    done = LabelExport(path, file_digest(path), table.num_rows, spec.digest, labelers)
    if actor is not None:
        from mlcrew.people.audit import record_in

        with store.session() as s:
            details = {k: v for k, v in done.to_json().items() if k != "path"}
            record_in(s, store.project_name, actor, "label_export", str(path.name), details)
    return done
