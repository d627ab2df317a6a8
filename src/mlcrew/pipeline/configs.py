"""Each stage's typed config, built from the spec: exactly what the stage reads, nothing more.

A stage's cache key is the canonical dump of its config (plus input digests and library
versions), so whatever is in here decides what re-runs the stage. Seeds are part of the config of
the stages that use them: a time split has none, so a new seed never re-cuts a time split.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlcrew.spec import Budget, Check, Features, Objective, Search, Spec, Transform, Value


class StageConfig(BaseModel):
    """Base of stage configs: frozen, and unknown keys are errors (a recorded config that no
    longer fits means the stage changed)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    # Where each field comes from in mlcrew.yaml, so `status` names the key a person edits.
    spec_keys: ClassVar[dict[str, str]] = {}

    @classmethod
    def spec_key(cls, path: str) -> str:
        """`budget.rounds` -> `training.budget.rounds`."""
        head, dot, rest = path.partition(".")
        return cls.spec_keys.get(head, head) + dot + rest


class IngestSource(StageConfig):
    """How to read a source. Its content is an input (by digest); `path` is here because
    messages name the file and a glob's file-name column holds names."""

    path: str
    format: Literal["csv", "parquet", "json"]
    glob: bool = False
    filename: str | None = None
    delimiter: str | None = None
    quote: str = '"'
    decimal: str = "."
    encoding: str = "utf-8"
    header: bool = True
    bad_lines: Literal["error", "skip"] = "error"
    missing: list[str] | None = None
    types: dict[str, str] = Field(default_factory=dict)


class IngestConfig(StageConfig):
    spec_keys: ClassVar[dict[str, str]] = {"dataset": "dataset.from"}
    sources: dict[str, IngestSource]
    transforms: dict[str, Transform]
    # The table that becomes the dataset; None in a data-only project (no target).
    dataset: str | None = Field(None, description="the table that becomes the dataset")


class CheckConfig(StageConfig):
    spec_keys: ClassVar[dict[str, str]] = {
        "missing_target": "dataset.missing_target",
        "dataset": "dataset.from",
    }
    checks: list[Check]
    target: str | None
    missing_target: Literal["error", "drop"] = "error"
    # The table a check without `table:` is about (the dataset's), None in a data-only project.
    dataset: str | None = None
    # The hour freshness checks are judged at (only when there are some): a new hour re-runs.
    as_of: str | None = None


class SplitConfig(StageConfig):
    spec_keys: ClassVar[dict[str, str]] = {
        "by": "dataset.split.by",
        "order": "dataset.split.order",
        "test": "dataset.split.test",
        "seed": "dataset.split.seed (default: seed)",
        "drop_missing": "dataset.missing_target",
    }
    by: Literal["random", "time"]
    order: list[str]
    test: float
    seed: int | None = Field(None, description="random split only")
    # dataset.missing_target: drop: rows without a target value are left out here.
    drop_missing: str | None = None


class TrainConfig(StageConfig):
    spec_keys: ClassVar[dict[str, str]] = {
        "metric": "objective.metric",
        "budget": "training.budget",
        "threads": "training.threads",
        "params": "training.params",
        "seed": "training.seed (default: seed)",
        "search": "training.search",
        "calibration": "training.calibration",
        "value": "objective.value",
        "time_ordered": "dataset.split.by",
    }
    target: str
    task: Literal["auto", "regression", "classification"]
    features: Features
    # Which metric picks the best trial; the gates' bounds are evaluate's business.
    metric: str
    budget: Budget
    threads: int
    params: dict[str, int | float | str | bool]
    seed: int
    search: Search | None = None
    # Fitted on out-of-fold predictions into the model: calibration, the value-optimal decision.
    calibration: Literal["none", "sigmoid", "isotonic"] = "none"
    value: Value | None = None
    # The training split's rows are in time order (dataset.split.by: time): folds keep it.
    time_ordered: bool = False


class EvaluateConfig(StageConfig):
    target: str
    objective: Objective


class RegisterConfig(StageConfig):
    name: str


def ingest_config(spec: Spec) -> IngestConfig:
    return IngestConfig(
        sources={
            name: IngestSource(
                path=src.described,
                format=src.resolved_format,
                glob=src.is_glob,
                filename=src.filename,
                delimiter=src.resolved_delimiter if src.resolved_format == "csv" else None,
                quote=src.quote,
                decimal=src.decimal,
                encoding=src.encoding,
                header=src.header,
                bad_lines=src.bad_lines,
                missing=src.missing,
                types=dict(src.types),
            )
            for name, src in spec.sources.items()
        },
        transforms=dict(spec.transforms),
        dataset=spec.dataset.from_ if spec.dataset is not None else None,
    )


def split_missing(spec: Spec) -> str:
    return spec.modeled_dataset.missing_target


def check_config(spec: Spec) -> CheckConfig:
    return CheckConfig(
        checks=list(spec.checks),
        target=spec.target,
        missing_target=spec.dataset.missing_target if spec.dataset else "error",
        dataset=spec.dataset.from_ if spec.dataset else None,
        as_of=_hour_now() if any(c.fresh_hours is not None for c in spec.checks) else None,
    )


def _hour_now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0).isoformat()


def split_config(spec: Spec) -> SplitConfig:
    split = spec.modeled_dataset.split
    return SplitConfig(
        by=split.by,
        order=list(split.order),
        test=split.test,
        seed=spec.split_seed if split.by == "random" else None,
        drop_missing=spec.model_target if split_missing(spec) == "drop" else None,
    )


def train_config(spec: Spec) -> TrainConfig:
    t = spec.training
    return TrainConfig(
        target=spec.model_target,
        task=spec.task,
        features=spec.features,
        metric=spec.objective.metric,
        budget=t.budget,
        threads=t.threads,
        params=dict(t.params),
        seed=spec.training_seed,
        search=t.search,
        calibration=t.calibration,
        value=spec.objective.value,
        time_ordered=spec.modeled_dataset.split.by == "time",
    )


def evaluate_config(spec: Spec) -> EvaluateConfig:
    return EvaluateConfig(target=spec.model_target, objective=spec.objective)


def register_config(spec: Spec) -> RegisterConfig:
    return RegisterConfig(name=spec.name)
