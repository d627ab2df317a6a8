"""Transforms as cached, versioned nodes: one changed transform re-runs it and what reads it,
not the others; Python transforms run in a child with limits and are keyed by their code; a
spec without a target is a data-only project."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mlcrew.errors import DataError, SpecError
from mlcrew.pipeline.runner import Runner
from mlcrew.project import Project
from mlcrew.spec import parse_spec
from mlcrew.store.models import DatasetVersion

SPEC = """name: shop
sources:
  orders: {path: orders.csv}
  customers: {path: customers.csv}
transforms:
  big_orders: "SELECT * FROM orders WHERE amount >= 10"
  regions: "SELECT id, upper(region) AS region FROM customers"
  joined: |
    SELECT o.id, o.amount, r.region FROM big_orders o JOIN regions r ON o.customer = r.id
    ORDER BY o.id
checks:
  - {table: orders, unique: [id]}
  - {table: joined, column: region, in: [NORTH, SOUTH]}
"""


def _project(root: Path, spec: str = SPEC, files: dict[str, str] | None = None) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    files = files or {
        "orders.csv": "id,customer,amount\n1,1,5\n2,1,15\n3,2,25\n4,2,30\n",
        "customers.csv": "id,region\n1,north\n2,south\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "mlcrew.yaml").write_text(spec)
    return Project.open(root, db_url=f"sqlite:///{root / 'meta.db'}")


def _run(proj: Project, **kwargs: Any) -> dict[str, Any]:
    text = (proj.root / "mlcrew.yaml").read_text()
    spec = parse_spec(text)
    result = Runner(proj.root, proj.store, spec, text).run(**kwargs)
    return {o.name: o for o in result.stages}


def _states(stages: dict[str, Any]) -> dict[str, str]:
    return {n: t["state"] for n, t in stages["ingest"].record["tables"].items()}


def _edit(proj: Project, old: str, new: str) -> None:
    path = proj.root / "mlcrew.yaml"
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))


def test_a_data_only_project_runs_sources_transforms_and_checks(tmp_path: Path) -> None:
    proj = _project(tmp_path / "p")
    stages = _run(proj)
    assert list(stages) == ["ingest", "check"]  # no target: nothing after the checks
    assert set(stages["ingest"].outputs) == {"catalog"}
    assert stages["ingest"].record["tables"]["joined"]["rows"] == 3
    assert stages["check"].record["checks"] == 2
    with pytest.raises(SpecError, match=r"project 'shop' is data-only \(no target:\)"):
        parse_spec(SPEC).model_target  # noqa: B018
    proj.close()


def test_one_changed_transform_reruns_itself_and_its_readers_only(tmp_path: Path) -> None:
    proj = _project(tmp_path / "p")
    assert set(_states(_run(proj)).values()) == {"executed"}
    _edit(proj, "upper(region) AS region", "upper(region) AS region, 1 AS tier")
    assert _states(_run(proj)) == {
        "orders": "cached",
        "customers": "cached",
        "big_orders": "cached",
        "regions": "executed",
        "joined": "executed",
    }
    (proj.root / "orders.csv").write_text("id,customer,amount\n1,1,5\n2,1,15\n3,2,26\n")
    assert _states(_run(proj)) == {
        "orders": "executed",
        "customers": "cached",
        "big_orders": "executed",
        "regions": "cached",
        "joined": "executed",
    }
    assert set(_states(_run(proj, force=True)).values()) == {"executed"}  # --force: all
    # A change that leaves a transform's output as it was stops there: its readers are cached.
    _edit(proj, "upper(region)", "upper(trim(region))")
    states = _states(_run(proj))
    assert states["regions"] == "executed" and states["joined"] == "cached"
    proj.close()


def test_each_distinct_output_is_a_version_with_its_parents(tmp_path: Path) -> None:
    proj = _project(tmp_path / "p")
    _run(proj)
    _edit(proj, "amount >= 10", "amount >= 20")
    tables = _run(proj)["ingest"].record["tables"]
    assert tables["big_orders"]["version"] == 2 and tables["joined"]["version"] == 2
    _edit(proj, "amount >= 20", "amount >= 10")  # back to the first content: version 1 again
    ingest = _run(proj)["ingest"]
    assert ingest.state == "cached" and ingest.record["tables"]["big_orders"]["version"] == 1
    with proj.store.session() as s:
        joined = s.scalars(
            select(DatasetVersion).where(DatasetVersion.name == "joined").order_by("version")
        ).all()
    assert [v.version for v in joined] == [1, 2]
    assert [(p["name"], p["version"]) for p in joined[1].parents] == [
        ("big_orders", 2),
        ("regions", 1),
    ]
    assert joined[1].kind == "sql" and joined[1].rows == 2
    proj.close()


def test_a_transform_cannot_write_files_even_inside_a_pivot(tmp_path: Path) -> None:
    sneaky = (
        "COPY (PIVOT (SELECT 666 AS a, 'evil' AS e) ON e USING sum(a)) "
        "TO '/tmp/mlcrew-pivot-leak.parquet' (FORMAT parquet)"
    )
    proj = _project(tmp_path / "p", SPEC.replace('"SELECT * FROM orders WHERE amount >= 10"',
                                                 f'"{sneaky}"'))  # fmt: skip
    with pytest.raises(DataError, match=r"'big_orders' must be exactly one SELECT statement"):
        _run(proj)
    assert not Path("/tmp/mlcrew-pivot-leak.parquet").exists()
    proj.close()


def test_a_packages_own_imports_are_part_of_a_python_transforms_code(tmp_path: Path) -> None:
    from mlcrew.data.pycode import module_files

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("from .helpers import K\n")
    (tmp_path / "pkg" / "helpers.py").write_text("K = 2\n")
    (tmp_path / "pkg" / "score.py").write_text("def score(t):\n    return t\n")
    names = [n for n, _ in module_files(tmp_path, "pkg.score:score")]
    assert names == ["pkg/__init__.py", "pkg/helpers.py", "pkg/score.py"]


def test_a_transform_reading_an_unknown_table_is_named(tmp_path: Path) -> None:
    proj = _project(tmp_path / "p", SPEC.replace("FROM customers", "FROM customer"))
    with pytest.raises(DataError, match=r"'regions' reads 'customer', which is neither a source"):
        _run(proj)
    proj.close()


PY_SPEC = """name: shop
sources:
  orders: {path: orders.csv}
