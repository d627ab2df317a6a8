"""The model search as a user meets it: `mlcrew run` on CSV files, the chosen model served back.

Data: scikit-learn's breast_cancer and diabetes (shipped with the package), written as CSV."""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from mlcrew.errors import DataError, SpecError
from mlcrew.pipeline.reproduce import reproduce
from mlcrew.pipeline.runner import Runner
from mlcrew.project import Project
from mlcrew.training.model import TabularModel
from tests.training.custom_estimator import ShiftedRegressor


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def cancer_project(root: Path, training: str, *, sort_by_class: bool = False) -> Path:
    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    rows = [[*x, ["malignant", "benign"][t]] for x, t in zip(data.data, data.target, strict=True)]
    if sort_by_class:
        rows.sort(key=lambda r: r[-1])  # every malignant row, then every benign one
    root.mkdir(parents=True)
    write_csv(root / "data.csv", [*names, "diagnosis"], rows)
    (root / "mlcrew.yaml").write_text(
        "name: cancer\nseed: 7\nsources: {rows: {path: data.csv}}\n"
        "dataset: {from: rows, split: {by: random, test: 0.25}}\ntarget: diagnosis\n"
        "objective: {metric: log_loss}\n" + training
    )
    return root


def diabetes_project(root: Path, training: str) -> Path:
    data = load_diabetes()
    root.mkdir(parents=True)
    rows = [[*x, t] for x, t in zip(data.data, data.target, strict=True)]
    write_csv(root / "data.csv", [*data.feature_names, "progression"], rows)
    (root / "mlcrew.yaml").write_text(
        "name: diabetes\nseed: 3\nsources: {rows: {path: data.csv}}\n"
        "dataset: {from: rows, split: {by: random, test: 0.25}}\ntarget: progression\n"
        "task: regression\nobjective: {metric: rmse}\n" + training
    )
    return root


def run(root: Path, db: str = "meta.db") -> tuple[Project, dict[str, Any]]:
    proj = Project.open(root, db_url=f"sqlite:///{root / db}")
    return proj, Runner(proj.root, proj.store, proj.spec, proj.spec_text).run().to_json()


def train_record(proj: Project) -> dict[str, Any]:
    from sqlalchemy import select

    from mlcrew.store.models import StageExecution

    with proj.store.session() as s:
        rows = s.scalars(select(StageExecution).where(StageExecution.stage == "train")).all()
        return dict(rows[-1].record)


def model_doc(proj: Project, doc: dict[str, Any]) -> dict[str, Any]:
    train = next(s for s in doc["stages"] if s["name"] == "train")
    return json.loads(proj.store.artifacts.read_bytes(train["outputs"]["model"]))  # type: ignore[no-any-return]


SEARCHES = {
    "lightgbm": "training:\n  budget: {trials: 8, rounds: 80}\n"
    "  search: {linear: false, ensemble: false}\n",
    # Five boosting rounds leave LightGBM behind, so the estimator is the one saved.
    "sklearn": "training:\n  budget: {trials: 2, rounds: 5}\n"
    "  search:\n    linear: false\n    portfolio: false\n    ensemble: false\n"
    "    estimators:\n      - {class: sklearn.ensemble.HistGradientBoostingClassifier,"
    " params: {max_iter: 60, learning_rate: 0.3, early_stopping: false}}\n",
    # On diabetes (nearly linear) LightGBM and the linear baseline blend better than either.
    "ensemble": "training:\n  budget: {trials: 5, rounds: 60}\n"
    "  search:\n    validation: {folds: 4}\n"
    "    estimators: [{class: sklearn.ensemble.ExtraTreesRegressor,"
    " params: {n_estimators: 60, min_samples_leaf: 3}}]\n",
}
PROJECTS = {"lightgbm": cancer_project, "sklearn": cancer_project, "ensemble": diabetes_project}


