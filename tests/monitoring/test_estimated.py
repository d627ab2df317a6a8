"""Estimated performance before labels arrive: a classifier's confidence, calibrated on its
test split, tracks its real accuracy (and a binary model's precision, recall, F1 and ROC AUC) on new
data, including data it finds harder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlcrew.monitoring.monitor import monitor
from mlcrew.pipeline.runner import Runner
from mlcrew.project import Project

SPEC = """name: points
sources:
  points: {path: data/train.csv}
dataset:
  from: points
target: y
task: classification
objective: {metric: accuracy}
training: {budget: {trials: 1, rounds: 100}, seed: 0, threads: 1}
"""


def write(path: Path, n: int, spread: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    x1, x2, x3 = rng.normal(0, spread, n), rng.normal(0, spread, n), rng.normal(0, 1, n)
    p = 1 / (1 + np.exp(-(3 * x1 - 2 * x2)))
    y = np.where(rng.random(n) < p, "yes", "no")
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "x1,x2,x3,y",
        *(f"{a:.5f},{b:.5f},{c:.5f},{t}" for a, b, c, t in zip(x1, x2, x3, y, strict=True)),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def points(tmp_path: Path) -> Project:
    root = tmp_path / "points"
    write(root / "data" / "train.csv", 6000, 1.0, 0)
    (root / "mlcrew.yaml").write_text(SPEC)
    proj = Project.open(root, db_url=f"sqlite:///{tmp_path / 'meta.db'}")
    Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
    return proj


def test_estimated_accuracy_tracks_real_accuracy(points: Project, tmp_path: Path) -> None:
    alike = monitor(points.store, points.spec, write(tmp_path / "alike.csv", 3000, 1.0, 1))
    harder = monitor(points.store, points.spec, write(tmp_path / "harder.csv", 3000, 0.3, 2))
    for report in (alike, harder):
        estimated = report["estimated"]["accuracy"]
        real = report["performance"]["current"]["accuracy"]
        assert abs(estimated - real) < 0.03, (estimated, real)
        # A binary model: precision, recall and F1 from the expected confusion matrix, and
        # ROC AUC as the expected one.
        for metric in ("precision", "recall", "f1", "roc_auc"):
            guess, truth = report["estimated"][metric], report["performance"]["current"][metric]
            assert abs(guess - truth) < 0.05, (metric, guess, truth)
    # Rows near the boundary: the model is less sure and less right, and the estimate says so
    # before a single label is known.
    assert harder["estimated"]["accuracy"] < alike["estimated"]["accuracy"] - 0.1
    assert (
        harder["performance"]["current"]["accuracy"]
        < alike["performance"]["current"]["accuracy"] - 0.1
    )
    # The same rows without labels still get the estimate, and no real performance.
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text(
        "\n".join(
            line.rsplit(",", 1)[0] for line in (tmp_path / "harder.csv").read_text().splitlines()
        )
        + "\n"
    )
    blind = monitor(points.store, points.spec, unlabelled, as_given=True)
    assert blind["estimated"]["accuracy"] == harder["estimated"]["accuracy"]
    assert "performance" not in blind
    points.close()
