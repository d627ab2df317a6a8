"""Run records: what a run did, listing and loading runs, and telling killed runs apart."""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select, update

from mlcrew.errors import NotFoundError
from mlcrew.store import Store, now
from mlcrew.store.models import Run, StageExecution

StageState = Literal["executed", "cached", "failed"]
RunStatus = Literal["running", "ok", "failed", "interrupted"]


def run_lock_name(project: str) -> str:
    """The lock a pipeline run of `project` holds from start to finish."""
    return f"mlcrew:run:{project}"


@dataclass
class StageOutcome:
    name: str
    state: StageState
    outputs: dict[str, str]
    seconds: float
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class Promotion:
    """What the run's promotion step did with the newly registered version."""

    alias: str
    version: int
    promoted: bool
    reasons: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "version": self.version,
            "promoted": self.promoted,
            "reasons": self.reasons,
        }


@dataclass
class RunResult:
    run_id: str
    stages: list[StageOutcome]
    verdict: dict[str, Any] | None
    champion: dict[str, Any] | None
    status: str = "ok"
    error: str | None = None
    previous_champion: dict[str, Any] | None = None
    promotion: Promotion | None = None
    policy: Literal["auto", "manual"] = "auto"  # the spec's registry.promotion

    @property
    def registration(self) -> dict[str, Any] | None:
        """What the register stage did: {name, version, new, ...}, if it ran."""
        return next((s.record for s in self.stages if s.name == "register"), None)

    @property
    def training(self) -> dict[str, Any] | None:
        """What the train stage chose: the task (and why), the model and its validation score."""
        record = next((s.record for s in self.stages if s.name == "train"), None)
        if not record or "task" not in record:
            return None
        out: dict[str, Any] = {
            k: record[k] for k in ("task", "task_reason", "metric") if k in record
        }
        if record.get("ensemble"):
            trials = {t["trial"]: t for t in record.get("trials", [])}
            out["model"] = [
                {"trial": m["trial"], "weight": m["weight"], "kind": trials[m["trial"]]["kind"]}
                for m in record["ensemble"]
                if m["trial"] in trials
            ]
            out["trials"] = len(trials)
            out["valid_score"] = record.get("valid_score")
            out["validation"] = record.get("validation")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "stages": [
                {"name": s.name, "state": s.state, "outputs": s.outputs, "seconds": s.seconds}
                for s in self.stages
            ],
            "verdict": self.verdict,
            "champion": self.champion,
            "previous_champion": self.previous_champion,
            "promotion": self.promotion.to_json() if self.promotion else None,
            "warnings": [
                w for s in self.stages if s.name == "check" for w in s.record.get("warnings", [])
            ],
            "training": self.training,
            **({"error": self.error} if self.error else {}),
        }

    def champion_story(self) -> str:
        """One line on what happened to the champion, for people reading the run."""
        verdict, reg = self.verdict, self.registration or {}
        champion, before = self.champion, self.previous_champion

        def label(c: dict[str, Any] | None) -> str:
            return f"{c['name']} v{c['version']}" if c else "none"

        version = reg.get("version")
        if verdict and not verdict["passed"]:
            if champion and champion["version"] == version:
                return (
                    f"champion {label(champion)} fails the current gates; it stays champion "
                    "until a promotion replaces it (or 'mlcrew rollback')"
                )
            return (
                f"registered {reg.get('name')} v{version}, not promoted: a gate failed "
                f"(champion stays {label(champion)})"
            )
        if self.promotion and not self.promotion.promoted:
            return (
                f"registered {reg.get('name')} v{version}, not promoted: "
                + "; ".join(self.promotion.reasons)
                + f" (champion stays {label(champion)})"
            )
        if champion != before:
            return f"champion: {label(champion)} (was {label(before)})"
        if version is not None and (champion is None or champion["version"] != version):
            register = next((s for s in self.stages if s.name == "register"), None)
            if register is not None and register.state == "cached":
                why = "a known version: a run never moves an alias for one"
            elif self.policy == "manual":
                why = "registry.promotion is manual"
            else:
                why = "it passed before, so it is not offered again"
            return (
                f"{reg.get('name')} v{version} ({why}); champion stays {label(champion)}; "
                f"promote it with 'mlcrew promote {reg.get('name')} {version} --reason TEXT'"
            )
        return f"champion: {label(champion)} (unchanged)"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


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