@pytest.mark.parametrize("kind", list(SEARCHES))
def test_the_same_spec_and_seed_give_the_same_model_bytes(tmp_path: Path, kind: str) -> None:
    """Two projects, two databases, one spec: identical digests, trials and scores."""
    docs, records = [], []
    for name in ("first", "second"):
        proj, doc = run(PROJECTS[kind](tmp_path / name, SEARCHES[kind]))
        assert doc["status"] == "ok", doc
        docs.append(doc)
        records.append(train_record(proj))
        if name == "second":
            assert reproduce(proj.store, doc["run_id"])["identical"] is True
        model = model_doc(proj, doc)
        proj.close()
    assert [s["outputs"] for s in docs[0]["stages"]] == [s["outputs"] for s in docs[1]["stages"]]
    assert records[0] == records[1]
    record = records[0]
    if kind == "lightgbm":
        # The defaults, the portfolio, then TPE; one LightGBM saved as LightGBM's own text.
        assert [t["origin"] for t in record["trials"]][:2] == ["default", "portfolio"]
        assert "tpe" in {t["origin"] for t in record["trials"]}
        assert model["format"] == "mlcrew.lightgbm/2"
        chosen = record["trials"][record["ensemble"][0]["trial"]]
        assert model["rounds"] == chosen["rounds"] <= 80  # the folds' early-stopped rounds
    elif kind == "sklearn":
        assert [t["kind"] for t in record["trials"]] == ["lightgbm", "sklearn"]
        assert model["format"] == "mlcrew.ensemble/3"
        assert [m["kind"] for m in model["members"]] == ["sklearn"]
        assert model["members"][0]["estimator"] == (
            "sklearn.ensemble.HistGradientBoostingClassifier"
        )
    else:
        assert model["format"] == "mlcrew.ensemble/3"
        assert {m["kind"] for m in model["members"]} == {"lightgbm", "linear"}
        assert sum(m["weight"] for m in model["members"]) == pytest.approx(1.0)
        assert record["validation"] == {"folds": 4}
        # Greedy selection adds only what improves the out-of-fold score.
        assert record["valid_score"] < min(t["rmse"] for t in record["trials"])


def test_an_ensemble_loads_back_and_predicts_what_it_was_evaluated_with(tmp_path: Path) -> None:
    training = SEARCHES["ensemble"].replace("Regressor", "Classifier").replace("{folds: 4}", "{}")
    proj, doc = run(cancer_project(tmp_path / "p", training.replace("log_loss", "roc_auc")))
    text = proj.store.artifacts.read_bytes(
        next(s for s in doc["stages"] if s["name"] == "train")["outputs"]["model"]
    )
    model = TabularModel.from_json(text)
    again = TabularModel.from_json(model.to_json())
    assert again.to_json() == model.to_json()  # loading and saving keeps the bytes
    rows = [dict(zip(model.feature_names, x, strict=True)) for x in load_breast_cancer().data[:50]]
    labels = model.predict_rows(rows)
    assert set(labels) <= {"malignant", "benign"}
    truth = ["malignant" if t == 0 else "benign" for t in load_breast_cancer().target[:50]]
    assert np.mean([a == b for a, b in zip(labels, truth, strict=True)]) > 0.9
    from mlcrew.registry import get_version

    metrics = get_version(proj.store, "cancer").metrics
    assert metrics["log_loss"] < 0.2 and metrics["accuracy"] > 0.93
    proj.close()


def test_a_file_sorted_by_class_searches_fine(tmp_path: Path) -> None:
    """The old search validated on the unshuffled tail of the training rows: in a file sorted
    by class that tail holds one class, and the search stopped with a misleading message."""
    training = "training:\n  budget: {trials: 3, rounds: 40}\n  search: {ensemble: false}\n"
    root = cancer_project(tmp_path / "p", training, sort_by_class=True)
    proj, doc = run(root)
    record = train_record(proj)
    proj.close()
    assert doc["verdict"]["passed"], doc["verdict"]
    assert all(np.isfinite(t["log_loss"]) for t in record["trials"])
    assert record["validation"] == {"folds": 5}
    # Kept in file order (a time split on the row number), validation follows time, and a
    # past without one of the classes is named as such, with the way out.
    text = (root / "mlcrew.yaml").read_text().replace("by: random", "by: time, order: [id]")
    rows = list(csv.reader((root / "data.csv").read_text().splitlines()))
    write_csv(root / "data.csv", ["id", *rows[0]], [[i, *r] for i, r in enumerate(rows[1:])])
    (root / "mlcrew.yaml").write_text(text)
    with pytest.raises(DataError, match=r"fold 1 learns from rows without class 'malignant'"):
        run(root, "meta2.db")
    (root / "mlcrew.yaml").write_text(
        text.replace("search: {ensemble: false}", "search: {ensemble: false, "
                     "validation: {order: shuffle}}")
    )  # fmt: skip
    proj, _ = run(root, "meta3.db")
    assert train_record(proj)["validation"] == {"folds": 5}
    proj.close()


