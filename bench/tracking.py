#!/usr/bin/env python3
"""Experiment tracking side by side: mlcrew's `start_run` against MLflow 3 on SQLite.

The work (issue 8): one run with 100 params and 10,000 points of one metric, then read back
and verified point by point. Timed from starting the run to the end of the `with` block (all
written), with opening the project / setting the tracking URI and creating the experiment left
out on both sides. Ways of logging:

  * mlcrew `run.log_metric` per call (buffered, written by its writer thread)
  * MLflow `mlflow.log_metric` per call (its default: synchronous)
  * MLflow `mlflow.log_metric(..., synchronous=False)` per call (its async logging)
  * MLflow `MlflowClient.log_batch` (params and metrics in batches of 1,000, its limit)

Each side runs `--repeat` times in fresh stores (the median is reported); MLflow in bench/.venv
(bench/setup-peers.sh). Goals: >= 1000x MLflow's per-call log_metric, >= 20x its log_batch.

    .venv/bin/python bench/tracking.py [--points 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PEERS_BIN, RESULTS, env, machine_facts

PARAMS = 100

MLFLOW_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import logging; logging.disable(logging.WARNING)
import mlflow
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

store, mode, points, params = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
mlflow.set_tracking_uri(f"sqlite:///{store}")
experiment = mlflow.set_experiment("bench")
client = MlflowClient()
values = [1.0 / (i + 1) for i in range(points)]
t0 = time.perf_counter()
if mode == "batch":
    run = client.create_run(experiment.experiment_id)
    rid = run.info.run_id
    now = int(time.time() * 1000)
    client.log_batch(rid, params=[Param(f"p{i}", str(i)) for i in range(params)])
    for start in range(0, points, 1000):
        client.log_batch(rid, metrics=[Metric("loss", values[i], now, i)
                                       for i in range(start, min(points, start + 1000))])
    client.set_terminated(rid)
else:
    sync = mode == "call"
    with mlflow.start_run() as run:
        rid = run.info.run_id
        for i in range(params):
            mlflow.log_param(f"p{i}", i, synchronous=sync)
        for i in range(points):
            mlflow.log_metric("loss", values[i], step=i, synchronous=sync)
    # Leaving the block waits for the async queue (end_run flushes it).
logged = time.perf_counter() - t0
t1 = time.perf_counter()
history = client.get_metric_history(rid, "loss")
got = client.get_run(rid).data.params
read = time.perf_counter() - t1
ok = sorted((m.step, m.value) for m in history) == list(enumerate(values)) and len(got) == params
print(json.dumps({"logged_s": logged, "read_s": read, "verified": ok}))
"""


def mlcrew_once(tmp: Path, points: int) -> dict[str, Any]:
    import mlcrew
    from mlcrew.experiments import show_run
    from mlcrew.project import Project, init_project

    root = init_project(tmp / "proj")
    proj = Project.open(root)
    values = [1.0 / (i + 1) for i in range(points)]
    try:
        t0 = time.perf_counter()
        with mlcrew.start_run(proj, name="bench") as run:
            for i in range(PARAMS):
                run.log_param(f"p{i}", i)
            for i in range(points):
                run.log_metric("loss", values[i], step=i)
            calls = time.perf_counter() - t0
        logged = time.perf_counter() - t0
        t1 = time.perf_counter()
        doc = show_run(proj.store, run.id)
        read = time.perf_counter() - t1
    finally:
        proj.close()
    got = [(p["step"], p["value"]) for p in doc["metrics"]["loss"]]
    ok = got == list(enumerate(values)) and len(doc["params"]) == PARAMS
    return {"logged_s": logged, "calls_s": calls, "read_s": read, "verified": ok}


def mlflow_once(tmp: Path, mode: str, points: int) -> dict[str, Any]:
    python = PEERS_BIN / "python"
    if not python.exists():
        raise SystemExit("MLflow is not in bench/.venv: run bash bench/setup-peers.sh")
    out = subprocess.run(
        [str(python), "-c", MLFLOW_SCRIPT, str(tmp / "mlflow.db"), mode, str(points), str(PARAMS)],
        capture_output=True,
        text=True,
        env=env(),
        cwd=tmp,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"MLflow {mode} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--mlflow-call-points",
        type=int,
        default=None,
        help="points for MLflow's synchronous per-call run (default: --points)",
    )
    args = ap.parse_args()
    facts = machine_facts()
    print(f"tracking bench: {facts}", flush=True)
    results: dict[str, list[dict[str, Any]]] = {}
    call_points = args.mlflow_call_points or args.points
    ways = [
        ("mlcrew log_metric per call", lambda tmp: mlcrew_once(tmp, args.points), args.points),
        ("MLflow log_metric per call", lambda tmp: mlflow_once(tmp, "call", call_points),
         call_points),
        ("MLflow log_metric synchronous=False", lambda tmp: mlflow_once(tmp, "async", args.points),
         args.points),
        ("MLflow log_batch", lambda tmp: mlflow_once(tmp, "batch", args.points), args.points),
    ]  # fmt: skip
    points_of = {}
    for _ in range(args.repeat):  # interleaved, so a noisy minute hits every way alike
        for label, once, points in ways:
            with tempfile.TemporaryDirectory(prefix="mlcrew-tracking-bench-") as tmp:
                row = once(Path(tmp))
            results.setdefault(label, []).append(row)
            points_of[label] = points
            print(f"  {label}: {row}", flush=True)
    table = []
    for label, rows in results.items():
        logged = median(rows, "logged_s")
        table.append(
            {
                "way": label,
                "points": points_of[label],
                "logged_s": logged,
                "points_per_s": points_of[label] / logged,
                "read_s": median(rows, "read_s"),
                "verified": all(r["verified"] for r in rows),
                "runs": rows,
            }
        )
    ours = table[0]["points_per_s"]
    print()
    print("| way | points | logged in (median) | points/s | read back | verified | mlcrew is |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for row in table:
        ratio = ours / row["points_per_s"]
        print(
            f"| {row['way']} | {row['points']:,} | {row['logged_s'] * 1000:,.1f} ms | "
            f"{row['points_per_s']:,.0f} | {row['read_s'] * 1000:,.1f} ms | "
            f"{'yes' if row['verified'] else 'NO'} | "
            f"{'-' if row is table[0] else f'{ratio:,.0f}x faster'} |"
        )
    by_way = {r["way"]: r for r in table}
    per_call = ours / by_way["MLflow log_metric per call"]["points_per_s"]
    batch = ours / by_way["MLflow log_batch"]["points_per_s"]
    goals = {"per_call_ratio": per_call, "batch_ratio": batch,
             "per_call_met": per_call >= 1000, "batch_met": batch >= 20}  # fmt: skip
    verdict = "met" if per_call >= 1000 else "MISSED"
    print(f"\ngoal >= 1000x MLflow per call: {per_call:,.0f}x ({verdict})")
    print(f"goal >= 20x MLflow log_batch: {batch:,.1f}x ({'met' if batch >= 20 else 'MISSED'})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "tracking.json"
    out.write_text(json.dumps({"facts": facts, "command": " ".join(sys.argv), "results": table,
                               "goals": goals}, indent=1))  # fmt: skip
    print(f"written to {out}")
    return 0 if all(r["verified"] for r in table) else 1


if __name__ == "__main__":
    raise SystemExit(main())
