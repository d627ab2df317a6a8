"""The prediction flow as a library: one function for every face, classification included,
and a model cache that stays bounded."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_breast_cancer, load_wine

import mlcrew
from mlcrew.api.app import create_app
from mlcrew.errors import LimitExceeded, ModelInputError, NotFoundError
from mlcrew.project import Project
from mlcrew.serving.loader import ModelCache
from mlcrew.serving.server import BackgroundServer
from mlcrew.spec import Serving
from tests.serving.conftest import GOOD_ROW
from tests.training.test_classification import run, write_project


def test_python_face_predicts_as_the_service_does(trained_project: Project) -> None:
    rows = [GOOD_ROW, {**GOOD_ROW, "hr": 4, "weathersit": "never seen"}]
    result = mlcrew.predict(trained_project.store, "bike-demand", rows)
    assert (result.name, result.version) == ("bike-demand", 1)
    assert result.warnings[0]["field"] == "weathersit"
    app = create_app(trained_project.root, trained_project.spec, trained_project.store)
    with BackgroundServer(app) as srv:
        body = httpx.post(f"{srv.url}/v1/models/bike-demand/predict", json={"rows": rows}).json()
    assert body == result.to_json()
    by_version = mlcrew.predict(trained_project.store, "bike-demand", rows, version=1)
    assert by_version.predictions == result.predictions


def test_library_errors_name_what_is_wrong(trained_project: Project) -> None:
    service = mlcrew.PredictionService(trained_project.store, Serving(max_rows=2), log=False)
    with pytest.raises(LimitExceeded, match=r"3 rows exceed serving\.max_rows=2"):
        service.predict("bike-demand", [GOOD_ROW] * 3)
    with pytest.raises(ModelInputError) as bad:
        service.predict("bike-demand", [{**GOOD_ROW, "temp": True}])
    assert bad.value.problems == [
        {"row": 0, "field": "temp", "error": "expected a number, got True"}
    ]


def test_alias_and_version_must_agree(two_versions: Project) -> None:
    service = mlcrew.PredictionService(two_versions.store, log=False)
    assert service.predict("bike-demand", [GOOD_ROW], alias="champion", version=1).version == 1
    with pytest.raises(NotFoundError, match="alias 'champion' is version 1, not 2"):
        service.predict("bike-demand", [GOOD_ROW], alias="champion", version=2)


def test_many_bad_rows_are_reported_in_bounded_size(trained_project: Project) -> None:
    service = mlcrew.PredictionService(trained_project.store, log=False)
    with pytest.raises(ModelInputError) as bad:
        service.predict("bike-demand", [{"hr": "x"}] * 5000)
    problems = bad.value.problems
    assert len(problems) == 101 and problems[-1]["field"] == "rows"
    assert "not shown" in str(problems[-1]["error"])


def test_model_cache_keeps_at_most_its_size(two_versions: Project) -> None:
    cache = ModelCache(two_versions.store, size=1)
    first = cache.get("bike-demand", 1)
    second = cache.get("bike-demand", 2)
    assert [m.info.version for m in cache.loaded()] == [2]
    assert cache.get("bike-demand", 1).model is not first.model  # loaded again
    assert second.info.version == 2


@pytest.mark.parametrize(
    ("loader", "classes", "tail"),
    [
        (load_breast_cancer, ["malignant", "benign"], "training: {budget: {rounds: 40}}\n"),
        (load_wine, ["barolo", "grignolino", "barbera"], "training: {budget: {rounds: 40}}\n"),
    ],
)
def test_classifiers_serve_the_same_labels_as_the_model(
    tmp_path: Path, loader: object, classes: list[str], tail: str
) -> None:
    import csv

    write_project(tmp_path / "p", loader, classes, tail)
    proj, _ = run(tmp_path / "p")
    try:
        with open(tmp_path / "p" / "data.csv", newline="") as f:
            rows = [{k: float(v) for k, v in r.items() if k != "label"} for r in csv.DictReader(f)][
                :60
            ]
        model = ModelCache(proj.store).get("clf").model
        expected = model.predict_rows(rows)
        service = mlcrew.PredictionService(proj.store, log=False)
        assert service.predict("clf", rows).predictions == expected  # many rows at once
        assert [service.predict("clf", [r]).predictions[0] for r in rows] == expected  # one by one
        assert set(expected) <= set(classes) and len(set(expected)) > 1
    finally:
        proj.close()