def test_regression_search_with_holdout_and_a_linear_member(tmp_path: Path) -> None:
    training = (
        "training:\n  budget: {trials: 4, rounds: 100}\n"
        "  search: {validation: {holdout: 0.25}, portfolio: true, tuner: none}\n"
    )
    proj, doc = run(diabetes_project(tmp_path / "p", training))
    record = train_record(proj)
    assert record["validation"] == {"holdout": 0.25}
    assert [t["kind"] for t in record["trials"]] == ["lightgbm", "linear", "lightgbm", "lightgbm"]
    # Diabetes is nearly linear: the linear baseline scores best, and is in the model.
    linear = record["trials"][1]
    assert linear["rmse"] == min(t["rmse"] for t in record["trials"])
    assert 1 in [m["trial"] for m in record["ensemble"]]
    model = model_doc(proj, doc)
    kinds = [m["kind"] for m in model["members"]]
    assert "linear" in kinds
    linear_doc = model["members"][kinds.index("linear")]
    assert set(linear_doc) >= {"coef", "intercept", "means", "scales"}  # plain numbers, no code
    proj.close()


def test_an_unknown_type_in_a_saved_estimator_refuses_to_load(tmp_path: Path) -> None:
    import skops.io as sio

    proj, doc = run(
        diabetes_project(
            tmp_path / "p",
            "training:\n  budget: {trials: 2, rounds: 3}\n"  # Ridge beats 3 rounds of LightGBM
            "  search:\n    linear: false\n    ensemble: false\n    portfolio: false\n"
            "    estimators: [{class: sklearn.linear_model.Ridge, params: {alpha: 1.0}}]\n",
        )
    )
    model = model_doc(proj, doc)
    proj.close()
    member = next(m for m in model["members"] if m["kind"] == "sklearn")
    assert sio.get_untrusted_types(data=base64.b64decode(member["skops"])) == []
    X, y = load_diabetes(return_X_y=True)
    foreign = ShiftedRegressor().fit(X, y)
    member["skops"] = base64.b64encode(sio.dumps(foreign)).decode()
    with pytest.raises(DataError) as info:
        TabularModel.from_json(json.dumps(model), "model diabetes v1")
    message = str(info.value)
    assert "model diabetes v1, member 0" in message
    assert "tests.training.custom_estimator.ShiftedRegressor" in message
    assert "allow-list" in message and "not loaded" in message


def test_a_crafted_skops_member_naming_a_function_is_refused_unrun(tmp_path: Path) -> None:
    """A name under sklearn that is not a class scikit-learn defines (here subprocess's
    check_output, which a test-helper module imports) is refused: nothing is called."""
    import io
    import zipfile

    import skops.io as sio
    from sklearn.linear_model import Ridge

    marker = tmp_path / "ran"
    X, y = load_diabetes(return_X_y=True)
    original = zipfile.ZipFile(io.BytesIO(sio.dumps(Ridge().fit(X, y))))
    schema = json.loads(original.read("schema.json"))
    schema["content"]["content"]["alpha"] = {
        "__class__": "check_output",
        "__module__": "sklearn.utils._testing",
        "__loader__": "ConstructorFromReduceNode",
        "__id__": 7,
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": [
                {
                    "__class__": "list",
                    "__module__": "builtins",
                    "__loader__": "JsonNode",
                    "content": json.dumps(["touch", str(marker)]),
                    "is_json": True,
                }
            ],
        },
    }
    crafted = io.BytesIO()
    with zipfile.ZipFile(crafted, "w") as z:
        for name in original.namelist():
            z.writestr(name, json.dumps(schema) if name == "schema.json" else original.read(name))
    member = {
        "kind": "sklearn",
        "task": "regression",
        "estimator": "sklearn.linear_model.Ridge",
        "params": {},
        "impute": None,
        "skops": base64.b64encode(crafted.getvalue()).decode(),
        "weight": 1.0,
    }
    data = load_diabetes()
    doc = {
        "format": "mlcrew.ensemble/3",
        "task": "regression",
        "target": "progression",
        "target_type": "number",
        "schema": [{"name": n, "type": "number"} for n in data.feature_names],
        "classes": [],
        "libraries": {},
        "members": [member],
    }
    with pytest.raises(DataError, match=r"sklearn.utils._testing.check_output.*allow-list"):
        TabularModel.from_json(json.dumps(doc), "model x")
    assert not marker.exists()


