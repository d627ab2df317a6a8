"""From the labels so far to each task's serving priority and suggestion.

`plan` is the pure part of `mlcrew label refresh`: it takes the items (the labeling
section's `from` table), the label each item has so far (the consensus of its labels), and
the spec's `order` and `prelabel` settings, and says for every item its priority (lower =
served sooner) and its pre-label. `refresh` reads the labels from the store and writes the
plan into `label_tasks` in one transaction (`plan` itself touches no database).

Features are the item table's numeric columns (integers, floats, booleans) other than the id:
for the digits example the 64 pixel intensities the labeling section hides from labelers.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from mlcrew.errors import DataError, NotFoundError
from mlcrew.labeling.active import (
    DEFAULT_BATCH,
    Measure,
    OrderBy,
    Prediction,
    Prelabel,
    fit_predict,
    priorities,
)
from mlcrew.labeling.features import item_features

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow as pa
    from numpy.typing import NDArray

    from mlcrew.spec import Spec
    from mlcrew.store import Store

PrelabelFrom = Literal["none", "champion", "labels"]


@dataclass(frozen=True)
class TaskPlan:
    """What a refresh sets on one item's task."""

    item: str
    priority: float
    prelabel: Prelabel | None


@dataclass(frozen=True)
class Plan:
    """The refresh's answer: one entry per item, and which model made the suggestions."""

    tasks: list[TaskPlan]
    model: Literal["logistic", "lightgbm", "given"] | None
    labelled: int


def plan(
    items: Sequence[str],
    features: NDArray[np.float64] | None,
    known: Mapping[str, str],
    *,
    classes: Sequence[str],
    started: Collection[str] = frozenset(),
    gold: Collection[str] = frozenset(),
    by: OrderBy = "random",
    measure: Measure = "margin",
    diversity: float = 0.0,
    prelabel: PrelabelFrom = "none",
    champion: Prediction | None = None,
    seed: int = 0,
    threads: int = 1,
    batch: int = DEFAULT_BATCH,
) -> Plan:
    """Priorities and suggestions for every item.

    `known` is what the model learns from: each item's label so far (its consensus). Items in
    `started` (someone already labelled them) come first, priority -1: their overlap is half
    done and the agreement figures need it complete. Items in `gold` get seeded random places
    through the order (the queue serves gold apart; a refresh leaves their places alone). The
    other items follow the spec's order. With `prelabel: labels` a model trained on `known`
    suggests a class for every item; with `champion` the given probabilities do (one row per
    item, in `items` order), and they also rank the uncertainty order."""
    n = len(items)
    if features is not None and features.shape[0] != n:
        raise ValueError(f"{features.shape[0]} feature rows for {n} items")
    if champion is not None and champion.proba.shape[0] != n:
        raise ValueError(f"{champion.proba.shape[0]} champion rows for {n} items")
    needs_model = by == "uncertainty" or prelabel == "labels"
    if needs_model and features is None:
        raise DataError(
            "the uncertainty order and pre-labels from labels need the items' numeric "
            "features; none were given"
        )
    prediction: Prediction | None = None
    if prelabel == "champion":
        if champion is None:
            raise DataError(
                "labeling.prelabel is champion but the project has no champion model yet: "
                "run 'mlcrew run' (or use prelabel: labels)"
            )
        prediction = champion
    if needs_model and features is not None and prediction is None:
        rows = np.array([i for i, item in enumerate(items) if item in known], dtype=np.intp)
        trained = fit_predict(
            features[rows],
            [known[items[i]] for i in rows],
            features,
            classes=classes,
            seed=seed,
            threads=threads,
        )
        prediction = trained
    is_started = np.array([item in started for item in items], dtype=bool)
    is_gold = np.array([item in gold for item in items], dtype=bool) & ~is_started
    ordered = np.flatnonzero(~is_started & ~is_gold)
    priority = np.full(n, -1.0)
    if ordered.size:
        proba = None if prediction is None or by != "uncertainty" else prediction.proba[ordered]
        priority[ordered] = priorities(
            proba,
            np.zeros((ordered.size, 1)) if features is None else features[ordered],
            by=by,
            measure=measure,
            diversity=diversity if by == "uncertainty" else 0.0,
            batch=batch,
            seed=seed,
        )
    scattered = np.flatnonzero(is_gold)
    if scattered.size:
        rng = np.random.default_rng([seed, 1])
        priority[scattered] = rng.uniform(0.0, max(ordered.size, 1), size=scattered.size)
    shown = prediction.suggestions() if prediction is not None and prelabel != "none" else None
    tasks = [
        TaskPlan(items[i], float(priority[i]), None if shown is None else shown[i])
        for i in range(n)
    ]
    return Plan(
        tasks=tasks,
        model=None if prediction is None else prediction.model,
        labelled=sum(1 for item in items if item in known),
    )


