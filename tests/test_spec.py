"""Spec loading: a valid example loads; each kind of mistake names file, line, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcrew.errors import SpecError
from mlcrew.project import EXAMPLES
from mlcrew.spec import load_spec, parse_spec

BASE = """\
name: demo
sources:
  rides: {path: data/rides.csv}
dataset:
  from: rides
  split: {by: random, test: 0.25}
target: y
"""


def error_of(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "proj/mlcrew.yaml")
    return str(info.value)


def test_example_spec_loads_into_typed_models() -> None:
    spec = load_spec(EXAMPLES / "bikeshare")
    assert spec.name == "bike-demand"
    assert spec.dataset.from_ == "hourly"
    assert spec.dataset.split.by == "time"
    assert spec.objective.deal_breakers[0].max == 60
    assert spec.training.budget.rounds == 300


def test_unknown_key_names_line_and_suggests_nearest() -> None:
    msg = error_of(BASE + "trainig:\n  seed: 1\n")
    assert msg.startswith("proj/mlcrew.yaml:8:")
    assert "'trainig'" in msg and "did you mean 'training'" in msg


def test_unknown_nested_key_has_its_own_line_and_valid_keys() -> None:
    text = BASE + "training:\n  budget:\n    trails: 5\n"
    msg = error_of(text)
    assert "mlcrew.yaml:10:" in msg
    assert "training.budget.trails" in msg
    assert "did you mean 'trials'" in msg
    assert "rounds" in msg  # lists what would be valid


def test_wrong_value_shows_found_and_valid() -> None:
    msg = error_of(BASE.replace("by: random", "by: sideways"))
    assert "mlcrew.yaml:6:" in msg
    assert "dataset.split.by" in msg
    assert "'sideways'" in msg and "'random'" in msg and "'time'" in msg


def test_missing_required_key() -> None:
    msg = error_of(BASE.replace("target: y\n", ""))
    assert "missing required key 'target'" in msg


def test_dataset_from_unknown_table_suggests() -> None:
    msg = error_of(BASE.replace("from: rides", "from: ride"))
    assert "mlcrew.yaml:5:" in msg and "did you mean 'rides'" in msg


def test_check_item_error_points_into_the_list() -> None:
    text = BASE + "checks:\n  - {column: a, between: [0, 1]}\n  - {column: b, betwen: [0, 1]}\n"
    msg = error_of(text)
    assert "mlcrew.yaml:10:" in msg and "checks.1.betwen" in msg and "'between'" in msg


def test_bad_metric_in_deal_breaker() -> None:
    text = BASE + "objective:\n  metric: mae\n  deal_breakers:\n    - {metric: maee, max: 3}\n"
    msg = error_of(text)
    assert "mlcrew.yaml:11:" in msg and "unknown metric 'maee'" in msg


def test_yaml_syntax_error_has_line() -> None:
    msg = error_of(BASE + "checks: [\n")
    assert msg.startswith("proj/mlcrew.yaml:")
    assert "not valid YAML" in msg


def test_missing_spec_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="mlcrew init"):
        load_spec(tmp_path)


def test_duplicate_key_is_an_error() -> None:
    msg = error_of(BASE + "target: z\n")
    assert msg == "proj/mlcrew.yaml:8: key 'target' appears twice; keep one of them"


def test_typo_of_a_required_key_is_reported_as_the_typo() -> None:
    msg = error_of(BASE.replace("target: y", "targt: y"))
    assert msg.startswith("proj/mlcrew.yaml:7: unknown key 'targt'; did you mean 'target'?")
    assert "missing" not in msg


def test_markup_like_text_survives_in_messages() -> None:
    msg = error_of(BASE.replace("name: demo", "name: Bike Demand"))
    assert "(like bike-demand)" in msg and "'Bike Demand'" in msg
