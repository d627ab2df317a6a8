"""Reference profiles and drift verdicts (monitoring/profile.py, monitoring/judge.py): merged
profiles equal a direct computation, and the planted columns, and only they, drift at 1k,
100k and 1M rows."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from mlcrew.errors import DataError
from mlcrew.monitoring.judge import Thresholds, judge
from mlcrew.monitoring.profile import OTHER, TableProfile, profile_table
from mlcrew.monitoring.synthetic import PLANTED, planted_table


@pytest.fixture(scope="module")
def reference() -> TableProfile:
    return profile_table(planted_table(1_000_000, 1, drift=False))


@pytest.mark.parametrize("rows", [1_000, 100_000, 1_000_000])
def test_planted_columns_drift_and_no_others(reference: TableProfile, rows: int) -> None:
    drifted = judge(reference, profile_table(planted_table(rows, 2, drift=True), like=reference))
    assert drifted["judged"]
    assert sorted(drifted["drifted"]) == PLANTED
    methods = {c["method"] for c in drifted["columns"]}
    assert methods == ({"ks", "chi2"} if rows <= 1000 else {"wasserstein", "jensen_shannon"})
    same = judge(reference, profile_table(planted_table(rows, 3, drift=False), like=reference))
    assert same["drifted"] == []
    cat7 = next(c for c in drifted["columns"] if c["column"] == "cat_7")
    assert cat7["new_values"] == pytest.approx(0.2 * rows, rel=0.2)


def test_a_tiny_shift_at_a_million_rows_is_not_drift(reference: TableProfile) -> None:
    table = planted_table(1_000_000, 4, drift=False)
    nudged = table.set_column(0, "num_0", pa.array(table.column("num_0").to_numpy() + 0.03))
    verdict = judge(reference, profile_table(nudged, like=reference))
    num0 = next(c for c in verdict["columns"] if c["column"] == "num_0")
    assert verdict["drifted"] == [] and 0 < num0["score"] < 0.1


def test_one_row_is_too_few_to_judge(reference: TableProfile) -> None:
    verdict = judge(reference, profile_table(planted_table(1, 5, drift=True), like=reference))
    assert verdict["judged"] is False and verdict["drifted"] == []
    assert "too few rows to judge (1 < 30)" in verdict["note"]
    assert all(c["drifted"] is None for c in verdict["columns"])


def test_profiles_merge_to_the_direct_computation(reference: TableProfile) -> None:
    table = planted_table(30_000, 6, drift=True)
    parts = [table.slice(0, 7_000), table.slice(7_000, 15_000), table.slice(22_000)]
    merged = profile_table(parts[0], like=reference)
    for part in parts[1:]:
        merged = merged.merge(profile_table(part, like=reference))
    direct = profile_table(table, like=reference)
    assert merged.rows == direct.rows == 30_000
    for name, col in direct.columns.items():
        mine = merged.columns[name].to_json()
        for key, value in col.to_json().items():
            exact = isinstance(value, str | dict) or key in ("counts", "missing", "count")
            want = value if exact else pytest.approx(value, rel=1e-9)
            assert mine[key] == want, (name, key)
    # Through JSON (as stored) and back, a profile is the same.
    again = TableProfile.from_json(json.loads(json.dumps(direct.to_json())))
    assert again.to_json() == direct.to_json()
    assert judge(reference, again) == judge(reference, direct)


def test_values_past_the_reference_and_mismatched_profiles(reference: TableProfile) -> None:
    window = profile_table(planted_table(5_000, 7, drift=True), like=reference)
    assert window.columns["cat_7"].counts[OTHER] > 0  # type: ignore[union-attr]
    with pytest.raises(DataError, match=r"lacks the columns \['num_3'\]"):
        profile_table(planted_table(100, 8, drift=False).drop_columns(["num_3"]), like=reference)
    own = profile_table(planted_table(2_000, 9, drift=False))
    with pytest.raises(DataError, match="different bins"):
        own.merge(window)
    assert Thresholds().numeric == 0.1
