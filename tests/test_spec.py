"""Spec loading: a valid example loads; each kind of mistake names file, line, key and fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlcrew.errors import SpecError
from mlcrew.project import EXAMPLES, Project
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


# ---------------------------------------------------------------- bad specs stay cheap


def _alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": each anchor lists the previous one nine times."""
    lines = [BASE, 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n")
    return "".join(lines)


def _merge_bomb(levels: int = 30) -> str:
    """Merge keys (`<<`) that double a mapping's entries at every level."""
    lines = [BASE, "m0: &m0 {a: 1, b: 2}\n"]
    for i in range(1, levels):
        lines.append(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: {i}}}\n")
    return "".join(lines)


@pytest.mark.timeout(60)
def test_alias_bomb_is_refused_naming_the_alias() -> None:
    msg = error_of(_alias_bomb())
    # The alias whose copies pass the limit, on the line where it is used.
    assert msg.startswith("proj/mlcrew.yaml:14: alias *l5 takes the spec past 1,000,000 values")
    assert "write the values out instead" in msg


@pytest.mark.timeout(60)
def test_merge_key_bomb_is_refused() -> None:
    msg = error_of(_merge_bomb())
    assert "proj/mlcrew.yaml:" in msg and "copied through aliases" in msg


_CAPPED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # 1 GB of address space
from mlcrew.errors import SpecError
from mlcrew.spec import parse_spec
try:
    parse_spec(sys.stdin.read(), "mlcrew.yaml")
except SpecError as exc:
    print("SpecError:", exc)
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("bomb", [_alias_bomb, _merge_bomb])
def test_bombs_are_refused_within_bounded_memory(bomb: Any) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CAPPED], input=bomb(), capture_output=True, text=True, timeout=100
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("SpecError: mlcrew.yaml:") and "aliases" in proc.stdout


def test_alias_inside_its_own_anchor_is_refused() -> None:
    msg = error_of(BASE + "loop: &loop [1, *loop]\n")
    assert msg.startswith("proj/mlcrew.yaml:8: alias *loop is used inside its own anchor")


def test_deep_nesting_is_refused_not_a_crash() -> None:
    msg = error_of(BASE + "deep: " + "[" * 200_000 + "]" * 200_000 + "\n")
    assert msg.startswith("proj/mlcrew.yaml:8: the spec nests more than 64 levels deep")


def test_aliases_in_normal_use_still_work_and_errors_point_at_the_use() -> None:
    text = BASE + (
        "checks:\n"
        "  - &bounded {column: a, between: [0, 1], level: warn}\n"
        "  - {<<: *bounded, column: b}\n"
        "  - *bounded\n"
    )
    spec = parse_spec(text, "proj/mlcrew.yaml")
    assert [c.column for c in spec.checks] == ["a", "b", "a"]
    assert spec.checks[1].between == (0, 1) and spec.checks[1].level == "warn"
    msg = error_of(text.replace("level: warn", "level: loud"))
    assert msg.startswith("proj/mlcrew.yaml:9: checks.0.level:") and "'loud'" in msg


def test_nested_duplicate_key_names_its_path() -> None:
    msg = error_of(BASE + "training:\n  threads: 2\n  seed: 1\n  threads: 3\n")
    assert msg == "proj/mlcrew.yaml:11: key 'training.threads' appears twice; keep one of them"


def _many_checks(n: int) -> str:
    rows = (
        f"  - column: c{i}\n    between: [0, {i + 1}]\n    level: warn\n    not_null: true\n"
        "    type: float\n"
        for i in range(n)
    )
    return BASE + "checks:\n" + "".join(rows)


@pytest.mark.timeout(120)
def test_a_50000_line_spec_loads_and_its_errors_keep_their_lines() -> None:
    text = _many_checks(10_000)
    assert text.count("\n") > 50_000
    spec = parse_spec(text, "proj/mlcrew.yaml")
    assert len(spec.checks) == 10_000 and spec.checks[-1].between == (0, 10_000)
    broken = text.replace(
        "  - column: c9998\n    between: [0, 9999]\n", "  - column: c9998\n    between: [9999, 0]\n"
    )
    msg = error_of(broken)
    line = 9 + 9998 * 5
    assert broken.splitlines()[line - 1] == "  - column: c9998"
    assert msg.startswith(f"proj/mlcrew.yaml:{line}: checks.9998: between: [low, high] needs low")


