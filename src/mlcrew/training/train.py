"""The train stage: a deterministic LightGBM search within a work budget (trials x rounds).

With `trials: 1` the default parameters are trained. With more, trial parameters are drawn from a
seeded generator, each is scored on a validation tail of the training data (its last 20%, in
order, so a time split stays honest), and the best is refitted on all training rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from mlcrew.errors import DataError
from mlcrew.pipeline.configs import TrainConfig
from mlcrew.pipeline.stage import StageContext, StageResult
from mlcrew.spec import Features
from mlcrew.training.metrics import better, default_metric
from mlcrew.training.model import TabularModel, base_params

if TYPE_CHECKING:
    import lightgbm as lgb
    import pyarrow as pa

SEARCH_SPACE = {
    "learning_rate": (0.02, 0.2),
    "num_leaves": (8, 128),
    "min_data_in_leaf": (5, 100),
    "feature_fraction": (0.5, 1.0),
}


def infer_task(table: Any, target: str, task: str) -> str:
    import pyarrow as pa

    if task != "auto":
        return task
    t = table.column(target).type
    if pa.types.is_floating(t):
        return "regression"
    if pa.types.is_integer(t) and len(set(table.column(target).to_pylist())) > 10:
        return "regression"
    return "classification"


def resolve_features(columns: list[str], target: str, features: Features) -> list[str]:
    chosen = features.include or [c for c in columns if c != target]
    unknown = [c for c in [*chosen, *features.exclude] if c not in columns]
    if unknown:
        raise DataError(
            f"features name {unknown}, not columns of the dataset; columns: {', '.join(columns)}"
        )
    chosen = [c for c in chosen if c not in features.exclude and c != target]
    if not chosen:
        raise DataError("no features left after features.include/exclude; list some columns")
    stray = [c for c in features.categorical if c not in chosen]
    if stray:
        raise DataError(
            f"features.categorical names {stray}, which are not features; features: "
            f"{', '.join(chosen)}"
        )
    return chosen


def _trial_params(rng: Any) -> dict[str, Any]:
    lo, hi = (math.log10(v) for v in SEARCH_SPACE["learning_rate"])
    return {
        "learning_rate": float(round(10 ** rng.uniform(lo, hi), 5)),
        "num_leaves": int(rng.integers(*SEARCH_SPACE["num_leaves"])),
        "min_data_in_leaf": int(rng.integers(*SEARCH_SPACE["min_data_in_leaf"])),
        "feature_fraction": float(round(rng.uniform(*SEARCH_SPACE["feature_fraction"]), 3)),
    }


def score(model: TabularModel, table: Any, target: str, metric: str) -> float:
    from mlcrew.training.evaluate import model_metrics

    metrics = model_metrics(model, table, target)
    if metric not in metrics:
        raise DataError(
            f"objective.metric {metric!r} cannot be computed on the validation tail of the "
            f"training data (it may hold a single class); choose one of {sorted(metrics)} or set "
            "training.budget.trials: 1"
        )
    return metrics[metric]


@dataclass(frozen=True)
class TrialSearch:
    """What every trial shares: sent once to wherever the trials run."""

    fit_part: pa.Table
    valid_part: pa.Table
    target: str
    features: list[str]
    task: str
    metric: str
    rounds: int
    categorical: list[str]


def fit_trial(search: TrialSearch, params: dict[str, Any]) -> float:
    """One trial: fit on the first 80% of training rows, score on the rest (a unit of work)."""
    m = TabularModel(search.task, params, search.rounds, search.categorical)
    m.fit(search.fit_part, search.target, search.features)
    return score(m, search.valid_part, search.target, search.metric)


def run(ctx: StageContext[TrainConfig]) -> StageResult:
    import numpy as np

    cfg = ctx.config
    features_cfg = cfg.features
    target = cfg.target
    table = ctx.inputs.table("split.train")
    if target not in table.column_names:
        raise DataError(f"target {target!r} is not a column of the training data")
    task = infer_task(table, target, cfg.task)
    features = resolve_features(table.column_names, target, features_cfg)
    n_classes = len(set(table.column(target).to_pylist())) if task == "classification" else 0
    if task == "classification" and n_classes < 2:
        raise DataError(f"target {target!r} has a single class in the training data")
    seed = cfg.seed
    params = {**base_params(task, n_classes, seed, cfg.threads), **cfg.params}
    metric = cfg.metric if cfg.metric != "auto" else default_metric(task)
    trials: list[dict[str, Any]] = []
    if cfg.budget.trials > 1:
        rng = np.random.default_rng(seed)
        cut = int(table.num_rows * 0.8)
        # Every trial's parameters are drawn here, in order, before any runs: the draw never
        # depends on which executor runs the trials or in which order they finish.
        candidates = [
            {**params, **(_trial_params(rng) if i else {}), **cfg.params}
            for i in range(cfg.budget.trials)
        ]
        search = TrialSearch(
            fit_part=table.slice(0, cut),
            valid_part=table.slice(cut),
            target=target,
            features=features,
            task=task,
            metric=metric,
            rounds=cfg.budget.rounds,
            categorical=list(features_cfg.categorical),
        )
        values = ctx.map(fit_trial, search, candidates, cpus=cfg.threads)
        chosen = 0
        for i, (trial, value) in enumerate(zip(candidates, values, strict=True)):
            trials.append({"trial": i, metric: value, **{k: trial[k] for k in SEARCH_SPACE}})
            if better(metric, value, values[chosen]):
                chosen = i
        params = candidates[chosen]
        if not ctx.dry_run:  # a reproduction recomputes; the search is tracked once
            from mlcrew.experiments.pipeline import log_search

            log_search(
                ctx.store,
                pipeline_run=ctx.run_id,
                stage=ctx.stage or "train",
                seed=seed,
                metric=metric,
                budget={"trials": cfg.budget.trials, "rounds": cfg.budget.rounds},
                trials=[{k: c[k] for k in SEARCH_SPACE} for c in candidates],
                scores=values,
                chosen=chosen,
            )
    model = TabularModel(task, params, cfg.budget.rounds, features_cfg.categorical)
    model.fit(table, target, features)
    out = ctx.workdir / "model.json"
    out.write_text(model.to_json())
    booster = cast("lgb.Booster", model.booster_)  # fitted here: LightGBM's own Booster
    gains = booster.feature_importance(importance_type="gain")
    total = float(gains.sum()) or 1.0
    importance = {
        name: round(float(g) / total, 6)
        for name, g in sorted(zip(features, gains, strict=True), key=lambda p: -p[1])
    }
    record = {
        "task": task,
        "features": features,
        "rows": table.num_rows,
        "rounds": cfg.budget.rounds,
        "seed": seed,
        "trials": trials,
        "metric": metric,
        "params": {k: params[k] for k in SEARCH_SPACE},
        "importance": importance,
    }
    return StageResult({"model": out}, record)
