"""The default pipeline, in execution order. Each later capability deepens one of these."""

from __future__ import annotations

from typing import Any

from mlcrew.pipeline.stage import StageDef


def _ingest_config(cfg: dict[str, Any]) -> dict[str, Any]:
    # A source's path is where to find it, not what it is: its content digest is an input.
    from mlcrew.spec import Source

    sources = {}
    for name, src in cfg["sources"].items():
        source = Source.model_validate(src)
        sources[name] = {
            **{k: v for k, v in src.items() if k != "path"},
            "format": source.resolved_format,
            "delimiter": source.resolved_delimiter if source.resolved_format == "csv" else None,
        }
    return {**cfg, "sources": sources}


STAGES: tuple[StageDef, ...] = (
    StageDef(
        name="ingest",
        version="1",
        sections=("sources", "transforms", "dataset"),
        inputs=("sources",),
        outputs=("dataset",),
        impl="mlcrew.data.ingest:run",
        description="sources -> SQL transforms in DuckDB -> the dataset as Parquet",
        shape_config=lambda cfg: _ingest_config(
            {**cfg, "dataset": {"from": cfg["dataset"]["from"]}}
        ),
    ),
    StageDef(
        name="check",
        version="2",
        sections=("checks", "target"),
        inputs=("ingest.dataset",),
        outputs=("report",),
        impl="mlcrew.checks.data:run",
        description="data checks in DuckDB; error-level failures stop the pipeline",
    ),
    StageDef(
        name="split",
        version="1",
        sections=("dataset", "target"),
        inputs=("ingest.dataset",),
        outputs=("train", "test"),
        impl="mlcrew.data.split:run",
        uses_seed=True,
        description="seeded random or time-ordered train/test split",
        shape_config=lambda cfg: {"split": cfg["dataset"]["split"], "target": cfg["target"]},
    ),
    StageDef(
        name="train",
        version="3",
        sections=("target", "task", "features", "objective", "training"),
        inputs=("split.train",),
        outputs=("model",),
        impl="mlcrew.training.train:run",
        uses_seed=True,
        # Training needs only which metric picks the best trial, not the gates' bounds.
        shape_config=lambda cfg: {**cfg, "objective": {"metric": cfg["objective"]["metric"]}},
        description="LightGBM pipeline that owns its preprocessing and input schema",
    ),
    StageDef(
        name="evaluate",
        version="1",
        sections=("target", "objective"),
        inputs=("train.model", "split.train", "split.test"),
        outputs=("report",),
        impl="mlcrew.training.evaluate:run",
        description="test metrics, dummy baseline and deal-breaker gates -> verdict",
    ),
    StageDef(
        name="register",
        version="2",
        sections=("name",),
        inputs=("train.model", "evaluate.report", "split.train", "split.test"),
        outputs=("registration",),
        impl="mlcrew.registry.stage:run",
        on_cached="mlcrew.registry.stage:reapply",
        description="model version with lineage; 'champion' moves only if every gate passed",
    ),
)


def stage_by_name(name: str) -> StageDef:
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(name)
