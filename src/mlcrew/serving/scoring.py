"""Scoring validated rows with a loaded model: the one place JSON rows become predictions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from mlcrew.serving.loader import LoadedModel
    from mlcrew.serving.validation import Encoded


def score(loaded: LoadedModel, rows: list[Any]) -> tuple[list[Any], list[dict[str, Any]]]:
    """Predictions for `rows` and warnings about unfamiliar values (ModelInputError if invalid)."""
    predictions, encoded = score_encoded(loaded, rows)
    return predictions, encoded.warnings


def score_encoded(loaded: LoadedModel, rows: list[Any]) -> tuple[list[Any], Encoded]:
    """As `score`, with the encoded rows (the prediction log keeps them, not the rows)."""
    encoded = loaded.inputs.matrix(rows)
    return labels(loaded, predict_matrix(loaded, encoded.X)), encoded


def predict_matrix(loaded: LoadedModel, X: np.ndarray) -> np.ndarray:
    """Raw model output: one thread, as a request is too small to share out; a single row
    through LightGBM's prepared one-row path (serving/fastrow.py)."""
    import numpy as np

    if X.shape[0] == 1 and loaded.one_row is not None:
        raw = loaded.one_row.predict(X[0])
        raw = raw if raw.shape[0] == 1 else raw.reshape(1, -1)
    else:
        raw = np.asarray(loaded.model.booster_.predict(X, num_threads=1))
    return loaded.model.postprocess(raw)


def labels(loaded: LoadedModel, raw: np.ndarray) -> list[Any]:
    """Raw output as predictions: numbers for regression, class labels in the target's own
    type for classification (the same conversion as TabularModel.predict_table)."""
    model = loaded.model
    if model.task == "regression":
        out: list[Any] = raw.tolist()
        return out
    classes = model.class_values
    if model.decision_ is None and raw.ndim == 1:  # the common case, without NumPy's overhead
        return [classes[1] if p >= 0.5 else classes[0] for p in raw.tolist()]
    return [classes[i] for i in model.class_indices(raw).tolist()]