transforms:
  scored: {python: "pipeline.score:score"}
  summary: "SELECT count(*) AS n, sum(score) AS total FROM scored"
"""


def _py_project(root: Path, body: str) -> Project:
    files = {
        "orders.csv": "id,amount\n1,5\n2,15\n",
        "pipeline/__init__.py": "",
        "pipeline/weights.py": "WEIGHT = 2\n",
        "pipeline/score.py": body,
    }
    return _project(root, PY_SPEC, files)


SCORE = """import pyarrow.compute as pc
from pipeline.weights import WEIGHT


def score(orders):
    return orders.append_column("score", pc.multiply(orders.column("amount"), WEIGHT))
"""


def test_a_python_transform_runs_and_reruns_when_its_code_or_an_import_changes(
    tmp_path: Path,
) -> None:
    proj = _py_project(tmp_path / "p", SCORE)
    stages = _run(proj)
    assert stages["ingest"].record["tables"]["scored"]["kind"] == "python"
    assert stages["ingest"].record["tables"]["summary"]["rows"] == 1
    assert _run(proj)["ingest"].state == "cached"
    (proj.root / "pipeline" / "weights.py").write_text("WEIGHT = 3\n")  # an imported module
    assert _states(_run(proj)) == {"orders": "cached", "scored": "executed", "summary": "executed"}
    (proj.root / "pipeline" / "score.py").write_text(SCORE + "\n# a comment changes the code\n")
    assert _states(_run(proj))["scored"] == "executed"
    proj.close()


@pytest.mark.parametrize(
    ("body", "limits", "message"),
    [
        (
            "import time\n\ndef score(orders):\n    time.sleep(60)\n",
            "timeout_seconds: 1",
            r"ran past its time limit of 1 s and was stopped; .*transforms.scored.timeout_seconds",
        ),
        (
            "def score(orders):\n    hog = bytearray(2 << 30)\n    return orders\n",
            "memory_mb: 1024",
            r"ran out of its memory limit of 1024 MB; .*transforms.scored.memory_mb",
        ),
        (
            "def score(orders):\n    return orders.column('nope')\n",
            "timeout_seconds: 60",
            r"failed: KeyError: .*nope.* \(at score.py:2\)",
        ),
        (
            "def score(orders):\n    return 42\n",
            "timeout_seconds: 60",
            r"failed: TypeError: returned int, not a pyarrow.Table",
        ),
        (
            "def score(order_rows):\n    return order_rows\n",
            "timeout_seconds: 60",
            r"takes 'order_rows', which is neither a source nor a transform above it",
        ),
    ],
)
def test_a_python_transform_is_held_to_its_limits_and_named_when_it_fails(
    tmp_path: Path, body: str, limits: str, message: str
) -> None:
    proj = _py_project(tmp_path / "p", body)
    _edit(proj, '{python: "pipeline.score:score"}', f'{{python: "pipeline.score:score", {limits}}}')
    with pytest.raises(DataError, match=message):
        _run(proj)
    proj.close()
