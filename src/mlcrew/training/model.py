"""The trained pipeline: LightGBM plus the preprocessing and input schema it owns.

The same object is trained, evaluated, stored and served, so production never re-implements a
model. It follows scikit-learn's contract (`__init__` stores hyperparameters, `fit` returns self,
learned state ends in `_`). It is saved as one JSON document holding LightGBM's own text model:
loading it parses text and never runs code from the file.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from mlcrew.errors import DataError, ModelInputError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

FORMAT = "mlcrew.lightgbm/1"


def base_params(task: str, n_classes: int, seed: int, threads: int) -> dict[str, Any]:
    """LightGBM settings that make training bit-for-bit repeatable."""
    params: dict[str, Any] = {
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 20,
        "feature_fraction": 1.0,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": threads,
        "seed": seed,
        "verbosity": -1,
    }
    if task == "regression":
        params["objective"] = "regression"
    elif n_classes == 2:
        params["objective"] = "binary"
    else:
        params["objective"] = "multiclass"
        params["num_class"] = n_classes
    return params


class TabularModel:
    """A LightGBM model with its input schema, categorical levels and missing-value handling."""

    def __init__(
        self,
        task: str = "regression",
        params: dict[str, Any] | None = None,
        rounds: int = 300,
        categorical: list[str] | None = None,
    ) -> None:
        self.task = task
        self.params = params or {}
        self.rounds = rounds
        self.categorical = categorical or []

    # ------------------------------------------------------------------ fit
    def fit(self, table: pa.Table, target: str, features: list[str]) -> TabularModel:
        import lightgbm as lgb
        import pyarrow as pa
        import pyarrow.compute as pc

        self.target_ = target
        self.schema_ = [self._field_schema(table, name) for name in features]
        y_col = table.column(target)
        if y_col.null_count:
            raise DataError(
                f"target {target!r} has {y_col.null_count} missing values in the training data; "
                "filter them out in a transform"
            )
        if self.task == "classification":
            self.classes_ = sorted({str(v) for v in y_col.to_pylist()})
            index = {c: i for i, c in enumerate(self.classes_)}
            y = [index[str(v)] for v in y_col.to_pylist()]
        else:
            self.classes_ = []
            y = pc.cast(y_col, pa.float64()).to_numpy(zero_copy_only=False)
        X = self._matrix(table)
        cat_idx = [i for i, f in enumerate(self.schema_) if f["type"] == "category"]
        data = lgb.Dataset(
            X,
            label=y,
            # Positional names: LightGBM rejects some characters in names; ours live in schema_.
            feature_name=[f"f{i}" for i in range(len(self.schema_))],
            categorical_feature=cat_idx or "auto",
            free_raw_data=True,
            params={"verbosity": -1, "max_bin": 255},
        )
        try:
            self.booster_ = lgb.train(self.params, data, num_boost_round=self.rounds)
        except lgb.basic.LightGBMError as exc:
            reason = str(exc).strip().splitlines()[0].split(" at /")[0]
            raise DataError(
                f"LightGBM refused to train: {reason}; check training.params in mlcrew.yaml"
            ) from None
        return self

    def _field_schema(self, table: pa.Table, name: str) -> dict[str, Any]:
        import pyarrow as pa
        import pyarrow.compute as pc

        if name not in table.column_names:
            raise DataError(f"feature {name!r} is not a column of the training data")
        col = table.column(name)
        t = col.type
        nullable = col.null_count > 0
        if (
            name in self.categorical
            or pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or (pa.types.is_dictionary(t))
        ):
            levels = sorted({_category_text(v) for v in col.to_pylist() if v is not None})
            return {"name": name, "type": "category", "categories": levels, "nullable": nullable}
        if pa.types.is_boolean(t):
            return {"name": name, "type": "boolean", "nullable": nullable}
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            kind = "integer" if pa.types.is_integer(t) else "number"
            low, high = pc.min_max(col).values()
            # The range seen in training: the service warns about values outside it.
            bounds = [None if v.as_py() is None else float(v.as_py()) for v in (low, high)]
            return {"name": name, "type": kind, "nullable": nullable, "range": bounds}
        raise DataError(
            f"feature {name!r} has type {t}, which the model cannot use; cast it in a transform "
            "or list it under features.exclude"
        )

    def _matrix(self, table: pa.Table) -> np.ndarray:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        X = np.empty((table.num_rows, len(self.schema_)), dtype=np.float64)
        for j, f in enumerate(self.schema_):
            col = table.column(f["name"])
            if f["type"] == "category":
                index = {c: float(i) for i, c in enumerate(f["categories"])}
                X[:, j] = [
                    index.get(_category_text(v), math.nan) if v is not None else math.nan
                    for v in col.to_pylist()
                ]
            else:
                X[:, j] = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        return X

    # ------------------------------------------------------------------ predict
    @property
    def feature_names(self) -> list[str]:
        return [f["name"] for f in self.schema_]

    def predict_raw(self, table: pa.Table) -> np.ndarray:
        import numpy as np

        return np.asarray(self.booster_.predict(self._matrix(table), num_threads=1))

    def predict_table(self, table: pa.Table) -> list[Any]:
        raw = self.predict_raw(table)
        if self.task == "regression":
            return [float(v) for v in raw]
        if raw.ndim == 1:
            return [self.classes_[int(p >= 0.5)] for p in raw]
        return [self.classes_[int(i)] for i in raw.argmax(axis=1)]

    def predict_rows(self, rows: list[dict[str, Any]]) -> list[Any]:
        """Validate JSON-like rows against the schema, then predict."""
        return self.predict_table(self.rows_to_table(rows))

    def unfamiliar(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Valid values the model never saw in training: it still answers, and says so."""
        notes: list[dict[str, Any]] = []
        for i, row in enumerate(rows):
            for f in self.schema_:
                value = row.get(f["name"])
                note = None
                if value is None:
                    if not f.get("nullable"):
                        note = "missing value; training had none (treated as unknown)"
                elif f["type"] == "category":
                    if _category_text(value) not in f["categories"]:
                        note = f"category {value!r} not seen in training (treated as unknown)"
                elif f.get("range") and None not in f["range"]:
                    low, high = f["range"]
                    if not low <= float(value) <= high:
                        note = f"{value!r} is outside the training range [{low:g}, {high:g}]"
                if note:
                    notes.append({"row": i, "field": f["name"], "warning": note})
        return notes

    def rows_to_table(self, rows: list[dict[str, Any]]) -> pa.Table:
        import pyarrow as pa

        problems: list[dict[str, Any]] = []
        columns: dict[str, list[Any]] = {f["name"]: [] for f in self.schema_}
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                problems.append({"row": i, "field": None, "error": "a row must be a JSON object"})
                continue
            for f in self.schema_:
                name = f["name"]
                value = row.get(name)
                error = None
                if value is None:
                    if name not in row:
                        error = "missing field"
                elif f["type"] == "category":
                    if not isinstance(value, str | int | float) or isinstance(value, bool):
                        error = f"expected a category (string), got {type(value).__name__}"
                    else:
                        value = _category_text(value)
                elif f["type"] == "boolean":
                    if not isinstance(value, bool):
                        error = f"expected true or false, got {value!r}"
                elif isinstance(value, bool) or not isinstance(value, int | float):
                    error = f"expected a number, got {value!r}"
                elif not _finite(value):
                    error = f"expected a finite number, got {str(value)[:20]}"
                elif f["type"] == "integer" and isinstance(value, float) and not value.is_integer():
                    error = f"expected an integer, got {value!r}"
                if error:
                    problems.append({"row": i, "field": name, "error": error})
                columns[name].append(value)
        if problems:
            first = problems[0]
            raise ModelInputError(
                f"row {first['row']}, field {first['field']!r}: {first['error']}", problems
            )
        arrays = {}
        for f in self.schema_:
            values = columns[f["name"]]
            if f["type"] == "category":
                arrays[f["name"]] = pa.array(values, type=pa.string())
            elif f["type"] == "boolean":
                arrays[f["name"]] = pa.array(values, type=pa.bool_())
            else:
                arrays[f["name"]] = pa.array(
                    [None if v is None else float(v) for v in values], type=pa.float64()
                )
        return pa.table(arrays)

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> str:
        doc = {
            "format": FORMAT,
            "task": self.task,
            "target": self.target_,
            "schema": self.schema_,
            "classes": self.classes_,
            "params": self.params,
            "rounds": self.rounds,
            "lightgbm": self.booster_.model_to_string(),
        }
        return json.dumps(doc, sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str | bytes) -> TabularModel:
        import lightgbm as lgb

        doc = json.loads(text)
        if doc.get("format") != FORMAT:
            raise DataError(f"not an mlcrew model (format {doc.get('format')!r}, want {FORMAT})")
        model = cls(doc["task"], doc["params"], doc["rounds"])
        model.target_ = doc["target"]
        model.schema_ = doc["schema"]
        model.classes_ = doc["classes"]
        model.booster_ = lgb.Booster(model_str=doc["lightgbm"])
        return model

    def input_schema(self) -> list[dict[str, Any]]:
        return [dict(f) for f in self.schema_]


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer too large for a float
        return False


def _category_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
