"""Four processes write 250 runs' worth each (a run record, a model version, an alias move and an
audit event) into one metadata database at once: every write is there exactly once, version
numbers are never given twice, and no process meets an internal error. SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from mlcrew.people.audit import events
from mlcrew.registry.promotion import history
from mlcrew.registry.versions import list_versions
from mlcrew.store import Store
from mlcrew.store.models import Run

PROCESSES, RUNS = 4, 250
PROJECT, MODEL = "load", "load-model"

WRITER = """
import hashlib, sys
from datetime import UTC, datetime
from mlcrew.people.audit import record
from mlcrew.pipeline.runs import new_run_id, run_lock_name
from mlcrew.registry.versions import register_version, set_alias
from mlcrew.store import Store
from mlcrew.store.models import Run

url, artifacts, proc, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store = Store(url, artifacts, None, name="load")
for i in range(runs):
    run_id = new_run_id()
    # What a run writes, in the order it writes it: its record, then (under the project's run
    # lock, as the runner holds it) the version it registers and the alias it moves.
    with store.session() as s:
        s.add(Run(id=run_id, kind="run", status="ok", spec_digest="0" * 64,
                  started_at=datetime.now(UTC), summary={"proc": proc, "i": i}))
    with store.lock(run_lock_name("load")).hold():
        digest = hashlib.sha256(f"{proc}-{i}".encode()).hexdigest()
        info, new = register_version(
            store, "load-model", digest, run_id=run_id, spec_digest="0" * 64,
            data_digests={}, metrics={"mae": float(i)}, verdict={"passed": True, "reasons": []},
        )
        assert new, "a fresh digest registered as an existing version"
        set_alias(store, "load-model", "champion", info.version, reason=f"{proc}-{i}")
    record(store, "load", f"proc{proc}", "run", run_id, {"i": i})
store.close()
print("done", proc)
"""


def test_four_processes_write_every_record_exactly_once(db_url: str, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    Store(db_url, artifacts, None, name=PROJECT).close()  # migrated before the writers start
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, db_url, str(artifacts), str(p), str(RUNS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for p in range(PROCESSES)
    ]
    for p, proc in enumerate(writers):
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-2000:]
        assert out.strip() == f"done {p}" and "Traceback" not in err, err[-2000:]

    store = Store(db_url, artifacts, None, name=PROJECT)
    try:
        total = PROCESSES * RUNS
        with store.session() as s:
            runs = s.scalars(select(Run.summary)).all()
            run_ids = set(s.scalars(select(Run.id)).all())
            assert s.scalar(select(func.count()).select_from(Run)) == total
        assert sorted((r["proc"], r["i"]) for r in runs) == [
            (p, i) for p in range(PROCESSES) for i in range(RUNS)
        ]
        versions = list_versions(store, MODEL)
        assert sorted(v.version for v in versions) == list(range(1, total + 1))
        expected = {
            hashlib.sha256(f"{p}-{i}".encode()).hexdigest()
            for p in range(PROCESSES)
            for i in range(RUNS)
        }
        assert {v.model_digest for v in versions} == expected
        moves = history(store, MODEL, limit=10_000)
        assert len(moves) == total
        assert sorted(m.reason for m in moves) == sorted(
            f"{p}-{i}" for p in range(PROCESSES) for i in range(RUNS)
        )
        audit = events(store, PROJECT, limit=10_000)
        audited = [e.target for e in audit if e.action == "run"]
        assert len(audited) == total and set(audited) == run_ids
    finally:
        store.close()
