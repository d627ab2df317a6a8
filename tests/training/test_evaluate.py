"""Gate reasons as `mlcrew run` prints them: the comparison shown is visibly true or false."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from mlcrew.training.evaluate import distinct


def test_a_model_no_better_than_the_baseline_does_not_print_a_false_inequality(
    tmp_path: Path,
) -> None:
    # Too few rows for LightGBM to split on: the model predicts the training mean, as the dummy.
    rows = ["x,y", *(f"{i},{(i * 7) % 5}" for i in range(30))]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "mlcrew.yaml").write_text(
        "name: tiny\nsources: {rows: {path: data.csv}}\n"
        "dataset: {from: rows, split: {by: random, test: 0.3}}\ntarget: y\ntask: regression\n"
        "objective: {metric: mae}\ntraining: {budget: {rounds: 5}}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", "run", "--json", "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 3, proc.stderr  # registered, not promoted
    reasons = json.loads(proc.stdout)["verdict"]["reasons"]
    baseline = next(r for r in reasons if "dummy baseline" in r)
    found = re.search(r"\((\S+) ([<>=]) (\S+)\)$", baseline)
    assert found, baseline
    ours, op, theirs = found.groups()
    assert baseline.startswith("FAILED: ")
    # Two numbers that print alike are equal, and then the sign says so.
    assert (ours == theirs) == (op == "=")


def test_near_equal_numbers_get_the_digits_that_tell_them_apart() -> None:
    assert distinct(1.66671, 1.66668) == ("1.66671", "1.66668")
    assert distinct(1.6667, 1.6667) == ("1.667", "1.667")
    assert distinct(60.0, 59.1234) == ("60", "59.12")
