"""Classification from CSV to champion: binary with a trial search, multiclass with `auto`."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer, load_wine

from mlcrew.errors import DataError
from mlcrew.pipeline.reproduce import reproduce
from mlcrew.pipeline.runner import Runner
from mlcrew.project import Project


def write_project(root: Path, loader: object, target_names: list[str], spec_tail: str) -> None:
    data = loader()  # type: ignore[operator]
    root.mkdir(parents=True)
    names = [n.replace(" ", "_").replace("/", "_") for n in data.feature_names]
    with open(root / "data.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*names, "label"])
        for row, t in zip(data.data, data.target, strict=True):
            w.writerow([*row, target_names[t]])
    (root / "mlcrew.yaml").write_text(
        "name: clf\nsources: {rows: {path: data.csv}}\n"
        "dataset: {from: rows, split: {by: random, test: 0.25}}\ntarget: label\n" + spec_tail
    )


def run(root: Path) -> tuple[Project, dict[str, object]]:
    proj = Project.open(root, db_url=f"sqlite:///{root / 'meta.db'}")
    return proj, Runner(proj.root, proj.store, proj.spec, proj.spec_text).run().to_json()


def test_binary_with_trials_and_business_gates(tmp_path: Path) -> None:
    write_project(
        tmp_path / "p",
        load_breast_cancer,
        ["malignant", "benign"],
        "objective:\n  metric: roc_auc\n  deal_breakers: [{metric: recall, min: 0.9}]\n"
        "training: {budget: {trials: 3, rounds: 60}, seed: 3}\n",
    )
    proj, doc = run(tmp_path / "p")
    assert doc["verdict"]["passed"] is True, doc["verdict"]  # type: ignore[index]
    assert doc["champion"] == {"name": "clf", "version": 1}
    train = next(s for s in doc["stages"] if s["name"] == "train")  # type: ignore[union-attr]
    assert train["state"] == "executed"
    assert reproduce(proj.store, doc["run_id"])["identical"] is True  # type: ignore[arg-type]
    proj.close()


def test_multiclass_with_auto_metric(tmp_path: Path) -> None:
    write_project(
        tmp_path / "p",
        load_wine,
        ["barolo", "grignolino", "barbera"],
        "training: {budget: {rounds: 50}}\n",
    )
    proj, doc = run(tmp_path / "p")
    assert doc["verdict"]["passed"] is True, doc["verdict"]  # type: ignore[index]
    assert any("roc_auc" in r for r in doc["verdict"]["reasons"])  # type: ignore[index]
    from mlcrew.registry import get_version

    metrics = get_version(proj.store, "clf").metrics
    assert metrics["accuracy"] > 0.85 and {"f1", "log_loss", "roc_auc"} <= set(metrics)
    proj.close()


def test_bad_training_settings_are_data_errors(tmp_path: Path) -> None:
    write_project(
        tmp_path / "p",
        load_wine,
        ["barolo", "grignolino", "barbera"],
        "features: {categorical: [alcohl]}\n",
    )
    with pytest.raises(DataError, match=r"features.categorical names \['alcohl'\]"):
        run(tmp_path / "p")
    spec = tmp_path / "p" / "mlcrew.yaml"
    spec.write_text(
        spec.read_text().replace(
            "features: {categorical: [alcohl]}", "training: {params: {num_leaves: 0}}"
        )
    )
    with pytest.raises(DataError, match=r"LightGBM refused to train.*training\.params"):
        run(tmp_path / "p")
