#!/usr/bin/env python3
"""Benchmark: the data engineer's plumbing on a 10M-row table, side by side with the floor.

Three comparisons, each interleaved round-robin so machine noise hits both sides alike:

1. **Transform overhead** (goal: <= 10% over raw DuckDB). The same SQL, run as mlcrew runs a
   transform node (a fresh sandboxed DuckDB connection over the input's Parquet file, the
   result written as Parquet with fixed settings and stored by digest as a dataset version)
   against raw DuckDB in-process (`COPY (SQL) TO file.parquet`) on one thread and on all.
   mlcrew's node runs with its default threads (all cores for a row-level query, one for a
   group-by, whose float sums change with threads) and with `threads:` set to all cores.
2. **Checks** (10 checks x 10M rows) as the check stage runs them, against pandera 0.x on
   pandas (in bench/.venv), the same data and the same rules; pandera's time is given with
   and without reading the Parquet file into pandas.
3. **The query API** (goal: at most a few ms plus serialisation over raw DuckDB): a typical
   aggregate through `POST /v1/query` of a running `mlcrew serve`, against the same SQL on a
   raw in-process DuckDB connection, p50 and p99 at concurrency 1 (the two alternating,
   request by request) and 8 (each side alone, in alternating blocks).

Usage: .venv/bin/python bench/data.py [--rows 10000000] [--repeat 5] [--requests 200]
Writes bench/results/data.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import PEERS_BIN, RESULTS, cpu_model, free_port, get, stop, tree_cpu, wait_until

TRANSFORMS = {
    "aggregate": "SELECT customer % 1000 AS shard, category, count(*) AS n, sum(amount) AS total "
    "FROM orders WHERE amount > 10 GROUP BY ALL ORDER BY shard, category",
    "row-level": "SELECT id, customer, amount * 1.2 AS gross, upper(category) AS cat, day "
    "FROM orders WHERE flag",
}
BLOCKS = 4  # alternating blocks of concurrent requests per side
QUERY = "SELECT category, count(*) AS n, avg(amount) AS mean FROM orders GROUP BY 1 ORDER BY 1"
CATEGORIES = [f"cat{i:02d}" for i in range(20)]
CHECKS = [
    {"column": "id", "not_null": True},
    {"column": "id", "unique": True},
    {"column": "customer", "not_null": True},
    {"column": "customer", "between": [1, 100000]},
    {"column": "amount", "between": [0, 1000]},
    {"column": "category", "in": CATEGORIES},
    {"column": "code", "regex": "C[0-9]{6}"},
    {"column": "code", "not_null": True},
    {"column": "day", "not_null": True},
    {"column": "flag", "not_null": True},
]
PANDERA = """
import sys, time, json
import pandas as pd, pandera.pandas as pa
path = sys.argv[1]
cats = json.loads(sys.argv[2])
schema = pa.DataFrameSchema({
    "id": pa.Column(int, nullable=False, unique=True),
    "customer": pa.Column(int, pa.Check.in_range(1, 100000), nullable=False),
    "amount": pa.Column(float, pa.Check.in_range(0, 1000), nullable=True),
    "category": pa.Column(str, pa.Check.isin(cats), nullable=True),
    "code": pa.Column(str, pa.Check.str_matches(r"^C[0-9]{6}$"), nullable=False),
    "day": pa.Column(nullable=False),
    "flag": pa.Column(bool, nullable=False),
})
t0 = time.perf_counter()
df = pd.read_parquet(path)
t1 = time.perf_counter()
schema.validate(df, lazy=True)
t2 = time.perf_counter()
print(json.dumps({"read": t1 - t0, "validate": t2 - t1}))
"""


def make_data(path: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    writer = None
    step = 1_000_000
    for start in range(0, rows, step):
        n = min(step, rows - start)
        ids = np.arange(start, start + n, dtype=np.int64)
        codes = pa.array([f"C{i % 1_000_000:06d}" for i in ids])
        table = pa.table(
            {
                "id": ids,
                "customer": rng.integers(1, 100_001, n),
                "amount": np.round(rng.gamma(2.0, 30.0, n), 2),
                "category": pa.array(np.array(CATEGORIES)[rng.integers(0, 20, n)]),
                "code": codes,
                "day": pa.array(
                    (np.datetime64("2025-01-01") + rng.integers(0, 365, n)).astype("datetime64[D]")
                ),
                "flag": rng.random(n) < 0.5,
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table)
    assert writer is not None
    writer.close()


def timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_transforms(data: Path, tmp: Path, repeat: int) -> list[dict[str, Any]]:
    import duckdb

    from mlcrew.data.nodes import NodeStore, node_key
    from mlcrew.data.transforms import run_transform
    from mlcrew.spec import Transform
    from mlcrew.store import Store

    store = Store(f"sqlite:///{tmp / 'meta.db'}", tmp / "artifacts", name="bench")
    rows = []
    for name, sql in TRANSFORMS.items():
        times: dict[str, list[float]] = {"raw1": [], "raw": [], "mlcrew": [], "opt": []}

        def raw(threads: int | None, sql: str = sql) -> None:
            con = duckdb.connect()
            if threads:
                con.execute(f"SET threads={threads}")
            con.execute(f"CREATE VIEW orders AS SELECT * FROM read_parquet('{data}')")
            out = tmp / "raw.parquet"
            con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
            con.close()

        def ours(i: int, threads: int | None, name: str = name, sql: str = sql) -> None:
            out = store.artifacts.scratch_file(".parquet") or tmp / f"node-{i}.parquet"  # as ingest
            transform = Transform(sql=sql, threads=threads)
            run_transform(name, transform, {"orders": data}, out, None)
            nodes = NodeStore(store, f"bench-{i}", record=True, fresh=True)
            key = node_key(name, "sql", transform.model_dump(mode="json"), {"orders": str(i)})
            nodes.save(name, "sql", key, out, [], {})
            out.unlink(missing_ok=True)  # moved into the store

        for i in range(repeat + 1):  # the first round warms the OS cache and is not kept
            a = timed(lambda: raw(1))
            b = timed(lambda: raw(None))
            c = timed(lambda i=i: ours(i, None))  # default: all cores only if row-level
            d = timed(lambda i=i: ours(i, os.cpu_count()))  # `threads: N` in the spec
            if i:
                times["raw1"].append(a)
                times["raw"].append(b)
                times["mlcrew"].append(c)
                times["opt"].append(d)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append(
            {
                "transform": name,
                "raw_duckdb_1_thread_s": round(med["raw1"], 3),
                "raw_duckdb_default_threads_s": round(med["raw"], 3),
                "mlcrew_node_s": round(med["mlcrew"], 3),
                "overhead_vs_1_thread": round(med["mlcrew"] / med["raw1"] - 1, 3),
                "overhead_vs_default": round(med["mlcrew"] / med["raw"] - 1, 3),
                "mlcrew_node_all_threads_s": round(med["opt"], 3),
                "all_threads_overhead_vs_default": round(med["opt"] / med["raw"] - 1, 3),
            }
        )
    store.close()
    return rows


def bench_checks(data: Path, repeat: int) -> dict[str, Any]:
    from mlcrew.checks.data import check_tables
    from mlcrew.spec import Check

    checks = [Check.model_validate(c) for c in CHECKS]
    ours, theirs, read = [], [], []
    peer = PEERS_BIN / "python"
    for i in range(repeat + 1):
        t = time.perf_counter()
        # As the check stage runs them: sandboxed views, every core, one thread for failures.
        results = check_tables(
            {"orders": str(data)}, [(k, c, "orders") for k, c in enumerate(checks)]
        )
        mine = time.perf_counter() - t
        assert all(r["passed"] for r in results), [r for r in results if not r["passed"]]
        out = subprocess.run(
            [str(peer), "-c", PANDERA, str(data), json.dumps(CATEGORIES)],
            capture_output=True,
            text=True,
            check=True,
        )
        doc = json.loads(out.stdout.strip().splitlines()[-1])
        if i:
            ours.append(mine)
            theirs.append(doc["validate"])
            read.append(doc["read"])
    return {
        "checks": len(CHECKS),
        "mlcrew_s": round(statistics.median(ours), 3),
        "pandera_validate_s": round(statistics.median(theirs), 3),
        "pandera_read_s": round(statistics.median(read), 3),
        "speedup_vs_validate": round(statistics.median(theirs) / statistics.median(ours), 2),
        "speedup_vs_read_and_validate": round(
            (statistics.median(theirs) + statistics.median(read)) / statistics.median(ours), 2
        ),
    }


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, round(0.99 * len(ordered)) - 1)]
    return round(p50 * 1000, 2), round(p99 * 1000, 2)


def _load(fns: list[Any], requests: int, concurrency: int) -> list[list[float]]:
    """Latencies of each of `fns`, called in turn (the order alternating) by `concurrency`
    threads, so both sides of a comparison meet the same load and the same machine noise."""
    lat: list[list[float]] = [[] for _ in fns]
    lock = threading.Lock()
    per = requests // concurrency

    def worker() -> None:
        local: list[list[float]] = [[] for _ in fns]
        for k in range(per):
            order = range(len(fns)) if k % 2 == 0 else reversed(range(len(fns)))
            for j in order:
                t = time.perf_counter()
                fns[j]()
                local[j].append(time.perf_counter() - t)
        with lock:
            for j, samples in enumerate(local):
                lat[j].extend(samples)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return lat


def bench_query(data: Path, tmp: Path, requests: int) -> list[dict[str, Any]]:
    import duckdb
    import httpx

    root = tmp / "project"
    (root / "data").mkdir(parents=True)
    shutil.copy(data, root / "data" / "orders.parquet")
    (root / "mlcrew.yaml").write_text(
        "name: bench\nsources:\n  orders: {path: data/orders.parquet}\n"
        "serving: {access_log: false}\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MLCREW_DB_URL", "MLCREW_ARTIFACTS")}
    subprocess.run([sys.executable, "-m", "mlcrew.cli.main", "run", "-p", str(root)], check=True,
                   env=env, capture_output=True)  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlcrew.cli.main", "serve", "-p", str(root), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # stop() ends its process group
    )
    rows = []
    try:
        wait_until(
            lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 120, "mlcrew serve", server
        )
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        body = {"sql": QUERY, "format": "json"}
        expected = client.post("/v1/query", json=body).json()
        local = threading.local()

        def api() -> None:
            c = getattr(local, "client", None)
            if c is None:
                c = local.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
            r = c.post("/v1/query", json=body)
            assert r.status_code == 200

        con = duckdb.connect()
        con.execute(f"CREATE VIEW orders AS SELECT * FROM read_parquet('{data}')")

        def raw() -> None:
            cur = getattr(local, "cur", None)
            if cur is None:
                cur = local.cur = con.cursor()
            cur.execute(QUERY).fetchall()

        got = con.execute(QUERY).fetchall()
        assert [list(r[:2]) for r in got] == [r[:2] for r in expected["rows"]]
        for concurrency in (1, 8):
            n = max(requests, concurrency * 5)
            _load([api, raw], concurrency * 2, concurrency)  # warm-up
            if concurrency == 1:  # one at a time: alternate them request by request
                a, b = _load([api, raw], n, concurrency)
            else:  # each side alone under its own load, in alternating blocks
                a, b = [], []
                cpu = {"server": 0.0, "client": 0.0, "raw": 0.0}
                for _ in range(BLOCKS):
                    server_cpu, mine = tree_cpu(server.pid), time.process_time()
                    a += _load([api], n // BLOCKS, concurrency)[0]
                    cpu["server"] += tree_cpu(server.pid) - server_cpu
                    cpu["client"] += time.process_time() - mine
                    mine = time.process_time()
                    b += _load([raw], n // BLOCKS, concurrency)[0]
                    cpu["raw"] += time.process_time() - mine
                # Where the added time goes on shared cores: CPU per request on each side.
                cpu_ms = {k: round(v * 1000 / len(a), 1) for k, v in cpu.items()}
            (ap50, ap99), (bp50, bp99) = _percentiles(a), _percentiles(b)
            rows.append(
                {
                    "concurrency": concurrency,
                    "requests": len(a),
                    "api_p50_ms": ap50,
                    "api_p99_ms": ap99,
                    "raw_duckdb_p50_ms": bp50,
                    "raw_duckdb_p99_ms": bp99,
                    "added_p50_ms": round(ap50 - bp50, 2),
                    **(
                        {
                            "api_server_cpu_ms_per_request": cpu_ms["server"],
                            "api_client_cpu_ms_per_request": cpu_ms["client"],
                            "raw_cpu_ms_per_query": cpu_ms["raw"],
                        }
                        if concurrency > 1
                        else {}
                    ),
                }
            )
    finally:
        stop(server)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--only", choices=("transforms", "checks", "query"), default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mlcrew-bench-data-"))
    try:
        data = tmp / "orders.parquet"
        t = time.perf_counter()
        make_data(data, args.rows)
        print(f"made {args.rows:,} rows ({data.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t:.1f} s", file=sys.stderr)  # fmt: skip
        doc: dict[str, Any] = {
            "rows": args.rows,
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "commit": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
            ).stdout.strip(),
        }
        if args.only in (None, "transforms"):
            doc["transforms"] = bench_transforms(data, tmp, args.repeat)
            print(json.dumps(doc["transforms"], indent=2))
        if args.only in (None, "checks"):
            doc["checks"] = bench_checks(data, args.repeat)
            print(json.dumps(doc["checks"], indent=2))
        if args.only in (None, "query"):
            doc["query"] = bench_query(data, tmp, args.requests)
            print(json.dumps(doc["query"], indent=2))
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "data.json").write_text(json.dumps(doc, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
