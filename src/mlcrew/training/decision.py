"""From probabilities to decisions in the client's money: calibration, value, and the threshold.

Everything here is fitted on out-of-fold predictions of the training split (never on the test
split, which judges the result) and saved in the model document as plain numbers:
- `calibration`: per class, Platt's sigmoid (`a`, `b` on the logit) or an isotonic step function
  (`x`, `y` knots), then rows renormalised; scikit-learn fits both;
- `decision`: for two classes with outcome values, the threshold on P(positive) that maximises the
  total value; with a value matrix, the class of highest expected value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcrew.errors import DataError

if TYPE_CHECKING:
    import numpy as np

    from mlcrew.spec import Value

THRESHOLD_GRID = 201  # thresholds of the value-per-threshold curve


# ---------------------------------------------------------------------- calibration


def fit_calibration(method: str, oof: np.ndarray, y: np.ndarray, n_classes: int) -> dict[str, Any]:
    """A calibrator of raw outputs (P(class 1), or one column per class) against class indices."""
    import numpy as np
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    proba = oof[:, None] if oof.ndim == 1 else oof
    columns = [1] if oof.ndim == 1 else list(range(n_classes))
    parts = []
    for j, k in enumerate(columns):
        p = proba[:, j]
        hit = (y == k).astype(np.float64)
        if method == "sigmoid":
            lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(p)[:, None], hit)
            parts.append({"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])})
        else:
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(p, hit)
            parts.append({"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()})
    return {"method": method, "columns": parts}


def apply_calibration(calibration: dict[str, Any] | None, raw: np.ndarray) -> np.ndarray:
    import numpy as np
    from scipy.special import expit

    if not calibration:
        return raw
    proba = raw[:, None] if raw.ndim == 1 else raw
    out = np.empty_like(proba, dtype=np.float64)
    for j, part in enumerate(calibration["columns"]):
        p = proba[:, j]
        if calibration["method"] == "sigmoid":
            out[:, j] = expit(part["a"] * _logit(p) + part["b"])
        else:
            out[:, j] = np.interp(p, part["x"], part["y"])
    if raw.ndim == 1:
        return out[:, 0]
    total = out.sum(axis=1, keepdims=True)
    uniform = np.full_like(out, 1.0 / out.shape[1])
    return np.where(total > 0, out / np.where(total > 0, total, 1.0), uniform)


def _logit(p: np.ndarray) -> np.ndarray:
    import numpy as np

    q = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(q / (1 - q))  # type: ignore[no-any-return]


def brier(proba: np.ndarray, y: np.ndarray) -> float:
    """Brier score: scikit-learn's for two classes (squared error of P(class 1)); for more,
    Brier's original sum over classes of the squared errors, averaged over rows."""
    import numpy as np

    if proba.shape[1] == 2:
        return float(np.mean((proba[:, 1] - (y == 1)) ** 2))
    hit = np.zeros_like(proba)
    hit[np.arange(len(y)), y] = 1.0
    return float(np.mean(np.sum((proba - hit) ** 2, axis=1)))


