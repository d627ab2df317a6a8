"""Ingest and split as a data engineer meets them: formats, transforms, sandbox, seeded splits."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcrew.errors import DataError
from mlcrew.pipeline.execute import execute_stage
from mlcrew.pipeline.stages import stage_by_name
from mlcrew.spec import parse_spec
from mlcrew.store import Store


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "artifacts")


def ingest(store: Store, tmp_path: Path, spec_text: str, files: dict[str, Path]) -> pa.Table:
    spec = parse_spec(spec_text)
    stage = stage_by_name("ingest")
    inputs = {f"source.{n}": store.artifacts.put_file(p) for n, p in files.items()}
    outputs, _ = execute_stage(stage, stage.config(spec), inputs, store, "t", dry_run=False)
    return pq.read_table(store.artifacts.local_path(outputs["dataset"]))


def test_parquet_and_json_sources_joined_by_sql(store: Store, tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": [1, 2, 3], "x": [0.5, 1.5, 2.5]}), tmp_path / "a.parquet")
    (tmp_path / "b.json").write_text(
        "\n".join(json.dumps({"id": i, "label": lab}) for i, lab in [(1, "n"), (2, "y"), (3, "y")])
    )
    spec = """
name: t
sources: {a: {path: a.parquet}, b: {path: b.json}}
transforms:
  joined: select a.id, a.x, b.label from a join b using (id) order by a.id
dataset: {from: joined}
target: label
"""
    table = ingest(store, tmp_path, spec, {"a": tmp_path / "a.parquet", "b": tmp_path / "b.json"})
    assert table.to_pydict() == {"id": [1, 2, 3], "x": [0.5, 1.5, 2.5], "label": ["n", "y", "y"]}


def test_transform_error_names_the_transform(store: Store, tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    spec = """
name: t
sources: {a: {path: a.csv}}
transforms: {broken: select nope from a}
dataset: {from: broken}
target: y
"""
    with pytest.raises(DataError, match=r"transform 'broken' failed: .*nope"):
        ingest(store, tmp_path, spec, {"a": tmp_path / "a.csv"})


def test_transforms_cannot_read_files(store: Store, tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "secret.csv").write_text("password\nhunter2\n")
    spec = f"""
name: t
sources: {{a: {{path: a.csv}}}}
transforms: {{leak: "select * from read_csv('{tmp_path / "secret.csv"}')"}}
dataset: {{from: leak}}
target: y
"""
    with pytest.raises(DataError, match="transform 'leak' failed"):
        ingest(store, tmp_path, spec, {"a": tmp_path / "a.csv"})


def test_unreadable_source_names_it(store: Store, tmp_path: Path) -> None:
    (tmp_path / "a.parquet").write_text("this is not parquet")
    spec = "name: t\nsources: {a: {path: a.parquet}}\ndataset: {from: a}\ntarget: y\n"
    with pytest.raises(DataError, match=r"'a' \(a.parquet\): cannot read as parquet: .*the file"):
        ingest(store, tmp_path, spec, {"a": tmp_path / "a.parquet"})


def test_random_split_is_seeded(store: Store, tmp_path: Path) -> None:
    pq.write_table(pa.table({"i": list(range(100)), "y": [0, 1] * 50}), tmp_path / "d.parquet")
    digest = store.artifacts.put_file(tmp_path / "d.parquet")
    stage = stage_by_name("split")

    def test_ids(seed: int) -> list[int]:
        spec = parse_spec(
            f"name: t\nseed: {seed}\nsources: {{d: {{path: d.parquet}}}}\n"
            "dataset: {from: d, split: {by: random, test: 0.3}}\ntarget: y\n"
        )
        out, record = execute_stage(
            stage, stage.config(spec), {"ingest.dataset": digest}, store, "t", dry_run=False
        )
        assert record == {"by": "random", "seed": seed, "train_rows": 70, "test_rows": 30}
        return pq.read_table(store.artifacts.local_path(out["test"])).column("i").to_pylist()

    assert test_ids(0) == test_ids(0)
    assert test_ids(0) != test_ids(1)


def test_transform_must_be_one_select(store: Store, tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    spec = """
name: t
sources: {a: {path: a.csv}}
transforms: {sneaky: "select * from a; set threads=4"}
dataset: {from: sneaky}
target: y
"""
    with pytest.raises(DataError, match="'sneaky' must be exactly one SELECT statement"):
        ingest(store, tmp_path, spec, {"a": tmp_path / "a.csv"})


def test_semicolon_csv_is_sniffed_and_ragged_lines_are_named(store: Store, tmp_path: Path) -> None:
    (tmp_path / "semi.csv").write_text("a;b;y\n1;2;3\n4;5;6\n")
    spec = "name: t\nsources: {s: {path: semi.csv}}\ndataset: {from: s}\ntarget: y\n"
    table = ingest(store, tmp_path, spec, {"s": tmp_path / "semi.csv"})
    assert table.column_names == ["a", "b", "y"] and table.num_rows == 2
    lines = ["a,b,y", *(f"{i},{i},{i}" for i in range(500)), "1,2,3,4"]  # ragged last line
    (tmp_path / "ragged.csv").write_text("\n".join(lines) + "\n")
    spec = "name: t\nsources: {r: {path: ragged.csv}}\ndataset: {from: r}\ntarget: y\n"
    with pytest.raises(DataError, match=r"line 502: 4 fields where the header has 3"):
        ingest(store, tmp_path, spec, {"r": tmp_path / "ragged.csv"})


def test_pivot_is_a_valid_transform(store: Store, tmp_path: Path) -> None:
    (tmp_path / "long.csv").write_text("id,k,v\n1,a,10\n1,b,20\n2,a,30\n2,b,40\n")
    spec = """
name: t
sources: {long: {path: long.csv}}
transforms: {wide: "pivot long on k using sum(v) group by id order by id"}
dataset: {from: wide}
target: a
"""
    table = ingest(store, tmp_path, spec, {"long": tmp_path / "long.csv"})
    assert table.to_pydict() == {"id": [1, 2], "a": [10, 30], "b": [20, 40]}
