"""`mlcrew reproduce`: re-execute a run's stages from what was recorded and compare digests."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from mlcrew.errors import MlcrewError, NotFoundError
from mlcrew.pipeline.execute import execute_stage
from mlcrew.pipeline.keys import library_versions
from mlcrew.pipeline.runner import Progress
from mlcrew.pipeline.stage import StageDef
from mlcrew.pipeline.stages import stages_for
from mlcrew.pipeline.status import library_changes
from mlcrew.spec import parse_spec
from mlcrew.store import Store
from mlcrew.store.models import Run, StageExecution


def reproduce(
    store: Store,
    run_id: str,
    progress: Progress | None = None,
    stages: tuple[StageDef, ...] | None = None,
) -> dict[str, Any]:
    """Re-execute every stage of a run from its recorded config and inputs, cache bypassed,
    and compare each output digest with the recorded one. Every input read is verified against
    its digest, so a tampered artifact is reported, not silently used."""
    progress = progress or (lambda *_: None)
    with store.session() as s:
        run = s.get(Run, run_id[:40])
        if run is None:
            recent = [r.id for r in s.scalars(select(Run).order_by(Run.started_at.desc()).limit(5))]
            hint = f"; recent runs: {', '.join(recent)}" if recent else "; no runs yet"
            raise NotFoundError(f"run {run_id[:60]!r} not found{hint}")
        executions = list(
            s.scalars(
                select(StageExecution)
                .where(StageExecution.run_id == run_id)
                .order_by(StageExecution.position)
            )
        )
    if run.kind != "run":
        raise MlcrewError(
            f"run {run_id} is a {run.kind} run, not a pipeline run: only pipeline runs are "
            "reproduced (list them with 'mlcrew runs')"
        )
    if not executions:
        raise NotFoundError(f"run {run_id!r} has no stage executions to reproduce")
    # The recorded spec must still parse (and its bytes match their digest).
    recorded = parse_spec(
        store.artifacts.read_bytes(run.spec_digest).decode(), f"run {run_id} spec"
    )
    by_name = {st.name: st for st in (stages if stages is not None else stages_for(recorded))}
    differences: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    available: dict[str, str] = {}
    for ex in executions:
        if ex.state == "failed":
            continue
        stage = by_name.get(ex.stage)
        if stage is None:
            differences.append({"stage": ex.stage, "output": None, "why": "no such stage now"})
            continue
        notes = []
        if stage.version != ex.version:
            notes.append(f"stage code version is now {stage.version}, was {ex.version}")
        notes += library_changes(ex.libraries or {}, library_versions(stage.libraries))
        for note in notes:
            differences.append({"stage": ex.stage, "output": None, "why": note})
        try:
            config = stage.load_config(ex.config)
        except ValidationError as exc:
            differences.append(
                {
                    "stage": ex.stage,
                    "output": None,
                    "why": "its recorded config no longer fits the stage: "
                    + str(exc).splitlines()[0],
                }
            )
            break
        # Inputs come from this re-execution where a stage made them, else from the record.
        inputs = {r: available.get(r, d) for r, d in ex.inputs.items()}
        progress(ex.stage, "start", {})
        outputs, _record = execute_stage(stage, config, inputs, store, run_id, dry_run=True)
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
        results.append({"name": ex.stage, "identical": same, "outputs": outputs})
        progress(ex.stage, "executed", {"outputs": outputs})
    # Version or library notes explain differences; alone they do not make outputs differ.
    identical = not any(d.get("output") for d in differences) and len(results) == len(
        [e for e in executions if e.state != "failed"]
    )
    from mlcrew.people.audit import record
    from mlcrew.registry.promotion import default_actor

    # Recorded, so `mlcrew doctor` knows which models were ever reproduced and how it went.
    record(store, store.project_name, default_actor(), "reproduce", run_id,
           {"identical": identical, "differences": len(differences)})  # fmt: skip
    return {
        "run_id": run_id,
        "identical": identical,
        "differences": differences,
        "stages": results,
    }
