"""`mlcrew export --format mlflow`: MLflow loads the model and predicts exactly like mlcrew."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from mlcrew.errors import DataError
from mlcrew.project import Project
from mlcrew.serving.export import export_mlflow
from mlcrew.serving.package import load_package
from mlcrew.training.model import TabularModel, base_params

NEW_DATA = "data/bikeshare-jul-dec.csv"


def test_round_trip_through_mlflow(trained_project: Project, tmp_path: Path) -> None:
    target = tmp_path / "exported"
    env = {**os.environ, "MLCREW_DB_URL": trained_project.store.db_url}
    args = ["export", "bike-demand", "1", "--format", "mlflow", str(target)]
    done = subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", *args, "-p", str(trained_project.root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "exported bike-demand version 1 as an MLflow model" in done.stdout

    package = load_package(trained_project.store, "bike-demand", 1)
    stored = (target / "data" / "mlcrew" / "model.json").read_bytes()
    assert hashlib.sha256(stored).hexdigest() == package.info.model_digest
    manifest = json.loads((target / "data" / "mlcrew" / "package.json").read_text())
    assert manifest["metrics"] == package.info.metrics and manifest["metrics"]["mae"] > 0
    assert manifest["lineage"]["run_id"] == package.info.run_id
    assert set(manifest["lineage"]["data"]) == {"split.train", "split.test"}
    assert manifest["libraries"]["lightgbm"] == package.model.libraries_["lightgbm"]

    table = pcsv.read_csv(trained_project.root / NEW_DATA)
    loaded = mlflow.pyfunc.load_model(str(target))
    theirs = loaded.predict(table.to_pandas())
    ours = package.model.predict_table(table)
    assert len(theirs) == table.num_rows == len(ours)
    assert np.array_equal(np.asarray(theirs), np.asarray(ours))

    # Rows as a JSON client sends them (categories as text, a missing value, an unseen level).
    rows = table.select(package.model.feature_names).slice(0, 5).to_pylist()
    rows[0]["weathersit"], rows[1]["hum"], rows[2]["weekday"] = "fog", None, "6"
    import pandas as pd

    assert list(loaded.predict(pd.DataFrame(rows))) == package.model.predict_rows(rows)

    again = subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", *args, "-p", str(trained_project.root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert again.returncode == 1 and "already exists; remove it or choose another" in again.stderr


def test_classes_keep_their_type_through_mlflow(tmp_path: Path) -> None:
    from sklearn.datasets import load_wine

    data = load_wine()
    cols = {n: data.data[:, i] for i, n in enumerate(data.feature_names)}
    cols["cultivar"] = pa.array([int(t) for t in data.target], type=pa.int64())
    table = pa.table(cols)
    features = list(data.feature_names)
    model = TabularModel("classification", base_params("classification", 3, 0, 1), 30)
    model.fit(table, "cultivar", features)
    text = model.to_json()

    from mlcrew.registry.versions import register_version
    from mlcrew.store import Store

    store = Store(f"sqlite:///{tmp_path / 'meta.db'}", tmp_path / "artifacts")
    digest = store.artifacts.put_bytes(text.encode())
    register_version(
        store,
        "wine",
        digest,
        run_id="r1",
        spec_digest="0" * 64,
        data_digests={},
        metrics={"accuracy": 1.0},
        verdict={"passed": True, "reasons": []},
    )
    export_mlflow(load_package(store, "wine", 1), tmp_path / "wine")
    predictions = mlflow.pyfunc.load_model(str(tmp_path / "wine")).predict(table.to_pandas())
    assert predictions.dtype == np.int64
    assert list(predictions) == model.predict_table(table)
    assert {int(p) for p in predictions} == {0, 1, 2}
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(DataError, match="busy already exists"):
        export_mlflow(load_package(store, "wine", 1), tmp_path / "busy")
    store.close()
