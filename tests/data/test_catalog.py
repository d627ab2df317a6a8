"""Datasets as the team reads them: list, show (the JSON outside checks rely on), diff of two
versions with known changes, profiles, suggested checks that pass on their own data, and the
query command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mlcrew.checks.data import evaluate_checks
from mlcrew.data.catalog import (
    data_path,
    diff_datasets,
    list_datasets,
    profile_dataset,
    resolve,
    show_dataset,
    suggest_checks,
)
from mlcrew.data.tables import connect
from mlcrew.errors import NotFoundError
from mlcrew.pipeline.runner import Runner
from mlcrew.project import Project
from mlcrew.spec import Check, parse_spec

SPEC = """name: people
sources:
  staff: {path: staff.csv}
transforms:
  adults: "SELECT id, name, age, team FROM staff WHERE age >= 18 ORDER BY id"
"""
V1 = "id,name,age,team\n1,Ann,34,red\n2,Bob,17,blue\n3,Cid,45,blue\n4,Dee,29,red\n5,Eve,52,red\n"
# v2: Cid's age changed, Dee removed, Fay added; a new column `city`; Bob now an adult.
V2 = (
    "id,name,age,team,city\n1,Ann,34,red,Bern\n2,Bob,18,blue,Basel\n3,Cid,46,blue,Bern\n"
    "5,Eve,52,red,Chur\n6,Fay,23,blue,Bern\n"
)


def _run(root: Path) -> None:
    text = (root / "mlcrew.yaml").read_text()
    proj = Project.open(root, db_url=f"sqlite:///{root / 'meta.db'}")
    Runner(proj.root, proj.store, parse_spec(text), text).run()
    proj.close()


@pytest.fixture()
def project(tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "p"
    root.mkdir()
    (root / "mlcrew.yaml").write_text(SPEC)
    (root / "staff.csv").write_text(V1)
    _run(root)
    (root / "staff.csv").write_text(V2)
    _run(root)
    proj = Project.open(root, db_url=f"sqlite:///{root / 'meta.db'}")
    yield proj
    proj.close()


def test_list_and_show_with_lineage(project: Project) -> None:
    listed = {d["name"]: d for d in list_datasets(project.store)}
    assert {n: (d["version"], d["versions"]) for n, d in listed.items()} == {
        "adults": (2, 2),
        "staff": (2, 2),
    }
    doc = show_dataset(project.store, "adults@1")
    assert (doc["name"], doc["version"], doc["rows"]) == ("adults", 1, 4)
    assert doc["schema"][:2] == [
        {"name": "id", "type": "int64"},
        {"name": "name", "type": "string"},
    ]
    assert [(p["name"], p["version"]) for p in doc["parents"]] == [("staff", 1)]
    assert show_dataset(project.store, "staff@1")["children"] == [{"name": "adults", "version": 1}]
    age = next(c for c in doc["profile"]["columns"] if c["name"] == "age")
    assert (age["min"], age["max"], age["missing"], age["distinct"]) == (29, 52, 0, 4)
    with pytest.raises(NotFoundError, match=r"dataset 'adults' has no version 7; versions: 1, 2"):
        resolve(project.store, "adults@7")
    with pytest.raises(NotFoundError, match=r"no dataset 'adult' \(did you mean 'adults'\?\)"):
        resolve(project.store, "adult")


def test_diff_names_schema_rows_statistics_and_changed_rows(project: Project) -> None:
    doc = diff_datasets(project.store, "staff@1", "staff@2")
    assert doc["rows"] == {"from": 5, "to": 5, "delta": 0}
    assert doc["schema"] == {
        "added": [{"name": "city", "type": "string"}],
        "removed": [],
        "retyped": [],
    }
    by_key = doc["by_key"]  # `id` is unique on both sides: the key
    assert (by_key["key"], by_key["added"], by_key["removed"], by_key["changed"]) == (
        ["id"],
        1,
        1,
        2,
    )
    assert by_key["samples"] == [
        {"key": {"id": 2}, "changes": {"age": {"from": 17, "to": 18}}},
        {"key": {"id": 3}, "changes": {"age": {"from": 45, "to": 46}}},
    ]
    age = next(c for c in doc["columns"] if c["name"] == "age")["changes"]
    assert "max" not in age  # unchanged statistics are left out
    assert age["min"] == {"from": 17, "to": 18, "delta": 1.0}


def test_suggested_checks_pass_on_the_data_they_came_from(project: Project) -> None:
    for ref in ("staff", "adults@1"):
        version = resolve(project.store, ref)
        profile = profile_dataset(project.store, version)
        suggested = suggest_checks(profile, version.name)
        kinds = {k for c in suggested for k in c if k not in ("table", "column")}
        assert {"type", "not_null", "between", "unique", "rows"} <= kinds
        con = connect()
        path = str(data_path(project.store, version)).replace("'", "''")
        con.execute(f"CREATE VIEW {version.name} AS SELECT * FROM read_parquet('{path}')")
        checks = [Check.model_validate(c) for c in yaml.safe_load(yaml.safe_dump(suggested))]
        results = evaluate_checks(con, version.name, checks)
        assert all(r["passed"] for r in results), [r for r in results if not r["passed"]]
    team = next(
        c
        for c in suggest_checks(profile_dataset(project.store, "staff"), "staff")
        if c.get("column") == "team" and "in" in c
    )
    assert team["in"] == ["blue", "red"]


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", *args, "-p", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "MLCREW_DB_URL": f"sqlite:///{root / 'meta.db'}"},
    )


def test_the_data_commands_print_the_documented_json(project: Project) -> None:
    shown = json.loads(_cli(project.root, "data", "show", "adults", "--json").stdout)
    assert {"name", "version", "rows", "schema"} <= set(shown)
    assert (shown["name"], shown["version"], shown["rows"]) == ("adults", 2, 5)
    assert all(set(c) == {"name", "type"} for c in shown["schema"])
    source = json.loads(_cli(project.root, "data", "show", "staff@1", "--json").stdout)
    assert source["rows"] == 5 and source["kind"] == "source"
    proc = _cli(
        project.root,
        "data", "query", "SELECT team, count(*) AS n FROM adults GROUP BY team ORDER BY team",
        "--format", "json",
    )  # fmt: skip
    assert json.loads(proc.stdout) == {"columns": ["team", "n"], "rows": [["blue", 3], ["red", 2]]}
    old = _cli(project.root, "data", "query", "SELECT count(*) FROM adults@1", "-f", "csv")
    assert old.stdout.splitlines()[1] == "4"
    bad = _cli(project.root, "data", "query", "SELECT * FROM read_csv('/etc/passwd')")
    assert bad.returncode != 0 and "forbidden" in bad.stderr
    suggested = _cli(project.root, "data", "profile", "adults", "--suggest")
    parsed = yaml.safe_load(suggested.stdout)
    assert parsed["checks"][0]["table"] == "adults"
    diff = json.loads(_cli(project.root, "data", "diff", "adults@1", "adults@2", "--json").stdout)
    assert diff["by_key"]["added"] == 2  # Bob (now 18) and Fay


def test_a_profile_and_a_diff_survive_nan_and_a_changed_type(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "p"
    root.mkdir()
    (root / "mlcrew.yaml").write_text("name: odd\nsources:\n  t: {path: t.parquet}\n")
    pq.write_table(pa.table({"id": [1, 2, 3], "x": [1.0, float("nan"), 2.0]}), root / "t.parquet")
    _run(root)
    pq.write_table(pa.table({"id": [1, 2, 3], "x": ["1", "b", "2"]}), root / "t.parquet")
    _run(root)
    proj = Project.open(root, db_url=f"sqlite:///{root / 'meta.db'}")
    x = next(c for c in profile_dataset(proj.store, "t@1")["columns"] if c["name"] == "x")
    assert (x["min"], x["max"], sum(x["histogram"])) == (1.0, 2.0, 2)  # the finite values
    doc = diff_datasets(proj.store, "t@1", "t@2")
    assert doc["schema"]["retyped"] == [{"name": "x", "from": "double", "to": "string"}]
    assert doc["by_key"]["changed"] == 3  # '1.0' -> '1' is a change of text too
    proj.close()
