"""The quality report of a project's labels as stored: the submitted labels, the gold answers
and the items' numeric fields go in, `quality_report` does the rest."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mlcrew.errors import DataError, NotFoundError
from mlcrew.labeling.labelspec import NOT_IMPORTED, latest
from mlcrew.labeling.quality import Every, QualityReport, quality_report
from mlcrew.labeling.tables import LabelAssignment, LabelEvent, LabelTask
from mlcrew.labeling.votes import LabelValue, Task, Vote
from mlcrew.spec import Labeling, Spec
from mlcrew.store import Store


@dataclass(frozen=True)
class StoredLabels:
    """What the report is computed from, as read from the store."""

    task: Task
    classes: tuple[str, ...]
    votes: tuple[Vote, ...]
    gold: dict[str, LabelValue]
    corrections: dict[str, LabelValue]
    features: dict[str, tuple[float, ...]]
    seed: int


def as_label(value: Any, task: Task) -> LabelValue:
    """A stored label (a class name, or a list of them) in the shape quality functions take."""
    if task == "multi":
        return frozenset([value] if isinstance(value, str) else (value or []))
    return str(value)


def numeric_features(payloads: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[float, ...]]:
    """The numeric fields every item shows (booleans and missing values excluded), as vectors
    in field-name order; empty when the items share none (texts, images)."""
    common: set[str] | None = None
    for payload in payloads.values():
        fields = {
            k
            for k, v in payload.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }
        common = fields if common is None else common & fields
    names = sorted(common or ())
    if not names:
        return {}
    return {item: tuple(float(p[k]) for k in names) for item, p in payloads.items()}


def table_features(
    spec: Spec, project: Path, labeling: Labeling, store: Store
) -> dict[str, tuple[float, ...]]:
    """The items' features as a model learns them (labeling/features.py: the numeric columns of
    the `labeling.from` table, hidden ones included, less the id and the spec's target; else a
    text's embeddings or an image's pixels), by item."""
    from mlcrew.labeling.features import item_features
    from mlcrew.labeling.items import plain, read_table

    table = read_table(spec, project, labeling, store)
    try:
        matrix, _ = item_features(
            table, labeling, exclude=(spec.target,) if spec.target else (), project=project
        )
    except DataError:
        return {}
    keys = [str(plain(raw)) for raw in table.column(labeling.id).to_pylist()]
    return {key: tuple(float(x) for x in row) for key, row in zip(keys, matrix, strict=True)}


def read_labels(
    store: Store,
    spec: Spec | None = None,
    project: Path | None = None,
    *,
    features: bool = True,
) -> StoredLabels:
    """Submitted labels (a corrected label counts as its labeler's original vote; the correction
    is the item's final label), gold answers and numeric features of the labeled items: the
    numeric columns of the labeling table when the project folder is at hand (`spec` and
    `project`), else the numeric fields the items show."""
    label_spec = latest(store)
    if label_spec is None:
        raise NotFoundError(NOT_IMPORTED)
    labeling = label_spec.labeling
    task: Task = labeling.task
    T, A, E = LabelTask, LabelAssignment, LabelEvent
    with store.session() as s:
        rows = s.execute(
            select(T.item, T.payload, T.gold, A.task_id, A.labeler, A.label, A.submitted_at,
                   A.confirmed, A.review)
            .join(A, A.task_id == T.id)
            .where(A.state == "submitted")
            .order_by(A.submitted_at, A.id)
        ).all()  # fmt: skip
        corrected = {(r.task_id, r.labeler) for r in rows if r.review == "corrected"}
        original: dict[tuple[int, str], Any] = {}
        if corrected:
            events = s.execute(
                select(E.task_id, E.labeler, E.label)
                .where(E.kind == "submit", E.task_id.in_({t for t, _ in corrected}))
                .order_by(E.at, E.id)
            ).all()
            for e in events:
                if (e.task_id, e.labeler) in corrected:
                    original[(e.task_id, e.labeler)] = e.label  # the latest submit wins
    votes, gold, corrections, payloads = [], {}, {}, {}
    for r in rows:
        key = (r.task_id, r.labeler)
        given = original.get(key, r.label)
        votes.append(Vote(r.item, r.labeler, as_label(given, task), r.submitted_at, r.confirmed))
        if key in corrected:
            corrections[r.item] = as_label(r.label, task)
        if r.gold is not None:
            gold[r.item] = as_label(r.gold, task)
        payloads[r.item] = r.payload
    vectors: dict[str, tuple[float, ...]] = {}
    if not features:
        pass  # the caller needs the labels only (an export)
    elif spec is not None and project is not None:
        table = table_features(spec, project, labeling, store)
        vectors = {item: table[item] for item in payloads if item in table}
    else:
        hidden = set(labeling.hidden) | {labeling.id}
        shown = {i: {k: v for k, v in p.items() if k not in hidden} for i, p in payloads.items()}
        vectors = numeric_features(shown)
    return StoredLabels(
        task=task,
        classes=tuple(labeling.class_names()),
        votes=tuple(votes),
        gold=gold,
        corrections=corrections,
        features=vectors,
        seed=labeling.seed or 0,
    )


def project_quality(
    store: Store,
    *,
    spec: Spec | None = None,
    project: Path | None = None,
    every: Every = "day",
    disagreements: int = 20,
) -> QualityReport:
    """The quality report of the project's labels as they stand (see read_labels for where
    the items' features come from)."""
    stored = read_labels(store, spec, project)
    return quality_report(
        stored.votes,
        stored.classes,
        task=stored.task,
        gold=stored.gold,
        features=stored.features or None,
        seed=stored.seed,
        every=every,
        disagreements=disagreements,
        corrections=stored.corrections,
    )
