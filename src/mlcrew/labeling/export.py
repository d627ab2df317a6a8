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
from mlcrew.labeling.tables import TASKS
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
    if isinstance(label, frozenset | list | tuple | set):
        return "|".join(sorted(label))
    return str(label)


def consensus_table(store: Store, spec: LabelSpec) -> pa.Table:
    """One row per item with at least one submitted label, sorted by item: the majority label
    (ties: the class listed first), a reviewer's correction over it, a gold item's known answer
    over both; how many votes, their agreement, confirmed suggestions, the task and labelers."""
    import pyarrow as pa

    from mlcrew.labeling.consensus import apply_corrections, majority
    from mlcrew.labeling.project_quality import read_labels
    from mlcrew.labeling.votes import check_votes

    labeling = spec.labeling
    stored = read_labels(store, features=False)
    votes = check_votes(stored.votes, stored.classes, stored.task)
    consensus = apply_corrections(majority(votes), stored.corrections)
    by_item = votes.by_item()
    confirmed = Counter(v.item for v in votes.votes if v.confirmed)
    project = store.project_name
    T = TASKS.c
    with store.engine.connect() as conn:
        task_ids = dict(
            conn.execute(select(T.item, T.id).where(T.project == project, T.labels > 0)).all()
        )
    out: dict[str, list[Any]] = defaultdict(list)
    for c in sorted(consensus.items, key=lambda c: c.item):
        given = by_item[c.item]
        label, share, source = _text(c.label), c.agreement, "majority"
        if c.reviewed:
            source = "review"
        if c.item in stored.gold:
            label, source = _text(stored.gold[c.item]), "gold"
            share = sum(_text(v) == label for v in given.values()) / len(given)
        out[labeling.id].append(c.item)
        out[LABEL_COLUMN].append(label)
        out["votes"].append(c.votes)
        out["agreement"].append(round(share, 6))
        out["confirmed_suggestions"].append(confirmed[c.item])
        out["source"].append(source)
        out["task_id"].append(int(task_ids.get(c.item, 0)))
        out["labelers"].append(",".join(sorted(given)))
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
    # Only what the labels decide goes into the bytes: a new guideline text alone must not
    # re-run training. The label spec a file came from is in the export's record (audit log).
    meta = {"mlcrew.labelers": json.dumps(list(votes.labelers)), "mlcrew.consensus": "majority"}
    table = pa.table({f.name: out[f.name] for f in schema}, schema=schema)
    return table.replace_schema_metadata(meta)


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
