"""The labeling scenario on part of the digits example: simulated labelers with known error rates
work through a real `mlcrew serve`; what the stored labels say must match what was simulated.
(bench/labeling_scenario.py runs the same on the whole example and reports the figures.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.labeling.scenario import EXAMPLE, Config, SimLabeler, read_csv, run_scenario

LABELERS = (
    SimLabeler("perfect", 0.0),
    SimLabeler("careful", 0.05),
    SimLabeler("hasty", 0.15),
    SimLabeler("sloppy", 0.4),
)


def test_simulated_labelers_through_rest(tmp_path: Path) -> None:
    config = Config(labelers=LABELERS, items=240, overlap=3, planted=0.06, seed=0)
    out = run_scenario(tmp_path, config)
    print(out.to_json())
    per = {p["labeler"]: p for p in out.per_labeler}
    first = set(list(read_csv(EXAMPLE / "data" / "truth.csv"))[:240])
    ordinary = len(first - set(read_csv(EXAMPLE / "data" / "gold.csv")))

    # Nothing lost, overlap never exceeded: every ordinary item has exactly 3 labels.
    gold_labels = sum(p["gold_items"] for p in out.per_labeler)
    assert out.items_labelled == ordinary
    assert out.labels - gold_labels == 3 * ordinary

    # Each labeler's real error rate is near the one simulated, and kappa against the truth
    # ranks them as simulated.
    for p in out.per_labeler:
        assert abs(p["real_error"] - p["set_error"]) < 0.1, p
    kappas = [per[name]["kappa_vs_truth"] for name in ("perfect", "careful", "hasty", "sloppy")]
    assert kappas[0] > kappas[2] > kappas[3] and kappas[1] > kappas[3]
    assert kappas[3] < 0.7

    # Gold accuracy tells the perfect labeler from the sloppy one.
    assert per["perfect"]["gold_items"] >= 3 and per["perfect"]["gold_accuracy"] == 1.0
    assert per["sloppy"]["gold_accuracy"] < per["perfect"]["gold_accuracy"]

    # Agreement among labelers is real but imperfect; the consensus beats the average labeler.
    assert 0.4 < out.alpha < 0.95 and 0.4 < out.fleiss_kappa < 0.95
    mean_accuracy = sum(p["accuracy_vs_truth"] for p in out.per_labeler) / len(LABELERS)
    assert out.consensus_accuracy > mean_accuracy

    # The planted wrong labels are found, and most flags point at a consensus that is wrong
    # (planted, or wrong by the labelers' own mistakes).
    assert out.planted == round(0.06 * ordinary)
    assert out.recall >= 0.6 and out.precision_wrong >= 0.5

    # mlcrew's own quality report on the same labels says the same.
    own = out.mlcrew
    assert own["gold_accuracy"] == {
        p["labeler"]: pytest.approx(p["gold_accuracy"], abs=1e-6) for p in out.per_labeler
    }
    assert abs(own["alpha"] - out.alpha) < 0.02
    assert own["recall"] >= 0.5 and own["precision_wrong"] >= 0.5
