"""`mlcrew status`: each stage fresh, stale (and exactly why) or never run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from mlcrew.errors import DataError, SpecError
from mlcrew.pipeline.keys import cache_key, library_versions
from mlcrew.pipeline.runner import find_execution
from mlcrew.pipeline.sources import code_digest, digest_cache, source_digest
from mlcrew.pipeline.stage import StageDef, dump_config
from mlcrew.pipeline.stages import stages_for
from mlcrew.spec import Spec
from mlcrew.store import Store
from mlcrew.store.models import StageExecution


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


def _config_changes(
    old: dict[str, Any], new: dict[str, Any], model: type[BaseModel] | None = None
) -> list[str]:
    a, b = _flatten(old), _flatten(new)
    name = getattr(model, "spec_key", None)
    changes = []
    for k in sorted(set(a) | set(b)):
        if a.get(k, "<unset>") != b.get(k, "<unset>"):
            before, after = json.dumps(a.get(k, "<unset>")), json.dumps(b.get(k, "<unset>"))
            changes.append(f"config {name(k) if name else k}: {before} -> {after}")
    return changes


def library_changes(old: dict[str, Any], new: dict[str, str]) -> list[str]:
    return [
        f"library {lib} {old.get(lib, 'unrecorded')} -> {version}"
        for lib, version in sorted(new.items())
        if old.get(lib) != version
    ]


def _last_sources(s: Session) -> dict[str, str]:
    """The source digests the latest run's stages read."""
    last = s.scalars(
        select(StageExecution)
        .where(StageExecution.state.in_(("executed", "cached")))
        .order_by(StageExecution.id.desc())
        .limit(50)
    ).all()
    found: dict[str, str] = {}
    for ex in reversed(last):
        found.update({k: v for k, v in ex.inputs.items() if k.startswith("source.")})
    return found


def status(
    project: Path | None,
    store: Store,
    spec: Spec,
    stages: tuple[StageDef, ...] | None = None,
    verify: bool = False,
) -> list[dict[str, Any]]:
    """Each stage as fresh, stale (with why) or never run, against the current spec and files.
    Without a project folder (a server holding only the store) the source files are taken as
    the latest run read them."""
    stages = stages if stages is not None else stages_for(spec)
    available: dict[str, str] = {}
    order = [st.name for st in stages]
    rows: list[dict[str, Any]] = []
    with store.session() as s:
        if project is None:
            available.update(_last_sources(s))
        else:
            cache = digest_cache(project, verify)
            for name, src in spec.sources.items():
                try:
                    digest = source_digest(project, store, name, src, cache, keep=False)
                except (SpecError, DataError):
                    digest = "missing"
                available[f"source.{name}"] = digest
            for name, transform in spec.transforms.items():
                if transform.python is not None:
                    try:
                        digest = code_digest(project, store, name, transform, cache, keep=False)
                    except (SpecError, DataError):
                        digest = "missing"
                    available[f"code.{name}"] = digest
            cache.save()
        for stage in stages:
            config = dump_config(stage.config(spec))
            libraries = library_versions(stage.libraries)
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
            why += _config_changes(last.config, config, stage.config_model)
            why += library_changes(last.libraries or {}, libraries)
            if all(r in available for r in refs):
                inputs = {r: available[r] for r in refs}
                key = cache_key(stage.name, stage.version, config, inputs, libraries)
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
                        where = spec.sources[r.split(".", 1)[1]].described
                        why.append(f"source file {r} ({where}) is missing")
                    elif last.inputs.get(r) != inputs[r]:
                        what = "source file" if r.startswith("source.") else "input"
                        detail = (
                            f" ({spec.sources[r.split('.', 1)[1]].described})"
                            if r.startswith("source.")
                            else ""
                        )
                        why.append(f"{what} {r}{detail} changed")
                if not why:
                    why.append("no execution with these inputs and config")
            else:
                upstream = sorted(
                    {r.split(".", 1)[0] for r in refs if r not in available}, key=order.index
                )
                why.append(f"upstream {', '.join(upstream)} not fresh")
            rows.append({"name": stage.name, "state": "stale", "why": "; ".join(why)})
    return rows