def reliability(proba: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """The reliability curve of P(class 1) (two classes) or of the top class (more): per
    equal-width bin, the mean predicted probability, the observed frequency and the count."""
    import numpy as np

    if proba.shape[1] == 2:
        p, hit = proba[:, 1], (y == 1)
    else:
        top = proba.argmax(axis=1)
        p, hit = proba[np.arange(len(y)), top], (top == y)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        rows = which == b
        if rows.any():
            out.append(
                {
                    "predicted": float(p[rows].mean()),
                    "observed": float(hit[rows].mean()),
                    "rows": int(rows.sum()),
                }
            )
    return out


# ---------------------------------------------------------------------- value


def positive_index(value: Value, classes: list[str]) -> int:
    """Which class is "positive" for the two-class outcome values (default: the last)."""
    if value.positive is None:
        return len(classes) - 1
    text = str(value.positive)  # classes are the target's values as text: "True", "1", "Yes"
    if text not in classes:
        raise DataError(
            f"objective.value.positive is {value.positive!r}, not a class of the target; "
            f"classes: {', '.join(classes)}"
        )
    return classes.index(text)


def value_matrix(value: Value, classes: list[str]) -> np.ndarray:
    """V[actual, predicted]: the value of each outcome, in the order of `classes`."""
    import numpy as np

    k = len(classes)
    if value.kind == "binary":
        if k != 2:
            raise DataError(
                f"objective.value gives two-class outcome values, but the target has {k} "
                "classes; give matrix: {ACTUAL: {PREDICTED: value}} instead"
            )
        pos = positive_index(value, classes)
        neg = 1 - pos
        m = np.zeros((2, 2))
        m[pos, pos] = value.true_positive or 0.0
        m[neg, pos] = value.false_positive or 0.0
        m[pos, neg] = value.false_negative or 0.0
        m[neg, neg] = value.true_negative or 0.0
        return m
    if value.kind != "matrix" or value.matrix is None:
        raise DataError(
            "objective.value is for regression (per_unit, or under and over), but the task is "
            "classification; give outcome values or a matrix"
        )
    unknown = sorted(
        {a for a in value.matrix if a not in classes}
        | {p for row in value.matrix.values() for p in row if p not in classes}
    )
    if unknown:
        raise DataError(
            f"objective.value.matrix names {', '.join(map(repr, unknown))}, not classes of the "
            f"target; classes: {', '.join(classes)}"
        )
    m = np.zeros((k, k))
    for a, row in value.matrix.items():
        for p, v in row.items():
            m[classes.index(a), classes.index(p)] = v
    return m


def check_value(value: Value, task: str, classes: list[str]) -> None:
    """A DataError if `objective.value` does not fit the task (or names unknown classes)."""
    if task == "regression":
        if value.kind not in ("per_unit", "asymmetric"):
            raise DataError(
                "objective.value gives values of classes' outcomes, but the task is regression; "
                "give per_unit, or under and over"
            )
        return
    value_matrix(value, classes)


def classification_value(matrix: np.ndarray, y: np.ndarray, pred: np.ndarray) -> float:
    """Total value of predictions `pred` (class indices) against the truth `y`."""
    return float(matrix[y, pred].sum())


def regression_value(value: Value, y: np.ndarray, pred: np.ndarray) -> float:
    import numpy as np

    if value.kind == "per_unit":
        return float((value.per_unit or 0.0) * np.abs(y - pred).sum())
    if value.kind != "asymmetric":
        raise DataError(
            "objective.value gives outcome values of classes, but the task is regression; give "
            "per_unit, or under and over"
        )
    under = np.clip(y - pred, 0, None).sum()
    over = np.clip(pred - y, 0, None).sum()
    return float((value.under or 0.0) * under + (value.over or 0.0) * over)


def best_threshold(matrix: np.ndarray, y: np.ndarray, p_pos: np.ndarray, pos: int) -> float:
    """The threshold on P(positive) of the highest total value over these rows; among equal
    values the one nearest 0.5 (a plateau's middle is as good and less fragile)."""
    import numpy as np

    order = np.argsort(-p_pos, kind="stable")
    p_sorted = p_pos[order]
    is_pos = (y[order] == pos).astype(np.float64)
    neg = 1 - pos
    # Predicting the first i rows (highest P) positive, the rest negative:
    tp = np.concatenate([[0.0], np.cumsum(is_pos)])
    fp = np.concatenate([[0.0], np.cumsum(1 - is_pos)])
    total_pos, total_neg = is_pos.sum(), (1 - is_pos).sum()
    fn, tn = total_pos - tp, total_neg - fp
    values = (
        tp * matrix[pos, pos]
        + fp * matrix[neg, pos]
        + fn * matrix[pos, neg]
        + tn * matrix[neg, neg]
    )
    # Threshold i sits between row i-1 and row i; only between distinct probabilities.
    n = len(p_sorted)
    if n == 0:
        return 0.5
    upper = np.concatenate([[np.inf], p_sorted])
    lower = np.concatenate([p_sorted, [-np.inf]])
    thresholds = (upper + lower) / 2
    thresholds[0] = (1.0 + p_sorted[0]) / 2 if p_sorted[0] < 1.0 else 1.0 + 1e-9
    thresholds[n] = p_sorted[-1] / 2
    valid = np.ones(n + 1, dtype=bool)
    valid[1:n] = p_sorted[:-1] != p_sorted[1:]
    candidates = np.flatnonzero(valid)
    # Highest value first, then nearest 0.5.
    pick = np.lexsort((np.abs(thresholds[candidates] - 0.5), -values[candidates]))[0]
    return float(thresholds[candidates[pick]])


def value_curve(
    matrix: np.ndarray, y: np.ndarray, p_pos: np.ndarray, pos: int
) -> list[dict[str, float]]:
    """Total value at evenly spaced thresholds (for the evaluation page and report)."""
    import numpy as np

    out = []
    for t in np.linspace(0.0, 1.0, THRESHOLD_GRID):
        pred = np.where(p_pos >= t, pos, 1 - pos)
        out.append(
            {"threshold": round(float(t), 4), "value": classification_value(matrix, y, pred)}
        )
    return out


def decide(decision: dict[str, Any] | None, proba: np.ndarray) -> np.ndarray:
    """Class indices from probabilities (rows x classes) under a saved decision rule."""
    if not decision:
        if proba.shape[1] == 2:
            return (proba[:, 1] >= 0.5).astype("int64")
        return proba.argmax(axis=1)  # type: ignore[no-any-return]
    import numpy as np

    if "threshold" in decision:
        pos = int(decision["positive"])
        return np.where(proba[:, pos] >= decision["threshold"], pos, 1 - pos).astype("int64")
    expected = proba @ np.asarray(decision["matrix"], dtype=np.float64)
    return expected.argmax(axis=1)  # type: ignore[no-any-return]
