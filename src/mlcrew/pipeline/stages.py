"""The default pipeline, in execution order. Each later capability deepens one of these."""

from __future__ import annotations

from dataclasses import replace

from mlcrew.pipeline import configs as c
from mlcrew.pipeline.stage import StageDef
from mlcrew.spec import Spec

TRAIN_LIBRARIES = (
    "lightgbm",
    "numpy",
    "pyarrow",
    "scikit-learn",
    "optuna",
    "skops",
    "mlcrew",
    "python",
)

STAGES: tuple[StageDef, ...] = (
    INGEST := StageDef(
        name="ingest",
        version="5",
        config_model=c.IngestConfig,
        build_config=c.ingest_config,
        inputs=("sources", "code"),
        outputs=("dataset", "catalog"),
        impl="mlcrew.data.ingest:run",
        libraries=("duckdb", "pyarrow"),
        description="sources and transforms (SQL in DuckDB, Python in a child) as cached, "
        "versioned datasets -> the catalog and the dataset as Parquet",
    ),
    CHECK := StageDef(
        name="check",
        version="4",
        config_model=c.CheckConfig,
        build_config=c.check_config,
        inputs=("ingest.catalog",),
        outputs=("report",),
        impl="mlcrew.checks.data:run",
        libraries=("duckdb", "scipy"),
        description="data checks in DuckDB; error-level failures stop the pipeline",
    ),
    StageDef(
        name="split",
        version="3",
        config_model=c.SplitConfig,
        build_config=c.split_config,
        inputs=("ingest.dataset",),
        outputs=("train", "test"),
        impl="mlcrew.data.split:run",
        libraries=("numpy", "pyarrow"),
        description="seeded random or time-ordered train/test split",
    ),
    StageDef(
        name="train",
        version="5",
        config_model=c.TrainConfig,
        build_config=c.train_config,
        inputs=("split.train",),
        outputs=("model",),
        impl="mlcrew.training.train:run",
        # The model package records these versions, so each is part of what makes its bytes.
        libraries=TRAIN_LIBRARIES,
        description="model search (LightGBM, linear, scikit-learn, ensembles) that owns its "
        "preprocessing and input schema",
    ),
    StageDef(
        name="evaluate",
        version="3",
        config_model=c.EvaluateConfig,
        build_config=c.evaluate_config,
        inputs=("train.model", "split.train", "split.test"),
        outputs=("report",),
        impl="mlcrew.training.evaluate:run",
        libraries=("lightgbm", "numpy", "pyarrow", "scikit-learn"),
        description="test metrics, dummy baseline and deal-breaker gates -> verdict",
    ),
    StageDef(
        name="register",
        version="3",
        config_model=c.RegisterConfig,
        build_config=c.register_config,
        inputs=("train.model", "evaluate.report", "split.train", "split.test"),
        outputs=("registration",),
        impl="mlcrew.registry.stage:run",
        on_cached="mlcrew.registry.stage:refresh_verdict",
        description="a model version with lineage (aliases move only through promotion)",
    ),
)


# A data-only project (no target): sources, transforms and checks, nothing after them.
DATA_STAGES: tuple[StageDef, ...] = (replace(INGEST, outputs=("catalog",)), CHECK)


def stages_for(spec: Spec) -> tuple[StageDef, ...]:
    return STAGES if spec.modeled else DATA_STAGES


def stage_by_name(name: str) -> StageDef:
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(name)
