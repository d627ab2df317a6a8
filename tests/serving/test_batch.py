"""`mlcrew score`: CSV and Parquet through the champion, one output row per input row, recorded."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from mlcrew.api.app import create_app
from mlcrew.errors import DataError
from mlcrew.project import Project
from mlcrew.serving.batch import score_file
from mlcrew.serving.package import load_package
from mlcrew.serving.server import BackgroundServer
from mlcrew.store.models import LineageEdge, Run, StageExecution

NEW_DATA = "data/bikeshare-jul-dec.csv"


def cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLCREW_DB_URL": project.store.db_url}
    return subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", *args, "-p", str(project.root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def first_rows(src: Path, dst: Path, n: int) -> Path:
    """The header and the first `n` data lines of a CSV."""
    with open(src, newline="") as f, open(dst, "w", newline="") as g:
        for i, line in enumerate(f):
            if i > n:
                break
            g.write(line)
    return dst


def header_of(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f))


def test_csv_and_parquet_score_like_python_and_rest(
    trained_project: Project, tmp_path: Path
) -> None:
    rows_csv = first_rows(trained_project.root / NEW_DATA, tmp_path / "new.csv", 600)
    out = tmp_path / "scored.parquet"
    done = cli(trained_project, "score", "--data", str(rows_csv), "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    scored = pq.read_table(out)
    assert scored.num_rows == summary["input"]["rows"] == summary["output"]["rows"] == 600
    assert scored.column_names == [*header_of(rows_csv), "prediction"]
    assert summary["model"]["version"] == 1 and summary["output"]["format"] == "parquet"
    assert scored.column("hr").type == pa.int64() and scored.column("temp").type == pa.float64()

    # The same rows as Python and REST clients send them: the same predictions.
    model = load_package(trained_project.store, "bike-demand").model
    rows = scored.select(model.feature_names).to_pylist()
    predictions = scored.column("prediction").to_pylist()
    assert model.predict_rows(rows) == predictions
    app = create_app(trained_project.root, trained_project.spec, trained_project.store)
    with BackgroundServer(app) as server:
        response = httpx.post(
            f"{server.url}/v1/models/bike-demand/predict", json={"rows": rows[:50]}, timeout=30
        )
    assert response.status_code == 200
    assert response.json()["predictions"] == predictions[:50]

    # Parquet in, CSV out, by version number: the same rows and predictions.
    pq.write_table(scored.drop_columns(["prediction"]), tmp_path / "rows.parquet")
    args = ["--data", str(tmp_path / "rows.parquet"), "--out", str(tmp_path / "back.csv")]
    again = cli(trained_project, "score", *args, "--version", "1")
    assert again.returncode == 0, again.stderr
    assert "scored 600 rows with bike-demand version 1" in again.stdout
    back = pcsv.read_csv(tmp_path / "back.csv")
    assert back.num_rows == 600 and back.column_names == scored.column_names
    assert back.column("prediction").to_pylist() == pytest.approx(predictions, rel=1e-12)


def test_chunks_change_nothing_and_the_run_is_recorded_with_lineage(
    trained_project: Project, tmp_path: Path
) -> None:
    source = first_rows(trained_project.root / NEW_DATA, tmp_path / "new.csv", 1000)
    store = trained_project.store
    whole = score_file(store, "bike-demand", source, tmp_path / "whole.parquet")
    seen: list[tuple[int, int]] = []
    chunked = score_file(
        store,
        "bike-demand",
        source,
        tmp_path / "chunked.parquet",
        chunk_rows=50,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert len(seen) > 3 and seen[-1] == (1000, 1000)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert all(abs(total - 1000) < 100 for _, total in seen)  # the CSV's rows, estimated
    assert pq.read_table(tmp_path / "chunked.parquet").equals(
        pq.read_table(tmp_path / "whole.parquet")
    )
    assert chunked.rows == whole.rows == 1000
    with store.session() as s:
        run = s.get(Run, chunked.run_id)
        assert run is not None and (run.kind, run.status) == ("score", "ok")
        assert run.summary["output"]["digest"] == chunked.output_digest
        execution = s.scalars(
            select(StageExecution).where(StageExecution.run_id == chunked.run_id)
        ).one()
        edges = s.scalars(select(LineageEdge).where(LineageEdge.execution_id == execution.id)).all()
        assert {(e.parent, e.child) for e in edges} == {
            (chunked.model_digest, chunked.output_digest),
            (chunked.input_digest, chunked.output_digest),
        }
    from mlcrew.errors import MlcrewError
    from mlcrew.pipeline.reproduce import reproduce

    with pytest.raises(MlcrewError, match="is a score run, not a pipeline run"):
        reproduce(store, chunked.run_id)


def test_a_bad_row_is_named_and_nothing_is_written(
    trained_project: Project, tmp_path: Path
) -> None:
    lines = first_rows(trained_project.root / NEW_DATA, tmp_path / "x.csv", 300).read_text()
    rows = lines.splitlines()
    temp = header_of(tmp_path / "x.csv").index("temp")
    cells = rows[250].split(",")
    cells[temp] = "hot"
    rows[250] = ",".join(cells)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out.parquet"
    with pytest.raises(
        DataError, match=r"bad\.csv row 250, field 'temp': expected a number, got 'hot'"
    ):
        score_file(trained_project.store, "bike-demand", bad, out, chunk_rows=40)
    assert not out.exists() and not list(tmp_path.glob(".out.parquet*"))
    with trained_project.store.session() as s:
        failed = s.scalars(select(Run).where(Run.kind == "score", Run.status == "failed")).all()
        assert any("row 250, field 'temp'" in (r.error or "") for r in failed)

    done = cli(trained_project, "score", "--data", str(bad), "--out", str(out))
    assert done.returncode == 1
    assert done.stderr.startswith("error: bad.csv row 250, field 'temp'")
    assert "Traceback" not in done.stderr

    pq.write_table(pa.table({"hr": [1, 2], "temp": [0.5, 0.6]}), tmp_path / "narrow.parquet")
    with pytest.raises(DataError, match=r"no column 'holiday', 'weekday'.*which the model reads"):
        score_file(trained_project.store, "bike-demand", tmp_path / "narrow.parquet", out)
    with pytest.raises(DataError, match=r"cannot tell the output format.*\.csv, \.parquet"):
        score_file(trained_project.store, "bike-demand", bad, tmp_path / "out.xlsx")


@pytest.mark.parametrize("kind", ["boolean", "integer"])
def test_classes_keep_their_type_in_files_and_over_http(tmp_path: Path, kind: str) -> None:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    root = tmp_path / "p"
    root.mkdir()
    names = [n.replace(" ", "_") for n in data.feature_names]
    with open(root / "data.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*names, "benign"])
        for row, t in zip(data.data, data.target, strict=True):
            w.writerow([*row, ("true" if t else "false") if kind == "boolean" else int(t)])
    (root / "mlcrew.yaml").write_text(
        "name: cancer\nsources: {rows: {path: data.csv}}\n"
        "dataset: {from: rows, split: {by: random, test: 0.25}}\ntarget: benign\n"
        "training: {budget: {rounds: 40}}\n"
    )
    project = Project.open(root, db_url=f"sqlite:///{tmp_path / 'meta.db'}")
    assert project.run().champion == {"name": "cancer", "version": 1}
    scored = score_file(project.store, "cancer", root / "data.csv", tmp_path / "s.parquet")
    table = pq.read_table(scored.output_path)
    python_type, arrow_type, labels = {
        "boolean": (bool, pa.bool_(), ["False", "True"]),
        "integer": (int, pa.int64(), ["0", "1"]),
    }[kind]
    assert table.column("prediction").type == arrow_type
    assert table.column_names[-3:] == ["prediction", *(f"probability_{c}" for c in labels)]
    truth = table.column("benign").to_pylist()
    predicted = table.column("prediction").to_pylist()
    assert sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth) > 0.95

    app = create_app(project.root, project.spec, project.store)
    rows = table.select(names).slice(0, 20).to_pylist()
    with BackgroundServer(app) as server:
        response = httpx.post(
            f"{server.url}/v1/models/cancer/predict", json={"rows": rows}, timeout=30
        )
    assert response.status_code == 200
    assert response.json()["predictions"] == predicted[:20]
    assert {type(p) for p in response.json()["predictions"]} == {python_type}
    # On the wire: true/false or 0/1, never "False" or "0".
    first = ("true" if predicted[0] else "false") if kind == "boolean" else str(predicted[0])
    assert f'"predictions":[{first},' in response.text.replace(" ", "")
    project.close()


def test_every_feature_type_from_csv_text(tmp_path: Path) -> None:
    """Booleans, integers, numbers and categories read from CSV text as the model expects,
    each bad value named by row and field; predictions equal the Python ones."""
    from mlcrew.registry.versions import register_version
    from mlcrew.store import Store
    from mlcrew.training.model import TabularModel, base_params

    train = pa.table(
        {
            "wet": [True, False, True, False] * 30,
            "day": pa.array([1, 2, 3, 4] * 30, type=pa.int64()),
            "size": [1.0, 2.5, 3.0, 4.5] * 30,
            "color": ["red", "blue", "red", "green"] * 30,
            "y": [10.0, 1.0, 11.0, 5.0] * 30,
        }
    )
    model = TabularModel("regression", base_params("regression", 0, 0, 1), 20)
    model.fit(train, "y", ["wet", "day", "size", "color"])
    store = Store(f"sqlite:///{tmp_path / 'meta.db'}", tmp_path / "artifacts")
    digest = store.artifacts.put_bytes(model.to_json().encode())
    register_version(
        store,
        "toy",
        digest,
        run_id="r",
        spec_digest="0" * 64,
        data_digests={},
        metrics={},
        verdict={"passed": True, "reasons": []},
    )
    good = tmp_path / "good.csv"
    good.write_text(
        "id,wet,day,size,color\n"
        "a,true,1,1.0,red\n"
        "b,FALSE, 2 ,2.5,blue\n"
        "c,,3,,purple\n"  # missing values and an unseen level
    )
    result = score_file(store, "toy", good, tmp_path / "out.parquet", 1)
    out = pq.read_table(result.output_path)
    assert out.column_names == ["id", "wet", "day", "size", "color", "prediction"]
    assert out.column("wet").to_pylist() == [True, False, None]
    assert out.column("day").to_pylist() == [1, 2, 3]
    rows = [
        {"wet": True, "day": 1, "size": 1.0, "color": "red"},
        {"wet": False, "day": 2, "size": 2.5, "color": "blue"},
        {"wet": None, "day": 3, "size": None, "color": "purple"},
    ]
    assert out.column("prediction").to_pylist() == model.predict_rows(rows)

    for line, message in [
        ("d,maybe,1,1.0,red", "row 2, field 'wet': expected true or false, got 'maybe'"),
        ("d,true,1.5,1.0,red", "row 2, field 'day': expected an integer, got '1.5'"),
        ("d,true,1,inf,red", "row 2, field 'size': expected a finite number, got 'inf'"),
    ]:
        bad = tmp_path / "bad.csv"
        bad.write_text("id,wet,day,size,color\na,true,1,1.0,red\n" + line + "\n")
        with pytest.raises(DataError, match=re.escape(message)):
            score_file(store, "toy", bad, tmp_path / "bad-out.csv", 1)
    store.close()
