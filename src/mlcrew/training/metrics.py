"""Task metrics, computed with scikit-learn, and which direction of each is better."""

from __future__ import annotations

from typing import Any

from mlcrew.errors import DataError
from mlcrew.spec import LOWER_IS_BETTER


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    from sklearn import metrics as m

    return {
        "mae": float(m.mean_absolute_error(y_true, y_pred)),
        "rmse": float(m.root_mean_squared_error(y_true, y_pred)),
        "r2": float(m.r2_score(y_true, y_pred)),
        "mape": float(m.mean_absolute_percentage_error(y_true, y_pred)),
    }


def classification_metrics(
    y_true: list[str], y_pred: list[str], proba: Any, classes: list[str]
) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as m

    unseen = sorted(set(y_true) - set(classes))
    if unseen:
        raise DataError(
            f"the evaluated rows hold {'a class' if len(unseen) == 1 else 'classes'} {unseen} "
            "that the training split never saw; "
            "use a random split or more data"
        )
    out = {"accuracy": float(m.accuracy_score(y_true, y_pred))}
    average = "binary" if len(classes) == 2 else "macro"
    pos = classes[-1] if len(classes) == 2 else None
    kw: dict[str, Any] = {"average": average, "zero_division": 0, "labels": classes}
    if pos is not None:
        kw["pos_label"] = pos
    out["precision"] = float(m.precision_score(y_true, y_pred, **kw))
    out["recall"] = float(m.recall_score(y_true, y_pred, **kw))
    out["f1"] = float(m.f1_score(y_true, y_pred, **kw))
    probs = np.asarray(proba)
    if probs.ndim == 1:
        probs = np.column_stack([1 - probs, probs])
    if len(set(y_true)) > 1:
        out["log_loss"] = float(m.log_loss(y_true, probs, labels=classes))
        try:
            if len(classes) == 2:
                out["roc_auc"] = float(m.roc_auc_score([t == pos for t in y_true], probs[:, 1]))
            else:
                out["roc_auc"] = float(
                    m.roc_auc_score(y_true, probs, multi_class="ovr", labels=classes)
                )
        except ValueError:  # a class absent from y_true: AUC is undefined, so it is left out
            pass
    return out


def better(metric: str, a: float, b: float) -> bool:
    """Is value `a` strictly better than `b` on this metric?"""
    return a < b if metric in LOWER_IS_BETTER else a > b


def default_metric(task: str) -> str:
    return "mae" if task == "regression" else "roc_auc"


def resolve_metric(metric: str, metrics: dict[str, float]) -> str:
    """The spec's metric, with `auto` resolved from which task the metrics belong to."""
    if metric != "auto":
        return metric
    return default_metric("regression" if "mae" in metrics else "classification")
