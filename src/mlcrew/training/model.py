"""The trained pipeline: LightGBM plus the preprocessing and input schema it owns.

The same object is trained, evaluated, stored and served, so production never re-implements a
model. It follows scikit-learn's contract (`__init__` stores hyperparameters, `fit` returns self,
learned state ends in `_`). It is saved as one JSON document holding LightGBM's own text model:
loading it parses text and never runs code from the file.

The document (format `mlcrew.lightgbm/2`, or `mlcrew.ensemble/3` for the model search's ensembles
and other estimators: see `members.py`) carries what is known when the model is trained: task,
target and its type, input schema, classes, parameters and the versions of the libraries that
trained it. It holds nothing run-dependent (no time, no path, no run id), so the same inputs give
the same bytes. What is known only later (metrics, verdict, lineage) lives in the registry and
joins the document in `mlcrew.serving.package`. Documents of format `mlcrew.lightgbm/1` still load.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, ValidationError

from mlcrew.errors import DataError, ModelInputError

if TYPE_CHECKING:
    import lightgbm as lgb
    import numpy as np
    import pyarrow as pa

    from mlcrew.training.members import Ensemble, Member
    from mlcrew.training.native import NativeBooster

FORMAT = "mlcrew.lightgbm/2"
# A model of several members (LightGBM, linear, scikit-learn) with weights, or one that is not
# LightGBM: what the model search writes when it does not pick a single LightGBM.
ENSEMBLE_FORMAT = "mlcrew.ensemble/3"
READABLE_FORMATS = ("mlcrew.lightgbm/1", FORMAT, ENSEMBLE_FORMAT)

TargetType = Literal["boolean", "integer", "number", "string"]
FieldType = Literal["category", "boolean", "integer", "number"]
# The libraries whose versions a model records; a different major version is named at load.
LIBRARIES = ("lightgbm", "numpy", "pyarrow", "mlcrew", "python")
ENSEMBLE_LIBRARIES = (*LIBRARIES, "scikit-learn", "skops")


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
    """A LightGBM model with its input schema, categorical levels and missing-value handling.

    A trained model holds a `lightgbm.Booster`; a loaded one a `NativeBooster` (same library,
    same predictions, without importing the lightgbm package)."""

    booster_: lgb.Booster | NativeBooster | Ensemble

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
        # Fitted on out-of-fold predictions by the train stage (training/decision.py).
        self.calibration_: dict[str, Any] | None = None
        self.decision_: dict[str, Any] | None = None

    # ------------------------------------------------------------------ fit
    def fit(self, table: pa.Table, target: str, features: list[str]) -> TabularModel:
        """Learn the schema from `table`, then train LightGBM with `params` for `rounds`."""
        from mlcrew.training.members import train_lightgbm

        X, y = self.prepare(table, target, features)
        self.booster_ = train_lightgbm(X, y, self.categorical_indices, self.params, self.rounds)
        return self

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, f in enumerate(self.schema_) if f["type"] == "category"]

    def prepare(
        self, table: pa.Table, target: str, features: list[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Learn the input schema, classes and target type from `table`; returns the float
        matrix every estimator reads and the target (class indices, or floats)."""
        import numpy as np
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
        self.target_type_ = target_type_of(y_col.type)
        self.libraries_ = installed_libraries()
        if self.task == "classification":
            # Text labels order the classes (stable across versions); predictions convert
            # back to the target's own type through `target_type_`.
            self.classes_ = sorted({str(v) for v in y_col.to_pylist()})
            index = {c: i for i, c in enumerate(self.classes_)}
            y = np.array([index[str(v)] for v in y_col.to_pylist()], dtype=np.int64)
        else:
            self.classes_ = []
            y = pc.cast(y_col, pa.float64()).to_numpy(zero_copy_only=False)
        self.environment_warnings_: list[str] = []
        return self._matrix(table), y

    def set_ensemble(self, members: list[Member], weights: list[float]) -> TabularModel:
        """Predict with these fitted members (after `prepare`): saved as format 3."""
        from mlcrew.training.members import Ensemble

        self.booster_ = Ensemble(members, weights)
        self.params, self.rounds = {}, 0
        self.libraries_ = installed_libraries(ENSEMBLE_LIBRARIES)
        return self

    @property
    def is_ensemble(self) -> bool:
        from mlcrew.training.members import Ensemble

        return isinstance(self.booster_, Ensemble)

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
                X[:, j] = _category_codes(col, f["categories"])
            else:
                X[:, j] = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        return X

    def matrix(self, table: pa.Table) -> np.ndarray:
        """The float matrix of `table` that every member reads (category codes, NaN for null)."""
        return self._matrix(table)

    def target_array(self, table: pa.Table) -> np.ndarray:
        """The target of `table` as the members learn it: class indices, or floats."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        col = table.column(self.target_)
        if self.task == "regression":
            return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]
        index = {c: i for i, c in enumerate(self.classes_)}
        return np.array([index.get(str(v), -1) for v in col.to_pylist()], dtype=np.int64)

    # ------------------------------------------------------------------ predict
    @property
    def feature_names(self) -> list[str]:
        return [f["name"] for f in self.schema_]

    def predict_raw(self, table: pa.Table, threads: int = 1) -> np.ndarray:
        """LightGBM's output: values, P(class 1) for binary, or a probability per class."""
        import numpy as np

        raw = np.asarray(self.booster_.predict(self._matrix(table), num_threads=threads))
        return self.postprocess(raw)

    def postprocess(self, raw: np.ndarray) -> np.ndarray:
        """The booster's (or ensemble's) output through the model's calibration, if any."""
        if not self.calibration_:
            return raw
        from mlcrew.training.decision import apply_calibration

        return apply_calibration(self.calibration_, raw)

    @property
    def class_values(self) -> list[Any]:
        """The classes in the target's own type (True, 0, "yes"), in the order of `classes_`."""
        return [class_value(c, self.target_type_) for c in self.classes_]

    def class_indices(self, raw: np.ndarray) -> np.ndarray:
        """The index into `classes_` of each row's predicted class, from `predict_raw`: the most
        probable class, or the decision the train stage fitted to the outcome values."""
        if self.decision_ is None:
            if raw.ndim == 1:
                return (raw >= 0.5).astype("int64")
            return raw.argmax(axis=1)  # type: ignore[no-any-return]
        from mlcrew.training.decision import decide

        return decide(self.decision_, self.probabilities(raw))

    def predict_labels(self, table: pa.Table) -> list[str]:
        """Predicted classes as text labels (what metrics compare with `str(target)`)."""
        return [self.classes_[int(i)] for i in self.class_indices(self.predict_raw(table))]

    def predict_table(self, table: pa.Table) -> list[Any]:
        """Predictions in the target's own type: floats, or classes as bool, int or str."""
        return self.predict_array(table).to_pylist()  # type: ignore[no-any-return]

    def predict_array(self, table: pa.Table, raw: np.ndarray | None = None) -> pa.Array:
        """Predictions as one typed Arrow array (float64, or the target's type for classes)."""
        import pyarrow as pa

        raw = self.predict_raw(table) if raw is None else raw
        if self.task == "regression":
            return pa.array(raw, type=pa.float64())
        values = pa.array(self.class_values, type=_arrow_type(self.target_type_))
        return values.take(pa.array(self.class_indices(raw)))

    def probabilities(self, raw: np.ndarray) -> np.ndarray:
        """Per-class probabilities (rows x classes, in the order of `classes_`)."""
        import numpy as np

        if raw.ndim == 1:
            return np.column_stack([1.0 - raw, raw])
        return raw

    def predict_rows(self, rows: list[dict[str, Any]]) -> list[Any]:
        """Validate JSON-like rows against the schema, then predict.

        The request path: the rows go straight into the float matrix (no Arrow table), which
        is several times cheaper for the few rows of a request and gives the same matrix."""
        import numpy as np

        raw = np.asarray(self.booster_.predict(self.rows_matrix(rows), num_threads=1))
        raw = self.postprocess(raw)
        if self.task == "regression":
            return raw.tolist()  # type: ignore[no-any-return]
        values = self.class_values
        return [values[i] for i in self.class_indices(raw).tolist()]

    def rows_matrix(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Validated rows as the matrix LightGBM reads (the same as `_matrix` of their table)."""
        import numpy as np

        columns = self._validated_columns(rows)
        X = np.empty((len(rows), len(self.schema_)), dtype=np.float64)
        for j, f in enumerate(self.schema_):
            values = columns[j]
            if f["type"] == "category":
                index = self._levels(j)
                X[:, j] = [math.nan if v is None else index.get(v, math.nan) for v in values]
            else:
                X[:, j] = [math.nan if v is None else float(v) for v in values]
        return X

    def _levels(self, j: int) -> dict[str, float]:
        """Category level -> code of feature `j`, built once per model."""
        cache: dict[int, dict[str, float]] = self.__dict__.setdefault("_level_codes", {})
        if j not in cache:
            cache[j] = {c: float(i) for i, c in enumerate(self.schema_[j]["categories"])}
        return cache[j]

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

        columns = self._validated_columns(rows)
        arrays = {}
        for f, values in zip(self.schema_, columns, strict=True):
            if f["type"] == "category":
                arrays[f["name"]] = pa.array(values, type=pa.string())
            elif f["type"] == "boolean":
                arrays[f["name"]] = pa.array(values, type=pa.bool_())
            else:
                arrays[f["name"]] = pa.array(
                    [None if v is None else float(v) for v in values], type=pa.float64()
                )
        return pa.table(arrays)

    def _validated_columns(self, rows: list[dict[str, Any]]) -> list[list[Any]]:
        """Each feature's values (categories as their level text), or a ModelInputError that
        lists every problem by row and field."""
        problems: list[dict[str, Any]] = []
        columns: list[list[Any]] = [[] for _ in self.schema_]
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                problems.append({"row": i, "field": None, "error": "a row must be a JSON object"})
                continue
            for j, f in enumerate(self.schema_):
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
                columns[j].append(value)
        if problems:
            first = problems[0]
            raise ModelInputError(
                f"row {first['row']}, field {first['field']!r}: {first['error']}", problems
            )
        return columns

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> str:
        """The model document. Deterministic: nothing in it depends on when or where it ran."""
        doc: dict[str, Any] = {
            "format": FORMAT,
            "task": self.task,
            "target": self.target_,
            "target_type": self.target_type_,
            "schema": self.schema_,
            "classes": self.classes_,
            "libraries": self.libraries_,
        }
        if self.calibration_:
            doc["calibration"] = self.calibration_
        if self.decision_:
            doc["decision"] = self.decision_
        if self.is_ensemble:
            ensemble = cast("Ensemble", self.booster_)
            doc["format"] = ENSEMBLE_FORMAT
            doc["members"] = [
                {**m.to_doc(), "weight": w}
                for m, w in zip(ensemble.members, ensemble.weights, strict=True)
            ]
        else:
            doc["params"] = self.params
            doc["rounds"] = self.rounds
            doc["lightgbm"] = cast("lgb.Booster", self.booster_).model_to_string()
        return json.dumps(doc, sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "model") -> TabularModel:
        """Load a model document. Only JSON and LightGBM's text format are parsed, so nothing
        in the file can run; anything else is a DataError naming `source` and the field.
        `environment_warnings_` then names each library whose major version differs from the
        one that trained the model."""
        from mlcrew.training.members import native_booster

        doc = _parse_document(text, source)
        model = cls(doc.task, doc.params or {}, doc.rounds or 0)
        model.target_ = doc.target
        model.target_type_ = doc.target_type
        model.schema_ = [f.model_dump(exclude_none=True) for f in doc.schema_]
        model.classes_ = doc.classes
        model.libraries_ = doc.libraries
        model.calibration_ = (
            doc.calibration.model_dump(exclude_none=True) if doc.calibration else None
        )
        model.decision_ = doc.decision.model_dump(exclude_none=True) if doc.decision else None
        if doc.format == ENSEMBLE_FORMAT:
            return model._load_members(doc, source)
        if doc.lightgbm is None:
            raise DataError(f"{source}: the model document has no 'lightgbm' field; it is damaged")
        model.booster_ = native_booster(doc.lightgbm, source)
        expected = len(model.schema_)
        if model.booster_.num_feature() != expected:
            raise DataError(
                f"{source}: the LightGBM model reads {model.booster_.num_feature()} features but "
                f"the schema lists {expected}; the document is inconsistent"
            )
        model.environment_warnings_ = library_differences(doc.libraries)
        return model

    def _load_members(self, doc: _Document, source: str) -> TabularModel:
        from mlcrew.training.members import Ensemble, member_from_doc

        if not doc.members:
            raise DataError(f"{source}: the model document lists no members; it is damaged")
        members, weights = [], []
        for i, raw in enumerate(doc.members):
            weight = raw.pop("weight", None) if isinstance(raw, dict) else None
            if not isinstance(weight, int | float) or not math.isfinite(weight) or weight <= 0:
                raise DataError(f"{source}: member {i} has no positive weight; it is damaged")
            member = member_from_doc(raw, f"{source}, member {i}")
            booster = getattr(member, "booster_", None)
            if booster is not None and booster.num_feature() != len(self.schema_):
                raise DataError(
                    f"{source}, member {i}: the LightGBM model reads {booster.num_feature()} "
                    f"features but the schema lists {len(self.schema_)}; it is damaged"
                )
            members.append(member)
            weights.append(float(weight))
        self.booster_ = Ensemble(members, weights)
        self.environment_warnings_ = library_differences(doc.libraries)
        return self

    def input_schema(self) -> list[dict[str, Any]]:
        return [dict(f) for f in self.schema_]


# ---------------------------------------------------------------------- the document


class _Field(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    type: FieldType
    nullable: bool = False
    categories: list[str] | None = None
    range: list[float | None] | None = None


class _CalibrationPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    a: float | None = None
    b: float | None = None
    x: list[float] | None = None
    y: list[float] | None = None


class _Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal["sigmoid", "isotonic"]
    columns: list[_CalibrationPart]


class _Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    positive: int | None = None
    threshold: float | None = None
    matrix: list[list[float]] | None = None


class _Document(BaseModel):
    """What a model document must hold: plain JSON values of known shapes, nothing else."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    format: str
    task: Literal["regression", "classification"]
    target: str
    target_type: TargetType = "string"  # format 1 predicted classes as text
    schema_: list[_Field]
    classes: list[str]
    params: dict[str, str | int | float | bool | None] | None = None
    rounds: int | None = None
    libraries: dict[str, str] = {}  # format 1 did not record them
    lightgbm: str | None = None
    members: list[dict[str, Any]] | None = None  # ENSEMBLE_FORMAT
    calibration: _Calibration | None = None
    decision: _Decision | None = None

    def __init__(self, **data: Any) -> None:
        if "schema" in data:
            data["schema_"] = data.pop("schema")
        super().__init__(**data)


def _parse_document(text: str | bytes, source: str) -> _Document:
    try:
        raw = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise DataError(
            f"{source} is not an mlcrew model: it is not a JSON document (mlcrew never loads "
            "pickles or other executable formats); re-run 'mlcrew run --force' to rebuild it"
        ) from None
    if not isinstance(raw, dict) or raw.get("format") not in READABLE_FORMATS:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        hint = (
            "; it was written by a newer mlcrew: upgrade mlcrew"
            if isinstance(found, str) and found.startswith("mlcrew.lightgbm/")
            else ""
        )
        raise DataError(
            f"{source} is not an mlcrew model (format {found!r}, readable: "
            f"{', '.join(READABLE_FORMATS)}){hint}"
        )
    try:
        return _Document(**raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]).replace("schema_", "schema")
        raise DataError(
            f"{source}: field {where!r} of the model document is invalid: {first['msg']}; "
            "the artifact is damaged or not an mlcrew model"
        ) from None


