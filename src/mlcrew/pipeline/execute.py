"""Executing one stage: a scratch folder, read-only inputs, outputs stored by digest."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mlcrew.pipeline.executors import Executor, LocalExecutor
from mlcrew.pipeline.stage import InputView, StageContext, StageDef
from mlcrew.spec import canonical_json
from mlcrew.store import Store


class StageContractError(TypeError):
    """A stage function broke its declaration (e.g. did not produce a declared output)."""


def execute_stage(
    stage: StageDef,
    config: BaseModel,
    inputs: dict[str, str],
    store: Store,
    run_id: str,
    *,
    dry_run: bool,
    executor: Executor | None = None,
    fresh: bool = False,
) -> tuple[dict[str, str], dict[str, Any]]:
    """Run one stage function in a scratch folder and store its outputs by digest.

    The stage body runs here, in the driver; its units go to `executor` (default: local)."""
    fn = stage.function()
    workdir = Path(tempfile.mkdtemp(prefix=f"mlcrew-{stage.name}-"))
    try:
        out_dir = workdir / "out"
        out_dir.mkdir()
        ctx: StageContext[Any] = StageContext(
            config=config,
            inputs=InputView(store, inputs, workdir / "in"),
            workdir=out_dir,
            store=store,
            run_id=run_id,
            dry_run=dry_run,
            fresh=fresh,
            executor=executor or LocalExecutor(),
            stage=stage.name,
            libraries=stage.libraries,
        )
        result = fn(ctx)
        missing = set(stage.outputs) - set(result.outputs)
        if missing:
            raise StageContractError(
                f"stage {stage.name!r} did not produce outputs {sorted(missing)}"
            )
        outputs: dict[str, str] = {}
        with store.session() as s:
            for name in stage.outputs:
                outputs[name] = store.put_artifact(result.outputs[name], f"{stage.name}.{name}", s)
        record: dict[str, Any] = json.loads(canonical_json(result.record))
        return outputs, record
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
