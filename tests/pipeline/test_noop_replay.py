"""The cached no-op `mlcrew run` is replayed without the full CLI (pipeline/noop.py): it must
print and store exactly what the full path would, and take the full path whenever anything it
vouched for has moved."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

MLCREW = str(Path(sys.executable).parent / "mlcrew")  # the console script: the real entry point
FULL = {"MLCREW_NO_FASTPATH": "1"}


def mlcrew(*args: str, env: dict[str, str] | None = None, code: int = 0) -> str:
    done = subprocess.run(
        [MLCREW, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == code, done.stdout + done.stderr
    return done.stdout


def run_json(root: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(mlcrew("run", "--json", "-p", str(root), env=env))
    return doc


def db(root: Path) -> sqlite3.Connection:
    con = sqlite3.connect(root / ".mlcrew" / "mlcrew.db")
    con.row_factory = sqlite3.Row
    return con


def replayed(root: Path, run_id: str) -> bool:
    with db(root) as con:
        (summary,) = con.execute("SELECT summary FROM runs WHERE id = ?", (run_id,)).fetchone()
    return bool(json.loads(summary).get("replayed"))


def states(doc: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["state"] for s in doc["stages"]}


def stage_rows(root: Path, run_id: str) -> list[dict[str, Any]]:
    with db(root) as con:
        rows = con.execute(
            "SELECT * FROM stage_executions WHERE run_id = ? ORDER BY position", (run_id,)
        ).fetchall()
    return [
        {k: r[k] for k in r.keys() if k not in ("id", "run_id", "finished_at")}  # noqa: SIM118
        for r in rows
    ]


def test_replay_prints_and_stores_what_the_full_path_does(example_dir: Path) -> None:
    root = example_dir
    first = run_json(root)
    assert set(states(first).values()) == {"executed"}
    assert (root / ".mlcrew" / "noop.json").is_file()
    full = run_json(root, env=FULL)  # the full CLI on a cached run
    fast = run_json(root)
    assert not replayed(root, full["run_id"]) and replayed(root, fast["run_id"])
    assert set(states(fast).values()) == {"cached"}
    assert {**fast, "run_id": None} == {**full, "run_id": None}
    assert stage_rows(root, fast["run_id"]) == stage_rows(root, full["run_id"])
    with db(root) as con:
        audited = [r[0] for r in con.execute("SELECT target FROM audit_events WHERE action='run'")]
        spec_digest = con.execute("SELECT spec_digest FROM projects").fetchone()[0]
        run_digests = {r[0] for r in con.execute("SELECT spec_digest FROM runs")}
    assert audited == [first["run_id"], full["run_id"], fast["run_id"]]
    assert run_digests == {spec_digest}
    # The runs list (read through the ORM) shows the replayed run like any other.
    runs = json.loads(mlcrew("runs", "--json", "-p", str(root)))["runs"]
    newest = runs[0]
    assert newest["run_id"] == fast["run_id"] and newest["status"] == "ok"
    assert newest["executed"] == [] and newest["champion"] == full["champion"]
    # The people-facing summary too, apart from the run's id.
    human_full = mlcrew("run", "-p", str(root), env=FULL)
    human_fast = mlcrew("run", "-p", str(root))
    assert human_fast.splitlines()[:-1] == human_full.splitlines()[:-1]
    assert "champion: bike-demand v1 (unchanged)" in human_fast


def test_anything_moved_takes_the_full_path(example_dir: Path) -> None:
    root = example_dir
    run_json(root)
    assert replayed(root, run_json(root)["run_id"])

    source = root / "data" / "bikeshare-jan-jun.csv"
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    touched = run_json(root)  # the stamp moved: re-hashed by the full path, same bytes
    assert not replayed(root, touched["run_id"]) and set(states(touched).values()) == {"cached"}
    assert replayed(root, run_json(root)["run_id"])

    spec = root / "mlcrew.yaml"
    spec.write_text(spec.read_text() + "# a comment changes the bytes, not the pipeline\n")
    edited = run_json(root)
    assert not replayed(root, edited["run_id"]) and set(states(edited).values()) == {"cached"}

    model = next(s for s in edited["stages"] if s["name"] == "train")["outputs"]["model"]
    blob = root / ".mlcrew" / "artifacts" / "sha256" / model[:2] / model
    blob.unlink()  # an output gone from the store: the full path makes it again
    remade = run_json(root)
    assert not replayed(root, remade["run_id"]) and states(remade)["train"] == "executed"
    assert blob.is_file()

    last = run_json(root)
    assert replayed(root, last["run_id"])
    # A run in between from another folder that shares this store (its own fingerprint).
    other = root.parent / "clone"
    shutil.copytree(root, other, ignore=shutil.ignore_patterns(".mlcrew"))
    state = root / ".mlcrew"
    with open(other / "mlcrew.yaml", "a") as f:
        f.write(f"store: {{db: 'sqlite:///{state}/mlcrew.db', artifacts: '{state}/artifacts'}}\n")
    assert set(states(run_json(other)).values()) == {"cached"}
    after = run_json(root)
    assert not replayed(root, after["run_id"])
    assert replayed(root, run_json(root)["run_id"])

    # Options the replay does not handle go to the full CLI.
    verified = json.loads(mlcrew("run", "--json", "--verify", "-p", str(root)))
    assert not replayed(root, verified["run_id"])


def test_a_failed_gate_replays_with_its_exit_code(example_dir: Path) -> None:
    root = example_dir
    spec = root / "mlcrew.yaml"
    spec.write_text(spec.read_text().replace("{metric: mae, max: 60}", "{metric: mae, max: 1}"))
    out = mlcrew("run", "--json", "-p", str(root), code=3)
    assert not replayed(root, json.loads(out)["run_id"])
    again = json.loads(mlcrew("run", "--json", "-p", str(root), code=3))
    assert replayed(root, again["run_id"]) and again["verdict"]["passed"] is False
    human = mlcrew("run", "-p", str(root), code=3)
    assert "verdict: FAILED" in human
