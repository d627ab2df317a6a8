"""Feature cleanup finds planted useless columns, keeps the useful ones, and says what to change."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from tests.test_cli import mlcrew


def test_cleanup_finds_planted_useless_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(42)
    n = 800
    signal_a, signal_b = rng.normal(size=n), rng.normal(size=n)
    noise = {f"noise{i}": rng.normal(size=n) for i in range(4)}
    constant = np.ones(n)
    logit = 2.0 * signal_a - 1.5 * signal_b
    label = rng.random(n) < 1 / (1 + np.exp(-logit))
    root = tmp_path / "planted"
    root.mkdir()
    header = ["signal_a", "signal_b", *noise, "constant", "label"]
    with open(root / "data.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i in range(n):
            w.writerow(
                [signal_a[i], signal_b[i], *(v[i] for v in noise.values()), constant[i],
                 "yes" if label[i] else "no"]
            )  # fmt: skip
    (root / "mlcrew.yaml").write_text(
        "name: planted\nseed: 4\nsources: {rows: {path: data.csv}}\n"
        "dataset: {from: rows, split: {by: random, test: 0.25}}\ntarget: label\n"
        "objective: {metric: log_loss}\ntraining: {budget: {rounds: 80}}\n"
    )
    mlcrew("run", "-p", str(root))
    doc = json.loads(mlcrew("features", "cleanup", "--json", "-p", str(root)).stdout)
    rows = {r["name"]: r for r in doc["features"]}
    assert set(rows) == set(header[:-1])
    assert all(set(r) >= {"name", "cost", "removable"} for r in doc["features"])
    removable = {name for name, r in rows.items() if r["removable"]}
    assert removable == {*noise, "constant"}
    # The signals cost far more than the tolerance to remove; the noise costs about nothing.
    assert min(rows["signal_a"]["cost"], rows["signal_b"]["cost"]) > 4 * doc["tolerance"]
    assert rows["constant"]["cost"] == 0.0 and rows["constant"]["permutation"] == 0.0
    together = doc["remove_together"]
    assert sorted(together["features"]) == sorted(removable)
    assert together["cost"] <= doc["tolerance"]
    assert doc["spec_change"].startswith("features:\n  exclude: [")
    assert set(doc["spec_change"].split("[")[1].rstrip("]").split(", ")) == removable
    # The same command twice measures the same costs (same folds, same seed).
    again = json.loads(mlcrew("features", "cleanup", "--json", "-p", str(root)).stdout)
    assert again == doc
    # Applying the spec change keeps the model's quality within the tolerance.
    spec = root / "mlcrew.yaml"
    spec.write_text(spec.read_text() + doc["spec_change"] + "\n")
    # (exit 3 is allowed: v2 may be a hair worse than v1 on the test split, so not promoted)
    result = json.loads(mlcrew("run", "--json", "-p", str(root), ok=False).stdout)
    assert result["status"] == "ok" and result["verdict"]["passed"], result
    text = mlcrew("features", "cleanup", "-p", str(root), columns=160).stdout
    assert "signal_a" in text and "noise0" not in text
