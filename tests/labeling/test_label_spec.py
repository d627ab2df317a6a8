"""The labeling: section: mistakes name the line, the key and the fix."""

from __future__ import annotations

import pytest

from mlcrew.errors import SpecError
from mlcrew.spec import parse_spec

BASE = """\
name: pets
sources:
  items: {path: data/items.csv}
dataset: {from: items}
target: truth
labeling:
  from: items
  id: id
  show: text
  column: text
  classes:
    - {name: cat, key: "1"}
    - {name: dog, key: "2"}
"""


def error_of(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "pets/mlcrew.yaml")
    return str(info.value)


def test_a_valid_label_spec_loads_with_defaults() -> None:
    spec = parse_spec(BASE, "pets/mlcrew.yaml")
    assert spec.labeling is not None
    assert spec.labeling.class_names() == ["cat", "dog"]
    assert spec.labeling.overlap == 1 and spec.labeling.task == "single"
    assert spec.labeling.order.by == "random" and spec.labeling.prelabel == "none"


def test_a_key_used_twice_names_both_classes() -> None:
    msg = error_of(BASE.replace('{name: dog, key: "2"}', '{name: dog, key: "1"}'))
    assert "pets/mlcrew.yaml:" in msg and "classes.1.key" in msg and "'cat'" in msg


def test_a_key_the_page_needs_is_refused_with_its_use() -> None:
    msg = error_of(BASE.replace('key: "2"', "key: s"))
    assert "mlcrew.yaml:13:" in msg and "S skips" in msg


def test_an_image_task_needs_its_column() -> None:
    msg = error_of(BASE.replace("show: text\n  column: text\n", "show: image\n"))
    assert "labeling" in msg and "show: image needs column" in msg


def test_from_an_unknown_table_suggests_the_near_one() -> None:
    msg = error_of(BASE.replace("from: items\n  id", "from: itemz\n  id"))
    assert "mlcrew.yaml:7:" in msg and "did you mean 'items'" in msg


def test_a_class_twice_and_a_single_class_are_refused() -> None:
    assert "'cat' is also class 0" in error_of(BASE.replace("name: dog", "name: cat"))
    one = BASE.replace('    - {name: dog, key: "2"}\n', "")
    assert "at least two classes" in error_of(one)


def test_overlap_and_gold_share_have_bounds() -> None:
    msg = error_of(BASE + "  overlap: 0\n")
    assert "labeling.overlap" in msg and "mlcrew.yaml:14:" in msg
    msg = error_of(BASE + "  gold: {path: g.csv, share: 0.9}\n")
    assert "labeling.gold.share" in msg


def test_unknown_key_in_labeling_suggests() -> None:
    msg = error_of(BASE + "  overlapp: 2\n")
    assert "did you mean 'overlap'" in msg
