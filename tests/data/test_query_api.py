"""`POST /v1/query` over real HTTP: the sandbox (no files, ATTACH, COPY, INSTALL, SET,
PRAGMA), time and row limits, streaming of large results, the four formats, and who may ask."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest

from mlcrew.api.app import create_app
from mlcrew.pipeline.runner import Runner
from mlcrew.project import Project
from mlcrew.serving.server import BackgroundServer

SPEC = """name: shop
sources:
  orders: {path: orders.csv}
transforms:
  daily: "SELECT day, sum(amount) AS total, count(*) AS n FROM orders GROUP BY day ORDER BY day"
serving: {query: {seconds: 1, rows: 3000000}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    root = tmp_path_factory.mktemp("query") / "shop"
    root.mkdir()
    (root / "mlcrew.yaml").write_text(SPEC)
    rows = "".join(f"{i},{i % 7},{i % 13 * 1.5}\n" for i in range(1000))
    (root / "orders.csv").write_text("id,day,amount\n" + rows)
    proj = Project.open(root, db_url=f"sqlite:///{root / 'meta.db'}")
    Runner(proj.root, proj.store, proj.spec, (root / "mlcrew.yaml").read_text()).run()
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        yield client
    proj.close()


def test_json_answers_columns_and_rows(server: httpx.Client) -> None:
    ready = server.get("/readyz")  # a data-only project has no model to wait for
    assert ready.status_code == 200 and ready.json()["reason"].startswith("data-only project")
    r = server.post("/v1/query", json={"sql": "SELECT day, n FROM daily WHERE day < 3"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"columns": ["day", "n"], "rows": [[0, 143], [1, 143], [2, 143]]}
    assert r.headers["x-mlcrew-tables"] == "daily@1"
    versioned = server.post("/v1/query", json={"sql": "SELECT count(*) AS c FROM orders@1"})
    assert versioned.json() == {"columns": ["c"], "rows": [[1000]]}


def test_csv_arrow_and_parquet(server: httpx.Client) -> None:
    sql = "SELECT id, amount FROM orders ORDER BY id LIMIT 3"
    csv = server.post("/v1/query", json={"sql": sql, "format": "csv"})
    assert csv.text.splitlines() == ['"id","amount"', "0,0", "1,1.5", "2,3"]
    arrow = server.post("/v1/query", json={"sql": sql, "format": "arrow"})
    table = pa.ipc.open_stream(arrow.content).read_all()
    assert table.column("amount").to_pylist() == [0.0, 1.5, 3.0]
    parquet = server.post("/v1/query", json={"sql": sql, "format": "parquet"})
    assert pq.read_table(io.BytesIO(parquet.content)).column("id").to_pylist() == [0, 1, 2]
    empty = server.post(
        "/v1/query", json={"sql": "SELECT id FROM orders WHERE id < 0", "format": "arrow"}
    )
    assert pa.ipc.open_stream(empty.content).read_all().schema.names == ["id"]


@pytest.mark.parametrize(
    ("sql", "status", "said"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", 400, "forbidden"),
        ("SELECT * FROM read_parquet('/etc/hosts')", 400, "forbidden"),
        ("ATTACH '/tmp/mlcrew-attack.db' AS x", 400, "forbidden statement"),
        ("COPY orders TO '/tmp/mlcrew-leak.csv'", 400, "forbidden statement"),
        ("INSTALL httpfs", 400, "forbidden statement"),
        ("SET threads = 64", 400, "forbidden statement"),
        ("PRAGMA database_list", 400, "forbidden statement"),
        ("SELECT 1; SELECT 2", 400, "forbidden statement"),
        ("DROP TABLE orders", 400, "forbidden statement"),
        ("SELEC 1", 400, "not valid SQL"),
        ("SELECT * FROM customers", 404, "no dataset 'customers'; datasets: daily, orders"),
        ("SELECT * FROM orders@9", 404, "dataset 'orders' has no version 9"),
    ],
)
def test_the_sandbox_refuses_with_a_4xx_that_names_the_problem(
    server: httpx.Client, sql: str, status: int, said: str
) -> None:
    r = server.post("/v1/query", json={"sql": sql})
    assert r.status_code == status, r.text
    assert said in r.json()["detail"]
    assert not Path("/tmp/mlcrew-leak.csv").exists()


def test_a_long_query_is_stopped_at_the_time_limit(server: httpx.Client) -> None:
    sql = "SELECT count(*) FROM range(100000000) a, range(100000) b WHERE a.range + b.range = -1"
    r = server.post("/v1/query", json={"sql": sql})
    assert r.status_code == 408 and "time limit of 1 s" in r.json()["detail"]
    assert server.post("/v1/query", json={"sql": "SELECT 1 AS one"}).json()["rows"] == [[1]]


def test_large_results_stream_and_the_row_limit_holds(server: httpx.Client) -> None:
    sql = "SELECT range AS i FROM range(2500000)"
    with server.stream(
        "POST", "/v1/query", json={"sql": sql, "format": "csv", "limit": 2500000}
    ) as r:
        assert r.status_code == 200
        chunks = sum(1 for _ in r.iter_raw())
        assert chunks > 10  # sent in batches, not as one body built in memory
    capped = server.post("/v1/query", json={"sql": sql, "format": "arrow", "limit": 1000})
    assert pa.ipc.open_stream(capped.content).read_all().num_rows == 1000
    over = server.post("/v1/query", json={"sql": sql, "limit": 5_000_000})
    assert over.status_code == 413 and "3000000 rows" in over.json()["detail"]
    bad = server.post("/v1/query", json={"sql": sql, "format": "xml"})
    assert bad.status_code == 422


def test_text_comments_and_errors_while_reading(server: httpx.Client) -> None:
    # `x@1` inside quotes is text, not a table version; a trailing comment is fine.
    r = server.post("/v1/query", json={"sql": "SELECT 'orders@1' AS t -- a note"})
    assert r.json() == {"columns": ["t"], "rows": [["orders@1"]]}
    # An error that only shows up while rows are read is still a 4xx, not a 200 cut short.
    bad = server.post("/v1/query", json={"sql": "SELECT CAST('x' || id AS INTEGER) FROM orders"})
    assert bad.status_code == 400 and "Could not convert" in bad.json()["detail"]
    nested = server.post(
        "/v1/query", json={"sql": "SELECT [1, 2] AS l, {'a': 1} AS s", "format": "csv"}
    )
    assert nested.text.splitlines()[1] == '"[1, 2]","{""a"": 1}"'


def test_a_sandbox_in_use_is_not_closed_under_a_running_query(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcrew.data.query import Limits, Sandboxes

    for name in ("a", "b"):
        pq.write_table(pa.table({"x": [1, 2, 3]}), tmp_path / f"{name}.parquet")
    boxes = Sandboxes(keep=1)
    db_a, cur_a = boxes.cursor({"a": str(tmp_path / "a.parquet")}, Limits())
    db_b, cur_b = boxes.cursor({"b": str(tmp_path / "b.parquet")}, Limits())  # evicts a's
    assert cur_a.execute("SELECT sum(x) FROM a").fetchall() == [(6,)]  # still open
    cur_a.close()
    boxes.release(db_a)  # the last user of an evicted database closes it
    assert cur_b.execute("SELECT count(*) FROM b").fetchall() == [(3,)]
    cur_b.close()
    boxes.release(db_b)
    boxes.close()
