"""The register stage: a model version with lineage. It never moves an alias.

Registering is idempotent by model digest, so a re-run or a reproduction of the same model names
the same version. The record says whether this execution created the version (`new`) and whether
it passed its gates for the first time (`newly_passed`): only such a version is offered to
promotion by the runner, so re-running a known model never undoes a rollback.
"""

from __future__ import annotations

import json
from typing import Any

from mlcrew.pipeline.configs import RegisterConfig
from mlcrew.pipeline.stage import StageContext, StageResult
from mlcrew.registry.versions import find_by_digest, register_version, update_evaluation
from mlcrew.store import Store
from mlcrew.store.models import Run


def run(ctx: StageContext[RegisterConfig]) -> StageResult:
    name = ctx.config.name
    report = ctx.inputs.json("evaluate.report")
    verdict = report["verdict"]
    model_digest = ctx.inputs.digest("train.model")
    data = {k: v for k, v in ctx.inputs.digests.items() if k.startswith("split.")}
    new = newly_passed = False
    if ctx.dry_run:
        with ctx.store.session() as s:
            row = find_by_digest(s, name, model_digest)
            version = row.version if row else None
    else:
        with ctx.store.session() as s:
            run_row = s.get(Run, ctx.run_id)
            spec_digest = run_row.spec_digest if run_row else ""
            known = find_by_digest(s, name, model_digest)
            passed_before = bool(known and known.verdict.get("passed"))
        newly_passed = bool(verdict["passed"]) and not passed_before
        info, new = register_version(
            ctx.store,
            name,
            model_digest,
            run_id=ctx.run_id,
            spec_digest=spec_digest,
            data_digests=data,
            metrics=report["metrics"],
            verdict=verdict,
            metric=report.get("metric"),
        )
        version = info.version
    # Only what the model and its evaluation determine goes into the output (it is hashed);
    # whether the version was new is a fact of this execution, kept in the record.
    doc = {
        "name": name,
        "version": version,
        "model_digest": model_digest,
        "verdict": verdict,
        "metrics": report["metrics"],
        "metric": report.get("metric"),
    }
    out = ctx.workdir / "registration.json"
    out.write_text(json.dumps(doc, sort_keys=True))
    return StageResult({"registration": out}, {**doc, "new": new, "newly_passed": newly_passed})


def refresh_verdict(store: Store, record: dict[str, Any]) -> None:
    """On a cache hit: the version shows this (latest) evaluation of it. No alias moves."""
    if record.get("version") is None:
        return
    with store.session() as s:
        row = find_by_digest(s, record["name"], record["model_digest"])
        if row is not None and "verdict" in record:
            update_evaluation(row, record["verdict"], record["metrics"], record.get("metric"))
