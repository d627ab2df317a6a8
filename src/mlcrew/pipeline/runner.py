"""The runner: executes the stages of one project in order, keyed by content.

One rule gives caching, lineage and reproducibility: a stage execution is keyed by what it reads
(see keys.py). A known key is reused. A run holds the project's run lock from start to finish, so
two runs of one project never interleave: the second waits and says so. Moving an alias is not a
stage's business: after the stages, a newly registered version that passed every gate is offered
to promotion, which the spec's `registry.promotion` allows (auto) or leaves to a person (manual).
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mlcrew.data.digests import DigestCache
from mlcrew.errors import CheckFailed, MlcrewError, PromotionRefused
from mlcrew.people.audit import record_in
from mlcrew.pipeline import noop
from mlcrew.pipeline.execute import execute_stage
from mlcrew.pipeline.executors import Executor, make_executor
from mlcrew.pipeline.keys import cache_key, library_versions
from mlcrew.pipeline.runs import (
    Promotion,
    RunResult,
    StageOutcome,
    StageState,
    mark_interrupted,
    new_run_id,
    run_lock_name,
)
from mlcrew.pipeline.sources import digest_cache, snapshot_inputs
from mlcrew.pipeline.stage import StageDef, dump_config
from mlcrew.pipeline.stages import stages_for
from mlcrew.registry.promotion import default_actor
from mlcrew.registry.versions import CHAMPION, alias_holder
from mlcrew.spec import SPEC_FILE, Spec
from mlcrew.store import Store, now
from mlcrew.store.models import LineageEdge, Run, StageExecution

# Callback: (stage name, event, detail); event is "start", "executed", "cached", "failed" or
# "waiting" (for the project lock; the stage name is then "").
Progress = Callable[[str, str, dict[str, Any]], None]


def find_execution(session: Any, key: str) -> StageExecution | None:
    """The latest execution with this cache key, if any: what `run` reuses and `status` checks."""
    from sqlalchemy import select

    found: StageExecution | None = session.scalars(
        select(StageExecution)
        .where(StageExecution.key == key, StageExecution.state == "executed")
        .order_by(StageExecution.id.desc())
        .limit(1)
    ).first()
    return found


def snapshot_sources(
    project: Path,
    spec: Spec,
    store: Store,
    verify: bool = False,
    cache: DigestCache | None = None,
) -> dict[str, str]:
    """Each source's digest (and each Python transform's code), with the bytes kept in the
    store, so any run can be reproduced. File digests come from the project's digest cache
    unless `verify` re-hashes them."""
    return snapshot_inputs(project, spec, store, keep=True, verify=verify, cache=cache)


class Runner:
    """Runs the pipeline for one project.

    Stage bodies run here; their units go to `executor` (default: what the spec's `execution`
    section names). An executor the runner made itself is closed at the end of each run."""

    def __init__(
        self,
        project: Path,
        store: Store,
        spec: Spec,
        spec_text: str,
        progress: Progress | None = None,
        stages: tuple[StageDef, ...] | None = None,
        actor: str | None = None,
        executor: Executor | None = None,
        verify: bool = False,
        replayable: bool = True,
        project_spec: bool = True,
    ) -> None:
        self.verify = verify  # re-hash every source file instead of trusting the digest cache
        # Leave a fingerprint for the no-op replay (pipeline/noop.py) after a successful run:
        # only when the executor is the spec's own, as a plain `mlcrew run` would choose.
        self.replayable = replayable and stages is None and project_spec
        # False: the run does not become the project's current spec (a retrain's spec, made
        # for one run, must not replace what `mlcrew serve` and the next `mlcrew run` read).
        self.project_spec = project_spec
        self._keys: dict[str, str] = {}
        self.project = project
        self.store = store
        self.spec = spec
        self.spec_text = spec_text
        self.progress = progress or (lambda *_: None)
        self.stages = stages if stages is not None else stages_for(spec)
        self.actor = actor or default_actor()
        self.executor = executor
        self._champion_before: dict[str, Any] | None = None

    def run(self, *, force: bool = False) -> RunResult:
        """Run every stage; with `force`, execute even those whose key is known."""
        owned = self.executor is None
        executor = self.executor or make_executor(self.spec.execution)
        lock = self.store.lock(run_lock_name(self.spec.name))
        try:
            with lock.hold(on_wait=self._waiting):
                return self._run_locked(force, executor)
        finally:
            if owned:
                executor.close()

    def _waiting(self) -> None:
        from sqlalchemy import select

        with self.store.session() as s:
            other = s.scalars(
                select(Run).where(Run.status == "running", Run.kind == "run").limit(1)
            ).first()
        who = f" (run {other.id}, pid {other.summary.get('pid')})" if other else ""
        message = f"another run of this project is in progress{who}; waiting for it to finish"
        self.progress("", "waiting", {"message": message})

    def _run_locked(self, force: bool, executor: Executor) -> RunResult:
        spec = self.spec
        noop.forget(self.project)  # whatever the last fingerprint vouched for may change now
        mark_interrupted(self.store, spec.name, holding_lock=True)
        self.store.artifacts.clean_tmp()
        self._champion_before = _holder(self.store, spec.name, CHAMPION)
        run_id = new_run_id()
        spec_bytes = self.spec_text.encode()
        spec_digest = self.store.artifacts.put_bytes(spec_bytes)
        with self.store.session() as s:
            self.store.record_artifact(spec_digest, len(spec_bytes), "spec", s)
            if self.project_spec:
                self.store.set_spec(spec_digest, s)
            s.add(
                Run(
                    id=run_id,
                    kind="run",
                    of_run=None,
                    status="running",
                    spec_digest=spec_digest,
                    started_at=now(),
                    summary={
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "executor": executor.description,
                    },
                )
            )
            record_in(s, spec.name, self.actor, "run", run_id, {"force": force})
        outcomes: list[StageOutcome] = []
        promotion: Promotion | None = None
        cache = digest_cache(self.project, self.verify)
        try:
            available = snapshot_sources(self.project, spec, self.store, self.verify, cache)
            inputs = dict(available)
            for position, stage in enumerate(self.stages):
                outcome = self._run_stage(stage, position, run_id, available, force, executor)
                outcomes.append(outcome)
                available.update({f"{stage.name}.{k}": v for k, v in outcome.outputs.items()})
            promotion = self._promote(run_id, outcomes)
        except MlcrewError as exc:
            exc.run = self._finish(run_id, outcomes, "failed", str(exc), promotion)
            if isinstance(exc, CheckFailed):
                exc.report.setdefault("run_id", run_id)
            raise
        except BaseException as exc:
            self._finish(run_id, outcomes, "failed", f"{exc.__class__.__name__}: {exc}", None)
            raise
        result = self._finish(run_id, outcomes, "ok", None, promotion)
        self._leave_fingerprint(result, spec_digest, inputs, cache, executor)
        return result

    def _leave_fingerprint(
        self,
        result: RunResult,
        spec_digest: str,
        inputs: dict[str, str],
        cache: DigestCache,
        executor: Executor,
    ) -> None:
        """What the no-op replay needs to answer the next identical `mlcrew run` (noop.py), if
        this run's inputs can all be vouched for by file stamps."""
        from mlcrew.store.db import HEAD_REVISION
        from mlcrew.store.locks import lock_file

        spec, store = self.spec, self.store
        spec_file = self.project / SPEC_FILE
        spec_bytes = spec_file.read_bytes() if spec_file.is_file() else None
        database = store.engine.url.database
        plain = all(
            not (s.is_sql or s.is_remote or s.is_glob or s.labels is not None)
            for s in spec.sources.values()
        )
        if not (
            self.replayable
            and plain
            and store.engine.dialect.name == "sqlite"
            and database not in (None, "", ":memory:")
            and store.artifacts.is_local
            and not any(c.fresh_hours is not None for c in spec.checks)  # keyed by the hour
            and spec_bytes == self.spec_text.encode()  # the file on disk is what ran
        ):
            return
        digests = {spec_digest, *inputs.values(), *(str(e[-1]) for e in cache.used.values())}
        digests.update(d for o in result.stages for d in o.outputs.values())
        noop.remember(
            self.project,
            {
                "root": str(self.project.resolve()),
                "spec_sha256": hashlib.sha256(spec_bytes).hexdigest(),
                "spec_digest": spec_digest,
                "files": {path: entry[:-1] for path, entry in sorted(cache.used.items())},
                "blobs": sorted(str(store.artifacts.blob_path(d)) for d in digests),
                "project": store.project_name,
                "model": spec.name,
                "db": str(database),
                "lock": str(lock_file(store.engine, run_lock_name(spec.name))),
                "revision": HEAD_REVISION,
                "executor": executor.description,
                "policy": spec.registry.promotion,
                "last_run": result.run_id,
                "stages": [
                    {
                        "name": o.name,
                        "position": i,
                        "key": self._keys[o.name],
                        "outputs": o.outputs,
                    }
                    for i, o in enumerate(result.stages)
                ],
            },
        )

    def _promote(self, run_id: str, outcomes: list[StageOutcome]) -> Promotion | None:
        """Offer a newly registered, passing version to promotion when the spec allows it."""
        reg = next((o for o in outcomes if o.name == "register"), None)
        if reg is None or reg.state != "executed" or not reg.record.get("newly_passed"):
            return None  # a known passing version never moves an alias by itself
        if self.spec.registry.promotion != "auto":
            return None
        from mlcrew.registry.promotion import promote, was_replaced

        version = int(reg.record["version"])
        if was_replaced(self.store, self.spec.name, CHAMPION, version):
            # It held the alias once and was moved away from (a rollback, a better model):
            # bringing it back is a person's decision.
            return Promotion(
                CHAMPION,
                version,
                False,
                [f"v{version} was champion before and was replaced; promote it by hand"],
            )
        try:
            promote(
                self.store,
                self.spec.name,
                version,
                alias=CHAMPION,
                reason=f"auto: passed every gate (run {run_id})",
                actor=self.actor,
                margin=self.spec.registry.margin,
            )
        except PromotionRefused as exc:
            return Promotion(CHAMPION, version, False, exc.reasons)
        except MlcrewError as exc:  # e.g. a model that cannot be loaded: the run still stands
            return Promotion(CHAMPION, version, False, [str(exc)])
        return Promotion(CHAMPION, version, True, [])

    def _finish(
        self,
        run_id: str,
        outcomes: list[StageOutcome],
        status: str,
        error: str | None,
        promotion: Promotion | None,
    ) -> RunResult:
        verdict = next((o.record.get("verdict") for o in outcomes if o.name == "evaluate"), None)
        champion = _holder(self.store, self.spec.name, CHAMPION)
        result = RunResult(
            run_id,
            outcomes,
            verdict,
            champion,
            status,
            error,
            self._champion_before,
            promotion,
            self.spec.registry.promotion,
        )
        with self.store.session() as s:
            run = s.get(Run, run_id)
            if run is not None:
                run.status = status
                run.error = error
                run.finished_at = now()
                run.summary = {
                    **result.to_json(),
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "executor": run.summary.get("executor"),
                }
        return result

    def _run_stage(
        self,
        stage: StageDef,
        position: int,
        run_id: str,
        available: dict[str, str],
        force: bool,
        executor: Executor,
    ) -> StageOutcome:
        config_model = stage.config(self.spec)
        config = dump_config(config_model)
        libraries = library_versions(stage.libraries)
        inputs = {ref: available[ref] for ref in stage.input_refs(self.spec)}
        key = cache_key(stage.name, stage.version, config, inputs, libraries)
        self._keys[stage.name] = key

        def record(
            state: StageState, outputs: dict[str, str], rec: dict[str, Any], secs: float
        ) -> None:
            with self.store.session() as s:
                execution = StageExecution(
                    run_id=run_id,
                    position=position,
                    stage=stage.name,
                    key=key,
                    version=stage.version,
                    config=config,
                    seed=_seed_of(config_model),
                    inputs=inputs,
                    outputs=outputs,
                    record=rec,
                    state=state,
                    libraries=libraries,
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

        if not force:
            with self.store.session() as s:
                hit = find_execution(s, key)
            stored = hit is not None and all(
                self.store.artifacts.exists(d) for d in hit.outputs.values()
            )
            if hit is not None and stored:
                record("cached", hit.outputs, hit.record, 0.0)
                if stage.on_cached:
                    stage.hook(stage.on_cached)(self.store, dict(hit.record))
                self.progress(stage.name, "cached", {"outputs": hit.outputs})
                return StageOutcome(stage.name, "cached", dict(hit.outputs), 0.0, hit.record)
        self.progress(stage.name, "start", {})
        started = time.perf_counter()
        try:
            outputs, rec = execute_stage(
                stage,
                config_model,
                inputs,
                self.store,
                run_id,
                dry_run=False,
                executor=executor,
                fresh=force,
            )
        except BaseException as exc:
            # Any failure is recorded as a failed execution, whatever raised it.
            failure: dict[str, Any] = {"error": str(exc), "type": exc.__class__.__name__}
            if isinstance(exc, CheckFailed):
                failure["report"] = exc.report
            record("failed", {}, failure, round(time.perf_counter() - started, 3))
            self.progress(stage.name, "failed", {"error": str(exc)})
            raise
        seconds = round(time.perf_counter() - started, 3)
        record("executed", outputs, rec, seconds)
        self.progress(stage.name, "executed", {"outputs": outputs, "seconds": seconds})
        return StageOutcome(stage.name, "executed", outputs, seconds, rec)


def _seed_of(config: BaseModel) -> int | None:
    seed = getattr(config, "seed", None)
    return seed if isinstance(seed, int) else None


def _holder(store: Store, name: str, alias: str) -> dict[str, Any] | None:
    version = alias_holder(store, name, alias)
    return {"name": name, "version": version} if version is not None else None
