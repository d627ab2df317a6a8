"""What the evaluate stage adds for the domain expert: value in money, slices, confusion,
curves and calibration, all on the test split, as plain JSON for the report and the pages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcrew.errors import DataError
from mlcrew.spec import Slice, Value
from mlcrew.training import decision as d

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from mlcrew.training.model import TabularModel

CURVE_POINTS = 200  # points kept of a ROC or precision-recall curve
SCATTER_POINTS = 500  # predicted-against-actual points kept for a regression


def _thin(values: list[Any], keep: int) -> list[Any]:
    if len(values) <= keep:
        return values
    step = (len(values) - 1) / (keep - 1)
    return [values[round(i * step)] for i in range(keep)]


def classification_details(model: TabularModel, test: pa.Table, raw: np.ndarray) -> dict[str, Any]:
    """Confusion matrix, calibration (Brier, reliability) and, for two classes, ROC and PR."""
    from sklearn import metrics as m

    y = model.target_array(test)
    known = y >= 0  # a class the training split never saw is reported by the metrics
    y, raw = y[known], raw[known]
    proba = model.probabilities(raw)
    pred = model.class_indices(raw)
    k = len(model.classes_)
    confusion = m.confusion_matrix(y, pred, labels=list(range(k))).tolist()
    out: dict[str, Any] = {
        "classes": model.classes_,
        "confusion": confusion,  # rows: actual, columns: predicted
        "brier": round(d.brier(proba, y), 6),
        "reliability": d.reliability(proba, y),
        "calibrated": bool(model.calibration_),
    }
    if k == 2 and len(set(y.tolist())) == 2:
        fpr, tpr, _ = m.roc_curve(y, proba[:, 1])
        precision, recall, _ = m.precision_recall_curve(y, proba[:, 1])
        out["roc"] = _thin(
            [{"fpr": float(a), "tpr": float(b)} for a, b in zip(fpr, tpr, strict=True)],
            CURVE_POINTS,
        )
        out["pr"] = _thin(
            [
                {"recall": float(a), "precision": float(b)}
                for a, b in zip(recall, precision, strict=True)
            ],
            CURVE_POINTS,
        )
    if model.decision_:
        out["decision"] = dict(model.decision_)
    return out


def regression_details(model: TabularModel, test: pa.Table, raw: np.ndarray) -> dict[str, Any]:
    """A sample of predicted against actual values (the page plots it)."""
    y = model.target_array(test)
    pairs = sorted(zip(y.tolist(), raw.tolist(), strict=True))
    return {"scatter": [{"actual": a, "predicted": p} for a, p in _thin(pairs, SCATTER_POINTS)]}


def value_report(
    value: Value, model: TabularModel, train: pa.Table, test: pa.Table, raw: np.ndarray
) -> dict[str, Any]:
    """The model's value on the test split in money, beside the dummy baseline's; for two
    classes, the value at every threshold and at the model's own."""
    import numpy as np

    y = model.target_array(test)
    rows = len(y)
    if model.task == "regression":
        y_train = model.target_array(train)
        mean = np.full(rows, float(np.mean(y_train)))
        ours, baseline = d.regression_value(value, y, raw), d.regression_value(value, y, mean)
        return _value_doc(value, rows, ours, baseline)
    if (y < 0).any():
        raise DataError("the test split holds a class the training split never saw")
    matrix = d.value_matrix(value, model.classes_)
    ours = d.classification_value(matrix, y, model.class_indices(raw))
    prior = np.bincount(model.target_array(train), minlength=len(model.classes_))
    baseline = d.classification_value(matrix, y, np.full(rows, int(prior.argmax())))
    doc = _value_doc(value, rows, ours, baseline)
    doc["matrix"] = matrix.tolist()
    if value.kind == "binary":
        pos = d.positive_index(value, model.classes_)
        p_pos = model.probabilities(raw)[:, pos]
        doc["positive"] = model.classes_[pos]
        doc["threshold"] = (model.decision_ or {}).get("threshold", 0.5)
        doc["at_half"] = d.classification_value(matrix, y, np.where(p_pos >= 0.5, pos, 1 - pos))
        doc["curve"] = d.value_curve(matrix, y, p_pos, pos)
    return doc


def _value_doc(value: Value, rows: int, ours: float, baseline: float) -> dict[str, Any]:
    return {
        "currency": value.currency,
        "rows": rows,
        "total": round(ours, 4),
        "per_row": round(ours / rows, 6) if rows else 0.0,
        "baseline_total": round(baseline, 4),
        "baseline_per_row": round(baseline / rows, 6) if rows else 0.0,
    }


def slice_mask(s: Slice, table: pa.Table) -> np.ndarray:
    """Which rows of `table` belong to slice `s` (a DataError names the slice if it cannot)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    where = s.where
    if where.column not in table.column_names:
        raise DataError(
            f"objective.slices {s.name!r}: {where.column!r} is not a column of the dataset; "
            f"columns: {', '.join(table.column_names)}"
        )
    col = table.column(where.column)
    if where.in_ is not None:
        if pa.types.is_boolean(col.type):
            if not all(isinstance(v, bool) for v in where.in_):
                raise DataError(
                    f"objective.slices {s.name!r}: {where.column!r} holds true/false (read "
                    f"from values such as Yes/No); write in: [true] or in: [false]"
                )
            mask = pc.is_in(col, value_set=pa.array(where.in_, type=pa.bool_()))
        else:
            text = pc.cast(col, pa.string()) if not pa.types.is_string(col.type) else col
            mask = pc.is_in(text, value_set=pa.array([str(v) for v in where.in_]))
    else:
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
            raise DataError(
                f"objective.slices {s.name!r}: between needs a numeric column, and "
                f"{where.column!r} holds {col.type}; use in: [VALUES]"
            )
        low, high = where.between or (None, None)
        mask = pa.chunked_array([pa.array(np.ones(len(col), dtype=bool))])
        if low is not None:
            mask = pc.and_(mask, pc.greater_equal(col, low))
        if high is not None:
            mask = pc.and_(mask, pc.less(col, high))
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)
