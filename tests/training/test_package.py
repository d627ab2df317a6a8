"""The model document: what it records, old formats, library checks, and the target's own type."""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm
import numpy
import pyarrow as pa
import pytest
from sklearn.datasets import load_breast_cancer

import mlcrew
from mlcrew.training.model import TabularModel, base_params

RESOURCES = Path(__file__).parent.parent / "resources"


def cancer(target: str) -> pa.Table:
    """Breast cancer rows with the target as int 0/1, bool, or text."""
    data = load_breast_cancer()
    cols = {name.replace(" ", "_"): data.data[:, i] for i, name in enumerate(data.feature_names)}
    values = [int(t) for t in data.target]
    if target == "integer":
        cols["y"] = pa.array(values, type=pa.int64())
    elif target == "boolean":
        cols["y"] = pa.array([bool(v) for v in values], type=pa.bool_())
    else:
        cols["y"] = pa.array(["benign" if v else "malignant" for v in values])
    return pa.table(cols)


def fit(table: pa.Table) -> TabularModel:
    features = [c for c in table.column_names if c != "y"]
    params = base_params("classification", 2, 0, 1)
    return TabularModel("classification", params, 30).fit(table, "y", features)


def test_document_records_schema_task_target_type_and_libraries() -> None:
    doc = json.loads(fit(cancer("boolean")).to_json())
    assert doc["format"] == "mlcrew.lightgbm/2"
    assert (doc["task"], doc["target"], doc["target_type"]) == ("classification", "y", "boolean")
    assert doc["schema"][0] == {
        "name": "mean_radius",
        "type": "number",
        "nullable": False,
        "range": [6.981, 28.11],
    }
    assert doc["libraries"] == {
        "lightgbm": lightgbm.__version__,
        "numpy": numpy.__version__,
        "pyarrow": pa.__version__,
        "mlcrew": mlcrew.__version__,
        "python": doc["libraries"]["python"],
    }
    assert doc["libraries"]["python"].startswith("3.")


@pytest.mark.parametrize(
    ("target", "kind", "expected"),
    [("integer", int, {0, 1}), ("boolean", bool, {False, True}), ("string", str, {"benign"})],
)
def test_predictions_have_the_targets_own_type(target: str, kind: type, expected: set) -> None:
    table = cancer(target)
    model = TabularModel.from_json(fit(table).to_json())  # as served: after a round trip
    predictions = model.predict_table(table)
    assert {type(p) for p in predictions} == {kind}
    assert expected <= set(predictions)
    truth = table.column("y").to_pylist()
    assert sum(p == t for p, t in zip(predictions, truth, strict=True)) / len(truth) > 0.95
    rows = table.select(model.feature_names).slice(0, 3).to_pylist()
    assert model.predict_rows(rows) == predictions[:3]
    # JSON clients see true/false and 0/1, never the strings "True" or "0".
    first = json.dumps(model.predict_rows(rows[:1]))
    assert first in {"[true]", "[false]", "[0]", "[1]", '["benign"]', '["malignant"]'}


def test_format_1_documents_still_load() -> None:
    text = (RESOURCES / "model-v1-classification.json").read_text()
    assert json.loads(text)["format"] == "mlcrew.lightgbm/1"
    model = TabularModel.from_json(text)
    rows = [{"color": "red", "size": 1.0}, {"color": "blue", "size": 2.0}]
    assert model.predict_rows(rows) == ["yes", "no"]
    assert model.environment_warnings_ == []  # format 1 recorded no library versions
    again = json.loads(model.to_json())  # saved again, it is a format 2 document
    assert again["format"] == "mlcrew.lightgbm/2" and again["target_type"] == "string"


def test_a_different_major_library_version_is_named_at_load() -> None:
    doc = json.loads(fit(cancer("integer")).to_json())
    assert TabularModel.from_json(json.dumps(doc)).environment_warnings_ == []
    major = int(lightgbm.__version__.split(".")[0])
    doc["libraries"]["lightgbm"] = f"{major}.0.0"  # same major, other minor: no warning
    assert TabularModel.from_json(json.dumps(doc)).environment_warnings_ == []
    doc["libraries"]["lightgbm"] = f"{major - 1}.3.0"
    doc["libraries"]["numpy"] = "1.26.4"
    warnings = TabularModel.from_json(json.dumps(doc)).environment_warnings_
    assert len(warnings) == (2 if not numpy.__version__.startswith("1.") else 1)
    assert warnings[0].startswith(f"lightgbm {major - 1}.3.0 trained this model but ")
    assert f"install lightgbm {major - 1}.x or retrain" in warnings[0]


def test_a_newer_format_asks_for_an_upgrade() -> None:
    doc = json.loads(fit(cancer("integer")).to_json())
    doc["format"] = "mlcrew.lightgbm/9"
    with pytest.raises(mlcrew.DataError, match="written by a newer mlcrew: upgrade mlcrew"):
        TabularModel.from_json(json.dumps(doc))


def test_the_request_path_builds_the_same_matrix_as_the_table_path() -> None:
    import numpy as np

    table = pa.table(
        {
            "color": ["red", "blue", None, "green"] * 25,
            "day": pa.array([1, 2, 3, 4] * 25, type=pa.int64()),
            "wet": [True, False, None, True] * 25,
            "size": [1.0, None, 3.5, 4.0] * 25,
            "y": [10.0, 1.0, 11.0, 5.0] * 25,
        }
    )
    model = TabularModel("regression", base_params("regression", 0, 0, 1), 20, ["day"])
    model.fit(table, "y", ["color", "day", "wet", "size"])
    rows = [
        {"color": "red", "day": 2, "wet": True, "size": 1.5},
        {"color": "purple", "day": "3", "wet": False, "size": None},  # unseen level, text day
        {"color": None, "day": 4.0, "wet": None, "size": 7},  # nulls, a float day, an int size
    ]
    fast = model.rows_matrix(rows)
    assert np.array_equal(fast, model._matrix(model.rows_to_table(rows)), equal_nan=True)
    assert np.isnan(fast[1, 0]) and fast[1, 1] == 2.0 and fast[2, 1] == 3.0
    assert model.predict_rows(rows) == model.predict_table(model.rows_to_table(rows))
