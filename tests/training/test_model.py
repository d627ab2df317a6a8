"""The trained pipeline object: deterministic bytes, safe round trip, classification too."""

from __future__ import annotations

import pyarrow as pa
import pytest
from sklearn.datasets import load_breast_cancer

from mlcrew.errors import DataError, ModelInputError
from mlcrew.training.model import TabularModel, base_params


def cancer_table() -> pa.Table:
    data = load_breast_cancer()
    cols = {name.replace(" ", "_"): data.data[:, i] for i, name in enumerate(data.feature_names)}
    cols["diagnosis"] = ["benign" if t else "malignant" for t in data.target]
    return pa.table(cols)


def fit(table: pa.Table, seed: int = 0) -> TabularModel:
    features = [c for c in table.column_names if c != "diagnosis"]
    params = base_params("classification", 2, seed, 1)
    return TabularModel("classification", params, 50).fit(table, "diagnosis", features)


def test_training_twice_gives_identical_bytes() -> None:
    table = cancer_table()
    assert fit(table).to_json() == fit(table).to_json()


def test_round_trip_predicts_the_same() -> None:
    table = cancer_table()
    model = fit(table)
    again = TabularModel.from_json(model.to_json())
    assert again.predict_table(table) == model.predict_table(table)
    accuracy = (
        sum(
            p == t
            for p, t in zip(
                again.predict_table(table), table.column("diagnosis").to_pylist(), strict=True
            )
        )
        / table.num_rows
    )
    assert accuracy > 0.95


def test_loading_rejects_foreign_documents() -> None:
    with pytest.raises(DataError, match="not an mlcrew model"):
        TabularModel.from_json('{"format": "pickle"}')


def test_rows_are_validated_against_the_schema() -> None:
    model = fit(cancer_table())
    row = dict.fromkeys(model.feature_names, 1.0)
    with pytest.raises(ModelInputError) as info:
        model.predict_rows([row, {**row, "mean_radius": [1]}])
    assert info.value.problems[0]["row"] == 1 and info.value.problems[0]["field"] == "mean_radius"


def test_categorical_levels_and_unknowns() -> None:
    table = pa.table(
        {
            "color": ["red", "blue", "red", "green"] * 50,
            "size": [1.0, 2.0, 3.0, 4.0] * 50,
            "y": [10.0, 1.0, 11.0, 5.0] * 50,
        }
    )
    model = TabularModel("regression", base_params("regression", 0, 0, 1), 30, [])
    model.fit(table, "y", ["color", "size"])
    assert model.schema_[0] == {
        "name": "color",
        "type": "category",
        "categories": ["blue", "green", "red"],
        "nullable": False,
    }
    red, unseen = model.predict_rows(
        [{"color": "red", "size": 1.0}, {"color": "purple", "size": 1.0}]
    )
    assert red == pytest.approx(10.0, abs=1.0)
    assert isinstance(unseen, float)
