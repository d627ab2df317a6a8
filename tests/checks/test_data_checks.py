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
