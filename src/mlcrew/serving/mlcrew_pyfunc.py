"""MLflow pyfunc loader for a model exported by `mlcrew export --format mlflow`.

This file is copied into the exported model (its `code/` folder) and imported by MLflow as the
flavor's `loader_module`, where mlcrew itself may not be installed: it needs only NumPy, pandas
and LightGBM, and imports nothing from mlcrew. It reads the mlcrew model document (JSON holding
LightGBM's text model; nothing in it is executed) and turns a DataFrame into the same matrix as
mlcrew's TabularModel: categories by their training levels (unknown -> missing), booleans as
0/1, numbers as floats. Predictions come back in the target's own type.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

MODEL_FILE = "model.json"
READABLE = ("mlcrew.lightgbm/1", "mlcrew.lightgbm/2")
BATCH_ROWS = 1000


def _text(value: Any) -> str | None:
    """A category value as mlcrew writes its levels (3.0 -> "3")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _class_value(label: str, target_type: str) -> Any:
    if target_type == "boolean":
        return label == "True"
    if target_type == "integer":
        return int(label)
    if target_type == "number":
        return float(label)
    return label


class MlcrewModel:
    """What `mlflow.pyfunc.load_model` wraps: `predict(DataFrame) -> numpy array`."""

    def __init__(self, document: dict[str, Any]) -> None:
        import lightgbm
        import numpy as np

        if document.get("format") not in READABLE:
            raise ValueError(f"not an mlcrew model document (format {document.get('format')!r})")
        self.task = document["task"]
        self.schema = document["schema"]
        self.target = document["target"]
        target_type = document.get("target_type", "string")
        self.classes = np.array([_class_value(c, target_type) for c in document["classes"]])
        self.levels = {
            f["name"]: {c: float(i) for i, c in enumerate(f["categories"])}
            for f in self.schema
            if f["type"] == "category"
        }
        self.booster = lightgbm.Booster(model_str=document["lightgbm"])

    def _matrix(self, frame: Any) -> Any:
        import numpy as np
        import pandas as pd

        X = np.empty((len(frame), len(self.schema)), dtype=np.float64)
        for j, f in enumerate(self.schema):
            name = f["name"]
            if name not in frame.columns:
                raise ValueError(
                    f"input has no column {name!r}; the model reads "
                    + ", ".join(g["name"] for g in self.schema)
                )
            col = frame[name]
            if f["type"] == "category":
                levels = self.levels[name]
                if pd.api.types.is_integer_dtype(col.dtype) and not col.isna().any():
                    codes = col.astype("int64").astype(str).map(levels)
                else:
                    codes = col.map(levels)
                    redo = codes.isna() & col.notna()
                    if redo.any():
                        codes[redo] = col[redo].map(_text).map(levels)
                X[:, j] = codes.astype("float64").to_numpy()
            elif pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
                X[:, j] = col.to_numpy(dtype="float64", na_value=np.nan)
            else:  # objects (JSON rows with nulls, text): parsed as numbers, None -> NaN
                try:
                    X[:, j] = pd.to_numeric(col.where(col.notna(), None)).astype("float64")
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"column {name!r}: expected numbers ({exc})") from None
        return X

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        import numpy as np
        import pandas as pd

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        # One thread for a request's few rows (no thread start-up), LightGBM's default (all
        # cores) for a batch.
        threads = 1 if len(frame) <= BATCH_ROWS else 0
        raw = np.asarray(self.booster.predict(self._matrix(frame), num_threads=threads))
        if self.task == "regression":
            return raw
        index = (raw >= 0.5).astype("int64") if raw.ndim == 1 else raw.argmax(axis=1)
        return self.classes[index]


def _load_pyfunc(data_path: str) -> MlcrewModel:
    """MLflow's entry point: `data_path` is the exported model's data folder."""
    path = Path(data_path)
    if path.is_dir():
        path = path / MODEL_FILE
    return MlcrewModel(json.loads(path.read_text(encoding="utf-8")))
