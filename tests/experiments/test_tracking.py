"""`mlcrew.start_run`: what training code logs is all there after the block, exactly once, in
order; bad calls are refused whole; a killed process loses at most one flush interval; two
processes log into one project at once."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

import mlcrew
from mlcrew.errors import TrackingError
from mlcrew.experiments import list_runs, show_run
from mlcrew.experiments.tables import METRICS, RUNS
from mlcrew.project import Project
from mlcrew.store import now

REPO = Path(__file__).parents[2]


def test_everything_logged_is_there_after_the_block(proj: Project, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("lr warm-up helped\n")
    with mlcrew.start_run(proj, name="sweep 1", tags={"who": "ana"}) as run:
        run.log_params({f"p{i}": i for i in range(100)})
        run.log_param("p3", 3)  # the same value again: fine
        for i in range(10_000):
            run.log_metric("loss", 1.0 / (i + 1))
        run.log_metrics({"auc": 0.91, "f1": 0.8}, step=10)
        run.log_metric("auc", 0.93)  # follows its own last step
        run.log_metric("diverged", float("nan"))
        run.log_metric("grad", math.inf, step=2)
        run.set_tag("who", "ana and bo")  # tags may change: the last value wins
        digest = run.log_artifact(notes)
        notes.write_text("changed afterwards\n")  # what was logged stays what it was
    doc = show_run(proj.store, run.id)
    assert doc["id"] == run.id and doc["name"] == "sweep 1" and doc["status"] == "finished"
    assert doc["params"] == {f"p{i}": str(i) for i in range(100)}
    loss = doc["metrics"]["loss"]
    assert [p["step"] for p in loss] == list(range(10_000))
    assert [p["value"] for p in loss] == [1.0 / (i + 1) for i in range(10_000)]
    assert [(p["step"], p["value"]) for p in doc["metrics"]["auc"]] == [(10, 0.91), (11, 0.93)]
    assert doc["metrics"]["diverged"][0]["value"] == "NaN"
    assert doc["metrics"]["grad"][0] == {**doc["metrics"]["grad"][0], "step": 2,
                                         "value": "Infinity"}  # fmt: skip
    assert doc["tags"] == {"who": "ana and bo"}
    assert doc["artifacts"] == [{"path": "notes.txt", "digest": digest, "size": 18}]
    assert proj.store.artifacts.read_bytes(digest) == b"lr warm-up helped\n"
    (summary,) = list_runs(proj.store)
    assert summary.metrics["loss"] == 1.0 / 10_000 and summary.metrics["auc"] == 0.93
    assert math.isnan(summary.metrics["diverged"])


def test_bad_calls_are_refused_whole(proj: Project) -> None:
    with pytest.raises(ValueError, match="boom"), mlcrew.start_run(proj, name="r") as run:
        run.log_param("lr", 0.1)
        with pytest.raises(TrackingError, match="params do not change"):
            run.log_params({"depth": 3, "lr": 0.2})  # depth is not kept either
        with pytest.raises(TrackingError, match="metric 'acc' takes a number"):
            run.log_metric("acc", "high")
        with pytest.raises(TrackingError, match=r"is 0 to 2\*\*63 - 1, got -1"):
            run.log_metric("acc", 0.5, step=-1)
        with pytest.raises(TrackingError, match="a metric name is 1 to 250"):
            run.log_metric("bad\nname", 1.0)
        with pytest.raises(TrackingError, match="is not a file"):
            run.log_artifact(proj.root / "missing.csv")
        run.log_metric("acc", 0.5)
        raise ValueError("boom")  # the training code fails: the run says so
    doc = show_run(proj.store, run.id)
    assert doc["status"] == "failed" and doc["error"] == "ValueError: boom"
    assert doc["params"] == {"lr": "0.1"}
    assert list(doc["metrics"]) == ["acc"] and len(doc["metrics"]["acc"]) == 1
    with pytest.raises(TrackingError, match="has ended"):
        run.log_metric("acc", 0.6)


CHILD = """
import sys, time
import mlcrew
with mlcrew.start_run(sys.argv[1], name=sys.argv[2], flush_seconds=float(sys.argv[3])) as run:
    print(run.id, flush=True)
    for i in range(int(sys.argv[4])):
        run.log_metric("loss", float(i))
    run.log_param("worker", sys.argv[2])
    if sys.argv[5] == "hang":
        time.sleep(3 * float(sys.argv[3]))  # the writer flushes meanwhile
        print("flushed", flush=True)
        for i in range(1000):
            run.log_metric("late", float(i))
        time.sleep(600)
"""


def _child(proj: Project, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MLCREW_DB_URL": proj.store.db_url}
    script = textwrap.dedent(CHILD)
    return subprocess.Popen(
        [sys.executable, "-c", script, str(proj.root), *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_a_killed_process_loses_at_most_one_flush_interval(proj: Project) -> None:
    child = _child(proj, "killed", "0.2", "5000", "hang")
    assert child.stdout is not None
    run_id = child.stdout.readline().strip()
    assert child.stdout.readline().strip() == "flushed"
    os.kill(child.pid, signal.SIGKILL)  # no exit handler, no last flush
    child.wait(timeout=30)
    doc = show_run(proj.store, run_id)
    # Logged more than an interval before the kill: all there, once each.
    assert [p["value"] for p in doc["metrics"]["loss"]] == [float(i) for i in range(5000)]
    assert doc["params"] == {"worker": "killed"}
    assert doc["status"] == "running"  # its heartbeat is recent: not yet known to be lost
    with proj.store.engine.begin() as conn:  # a minute later nobody has heard from it
        conn.execute(
            update(RUNS).where(RUNS.c.id == run_id).values(heartbeat_at=now().replace(year=2000))
        )
    assert show_run(proj.store, run_id)["status"] == "lost"


def test_two_processes_log_into_one_project_at_once(proj: Project) -> None:
    children = [_child(proj, f"w{i}", "0.05", "20000", "end") for i in range(2)]
    ids = []
    for child in children:
        assert child.stdout is not None
        ids.append(child.stdout.readline().strip())
    for child in children:
        assert child.wait(timeout=120) == 0
    with proj.store.engine.connect() as conn:
        counts = dict(
            conn.execute(
                select(RUNS.c.id, func.sum(METRICS.c.points))
                .join(METRICS, METRICS.c.run == RUNS.c.num)
                .group_by(RUNS.c.id)
            ).all()
        )
    assert counts == {ids[0]: 20_000, ids[1]: 20_000}
    runs = {r.id: r for r in list_runs(proj.store)}
    assert {runs[i].status for i in ids} == {"finished"}
    assert {runs[i].params["worker"] for i in ids} == {"w0", "w1"}


def test_points_across_flushes_read_back_by_step(proj: Project) -> None:
    """Points logged out of order and over several flushes come back ordered by step (equal
    steps in the order logged), and the last value is the highest step's latest point."""
    with mlcrew.start_run(proj, name="steps") as run:
        run.log_metric("loss", 0.5, step=5)
        run.log_metric("loss", 0.9, step=1)
        run.flush()
        run.log_metric("loss", 0.4, step=5)
        run.log_metric("loss", 0.7, step=3)
        run.flush()
        run.log_metric("loss", 0.6)  # follows the last step logged: 3 + 1
    doc = show_run(proj.store, run.id)
    assert [(p["step"], p["value"]) for p in doc["metrics"]["loss"]] == [
        (1, 0.9), (3, 0.7), (4, 0.6), (5, 0.5), (5, 0.4)
    ]  # fmt: skip
    (summary,) = list_runs(proj.store)
    assert summary.metrics == {"loss": 0.4}
