"""The register stage: a model version with lineage; `champion` moves only if every gate passed.

Registering is idempotent by model digest, so a re-run or a reproduction of the same model names
the same version.
"""

from __future__ import annotations

import json
from typing import Any

from mlcrew.pipeline.stage import StageContext, StageResult
from mlcrew.registry.versions import CHAMPION, find_by_digest, register_version, set_alias
from mlcrew.store import Store
from mlcrew.store.models import Run


def run(ctx: StageContext) -> StageResult:
    name = ctx.config["name"]
    report = json.loads(ctx.inputs["evaluate.report"].read_text())
    verdict = report["verdict"]
    model_digest = ctx.input_digests["train.model"]
    data = {k: v for k, v in ctx.input_digests.items() if k.startswith("split.")}
    if ctx.dry_run:
        with ctx.store.session() as s:
            row = find_by_digest(s, name, model_digest)
            version = row.version if row else None
    else:
        with ctx.store.session() as s:
            run_row = s.get(Run, ctx.run_id)
            spec_digest = run_row.spec_digest if run_row else ""
        info, _new = register_version(
            ctx.store,
            name,
            model_digest,
            run_id=ctx.run_id,
            spec_digest=spec_digest,
            data_digests=data,
            metrics=report["metrics"],
            verdict=verdict,
        )
        version = info.version
        if verdict["passed"]:
            set_alias(ctx.store, name, CHAMPION, version)
    promoted = bool(verdict["passed"])
    doc = {
        "name": name,
        "version": version,
        "model_digest": model_digest,
        "promoted": promoted,
        "verdict": verdict,
        "metrics": report["metrics"],
    }
    out = ctx.workdir / "registration.json"
    out.write_text(json.dumps(doc, sort_keys=True))
    return StageResult({"registration": out}, doc)


def reapply(store: Store, record: dict[str, Any]) -> None:
    """On a cache hit: the run's model is the same version with the same verdict, so the alias
    goes where this registration put it (a reverted config brings its champion back)."""
    if record.get("version") is None:
        return
    with store.session() as s:
        row = find_by_digest(s, record["name"], record["model_digest"])
        if row is not None and "verdict" in record:
            row.verdict, row.metrics = record["verdict"], record["metrics"]
    if record.get("promoted"):
        set_alias(store, record["name"], CHAMPION, int(record["version"]))
