"""From the labels so far to each task's serving priority and suggestion.

`plan` is the pure part of `mlcrew label refresh`: it takes the items (the labeling
section's `from` table), the label each item has so far (consensus of its labels, or its gold
answer), and the spec's `order` and `prelabel` settings, and says for every item its priority
(lower = served sooner) and its pre-label. The store writes the plan into `label_tasks` in one
transaction; nothing here touches the database.

Features are the item table's numeric columns (integers, floats, booleans) other than the id:
for the digits example the 64 pixel intensities the labeling section hides from labelers.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from mlcrew.errors import DataError
from mlcrew.labeling.active import (
    DEFAULT_BATCH,
    Measure,
    OrderBy,
    Prediction,
    Prelabel,
    fit_predict,
    priorities,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from numpy.typing import NDArray

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


def feature_matrix(table: pa.Table, id_column: str) -> tuple[NDArray[np.float64], list[str]]:
    """The numeric columns of the item table as a float matrix (missing values: the column's
    median, or 0 when the whole column is missing), with their names."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = [
        f.name
        for f in table.schema
        if f.name != id_column
        and (
            pa.types.is_integer(f.type)
            or pa.types.is_floating(f.type)
            or pa.types.is_boolean(f.type)
        )
    ]
    if not names:
        raise DataError(
            f"the items have no numeric columns besides {id_column!r} to learn from; the "
            "uncertainty order and pre-labels from labels need features: use "
            "labeling.order: {by: random} and labeling.prelabel: none (or champion)"
        )
    x = np.empty((table.num_rows, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        column = pc.cast(table.column(name), pa.float64()).to_numpy(zero_copy_only=False)
        missing = np.isnan(column)
        if missing.any():
            fill = float(np.median(column[~missing])) if (~missing).any() else 0.0
            column = np.where(missing, fill, column)
        x[:, j] = column
    return x, names


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

    `known` is what the model learns from: each item's label so far (consensus, or the gold
    answer). Items in `started` (someone already labelled them) come first, priority -1: their
    overlap is half done and the agreement figures need it complete. Gold items not started
    are scattered at seeded random places through the order, so they stay unannounced: the
    model knows their answers, and ordering them by its confidence would serve them last.
    The other items follow the spec's order. With `prelabel: labels` a model trained on
    `known` suggests a class for every item; with `champion` the given probabilities do (one
    row per item, in `items` order)."""
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
    if needs_model and features is not None and (prediction is None or by == "uncertainty"):
        rows = np.array([i for i, item in enumerate(items) if item in known], dtype=np.intp)
        trained = fit_predict(
            features[rows],
            [known[items[i]] for i in rows],
            features,
            classes=classes,
            seed=seed,
            threads=threads,
        )
        # The champion's probabilities, when it pre-labels, also rank the uncertainty order.
        prediction = prediction or trained
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
    from mlcrew.errors import NotFoundError
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