def test_a_non_sklearn_estimator_is_refused_before_any_fit(tmp_path: Path) -> None:
    root = diabetes_project(
        tmp_path / "p",
        "training:\n  budget: {trials: 2}\n  search:\n"
        "    estimators: [{class: tests.training.custom_estimator.ShiftedRegressor}]\n",
    )
    with pytest.raises(SpecError, match=r"training.search.estimators\[0\].*allow-list"):
        run(root)
    spec = root / "mlcrew.yaml"
    spec.write_text(
        spec.read_text().replace(
            "tests.training.custom_estimator.ShiftedRegressor", "sklearn.svm.SVC"
        )
    )
    with pytest.raises(SpecError, match=r"sklearn.svm.SVC is not a regressor"):
        run(root)
    spec.write_text(spec.read_text().replace("sklearn.svm.SVC", "sklearn.nothing.Here"))
    with pytest.raises(SpecError, match=r"cannot import 'sklearn.nothing.Here'"):
        run(root)


def test_task_auto_says_what_it_chose_and_why(tmp_path: Path) -> None:
    """An integer target with 12 classes is classification, and `mlcrew run` says so."""
    from tests.test_cli import mlcrew

    root = tmp_path / "months"
    root.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(600):
        month = int(rng.integers(1, 13))
        rows.append([i, month * 10 + float(rng.normal(0, 2)), float(rng.normal()), month])
    write_csv(root / "data.csv", ["id", "signal", "noise", "month"], rows)
    (root / "mlcrew.yaml").write_text(
        "name: months\nsources: {rows: {path: data.csv}}\n"
        "dataset: {from: rows, split: {by: random, test: 0.25}}\ntarget: month\n"
        "features: {exclude: [id]}\nobjective: {metric: accuracy}\n"
    )
    said = " ".join(mlcrew("run", "-p", str(root), columns=200).stdout.split())
    assert "task: classification (target 'month' holds integers with 12 distinct values" in said
    assert "set task: regression in mlcrew.yaml" in said
    training = json.loads(mlcrew("run", "-p", str(root), "--json").stdout)["training"]
    assert training["task"] == "classification"
    assert "12 distinct values" in training["task_reason"]


def test_too_few_rows_of_a_class_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "rare"
    root.mkdir()
    rows = [[0, 3.0, "rare"]] + [[i, float(i % 7), "common"] for i in range(1, 61)]
    write_csv(root / "data.csv", ["id", "x", "label"], rows)
    (root / "mlcrew.yaml").write_text(
        "name: rare\nsources: {rows: {path: data.csv}}\n"
        "dataset: {from: rows, split: {by: time, order: [id], test: 0.01}}\ntarget: label\n"
        "training: {budget: {trials: 2}}\n"
    )
    with pytest.raises(DataError, match=r"class 'rare' has 1 row in the training split"):
        run(root)


def test_a_time_split_validates_forward_in_time(tmp_path: Path) -> None:
    """With dataset.split.by: time, every fold learns from earlier rows than it is scored on."""
    from mlcrew.project import init_project
    from mlcrew.spec import Search, Validation
    from mlcrew.training.members import Problem
    from mlcrew.training.search import make_folds

    root = init_project(tmp_path / "bikes")
    spec = root / "mlcrew.yaml"
    spec.write_text(spec.read_text().replace("{trials: 1, rounds: 300}", "{trials: 3, rounds: 60}"))
    proj, _ = run(root)
    record = train_record(proj)
    proj.close()
    assert record["validation"] == {"folds": 5, "order": "time"}
    y = np.arange(100) % 3
    problem = Problem("classification", 3, (), 0, 1)
    folds = make_folds(y, problem, Search(), ["a", "b", "c"], in_time_order=True)
    assert len(folds) == 5
    for fit, valid in folds:
        assert fit.max() < valid.min()  # the past predicts the future
    shuffled = make_folds(
        y, problem, Search(validation=Validation(order="shuffle")), ["a", "b", "c"]
    )
    assert sorted(np.concatenate([v for _, v in shuffled]).tolist()) == list(range(100))
    with pytest.raises(DataError, match=r"fold 1 learns from rows without class 'b', 'c'"):
        make_folds(
            np.array([0] * 40 + [1] * 40 + [2] * 40), problem, Search(), ["a", "b", "c"], True
        )