def champion_prediction(
    store: Store, name: str, table: pa.Table, classes: Sequence[str]
) -> Prediction | None:
    """The champion's class probabilities for the items, columns in `classes` order; None when
    the project has no champion yet. A champion class outside the label spec is an error."""
    from mlcrew.serving.loader import ModelCache

    try:
        loaded = ModelCache(store).get(name)
    except NotFoundError:
        return None
    model = loaded.model
    if model.task != "classification":
        raise DataError(
            f"the champion of {name!r} is a {model.task} model; pre-labels need a classifier"
        )
    unknown = [c for c in model.classes_ if c not in classes]
    if unknown:
        raise DataError(
            f"the champion of {name!r} predicts classes {', '.join(map(repr, unknown))} that "
            f"the label spec does not have ({', '.join(classes)})"
        )
    raw = model.probabilities(model.predict_raw(table))
    proba = np.zeros((table.num_rows, len(classes)))
    for j, cls in enumerate(model.classes_):
        proba[:, list(classes).index(cls)] = raw[:, j]
    return Prediction(classes=tuple(classes), proba=proba, model="given")


@dataclass(frozen=True)
class RefreshResult:
    """What `mlcrew label refresh` did."""

    items: int  # tasks whose item is in the labeling table
    labelled: int  # items the model learned from (their consensus so far; never gold)
    prelabels: int  # tasks given a suggestion
    priorities: int  # tasks given a new place in the order (gold keeps its own)
    model: str | None  # logistic | lightgbm | given (the champion) | None (no model yet)
    order: str

    def to_json(self) -> dict[str, int | str | None]:
        return dict(self.__dict__)


def consensus(labels: Sequence[str], classes: Sequence[str]) -> str:
    """The most frequent label; a tie goes to the class listed first in the spec."""
    counts = {c: labels.count(c) for c in set(labels)}
    top = max(counts.values())
    return min((c for c, k in counts.items() if k == top), key=list(classes).index)


def refresh(store: Store, spec: Spec, project: Path, *, actor: str) -> RefreshResult:
    """Recompute every task's pre-label and priority from the labels so far, as the spec's
    `labeling.order` and `labeling.prelabel` say, and write them in one transaction."""
    from sqlalchemy import select

    from mlcrew.labeling.items import check_keys, read_table
    from mlcrew.labeling.labelspec import NOT_IMPORTED, require_labeling
    from mlcrew.labeling.suggest import write_suggestions
    from mlcrew.labeling.tables import LabelAssignment, LabelTask
    from mlcrew.people.audit import record

    labeling = require_labeling(spec)
    order = labeling.order
    learns = order.by == "uncertainty" or labeling.prelabel == "labels"
    if labeling.task != "single" and (learns or labeling.prelabel == "champion"):
        raise DataError(
            "labeling.order by uncertainty and pre-labels work for single-label tasks only; "
            "for task: multi use order: {by: random} and prelabel: none"
        )
    classes = labeling.class_names()
    with store.session() as s:
        tasks = {
            item: (task_id, gold)
            for task_id, item, gold in s.execute(
                select(LabelTask.id, LabelTask.item, LabelTask.gold)
            ).all()
        }
        submitted = s.execute(
            select(LabelAssignment.task_id, LabelAssignment.label).where(
                LabelAssignment.state == "submitted",
                LabelAssignment.gold.is_(False),
                (LabelAssignment.review.is_(None)) | (LabelAssignment.review != "rejected"),
            )
        ).all()
    if not tasks:
        raise NotFoundError(NOT_IMPORTED)
    by_task: dict[int, list[str]] = {}
    for task_id, label in submitted:
        if isinstance(label, str):
            by_task.setdefault(task_id, []).append(label)
    table = read_table(spec, project, labeling, store)
    keys = check_keys(table, labeling)
    rows = [i for i, key in enumerate(keys) if key in tasks]
    if len(rows) < len(keys):
        table = table.take(rows)
        keys = [keys[i] for i in rows]
    known: dict[str, str] = {}
    started: set[str] = set()
    gold: set[str] = set()
    # Gold items are served apart (at the spec's share) and keep their own places; with share
    # 0 they are ordinary tasks. Gold answers never train the model: its suggestions on gold
    # items would give the answers away, and gold accuracy would measure agreement with it.
    apart = labeling.gold is not None and labeling.gold.share > 0
    for key in keys:
        task_id, answer = tasks[key]
        if answer is not None and apart:
            gold.add(key)
        elif task_id in by_task:
            started.add(key)
            known[key] = consensus(by_task[task_id], classes)
    features = (
        item_features(
            table, labeling, exclude=(spec.target,) if spec.target else (), project=project
        )[0]
        if learns
        else None
    )
    champion = None
    if labeling.prelabel == "champion":
        champion = champion_prediction(store, spec.name, table, classes)
    result = plan(
        keys,
        features,
        known,
        classes=classes,
        started=started,
        gold=gold,
        by=order.by,
        measure=order.measure,
        diversity=order.diversity,
        prelabel=labeling.prelabel,
        champion=champion,
        seed=spec.labeling_seed,
        threads=spec.training.threads,
    )
    prelabels = {
        t.item: (t.prelabel.label, t.prelabel.score) for t in result.tasks if t.prelabel is not None
    }
    # Gold items keep their own order (they are served apart, at the spec's share).
    priorities_ = {t.item: t.priority for t in result.tasks if t.item not in gold}
    write_suggestions(store, prelabels, priorities_)
    out = RefreshResult(
        items=len(keys),
        labelled=result.labelled,
        prelabels=len(prelabels),
        priorities=len(priorities_),
        model=result.model,
        order=order.by,
    )
    record(store, store.project_name, actor, "label_refresh", labeling.from_, out.to_json())
    return out
