"""Evaluation in the domain expert's words: the value-optimal threshold, value in money, slices
with their own gates, calibration, and the service predicting with the chosen threshold."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mlcrew.pipeline.runner import Runner
from mlcrew.project import Project, init_project
from mlcrew.training.decision import best_threshold, classification_value, value_matrix
from mlcrew.training.model import TabularModel
from mlcrew.training.report import evaluation, render


def test_the_threshold_of_highest_value_against_a_hand_computed_case() -> None:
    """Six rows, caught defaulter +10, missed defaulter -20, false alarm -5, the rest 0.

    Predicting the top i rows positive (by P) gives, for i = 0..6: -60, -30, 0, -5, -10, +20,
    +15. The best is i = 5: every row down to P = 0.3 is flagged, so the threshold lies between
    0.3 and 0.1, at their midpoint."""
    from mlcrew.spec import Value

    value = Value(true_positive=10, false_negative=-20, false_positive=-5, true_negative=0)
    classes = ["No", "Yes"]
    matrix = value_matrix(value, classes)
    y = np.array([1, 1, 0, 0, 1, 0])
    p_yes = np.array([0.9, 0.8, 0.7, 0.4, 0.3, 0.1])
    threshold = best_threshold(matrix, y, p_yes, pos=1)
    assert threshold == pytest.approx(0.2)
    pred = np.where(p_yes >= threshold, 1, 0)
    assert classification_value(matrix, y, pred) == 20.0
    # At the usual 0.5 (i = 3) the same model loses money.
    assert classification_value(matrix, y, np.where(p_yes >= 0.5, 1, 0)) == -5.0
    # With the positive class first in sorted order, the same numbers mirror.
    other = value_matrix(
        Value(positive="No", true_positive=10, false_negative=-20, false_positive=-5),
        classes,
    )
    assert other[0, 0] == 10 and other[0, 1] == -20 and other[1, 0] == -5


@pytest.fixture(scope="module")
def credit(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = init_project(tmp_path_factory.mktemp("credit") / "p", example="credit-default")
    proj = Project.open(root, db_url=f"sqlite:///{root / 'meta.db'}")
    result = Runner(proj.root, proj.store, proj.spec, proj.spec_text).run().to_json()
    yield proj, result
    proj.close()


def test_value_in_money_matches_the_confusion_matrix(credit: Any) -> None:
    proj, result = credit
    assert result["verdict"]["passed"], result["verdict"]
    doc = evaluation(proj.store, "credit-default")
    value, details = doc["value"], doc["details"]
    # Rows: actual False, True; columns: predicted False, True. Values from the example's spec.
    (tn, fp), (fn, tp) = details["confusion"]
    assert value["total"] == tp * -300 + fn * -2500 + fp * -150 + tn * 0
    assert value["per_row"] == pytest.approx(value["total"] / doc["rows"])
    # The dummy predicts nobody defaults: every defaulter is missed.
    assert value["baseline_total"] == (fn + tp) * -2500
    assert value["total"] > value["baseline_total"]
    # Missed defaulters cost far more than calls: the threshold sits well below 0.5, and
    # on the test split it is worth more than 0.5 would be.
    assert 0 < value["threshold"] < 0.5
    assert value["total"] > value["at_half"]
    assert max(p["value"] for p in value["curve"]) >= value["total"]
    assert doc["champion"] == {"version": 1, "total": value["total"], "same": True}
    # Calibrated probabilities: the train stage recorded the Brier score before and after.
    decision = doc["model"]["decision"]
    assert decision["calibration"] == "sigmoid"
    assert decision["brier_after"] <= decision["brier_before"] + 1e-4
    assert details["calibrated"] and 0 < details["brier"] < 0.05
    assert len(details["reliability"]) >= 5
    # Slices: rows add up, and the students' gate is in the verdict.
    by_name = {s["name"]: s for s in doc["slices"]}
    assert by_name["students"]["rows"] + by_name["non-students"]["rows"] == doc["rows"]
    assert any(g["gate"].startswith("slice 'students': recall >= 0.5") for g in doc["gates"])
    md = render(doc, "md")
    assert "| this model | " in md and "Decision: predict **True**" in md


def test_the_service_predicts_with_the_value_optimal_threshold(credit: Any) -> None:
    from mlcrew.api.app import create_app
    from tests.asgi import in_thread

    proj, result = credit
    train = next(s for s in result["stages"] if s["name"] == "train")
    model = TabularModel.from_json(proj.store.artifacts.read_bytes(train["outputs"]["model"]))
    threshold = model.decision_["threshold"]  # type: ignore[index]
    # Customers whose (calibrated) P(default) lies between the threshold and 0.5.
    rows = [
        {"student": s, "balance": float(b), "income": 40000.0}
        for s in (False, True)
        for b in range(0, 2600, 20)
    ]
    raw = model.predict_raw(model.rows_to_table(rows))
    between = [r for r, p in zip(rows, raw, strict=True) if threshold <= p < 0.5]
    assert between, "no row between the threshold and 0.5: pick other balances"
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/v1/models/credit-default/predict", json={"rows": between})

    response = in_thread(call)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == [True] * len(between)  # 0.5 would say False


def _groups_project(root: Path, slice_min: float) -> Path:
    """Group A's label follows x; group B's is a coin flip: fine overall, bad for B."""
    rng = np.random.default_rng(5)
    rows = []
    for i in range(1500):
        group = "B" if i % 5 == 0 else "A"
        x = float(rng.normal())
        y = (x > 0) if group == "A" else bool(rng.integers(0, 2))
        rows.append([i, group, x, "yes" if y else "no"])
    root.mkdir(parents=True)
    with open(root / "data.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "grp", "x", "label"])
        w.writerows(rows)
    (root / "mlcrew.yaml").write_text(
        "name: groups\nsources: {rows: {path: data.csv}}\n"
        "dataset: {from: rows, split: {by: random, test: 0.3}}\ntarget: label\n"
        "features: {exclude: [id]}\n"
        "objective:\n  metric: accuracy\n  deal_breakers: [{metric: accuracy, min: 0.8}]\n"
        "  slices:\n"
        "    - {name: group A, where: {column: grp, in: [A]}}\n"
        f"    - {{name: group B, where: {{column: grp, in: [B]}}, "
        f"deal_breakers: [{{metric: accuracy, min: {slice_min}}}]}}\n"
        "    - {name: high x, where: {column: x, between: [1.0, null]}}\n"
    )
    return root


def test_a_slice_gate_fails_a_model_that_passes_overall(tmp_path: Path) -> None:
    root = _groups_project(tmp_path / "p", slice_min=0.8)
    proj = Project.open(root, db_url=f"sqlite:///{root / 'meta.db'}")
    result = Runner(proj.root, proj.store, proj.spec, proj.spec_text).run().to_json()
    verdict = result["verdict"]
    assert verdict["passed"] is False
    reasons = "\n".join(verdict["reasons"])
    assert "passed: accuracy >= 0.8" in reasons  # overall the model is fine
    assert "FAILED: slice 'group B': accuracy >= 0.8" in reasons
    assert result["champion"] is None  # a failed gate is never promoted
    report = json.loads(
        proj.store.artifacts.read_bytes(
            next(s for s in result["stages"] if s["name"] == "evaluate")["outputs"]["report"]
        )
    )
    by_name = {s["name"]: s for s in report["slices"]}
    assert by_name["group A"]["metrics"]["accuracy"] > 0.9
    assert by_name["group B"]["metrics"]["accuracy"] < 0.7
    assert 0 < by_name["high x"]["rows"] < report["rows"]
    proj.close()


def test_a_bad_slice_is_a_clear_error(tmp_path: Path) -> None:
    from mlcrew.errors import DataError

    root = _groups_project(tmp_path / "p", slice_min=0.1)
    spec = root / "mlcrew.yaml"
    spec.write_text(spec.read_text().replace("column: x, between", "column: grp, between"))
    proj = Project.open(root, db_url=f"sqlite:///{root / 'meta.db'}")
    with pytest.raises(DataError, match=r"slices 'high x': between needs a numeric column"):
        Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
    proj.close()


def test_the_mlflow_export_refuses_what_its_loader_cannot_predict(
    credit: Any, tmp_path: Path
) -> None:
    """The exported loader reads one plain LightGBM: this model (the linear baseline, calibrated,
    with a value threshold) is refused by name rather than exported to predict differently."""
    from mlcrew.errors import DataError
    from mlcrew.serving.export import export_model
    from mlcrew.serving.package import load_package

    proj, _ = credit
    with pytest.raises(DataError, match="standalone loader reads a single LightGBM model"):
        export_model(
            load_package(proj.store, "credit-default", "champion"), "mlflow", tmp_path / "x"
        )
    assert not (tmp_path / "x").exists()


def test_value_keys_and_kinds_are_checked_in_the_targets_own_terms() -> None:
    """YAML's 0 / true name the classes "0" / "True"; a value of the wrong kind for the task
    is refused before any model is fitted."""
    from mlcrew.errors import DataError
    from mlcrew.spec import Value
    from mlcrew.training.decision import check_value

    value = Value(matrix={0: {0: 1, 1: -5}, 1: {0: -50, 1: 10}})  # type: ignore[dict-item]
    assert value_matrix(value, ["0", "1"]).tolist() == [[1, -5], [-50, 10]]
    flags = Value(matrix={True: {True: 3}})  # type: ignore[dict-item]
    assert value_matrix(flags, ["False", "True"]).tolist() == [[0, 0], [0, 3]]
    with pytest.raises(DataError, match="the task is regression; give per_unit"):
        check_value(Value(true_positive=1), "regression", [])
    with pytest.raises(DataError, match="the target has 3 classes; give matrix"):
        check_value(Value(false_negative=-1), "classification", ["a", "b", "c"])
    with pytest.raises(DataError, match=r"matrix names 'd', not classes"):
        check_value(Value(matrix={"d": {"a": 1}}), "classification", ["a", "b"])


def test_an_estimator_refusing_missing_values_imputes_them_at_predict_time() -> None:
    """Trained on rows without a gap, it still answers a row with a null or an unseen
    category (both arrive as NaN) instead of failing."""
    from mlcrew.training.members import Problem, SklearnMember

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    member = SklearnMember("sklearn.linear_model.LogisticRegression", {})
    member.fit(X, y, Problem("classification", 2, (), 0, 1))
    gap = X[:5].copy()
    gap[:, 1] = np.nan
    p = member.predict(gap)
    assert p.shape == (5,) and np.isfinite(p).all()
