"""Active-learning order and pre-labels (mlcrew.labeling.active) on small real fixtures."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from mlcrew.errors import DataError
from mlcrew.labeling.active import (
    LINEAR_BELOW,
    Prelabel,
    fit_predict,
    priorities,
    random_priorities,
    suggestions,
    uncertainty,
)

DIGITS = Path(__file__).parents[2] / "examples" / "digits-labeling" / "data"
CLASSES = tuple(str(i) for i in range(10))


def load_digits_example() -> tuple[np.ndarray, list[str]]:
    """The example's pixel features and the true labels (truth.csv), in item order."""
    with (DIGITS / "digits.csv").open() as f:
        rows = list(csv.DictReader(f))
    with (DIGITS / "truth.csv").open() as f:
        truth = {r["item"]: r["label"] for r in csv.DictReader(f)}
    pixels = [c for c in rows[0] if c.startswith("px")]
    x = np.array([[float(r[c]) for c in pixels] for r in rows])
    return x, [truth[r["item"]] for r in rows]


def first(prio: np.ndarray, k: int) -> list[int]:
    return [int(i) for i in np.argsort(prio, kind="stable")[:k]]


@pytest.mark.parametrize("measure", ["margin", "entropy"])
def test_the_most_uncertain_item_comes_first(measure: str) -> None:
    proba = np.array([[0.9, 0.1], [0.55, 0.45], [0.7, 0.3], [1.0, 0.0]])
    prio = priorities(proba, measure=measure)  # type: ignore[arg-type]
    assert first(prio, 4) == [1, 2, 0, 3]
    assert sorted(prio.tolist()) == [0.0, 1.0, 2.0, 3.0]


def test_margin_and_entropy_rank_differently() -> None:
    # Torn between two classes (margin's worst case) vs spread over three (entropy's).
    proba = np.array([[0.5, 0.5, 0.0], [0.4, 0.3, 0.3]])
    assert first(priorities(proba, measure="margin"), 1) == [0]
    assert first(priorities(proba, measure="entropy"), 1) == [1]
    assert uncertainty(proba, "margin")[0] == pytest.approx(1.0)
    assert uncertainty(np.array([[1 / 3, 1 / 3, 1 / 3]]), "entropy")[0] == pytest.approx(1.0)


