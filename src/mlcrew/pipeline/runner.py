"""The runner: executes stages, keyed by content, and records runs, executions and lineage.

One rule gives caching, lineage and reproducibility: a stage execution is keyed by
sha256(stage name, code version, config section, input digests, seed). A known key is reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlcrew.errors import CheckFailed, MlcrewError, NotFoundError, SpecError
from mlcrew.pipeline.stage import StageContext, StageDef
from mlcrew.pipeline.stages import STAGES
from mlcrew.spec import Spec, canonical_json, parse_spec
from mlcrew.store import Store, file_digest, now
from mlcrew.store.models import Alias, Artifact, LineageEdge, Run, StageExecution

# Callback: (stage name, event, detail); event is "start", "executed", "cached" or "failed".
Progress = Callable[[str, str, dict[str, Any]], None]


def cache_key(
    stage: StageDef, config: dict[str, Any], inputs: dict[str, str], seed: int | None
) -> str:
    payload = {
        "stage": stage.name,
        "version": stage.version,
        "config": config,
        "inputs": dict(sorted(inputs.items())),
        "seed": seed if stage.uses_seed else None,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


@dataclass
class StageOutcome:
    name: str
    state: str  # executed | cached | failed
    outputs: dict[str, str]
    seconds: float
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    run_id: str
    stages: list[StageOutcome]
    verdict: dict[str, Any] | None
    champion: dict[str, Any] | None
    status: str = "ok"
    error: str | None = None
    previous_champion: dict[str, Any] | None = None

    @property
    def registration(self) -> dict[str, Any] | None:
        """What the register stage did: {name, version, promoted, ...}, if it ran."""
        return next((s.record for s in self.stages if s.name == "register"), None)

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
            "warnings": [
                w for s in self.stages if s.name == "check" for w in s.record.get("warnings", [])
            ],
            **({"error": self.error} if self.error else {}),
        }


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def _seed(stage: StageDef, spec_seed: int) -> int | None:
    return spec_seed if stage.uses_seed else None


def snapshot_sources(project: Path, spec: Spec, store: Store) -> dict[str, str]:
    """Hash each source file and keep a copy in the store, so any run can be reproduced."""
    digests: dict[str, str] = {}
    for name, src in spec.sources.items():
        path = (project / src.path) if not Path(src.path).is_absolute() else Path(src.path)
        if not path.is_file():
            raise SpecError(
                f"source {name!r}: file {src.path} does not exist (relative to {project}); "
                f"fix sources.{name}.path in mlcrew.yaml"
            )
        digest = file_digest(path)
        if not store.artifacts.exists(digest):
            with store.session() as s:
                store.put_artifact(path, "source", s)
        digests[f"source.{name}"] = digest
    return digests


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_interrupted(store: Store) -> list[str]:
    """Runs left `running` by a process of this host that no longer exists were killed: say so."""
    host = socket.gethostname()
    marked = []
    with store.session() as s:
        for run in s.scalars(select(Run).where(Run.status == "running")):
            pid = run.summary.get("pid") if run.summary else None
            if run.summary.get("host") == host and isinstance(pid, int) and not _alive(pid):
                run.status = "interrupted"
                run.error = f"the process (pid {pid}) ended before the run finished"
                run.finished_at = now()
                marked.append(run.id)
    return marked


def find_execution(session: Session, key: str) -> StageExecution | None:
    """The latest execution with this cache key, if any: what `run` reuses and `status` checks."""
    return session.scalars(
        select(StageExecution)
        .where(StageExecution.key == key, StageExecution.state == "executed")
        .order_by(StageExecution.id.desc())
        .limit(1)
    ).first()


def champion_of(store: Store, name: str) -> dict[str, Any] | None:
    with store.session() as s:
        alias = s.get(Alias, (name, "champion"))
        return {"name": name, "version": alias.version} if alias else None


class Runner:
    """Runs the pipeline for one project. The executor is in-process; Ray plugs in here later."""

    def __init__(
        self,
        project: Path,
        store: Store,
        spec: Spec,
        spec_text: str,
        progress: Progress | None = None,
        stages: tuple[StageDef, ...] = STAGES,
    ) -> None:
        self.project = project
        self.store = store
        self.spec = spec
        self.spec_text = spec_text
        self.progress = progress or (lambda *_: None)
        self.stages = stages
        self._champion_before: dict[str, Any] | None = None

    def _lookup(self, key: str) -> StageExecution | None:
        with self.store.session() as s:
            return find_execution(s, key)

    def run(self, *, force: bool = False) -> RunResult:
        """Run every stage; with `force`, execute even those whose key is known."""
        spec = self.spec
        mark_interrupted(self.store)
        self.store.artifacts.clean_tmp()
        self._champion_before = champion_of(self.store, spec.name)
        run_id = new_run_id()
        spec_digest = self.store.artifacts.put_bytes(self.spec_text.encode())
        with self.store.session() as s:
            if s.get(Artifact, spec_digest) is None:
                s.add(
                    Artifact(
                        digest=spec_digest,
                        size=len(self.spec_text.encode()),
                        kind="spec",
                        created_at=now(),
                    )
                )
            s.add(
                Run(
                    id=run_id,
                    kind="run",
                    of_run=None,
                    status="running",
                    spec_digest=spec_digest,
                    started_at=now(),
                    summary={"pid": os.getpid(), "host": socket.gethostname()},
                )
            )
        outcomes: list[StageOutcome] = []
        try:
            available = snapshot_sources(self.project, spec, self.store)
            for position, stage in enumerate(self.stages):
                outcome = self._run_stage(stage, position, run_id, available, force)
                outcomes.append(outcome)
                available.update({f"{stage.name}.{k}": v for k, v in outcome.outputs.items()})
        except MlcrewError as exc:
            exc.run = self._finish(run_id, outcomes, "failed", str(exc))
            if isinstance(exc, CheckFailed):
                exc.report.setdefault("run_id", run_id)
            raise
        except BaseException as exc:
            self._finish(run_id, outcomes, "failed", f"{exc.__class__.__name__}: {exc}")
            raise
        result = self._finish(run_id, outcomes, "ok", None)
        return result

    def _finish(
        self, run_id: str, outcomes: list[StageOutcome], status: str, error: str | None
    ) -> RunResult:
        verdict = next((o.record.get("verdict") for o in outcomes if o.name == "evaluate"), None)
        champion = champion_of(self.store, self.spec.name)
        result = RunResult(
            run_id, outcomes, verdict, champion, status, error, self._champion_before
        )
        with self.store.session() as s:
            run = s.get(Run, run_id)
            assert run is not None
            run.status = status
            run.error = error
            run.finished_at = now()
            run.summary = result.to_json()
        return result

    def _run_stage(
        self,
        stage: StageDef,
        position: int,
        run_id: str,
        available: dict[str, str],
        force: bool,
    ) -> StageOutcome:
        config = stage.config(self.spec)
        seed = _seed(stage, self.spec.training_seed)
        inputs = {ref: available[ref] for ref in stage.input_refs(self.spec)}
        key = cache_key(stage, config, inputs, seed)

        def record(state: str, outputs: dict[str, str], rec: dict[str, Any], secs: float) -> None:
            with self.store.session() as s:
                execution = StageExecution(
                    run_id=run_id,
                    position=position,
                    stage=stage.name,
                    key=key,
                    version=stage.version,
                    config=config,
                    seed=seed,
                    inputs=inputs,
                    outputs=outputs,
                    record=rec,
                    state=state,
                    seconds=secs,
                    finished_at=now(),
                )
                s.add(execution)
                if state == "executed":
                    s.flush()
                    for parent in inputs.values():
                        for child in outputs.values():
                            s.add(
                                LineageEdge(parent=parent, child=child, execution_id=execution.id)
                            )

        hit = None if force else self._lookup(key)
        if hit is not None and all(self.store.artifacts.exists(d) for d in hit.outputs.values()):
            record("cached", hit.outputs, hit.record, 0.0)
            if stage.on_cached:
                # A stage with effects outside its outputs (the registry's aliases) re-applies
                # them, so a run reverted to an earlier config restores that run's outcome.
                stage.hook(stage.on_cached)(self.store, dict(hit.record))
            self.progress(stage.name, "cached", {"outputs": hit.outputs})
            return StageOutcome(stage.name, "cached", dict(hit.outputs), 0.0, hit.record)
        self.progress(stage.name, "start", {})
        started = time.perf_counter()
        try:
            outputs, rec = execute_stage(
                stage, config, inputs, seed, self.store, run_id, dry_run=False
            )
        except MlcrewError as exc:
            failure: dict[str, Any] = {"error": str(exc)}
            if isinstance(exc, CheckFailed):
                failure["report"] = exc.report
            record("failed", {}, failure, round(time.perf_counter() - started, 3))
            self.progress(stage.name, "failed", {"error": str(exc)})
            raise
        seconds = round(time.perf_counter() - started, 3)
        record("executed", outputs, rec, seconds)
        self.progress(stage.name, "executed", {"outputs": outputs, "seconds": seconds})
        return StageOutcome(stage.name, "executed", outputs, seconds, rec)


def execute_stage(
    stage: StageDef,
    config: dict[str, Any],
    inputs: dict[str, str],
    seed: int | None,
    store: Store,
    run_id: str,
    *,
    dry_run: bool,
) -> tuple[dict[str, str], dict[str, Any]]:
    """Run one stage function in a scratch folder and store its outputs by digest."""
    fn = stage.function()
    workdir = Path(tempfile.mkdtemp(prefix=f"mlcrew-{stage.name}-"))
    try:
        local = {
            ref: store.artifacts.local_path(d, cache_dir=workdir / "_in")
            for ref, d in inputs.items()
        }
        ctx = StageContext(
            config=config,
            inputs=local,
            input_digests=dict(inputs),
            workdir=workdir,
            seed=seed,
            store=store,
            run_id=run_id,
            dry_run=dry_run,
        )
        result = fn(ctx)
        missing = set(stage.outputs) - set(result.outputs)
        if missing:
            raise TypeError(f"stage {stage.name!r} did not produce outputs {sorted(missing)}")
        outputs: dict[str, str] = {}
        with store.session() as s:
            for name in stage.outputs:
                outputs[name] = store.put_artifact(result.outputs[name], f"{stage.name}.{name}", s)
        return outputs, json.loads(canonical_json(result.record))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# ------------------------------------------------------------------------- status


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    items: Any = None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        items = enumerate(value)
    if items is not None:
        out: dict[str, Any] = {}
        for k, v in items:
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    a, b = _flatten(old), _flatten(new)
    changes = []
    for k in sorted(set(a) | set(b)):
        if a.get(k, "<unset>") != b.get(k, "<unset>"):
            before, after = json.dumps(a.get(k, "<unset>")), json.dumps(b.get(k, "<unset>"))
            changes.append(f"config {k}: {before} -> {after}")
    return changes


def status(project: Path, store: Store, spec: Spec) -> list[dict[str, Any]]:
    """Each stage as fresh, stale (with why) or never run, against the current spec and files."""
    available: dict[str, str] = {}
    for name, src in spec.sources.items():
        path = project / src.path
        available[f"source.{name}"] = file_digest(path) if path.is_file() else "missing"
    rows: list[dict[str, Any]] = []
    with store.session() as s:
        for stage in STAGES:
            config = stage.config(spec)
            seed = _seed(stage, spec.training_seed)
            refs = stage.input_refs(spec)
            # Compare with what the latest run used (executed or from the cache).
            last = s.scalars(
                select(StageExecution)
                .where(
                    StageExecution.stage == stage.name,
                    StageExecution.state.in_(("executed", "cached")),
                )
                .order_by(StageExecution.id.desc())
                .limit(1)
            ).first()
            if last is None:
                rows.append({"name": stage.name, "state": "never", "why": "never run"})
                continue
            why = []
            if last.version != stage.version:
                why.append(f"code version {last.version} -> {stage.version}")
            why += _config_changes(last.config, config)
            if last.seed != seed:
                why.append(f"seed {last.seed} -> {seed}")
            if all(r in available for r in refs):
                inputs = {r: available[r] for r in refs}
                key = cache_key(stage, config, inputs, seed)
                hit = find_execution(s, key)
                if hit is not None:
                    available.update({f"{stage.name}.{k}": v for k, v in hit.outputs.items()})
                    rows.append(
                        {
                            "name": stage.name,
                            "state": "fresh",
                            "run_id": hit.run_id,
                            "outputs": hit.outputs,
                        }
                    )
                    continue
                for r in refs:
                    if inputs[r] == "missing":
                        where = spec.sources[r.split(".", 1)[1]].path
                        why.append(f"source file {r} ({where}) is missing")
                    elif last.inputs.get(r) != inputs[r]:
                        what = "source file" if r.startswith("source.") else "input"
                        detail = (
                            f" ({spec.sources[r.split('.', 1)[1]].path})"
                            if r.startswith("source.")
                            else ""
                        )
                        why.append(f"{what} {r}{detail} changed")
                if not why:
                    why.append("no execution with these inputs and config")
            else:
                upstream = sorted(
                    {r.split(".", 1)[0] for r in refs if r not in available},
                    key=[st.name for st in STAGES].index,
                )
                why.append(f"upstream {', '.join(upstream)} not fresh")
            rows.append({"name": stage.name, "state": "stale", "why": "; ".join(why)})
    return rows


# ------------------------------------------------------------------------- reproduce


def reproduce(store: Store, run_id: str, progress: Progress | None = None) -> dict[str, Any]:
    """Re-execute every stage of a run from its recorded config and inputs, cache bypassed,
    and compare each output digest with the recorded one."""
    progress = progress or (lambda *_: None)
    with store.session() as s:
        run = s.get(Run, run_id)
        if run is None:
            recent = [r.id for r in s.scalars(select(Run).order_by(Run.started_at.desc()).limit(5))]
            hint = f"; recent runs: {', '.join(recent)}" if recent else "; no runs yet"
            raise NotFoundError(f"run {run_id!r} not found{hint}")
        executions = list(
            s.scalars(
                select(StageExecution)
                .where(StageExecution.run_id == run_id)
                .order_by(StageExecution.position)
            )
        )
    if not executions:
        raise NotFoundError(f"run {run_id!r} has no stage executions to reproduce")
    # The recorded spec must still parse: stage configs come from it and are validated again.
    parse_spec(store.artifacts.read_bytes(run.spec_digest).decode(), f"run {run_id} spec")
    by_name = {st.name: st for st in STAGES}
    differences: list[dict[str, Any]] = []
    stages: list[dict[str, Any]] = []
    available: dict[str, str] = {}
    for ex in executions:
        if ex.state == "failed":
            continue
        stage = by_name[ex.stage]
        if stage.version != ex.version:
            differences.append(
                {
                    "stage": ex.stage,
                    "output": None,
                    "why": f"stage code version is now {stage.version}, was {ex.version}",
                }
            )
        # Inputs come from this re-execution where a stage made them, else from the record.
        inputs = {r: available.get(r, d) for r, d in ex.inputs.items()}
        progress(ex.stage, "start", {})
        outputs, _record = execute_stage(
            stage, ex.config, inputs, ex.seed, store, run_id, dry_run=True
        )
        available.update({f"{ex.stage}.{k}": v for k, v in outputs.items()})
        same = True
        for name, recorded in ex.outputs.items():
            if outputs.get(name) != recorded:
                same = False
                differences.append(
                    {
                        "stage": ex.stage,
                        "output": name,
                        "recorded": recorded,
                        "reproduced": outputs.get(name),
                    }
                )
        stages.append({"name": ex.stage, "identical": same, "outputs": outputs})
        progress(ex.stage, "executed", {"outputs": outputs})
    return {
        "run_id": run_id,
        "identical": not differences,
        "differences": differences,
        "stages": stages,
    }


def list_runs(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    """The most recent runs first, each with its status, verdict and champion."""
    with store.session() as s:
        runs = s.scalars(select(Run).order_by(Run.started_at.desc()).limit(limit))
        return [
            {
                "run_id": r.id,
                "status": r.status,
                "started_at": r.started_at.isoformat(),
                "executed": [
                    x["name"] for x in r.summary.get("stages", []) if x["state"] == "executed"
                ],
                "verdict": r.summary.get("verdict"),
                "champion": r.summary.get("champion"),
                "error": r.error,
            }
            for r in runs
        ]


def load_run(store: Store, run_id: str | None) -> dict[str, Any]:
    with store.session() as s:
        if run_id is None:
            run = s.scalars(
                select(Run).where(Run.kind == "run").order_by(Run.started_at.desc()).limit(1)
            ).first()
        else:
            run = s.get(Run, run_id)
        if run is None:
            raise NotFoundError(
                f"run {run_id!r} not found" if run_id else "no run yet; start one with 'mlcrew run'"
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


__all__ = [
    "RunResult",
    "Runner",
    "StageOutcome",
    "cache_key",
    "list_runs",
    "load_run",
    "reproduce",
    "snapshot_sources",
    "status",
]
