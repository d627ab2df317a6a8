"""Each kind of data check on a small real table in DuckDB."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from mlcrew.checks.data import evaluate_checks
from mlcrew.data.tables import connect
from mlcrew.errors import DataError
from mlcrew.spec import Check


@pytest.fixture()
def con() -> duckdb.DuckDBPyConnection:
    con = connect()
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES (1, 'a', 0.5), (2, 'b', NULL), (3, 'zz', 1.7))"
        " v(id, kind, score)"
    )
    return con


def run(con: duckdb.DuckDBPyConnection, **rule: Any) -> dict[str, Any]:
    return evaluate_checks(con, "t", [Check.model_validate(rule)])[0]


def test_not_null(con: duckdb.DuckDBPyConnection) -> None:
    result = run(con, column="score", not_null=True)
    assert result["failing"] == 1 and result["samples"] == [{"row": 2, "score": None}]


def test_between(con: duckdb.DuckDBPyConnection) -> None:
    result = run(con, column="score", between=[0, 1])
    assert result["failing"] == 1 and result["samples"] == [{"row": 3, "score": 1.7}]


def test_allowed_values(con: duckdb.DuckDBPyConnection) -> None:
    result = run(con, column="kind", **{"in": ["a", "b"]})
    assert result["failing"] == 1 and result["samples"][0] == {"row": 3, "kind": "zz"}
    assert run(con, column="id", **{"in": [1, 2, 3]})["passed"]


def test_type(con: duckdb.DuckDBPyConnection) -> None:
    assert run(con, column="id", type="integer")["passed"]
    wrong = run(con, column="kind", type="number")
    assert not wrong["passed"] and wrong["type_found"] == "VARCHAR"


def test_unknown_column_names_the_check(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(DataError, match=r"checks\[0\] names column 'nope'.*columns: id, kind"):
        run(con, column="nope", not_null=True)


def test_allowed_values_keep_their_types() -> None:
    con = connect()
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES (true, 1.0, DATE '2011-01-01'),"
        " (false, 2.5, DATE '2011-01-02')) v(flag, x, d)"
    )
    assert evaluate_checks(
        con, "t", [Check.model_validate({"column": "flag", "in": [True, False]})]
    )[0]["passed"]
    assert evaluate_checks(con, "t", [Check.model_validate({"column": "x", "in": [1, 2.5]})])[0][
        "passed"
    ]
    only_true = evaluate_checks(con, "t", [Check.model_validate({"column": "flag", "in": [True]})])
    assert only_true[0]["failing"] == 1 and only_true[0]["samples"] == [{"row": 2, "flag": False}]
    dates = evaluate_checks(con, "t", [Check.model_validate({"column": "d", "in": ["2011-01-01"]})])
    assert dates[0]["failing"] == 1
    with pytest.raises(DataError, match=r"checks\[0\]: 'x' is numeric, but in: lists \['a'\]"):
        evaluate_checks(con, "t", [Check.model_validate({"column": "x", "in": ["a"]})])


def test_between_with_infinity_and_on_text(con: duckdb.DuckDBPyConnection) -> None:
    assert run(con, column="id", between=[0, float("inf")])["passed"]
    text = run(con, column="kind", between=[0, 1])
    assert text["failing"] == 3 and text["samples"][0] == {"row": 1, "kind": "a"}


def test_text_in_a_numeric_column_is_found_by_row() -> None:
    con = connect()
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES ('0.5'), ('hot'), ('0.7')) v(temp)")
    result = evaluate_checks(
        con, "t", [Check.model_validate({"column": "temp", "between": [0, 1]})]
    )[0]
    assert result["failing"] == 1 and result["samples"] == [{"row": 2, "temp": "hot"}]


@pytest.fixture()
def shop() -> duckdb.DuckDBPyConnection:
    con = connect()
    con.execute(
        "CREATE TABLE orders AS SELECT * FROM (VALUES "
        "(1, 10, 'a@x.org', TIMESTAMP '2026-11-20 10:00', 5.0, 'red'),"
        "(2, 10, 'b@x.org', TIMESTAMP '2026-11-21 09:00', 7.0, 'red'),"
        "(2, 11, 'nope',    TIMESTAMP '2026-11-22 08:00', 9.0, 'blue'),"
        "(4, 99, NULL,      TIMESTAMP '2026-11-22 12:00', 11.0, 'blue')"
        ") v(id, customer, email, placed, amount, color)"
    )
    con.execute("CREATE TABLE customers AS SELECT * FROM (VALUES (10), (11), (12)) v(id)")
    con.execute(
        "CREATE TABLE last_year AS SELECT (i % 7)::DOUBLE + 5 AS amount, "
        "CASE WHEN i % 2 = 0 THEN 'red' ELSE 'blue' END AS color FROM range(1000) t(i)"
    )
    return con


def one(con: duckdb.DuckDBPyConnection, as_of: str | None = None, **rule: Any) -> dict[str, Any]:
    return evaluate_checks(con, "orders", [Check.model_validate(rule)], as_of)[0]


def test_unique_on_one_or_several_columns(shop: duckdb.DuckDBPyConnection) -> None:
    result = one(shop, column="id", unique=True)
    assert result["failing"] == 2 and result["duplicate_keys"] == 1
    assert result["samples"] == [{"id": 2, "rows": 2}]
    assert one(shop, table="orders", unique=["id", "customer"])["passed"]
    assert one(shop, column="email", unique=True)["passed"]


def test_regex(shop: duckdb.DuckDBPyConnection) -> None:
    result = one(shop, column="email", regex=r"[^@]+@[^@]+\.[a-z]+")
    assert result["failing"] == 1 and result["samples"] == [{"row": 3, "email": "nope"}]
    assert one(shop, column="email", regex=r".+")["passed"]  # missing values are not judged


def test_row_count_bounds(shop: duckdb.DuckDBPyConnection) -> None:
    assert one(shop, table="orders", rows={"min": 1, "max": 4})["passed"]
    low = one(shop, table="orders", rows={"min": 5})
    assert not low["passed"] and low["rows"] == 4


def test_freshness_against_the_evaluation_time(shop: duckdb.DuckDBPyConnection) -> None:
    fresh = one(shop, "2026-11-22T20:00:00+00:00", column="placed", fresh_hours=12)
    assert fresh["passed"] and fresh["age_hours"] == 8.0
    stale = one(shop, "2026-11-23T20:00:00+00:00", column="placed", fresh_hours=12)
    assert not stale["passed"] and stale["newest"] == "2026-11-22T12:00:00"
    with pytest.raises(DataError, match=r"fresh_hours needs a date or timestamp column"):
        one(shop, column="email", fresh_hours=1)


def test_referential_integrity(shop: duckdb.DuckDBPyConnection) -> None:
    result = one(shop, column="customer", references={"table": "customers", "column": "id"})
    assert result["failing"] == 1 and result["samples"] == [{"row": 4, "customer": 99}]
    with pytest.raises(DataError, match=r"references names column 'nr', which table 'customers'"):
        one(shop, column="customer", references={"table": "customers", "column": "nr"})


def test_custom_sql_returns_the_failing_rows(shop: duckdb.DuckDBPyConnection) -> None:
    result = one(shop, sql="SELECT id, amount FROM orders WHERE color = 'blue' AND amount > 10")
    assert result["failing"] == 1 and result["samples"] == [{"id": 4, "amount": 11.0}]
    assert one(shop, sql="SELECT * FROM orders WHERE amount < 0")["passed"]


def test_distribution_against_a_reference_table(shop: duckdb.DuckDBPyConnection) -> None:
    near = one(shop, column="amount", distribution={"reference": "last_year", "max_distance": 1})
    assert near["passed"] and near["method"] == "wasserstein/std"
    far = one(shop, column="amount", distribution={"reference": "last_year", "max_distance": 0.1})
    assert not far["passed"] and far["distance"] > 0.1
    colors = one(
        shop, column="color", distribution={"reference": "last_year", "max_distance": 0.05}
    )
    assert colors["passed"] and colors["method"] == "jensen-shannon"  # 50/50 on both sides
    shop.execute("UPDATE orders SET color = 'red'")
    skewed = one(
        shop, column="color", distribution={"reference": "last_year", "max_distance": 0.05}
    )
    assert not skewed["passed"] and skewed["distance"] > 0.5


def test_rules_that_cannot_mix_are_refused_in_the_spec() -> None:
    from pydantic import ValidationError

    for bad, said in [
        ({"column": "id", "unique": True, "not_null": True}, "unique: true is a rule of its own"),
        ({"table": "t", "rows": {"min": 1}, "sql": "select 1"}, "is a rule of its own"),
        ({"column": "id", "rows": {"min": 1}}, "checks a whole table: leave out column"),
        ({"regex": "a+"}, "checks a column: add column"),
        ({"column": "id", "regex": "(unclosed"}, "is not a regular expression"),
        ({"table": "t", "rows": {"min": 5, "max": 1}}, "min must not exceed max"),
    ]:
        with pytest.raises(ValidationError, match=said):
            Check.model_validate(bad)


def test_null_keys_repeat_like_any_other_key(shop: duckdb.DuckDBPyConnection) -> None:
    shop.execute("UPDATE orders SET email = NULL WHERE id = 1")
    result = one(shop, column="email", unique=True)
    assert result["failing"] == 2 and result["samples"] == [{"email": None, "rows": 2}]
    shop.execute("UPDATE orders SET customer = NULL WHERE id = 2")
    pair = one(shop, unique=["id", "customer"])
    assert pair["failing"] == 2 and pair["samples"] == [{"id": 2, "customer": None, "rows": 2}]


def test_the_stage_on_every_core_says_what_one_thread_says(tmp_path: Any) -> None:
    """Checks run on all cores, failures again on one: the report is the one-thread report."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcrew.checks.data import check_tables
    from mlcrew.checks.rules import evaluate_all
    from mlcrew.data.tables import sandbox_views

    n = 300_000
    table = pa.table(
        {
            "id": pa.array([i if i % 99_991 else 7 for i in range(n)]),  # a few repeats of 7
            "code": pa.array([f"C{i:06d}" if i % 50_001 else "bad" for i in range(n)]),
            "amount": pa.array([(i % 1000) / 7 if i % 40_009 else None for i in range(n)]),
        }
    )
    path = tmp_path / "orders.parquet"
    pq.write_table(table, path, row_group_size=20_000)  # 15 row groups to share out
    rules = [
        {"column": "id", "unique": True},
        {"column": "code", "regex": "C[0-9]{6}"},
        {"column": "amount", "not_null": True},
        {"column": "amount", "between": [0, 100], "level": "warn"},
        {"column": "amount", "between": [0, 1000]},
        {"sql": "SELECT id % 10 AS k, count(*) AS n FROM orders GROUP BY 1 HAVING n > 29990"},
        {"column": "amount", "distribution": {"reference": "orders", "max_distance": 0.1}},
    ]
    con = connect()
    sandbox_views(con, {"orders": str(path)})
    # A float sum's last digits change with threads: the check fails on one thread only.
    total = con.execute("SELECT sum(amount) FROM orders").fetchall()[0][0]
    rules.append({"sql": f"SELECT s FROM (SELECT sum(amount) s FROM orders) WHERE s = {total!r}"})
    items = [(k, Check.model_validate(r), "orders") for k, r in enumerate(rules)]
    expected = evaluate_all(con, items)
    assert [r["passed"] for r in expected] == [False, False, False, False, True, False, True, False]
    for _ in range(3):
        assert check_tables({"orders": str(path)}, items) == expected


def test_perfect_hashing_only_for_dense_integer_keys(tmp_path: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcrew.checks.data import _dense_bits

    paths = {}
    for name, ids in {"dense": range(1000, 6000), "sparse": range(0, 16_000_000, 4000)}.items():
        paths[name] = tmp_path / f"{name}.parquet"
        pq.write_table(
            pa.table({"id": pa.array(ids), "tag": pa.array(["x"] * len(ids))}), paths[name]
        )
    con = connect()
    con.execute(f"CREATE VIEW dense AS SELECT * FROM '{paths['dense']}'")
    con.execute(f"CREATE VIEW sparse AS SELECT * FROM '{paths['sparse']}'")
    unique = Check.model_validate({"column": "id", "unique": True})
    assert _dense_bits(con, unique, "dense") == 13  # 5,000 ids span 5,000 values
    assert _dense_bits(con, unique, "sparse") == 0  # 4,000 ids over 16M values: hash them
    assert _dense_bits(con, Check.model_validate({"column": "tag", "unique": True}), "dense") == 0
    assert _dense_bits(con, Check.model_validate({"unique": ["id", "tag"]}), "dense") == 0
