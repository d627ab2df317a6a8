"""Run records: what a run did, listing and loading runs, and telling killed runs apart."""

from __future__ import annotations

import os
import socket
from typing import Any

from sqlalchemy import select, update

from mlcrew.errors import MlcrewError, NotFoundError
from mlcrew.pipeline.results import (
    Promotion,
    RunResult,
    RunStatus,
    StageOutcome,
    StageState,
    new_run_id,
    run_lock_name,
)
from mlcrew.store import Store, now
from mlcrew.store.models import Run, StageExecution

__all__ = [
    "Promotion",
    "RunResult",
    "RunStatus",
    "StageOutcome",
    "StageState",
    "executed_stages",
    "list_runs",
    "load_run",
    "mark_interrupted",
    "new_run_id",
    "run_lock_name",
]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_interrupted(
    store: Store, project: str | None = None, *, holding_lock: bool = False
) -> list[str]:
    """Runs left `running` by a process that no longer exists were killed: say so.

    A live run holds its project's run lock, so a `running` run whose lock is free is dead
    (on any host); on this host a dead pid tells the same without asking the lock. A caller
    that holds the lock itself (a starting run) knows every other `running` run is dead."""
    host = socket.gethostname()
    with store.session() as s:
        running = list(s.scalars(select(Run).where(Run.status == "running")))
    marked = []
    lock_free: bool | None = None
    for run in running:
        pid = run.summary.get("pid") if run.summary else None
        dead = run.summary.get("host") == host and isinstance(pid, int) and not _alive(pid)
        if not dead and holding_lock and run.kind == "run":
            dead = True
        elif not dead and project is not None and run.kind == "run":
            if lock_free is None:
                lock_free = not store.lock(run_lock_name(project)).is_held()
            dead = lock_free
        if not dead:
            continue
        why = f"the process (pid {pid}) ended before the run finished"
        with store.session() as s:
            # Only if it is still running: it may have finished since we looked.
            result: Any = s.execute(
                update(Run)
                .where(Run.id == run.id, Run.status == "running")
                .values(status="interrupted", error=why, finished_at=now())
            )
            changed = result.rowcount
        if changed:
            marked.append(run.id)
    return marked


def executed_stages(store: Store, run_ids: list[str]) -> dict[str, list[str]]:
    """For each run, the stages it executed (not cached), in order: from the execution records,
    so a killed run shows what it did."""
    out: dict[str, list[str]] = {r: [] for r in run_ids}
    if not run_ids:
        return out
    with store.session() as s:
        rows = s.execute(
            select(StageExecution.run_id, StageExecution.stage)
            .where(StageExecution.run_id.in_(run_ids), StageExecution.state == "executed")
            .order_by(StageExecution.run_id, StageExecution.position)
        ).all()
    for run_id, stage in rows:
        out[run_id].append(stage)
    return out


def list_runs(store: Store, limit: int = 20, project: str | None = None) -> list[dict[str, Any]]:
    """The most recent runs first, each with its status, what it executed, verdict, champion."""
    mark_interrupted(store, project)
    limit = max(1, min(int(limit), 1000))
    with store.session() as s:
        runs = list(s.scalars(select(Run).order_by(Run.started_at.desc()).limit(limit)))
    executed = executed_stages(store, [r.id for r in runs])
    return [
        {
            "run_id": r.id,
            "kind": r.kind,
            "status": r.status,
            "started_at": r.started_at.isoformat(),
            "executed": executed[r.id],
            "verdict": r.summary.get("verdict"),
            "champion": r.summary.get("champion"),
            "error": r.error,
        }
        for r in runs
    ]


def load_run(store: Store, run_id: str | None, project: str | None = None) -> dict[str, Any]:
    mark_interrupted(store, project)
    with store.session() as s:
        if run_id is None:
            run = s.scalars(
                select(Run).where(Run.kind == "run").order_by(Run.started_at.desc()).limit(1)
            ).first()
        else:
            run = s.get(Run, run_id[:40])
        if run is None:
            raise NotFoundError(
                f"run {run_id[:60]!r} not found; list runs with 'mlcrew runs'"
                if run_id
                else "no run yet; start one with 'mlcrew run'"
            )
        return {
            "run_id": run.id,
            "status": run.status,
            "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "summary": run.summary,
            "error": run.error,
            "spec_digest": run.spec_digest,
        }


def recorded_specs(store: Store) -> list[Any]:
    """The specs the project's pipeline runs were made with, oldest first, each once."""
    from mlcrew.spec import parse_spec

    with store.session() as s:
        digests = s.scalars(
            select(Run.spec_digest).where(Run.kind == "run").order_by(Run.started_at)
        )
        seen: list[str] = []
        for digest in digests:
            if digest not in seen:
                seen.append(digest)
    out = []
    for digest in seen:
        try:
            out.append(parse_spec(store.artifacts.read_bytes(digest).decode(), digest[:12]))
        except MlcrewError:  # a spec of an older mlcrew that no longer parses: not comparable
            continue
    return out
