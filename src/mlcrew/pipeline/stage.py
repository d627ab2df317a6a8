"""The stage contract: every pipeline step is a plain function over artifacts.

A stage declares its name, code version, the spec sections it reads, the artifacts it takes and the
artifacts it makes. Its function receives only those (never the whole spec), so a re-run from the
recorded config and input digests is a faithful re-execution. Implementations are imported lazily,
so that a cached run never pays for importing LightGBM or DuckDB.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlcrew.spec import Spec
    from mlcrew.store import Store


@dataclass
class StageContext:
    """What a stage function may see."""

    config: dict[str, Any]
    inputs: dict[str, Path]
    input_digests: dict[str, str]
    workdir: Path
    seed: int | None
    store: Store
    run_id: str
    dry_run: bool = False  # reproduce: compute outputs, change nothing in the registry


@dataclass
class StageResult:
    outputs: dict[str, Path]
    record: dict[str, Any] = field(default_factory=dict)


StageFn = Callable[[StageContext], StageResult]


@dataclass(frozen=True)
class StageDef:
    """A stage's declaration. `impl` is "module:function", imported on first execution."""

    name: str
    version: str
    sections: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    impl: str
    uses_seed: bool = False
    description: str = ""
    # Hook to shape the cache-relevant config, e.g. to drop file paths (content is an input).
    shape_config: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # "module:function(store, record)" run when the stage is served from the cache.
    on_cached: str | None = None

    def config(self, spec: Spec) -> dict[str, Any]:
        cfg = spec.section(*self.sections)
        return self.shape_config(cfg) if self.shape_config else cfg

    def input_refs(self, spec: Spec) -> tuple[str, ...]:
        if "sources" in self.inputs:
            return tuple(f"source.{n}" for n in spec.sources) + tuple(
                i for i in self.inputs if i != "sources"
            )
        return self.inputs

    def function(self) -> StageFn:
        fn: StageFn = self.hook(self.impl)
        return fn

    @staticmethod
    def hook(path: str) -> Any:
        module, _, attr = path.partition(":")
        return getattr(importlib.import_module(module), attr)


def check_stage(stage: StageDef) -> None:
    """Tell a stage author which part of the contract their declaration breaks."""
    problems: list[str] = []
    if not stage.name.isidentifier():
        problems.append(f"name {stage.name!r} must be an identifier")
    if not stage.version:
        problems.append("version must be set; bump it whenever the stage's code changes output")
    if not stage.outputs:
        problems.append("a stage must declare at least one output")
    for ref in stage.inputs:
        if ref != "sources" and ref.count(".") != 1:
            problems.append(f"input {ref!r} must read 'stage.output'")
    if ":" not in stage.impl:
        problems.append(f"impl {stage.impl!r} must read 'module:function'")
    else:
        try:
            stage.function()
        except (ImportError, AttributeError) as exc:
            problems.append(f"impl {stage.impl!r} cannot be imported: {exc}")
    if problems:
        raise TypeError(f"stage {stage.name!r} breaks the stage contract: " + "; ".join(problems))