def target_type_of(arrow_type: pa.DataType) -> TargetType:
    """How a target column's values come back from predict: its own JSON type."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "number"
    return "string"


def class_value(label: str, target_type: TargetType) -> Any:
    """A class's text label (as stored) back in the target's own type."""
    if target_type == "boolean":
        return label == "True"
    if target_type == "integer":
        return int(label)
    if target_type == "number":
        return float(label)
    return label


def _arrow_type(target_type: TargetType) -> pa.DataType:
    import pyarrow as pa

    types = {"boolean": pa.bool_(), "integer": pa.int64(), "number": pa.float64()}
    return types.get(target_type, pa.string())


def installed_libraries(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """Versions of the libraries that train and read a model, as installed now (read from
    their metadata: a server that only loads models never imports the lightgbm package)."""
    import platform
    from importlib import metadata

    from mlcrew import __version__

    found = {name: metadata.version(name) for name in names if name not in ("mlcrew", "python")}
    return {**found, "mlcrew": __version__, "python": platform.python_version()}


def _major(name: str, version: str) -> tuple[int, ...]:
    """The part of a version whose change may break a model: the major number, plus the minor
    for Python and for 0.x releases (where a minor release may break)."""
    import re

    found = re.match(r"(\d+)(?:\.(\d+))?", version)
    if found is None:
        return ()
    major, minor = int(found.group(1)), int(found.group(2) or 0)
    return (major, minor) if name == "python" or major == 0 else (major,)


def library_differences(recorded: dict[str, str]) -> list[str]:
    """One sentence per library whose major version differs from the one that trained."""
    if not recorded:
        return []
    names = tuple(n for n in ENSEMBLE_LIBRARIES if n in recorded or n in LIBRARIES)
    installed = installed_libraries(names)
    notes = []
    for name in names:
        was, now = recorded.get(name), installed.get(name)
        if was is None or now is None or _major(name, was) == _major(name, now):
            continue
        if name == "lightgbm":
            notes.append(
                f"lightgbm {was} trained this model but {now} is installed: a different major "
                "version of LightGBM may read the model differently or change its predictions; "
                f"install lightgbm {was.split('.')[0]}.x or retrain with 'mlcrew run --force'"
            )
        else:
            notes.append(
                f"{name} {was} trained this model but {now} is installed (a different major "
                "version); check the predictions or retrain"
            )
    return notes


def _category_codes(col: Any, categories: list[str]) -> np.ndarray:
    """Each value's index among the training levels as a float; unknown and null -> NaN."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t):
        text = pc.cast(col, pa.string())  # integers print as _category_text prints them
    else:  # floats (3.0 -> "3"), booleans and anything else: the same text as at training
        text = pa.array(
            [None if v is None else _category_text(v) for v in col.to_pylist()], type=pa.string()
        )
    codes = pc.index_in(text, value_set=pa.array(categories, type=pa.string()))
    return pc.cast(codes, pa.float64()).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer too large for a float
        return False


def _category_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
