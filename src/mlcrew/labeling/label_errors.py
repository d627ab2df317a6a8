"""Likely label errors: cleanlab's `find_label_issues` on out-of-fold predicted probabilities.

A model that never saw an item during training predicts it (scikit-learn `cross_val_predict`, a
seeded stratified fold split); where the model confidently disagrees with the given label, the label
is likely wrong. Issues are ranked most-likely-wrong first, for a reviewer to work down.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

FOLDS = 5


@dataclass(frozen=True)
class OutOfFold:
    """Each item's predicted probabilities over the spec's classes from a model trained without it,
    or None with the reason they could not be computed."""

    probs: dict[str, tuple[float, ...]] | None
    folds: int
    reason: str | None = None


@dataclass(frozen=True)
class LabelIssue:
    """A label cleanlab flags, with the model's suggestion and the label's quality score
    (self-confidence: the probability the model gives the label; lower = more likely wrong)."""

    rank: int
    item: str
    label: str
    suggested: str
    score: float


@dataclass(frozen=True)
class LabelIssues:
    issues: tuple[LabelIssue, ...]
    checked: int  # items checked
    reason: str | None = None  # why nothing was checked


def out_of_fold_probabilities(
    features: Mapping[str, Sequence[float]],
    labels: Mapping[str, str],
    classes: Sequence[str],
    *,
    seed: int = 0,
    folds: int = FOLDS,
) -> OutOfFold:
    """Out-of-fold probabilities of a scaled logistic regression on the items' numeric features.

    Only items with both features and a label are used. The fold count drops to the size of the
    smallest class (at least 2) so every fold can be stratified.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    items = [item for item in labels if item in features]
    counts = Counter(labels[item] for item in items)
    if len(counts) < 2:
        return OutOfFold(None, 0, "out-of-fold probabilities need labeled items of two classes")
    smallest = min(counts.values())
    if smallest < 2:
        rare = min(counts, key=counts.__getitem__)
        return OutOfFold(
            None, 0, f"class {rare!r} has one labeled item; cross-validation needs two per class"
        )
    k = max(2, min(folds, smallest))
    width = {len(features[item]) for item in items}
    if len(width) != 1:
        return OutOfFold(
            None, 0, f"the items have feature vectors of different lengths {sorted(width)}"
        )
    x = np.array([list(features[item]) for item in items], dtype=float)
    if not np.isfinite(x).all():
        return OutOfFold(None, 0, "the items' features hold missing or infinite values")
    present = [c for c in classes if c in counts]
    y = np.array([present.index(labels[item]) for item in items])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    split = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probs = cross_val_predict(model, x, y, cv=split, method="predict_proba")
    full = np.zeros((len(items), len(classes)))
    for j, c in enumerate(present):
        full[:, list(classes).index(c)] = probs[:, j]
    rows = zip(items, full, strict=True)
    return OutOfFold({item: tuple(float(p) for p in row) for item, row in rows}, k)


def find_label_errors(
    labels: Mapping[str, str],
    pred_probs: Mapping[str, Sequence[float]],
    classes: Sequence[str],
) -> LabelIssues:
    """cleanlab's likely label errors among the items with predicted probabilities, ranked."""
    import numpy as np
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    items = [item for item in labels if item in pred_probs]
    present = [c for c in classes if any(labels[item] == c for item in items)]
    if len(present) < 2:
        return LabelIssues((), 0, "finding label errors needs labeled items of two classes")
    column = [list(classes).index(c) for c in present]
    probs = np.array([[pred_probs[item][j] for j in column] for item in items], dtype=float)
    sums = probs.sum(axis=1, keepdims=True)
    probs = np.where(sums > 0, probs / np.where(sums > 0, sums, 1), 1 / len(present))
    y = np.array([present.index(labels[item]) for item in items])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranked = find_label_issues(y, probs, return_indices_ranked_by="self_confidence")
        scores = get_label_quality_scores(y, probs, method="self_confidence")
    issues = tuple(
        LabelIssue(
            rank=r + 1,
            item=items[i],
            label=labels[items[i]],
            suggested=present[int(np.argmax(probs[i]))],
            score=round(float(scores[i]), 6),
        )
        for r, i in enumerate(int(i) for i in ranked)
    )
    return LabelIssues(issues, len(items))