def test_spec_that_is_not_utf8_names_line_and_byte(tmp_path: Path) -> None:
    spec = tmp_path / "mlcrew.yaml"
    spec.write_bytes(BASE.encode() + "description: Caf\u00e9 rides\n".encode("latin-1"))
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path)
    offset = len(BASE.encode()) + len(b"description: Caf")
    assert str(info.value) == (
        f"{spec}:8: the spec is not UTF-8 text (byte 0xe9 at byte offset {offset} is not "
        "UTF-8); save it as UTF-8"
    )
    with pytest.raises(SpecError, match="save it as UTF-8"):
        Project.open(tmp_path)


def test_utf16_spec_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "mlcrew.yaml").write_text(BASE, encoding="utf-16")
    with pytest.raises(SpecError, match=r"mlcrew.yaml:1: .*it looks like UTF-16.*save it as UTF-8"):
        load_spec(tmp_path)


def test_control_character_is_named_with_its_line() -> None:
    msg = error_of(BASE + "description: a\x07b\n")
    assert (
        msg == "proj/mlcrew.yaml:8: not valid YAML: the character U+0007 is not allowed; remove it"
    )


@pytest.mark.parametrize(
    ("task", "objective", "key", "line", "found"),
    [
        (
            "regression",
            "metric: accuracy",
            "objective.metric",
            10,
            "'accuracy' is a classification metric, but task is regression; valid: mae",
        ),
        (
            "classification",
            "deal_breakers: [{metric: mae, max: 3}]",
            "objective.deal_breakers.0.metric",
            10,
            "'mae' is a regression metric, but task is classification; valid: accuracy",
        ),
        (
            "auto",
            "metric: roc_auc\n  deal_breakers: [{metric: rmse, max: 3}]",
            "objective.deal_breakers.0.metric",
            11,
            "'rmse' is a regression metric, but objective.metric is 'roc_auc', a classification",
        ),
    ],
)
def test_metric_that_does_not_fit_the_task_is_refused(
    task: str, objective: str, key: str, line: int, found: str
) -> None:
    text = BASE + f"task: {task}\nobjective:\n  {objective}\n"
    msg = error_of(text)
    assert msg.startswith(f"proj/mlcrew.yaml:{line}: {key}: {found}"), msg


def test_metrics_that_fit_are_accepted() -> None:
    text = BASE + (
        "task: classification\nobjective:\n  metric: roc_auc\n"
        "  deal_breakers: [{metric: recall, min: 0.6}]\n"
    )
    assert parse_spec(text).objective.metric == "roc_auc"


@pytest.mark.parametrize(
    ("extra", "line", "key", "found"),
    [
        (
            "training:\n  threads: true\n",
            9,
            "training.threads",
            "expects an integer, found true (a boolean)",
        ),
        (
            "training:\n  budget: {rounds: yes}\n",
            9,
            "training.budget.rounds",
            "expects an integer, found yes (a boolean)",
        ),
        (
            "serving:\n  port: '8000'\n",
            9,
            "serving.port",
            "expects an integer, found '8000' (text)",
        ),
        ("seed: on\n", 8, "seed", "expects an integer, found on (a boolean)"),
        (
            "objective:\n  deal_breakers: [{metric: mae, max: true}]\n",
            9,
            "objective.deal_breakers.0.max",
            "expects a number, found true (a boolean)",
        ),
    ],
)
def test_boolean_or_text_where_a_number_belongs_is_refused(
    extra: str, line: int, key: str, found: str
) -> None:
    msg = error_of(BASE + extra)
    assert msg == f"proj/mlcrew.yaml:{line}: {key}: {found}"


def test_split_test_true_is_refused() -> None:
    msg = error_of(BASE.replace("test: 0.25", "test: true"))
    assert msg == "proj/mlcrew.yaml:6: dataset.split.test: expects a number, found true (a boolean)"


def test_numbers_still_load_as_numbers() -> None:
    text = BASE.replace("test: 0.25", "test: 0.3") + (
        "seed: 7\ntraining: {threads: 2, budget: {rounds: 50}}\n"
        "objective: {deal_breakers: [{metric: mae, max: 60}]}\n"
        "checks: [{column: a, between: [0, 1.5]}]\n"
    )
    spec = parse_spec(text)
    assert spec.dataset.split.test == 0.3 and spec.training.threads == 2 and spec.seed == 7
    assert spec.objective.deal_breakers[0].max == 60.0 and spec.checks[0].between == (0.0, 1.5)
