"""The refresh plan (mlcrew.labeling.refresh): priorities and suggestions from labels so far."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mlcrew.errors import DataError
from mlcrew.labeling.active import Prediction
from mlcrew.labeling.features import item_features
from mlcrew.labeling.refresh import plan
from mlcrew.spec import Labeling
from tests.labeling.test_active import CLASSES, load_digits_example


def digits_sample(n: int = 400) -> tuple[list[str], np.ndarray, list[str]]:
    x, y = load_digits_example()
    return [f"d{i:04d}" for i in range(n)], x[:n], y[:n]


def test_the_most_uncertain_unlabelled_item_is_served_first_with_a_suggestion() -> None:
    items, x, y = digits_sample()
    known = {items[i]: y[i] for i in range(60)}
    got = plan(items, x, known, classes=CLASSES, by="uncertainty", prelabel="labels", seed=0)
    assert got.model == "logistic" and got.labelled == 60
    by_item = {t.item: t for t in got.tasks}
    first = min(got.tasks, key=lambda t: t.priority)
    assert first.item not in known
    open_tasks = [t for t in got.tasks if t.item not in known]
    assert all(t.prelabel is not None for t in got.tasks)
    # Suggestions on the unlabelled items are mostly right.
    right = np.mean([t.prelabel.label == y[items.index(t.item)] for t in open_tasks])  # type: ignore[union-attr]
    assert right > 0.75
    # The top score belongs to a confident item, the first served item's is low.
    assert by_item[first.item].prelabel.score < np.median(  # type: ignore[union-attr]
        [t.prelabel.score for t in open_tasks]  # type: ignore[union-attr]
    )


def test_started_items_come_first_and_gold_is_scattered_not_last() -> None:
    items, x, y = digits_sample()
    gold = set(items[300:340])
    known = {items[i]: y[i] for i in range(50)} | {g: y[items.index(g)] for g in gold}
    started = set(items[:10])
    got = plan(
        items, x, known, classes=CLASSES, started=started, gold=gold, by="uncertainty", seed=0
    )
    prio = {t.item: t.priority for t in got.tasks}
    assert {i for i, p in prio.items() if p < 0} == started
    gold_ranks = sorted(sorted(prio, key=prio.__getitem__).index(g) for g in gold)
    # Spread through the order rather than bunched at its end (where confidence puts them).
    assert gold_ranks[0] < len(items) / 3 and gold_ranks[-1] > len(items) / 2
    assert got.tasks[0].prelabel is None  # prelabel: none shows no suggestion


def test_random_order_needs_no_features_and_repeats_with_the_seed() -> None:
    items = [f"i{k}" for k in range(30)]
    a = plan(items, None, {}, classes=CLASSES, by="random", seed=3)
    b = plan(items, None, {}, classes=CLASSES, by="random", seed=3)
    assert [t.priority for t in a.tasks] == [t.priority for t in b.tasks]
    assert sorted(t.priority for t in a.tasks) == [float(k) for k in range(30)]
    assert a.model is None


def test_champion_pre_labels_need_a_champion() -> None:
    items, x, _ = digits_sample(20)
    with pytest.raises(DataError, match="no champion model yet: run 'mlcrew run'"):
        plan(items, x, {}, classes=CLASSES, prelabel="champion")
    proba = np.tile(np.eye(10)[3] * 0.8 + 0.02, (20, 1))
    got = plan(
        items,
        x,
        {},
        classes=CLASSES,
        prelabel="champion",
        champion=Prediction(CLASSES, proba, "given"),
    )
    assert {t.prelabel.label for t in got.tasks} == {"3"}  # type: ignore[union-attr]
    assert got.model == "given"


def _labeling(**extra: object) -> Labeling:
    body = {"from": "items", "id": "item", "classes": [{"name": "a"}, {"name": "b"}], **extra}
    return Labeling.model_validate(body)


def test_features_take_numeric_columns_and_fill_gaps() -> None:
    table = pa.table(
        {
            "item": ["a", "b", "c"],
            "px": [1.0, None, 3.0],
            "n": [1, 2, 3],
            "flag": [True, False, None],
            "image": ["a.png", "b.png", "c.png"],
        }
    )
    x, names = item_features(table, _labeling())
    assert names == ["px", "n", "flag"]
    assert x[:, 0].tolist() == [1.0, 2.0, 3.0]
    assert x[:, 2].tolist() == [1.0, 0.0, 0.5]
    assert item_features(table, _labeling(), exclude=("n",))[1] == ["px", "flag"]
    with pytest.raises(DataError, match="no numeric columns besides 'item'"):
        item_features(table.select(["item", "image"]), _labeling())


def test_texts_without_numeric_columns_learn_from_their_embeddings() -> None:
    table = pa.table({"item": ["a", "b", "c"], "text": ["a cat sat", "a kitten sat", None]})
    x, names = item_features(table, _labeling(show="text", column="text"))
    assert x.shape == (3, 384) and names[0] == "embedding_0"
    assert float(x[0] @ x[1]) > 0.5 and not x[2].any()  # similar texts; no text: zeros


def test_images_without_numeric_columns_learn_from_their_pixels(tmp_path: Path) -> None:
    from PIL import Image

    for i, shade in enumerate((0, 255)):
        Image.new("L", (8, 8), color=shade).save(tmp_path / f"{i}.png")
    table = pa.table({"item": ["a", "b"], "image": ["0.png", "1.png"]})
    x, _ = item_features(table, _labeling(show="image", column="image"), project=tmp_path)
    assert x.shape == (2, 256) and x[0].max() == 0.0 and x[1].min() == 1.0


def test_champion_probabilities_rank_the_uncertainty_order() -> None:
    items, x, _ = digits_sample(20)
    proba = np.tile(np.eye(10)[3] * 0.8 + 0.02, (20, 1))
    proba[7] = [0.1] * 10  # the champion cannot tell what item 7 is
    got = plan(
        items,
        x,
        {},
        classes=CLASSES,
        by="uncertainty",
        prelabel="champion",
        champion=Prediction(CLASSES, proba, "given"),
    )
    assert min(got.tasks, key=lambda t: t.priority).item == items[7]