def three_clusters() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """60 points in 3 tight clusters; cluster 0 is the most uncertain, then 1, then 2."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    cluster = np.repeat([0, 1, 2], 20)
    features = centres[cluster] + rng.normal(0, 0.3, size=(60, 2))
    top = np.choose(cluster, [0.52, 0.62, 0.72]) + rng.uniform(0, 0.05, 60)
    proba = np.column_stack([top, 1 - top])
    return proba, features, cluster


def test_without_diversity_the_batch_piles_into_the_most_uncertain_cluster() -> None:
    proba, features, cluster = three_clusters()
    picks = first(priorities(proba, features, diversity=0.0, batch=6), 6)
    assert {int(cluster[i]) for i in picks} == {0}


def test_diversity_spreads_the_batch_across_clusters() -> None:
    proba, features, cluster = three_clusters()
    picks = first(priorities(proba, features, diversity=0.5, batch=6), 6)
    assert int(cluster[picks[0]]) == 0  # still starts with the most uncertain item
    assert int(np.argmax(uncertainty(proba))) == picks[0]
    assert [int(cluster[i]) for i in picks[:3]].count(0) == 1
    assert {int(cluster[i]) for i in picks[:3]} == {0, 1, 2}
    # After the diverse batch the rest follow by uncertainty alone.
    prio = priorities(proba, features, diversity=0.5, batch=6)
    rest = np.argsort(prio)[6:]
    u = uncertainty(proba)
    assert (np.diff(u[rest]) <= 1e-12).all()


def test_with_no_model_yet_diversity_spreads_the_first_picks() -> None:
    _, features, cluster = three_clusters()
    picks = first(priorities(None, features, diversity=1.0, batch=3, seed=4), 3)
    assert {int(cluster[i]) for i in picks} == {0, 1, 2}


def test_same_seed_same_order_and_ties_follow_the_seed() -> None:
    proba, features, _ = three_clusters()
    a = priorities(proba, features, diversity=0.3, batch=10, seed=1)
    b = priorities(proba, features, diversity=0.3, batch=10, seed=1)
    assert np.array_equal(a, b)
    ties = np.full((50, 2), 0.5)
    assert np.array_equal(priorities(ties, seed=1), priorities(ties, seed=1))
    assert not np.array_equal(priorities(ties, seed=1), priorities(ties, seed=2))
    # Ties are not served in row order.
    assert first(priorities(ties, seed=1), 5) != [0, 1, 2, 3, 4]


def test_random_order_is_a_seeded_permutation() -> None:
    prio = random_priorities(100, seed=3)
    assert sorted(prio.tolist()) == [float(i) for i in range(100)]
    assert np.array_equal(prio, random_priorities(100, seed=3))
    assert not np.array_equal(prio, random_priorities(100, seed=4))
    assert np.array_equal(priorities(None, np.zeros((100, 1)), by="random", seed=3), prio)


def test_bad_order_settings_are_refused_with_the_valid_range() -> None:
    with pytest.raises(ValueError, match="diversity must be between 0 and 1"):
        priorities(np.full((2, 2), 0.5), diversity=1.5)
    with pytest.raises(ValueError, match="disagree on the pool size"):
        priorities(np.full((2, 2), 0.5), np.zeros((3, 1)))


def test_suggestions_name_the_top_class_and_its_probability() -> None:
    got = suggestions(np.array([[0.2, 0.7, 0.1], [0.5, 0.2, 0.3]]), ["cat", "dog", "eel"])
    assert got == [Prelabel("dog", 0.7), Prelabel("cat", 0.5)]
    assert got[0].to_json() == {"label": "dog", "score": 0.7}


def test_prelabels_from_few_labels_are_mostly_right_on_the_digits() -> None:
    x, y = load_digits_example()
    rng = np.random.default_rng(0)
    index = rng.permutation(len(y))
    train, pool = index[:150], index[150:]
    pred = fit_predict(x[train], [y[i] for i in train], x[pool], classes=CLASSES, seed=0)
    assert pred is not None and pred.model == "logistic"
    hits = [s.label == y[i] for s, i in zip(pred.suggestions(), pool, strict=True)]
    assert np.mean(hits) > 0.85
    assert np.allclose(pred.proba.sum(axis=1), 1.0)
    again = fit_predict(x[train], [y[i] for i in train], x[pool], classes=CLASSES, seed=0)
    assert again is not None and np.array_equal(pred.proba, again.proba)


def test_lightgbm_takes_over_with_many_labels_and_repeats_bit_for_bit() -> None:
    x, y = load_digits_example()
    train = np.arange(LINEAR_BELOW)
    pool = np.arange(LINEAR_BELOW, len(y))
    labels = [y[i] for i in train]
    a = fit_predict(x[train], labels, x[pool], classes=CLASSES, seed=5)
    b = fit_predict(x[train], labels, x[pool], classes=CLASSES, seed=5)
    assert a is not None and b is not None and a.model == "lightgbm"
    assert a.proba.tobytes() == b.proba.tobytes()
    hits = [s.label == y[i] for s, i in zip(a.suggestions(), pool, strict=True)]
    assert np.mean(hits) > 0.9


def test_classes_nobody_labelled_yet_get_no_probability() -> None:
    x, y = load_digits_example()
    keep = [i for i in range(300) if y[i] in ("3", "8")]
    pred = fit_predict(x[keep], [y[i] for i in keep], x[300:320], classes=CLASSES)
    assert pred is not None
    assert set(pred.proba[:, [0, 1, 2, 4, 5, 6, 7, 9]].ravel()) == {0.0}
    assert {s.label for s in pred.suggestions()} <= {"3", "8"}


def test_no_model_before_two_classes_are_labelled() -> None:
    x, _ = load_digits_example()
    assert fit_predict(x[:5], ["1"] * 5, x[5:10], classes=CLASSES) is None


def test_labels_outside_the_spec_classes_are_refused_by_name() -> None:
    x, _ = load_digits_example()
    with pytest.raises(DataError, match=r"labels '11' are not among the classes"):
        fit_predict(x[:3], ["1", "2", "11"], x[3:6], classes=CLASSES)
    with pytest.raises(DataError, match="same numeric columns"):
        fit_predict(x[:3, :10], ["1", "2", "3"], x[3:6], classes=CLASSES)
