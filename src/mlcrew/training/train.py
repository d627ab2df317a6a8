"""The train stage: the model search within a work budget (trials x rounds), then the final fit.

Without `training.search`, `trials: 1` trains LightGBM's defaults on every training row (as
before the search existed, so such models keep their bytes). With a search (or more trials), the
candidates of `mlcrew.training.search` are scored on shuffled, stratified, seeded folds of the
training split, and the chosen model (one LightGBM, or a greedy ensemble) is refitted on all of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from mlcrew.errors import DataError
from mlcrew.pipeline.configs import TrainConfig
from mlcrew.pipeline.stage import StageContext, StageResult
from mlcrew.spec import Features, Search
from mlcrew.training.members import TUNED_KEYS, LightGBMMember, Member, Problem, SklearnMember
from mlcrew.training.metrics import default_metric
from mlcrew.training.model import TabularModel, base_params

if TYPE_CHECKING:
    import lightgbm as lgb
    import numpy as np

    from mlcrew.training.search import Outcome

# An integer target with at most this many distinct values is taken for classes by `task: auto`.
MAX_AUTO_CLASSES = 20
IMPORTANCE_ROWS = 2_000  # rows the permutation importance of an ensemble is measured on


def infer_task(table: Any, target: str, task: str) -> tuple[str, str]:
    """The task, and in words why (`mlcrew run` prints it when `task: auto` decided)."""
    import pyarrow as pa

    if task != "auto":
        return task, f"task: {task} in mlcrew.yaml"
    col = table.column(target)
    t = col.type
    if pa.types.is_floating(t):
        return "regression", (
            f"target {target!r} holds decimal numbers ({t}); set task: classification in "
            "mlcrew.yaml if they are codes of classes"
        )
    if pa.types.is_integer(t):
        distinct = len(set(col.to_pylist()) - {None})
        if distinct > MAX_AUTO_CLASSES:
            return "regression", (
                f"target {target!r} holds integers with {distinct} distinct values (more than "
                f"{MAX_AUTO_CLASSES}); set task: classification in mlcrew.yaml if they are classes"
            )
        return "classification", (
            f"target {target!r} holds integers with {distinct} distinct values (at most "
            f"{MAX_AUTO_CLASSES}), taken as classes; set task: regression in mlcrew.yaml to "
            "predict them as numbers"
        )
    return "classification", f"target {target!r} holds {t} values, taken as classes"


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


def run(ctx: StageContext[TrainConfig]) -> StageResult:
    cfg = ctx.config
    target = cfg.target
    table = ctx.inputs.table("split.train")
    if target not in table.column_names:
        raise DataError(f"target {target!r} is not a column of the training data")
    task, why = infer_task(table, target, cfg.task)
    features = resolve_features(table.column_names, target, cfg.features)
    n_classes = len(set(table.column(target).to_pylist())) if task == "classification" else 0
    if task == "classification" and n_classes < 2:
        raise DataError(f"target {target!r} has a single class in the training data")
    seed = cfg.seed
    base = base_params(task, n_classes, seed, cfg.threads)
    params = {**base, **cfg.params}
    metric = cfg.metric if cfg.metric != "auto" else default_metric(task)
    search = cfg.search if cfg.search is not None else Search() if cfg.budget.trials > 1 else None
    model = TabularModel(task, params, cfg.budget.rounds, list(cfg.features.categorical))
    record: dict[str, Any] = {"task": task, "task_reason": why, "features": features}
    if search is None:
        model.fit(table, target, features)
        record |= {"trials": [], "params": {k: params[k] for k in TUNED_KEYS if k in params}}
    else:
        record |= _search(ctx, model, table, features, search, base, metric, n_classes)
    out = ctx.workdir / "model.json"
    out.write_text(model.to_json())
    record |= {
        "rows": table.num_rows,
        "rounds": model.rounds or cfg.budget.rounds,
        "seed": seed,
        "metric": metric,
        "importance": _importance(model, table, target, metric, seed),
    }
    return StageResult({"model": out}, record)


def _search(
    ctx: StageContext[TrainConfig],
    model: TabularModel,
    table: Any,
    features: list[str],
    search: Search,
    base: dict[str, Any],
    metric: str,
    n_classes: int,
) -> dict[str, Any]:
    """Search, then refit the chosen members on every training row into `model`."""
    from mlcrew.training.search import SearchData, make_folds, run_search

    cfg = ctx.config
    X, y = model.prepare(table, cfg.target, features)
    problem = Problem(
        model.task, n_classes, tuple(model.categorical_indices), cfg.seed, cfg.threads
    )
    for i, est in enumerate(search.estimators):  # a bad class fails before any fit
        SklearnMember(est.class_, dict(est.params)).build(
            problem, f"training.search.estimators[{i}]"
        )
    rounds = cfg.budget.rounds
    patience = search.early_stopping
    if patience is None:
        patience = max(10, rounds // 10)
    folds = make_folds(y, problem, search, model.classes_)
    data = SearchData(X, y, folds, problem, rounds, patience)
    outcome = run_search(
        data,
        search,
        trials=cfg.budget.trials,
        metric=metric,
        base=base,
        user=dict(cfg.params),
        map_units=lambda fn, shared, units: ctx.map(fn, shared, units, cpus=cfg.threads),
    )
    total = sum(outcome.weights.values())
    members: list[Member] = []
    weights: list[float] = []
    for number, count in outcome.weights.items():
        trial = outcome.trials[number]
        members.append(trial.candidate.member(trial.rounds or rounds).fit(X, y, problem))
        weights.append(count / total)
    only = members[0]
    if len(members) == 1 and isinstance(only, LightGBMMember):
        model.params, model.rounds, model.booster_ = only.params, only.rounds, only.booster_
    else:
        model.set_ensemble(members, weights)
    if not ctx.dry_run:  # a reproduction recomputes; the search is tracked once
        _track(ctx, outcome, metric)
    best = outcome.best
    chosen_params = best.candidate.params if best.candidate.kind == "lightgbm" else {}
    return {
        "trials": [t.describe(metric) for t in outcome.trials],
        "validation": outcome.validation,
        "early_stopping": patience,
        "ensemble": [
            {"trial": n, "weight": round(c / total, 6)} for n, c in outcome.weights.items()
        ],
        "valid_score": outcome.score,
        "params": {k: chosen_params[k] for k in TUNED_KEYS if k in chosen_params},
    }


def _track(ctx: StageContext[TrainConfig], outcome: Outcome, metric: str) -> None:
    from mlcrew.experiments.pipeline import log_search

    cfg = ctx.config
    log_search(
        ctx.store,
        pipeline_run=ctx.run_id,
        stage=ctx.stage or "train",
        seed=cfg.seed,
        metric=metric,
        budget={"trials": cfg.budget.trials, "rounds": cfg.budget.rounds},
        trials=[
            {k: v for k, v in t.describe(metric).items() if k not in ("trial", metric)}
            for t in outcome.trials
        ],
        scores=[t.score for t in outcome.trials],
        chosen=list(outcome.weights),
        ensemble_score=outcome.score,
        validation=outcome.validation,
    )


def _importance(
    model: TabularModel, table: Any, target: str, metric: str, seed: int
) -> dict[str, float]:
    """Each feature's share of LightGBM's split gain; for an ensemble, of the metric lost when
    the feature's column is shuffled (seeded) on up to IMPORTANCE_ROWS training rows."""
    import numpy as np

    names = model.feature_names
    if not model.is_ensemble:
        booster = cast("lgb.Booster", model.booster_)  # fitted here: LightGBM's own Booster
        gains = np.asarray(booster.feature_importance(importance_type="gain"), dtype=np.float64)
    else:
        gains = _permutation_loss(model, table, target, metric, seed)
    total = float(gains.sum()) or 1.0
    return {
        name: round(float(g) / total, 6)
        for name, g in sorted(zip(names, gains, strict=True), key=lambda p: -p[1])
    }


def _permutation_loss(
    model: TabularModel, table: Any, target: str, metric: str, seed: int
) -> np.ndarray:
    import numpy as np

    from mlcrew.spec import LOWER_IS_BETTER
    from mlcrew.training.search import score_raw

    rng = np.random.default_rng(seed)
    rows = table.num_rows
    if rows > IMPORTANCE_ROWS:
        table = table.take(np.sort(rng.choice(rows, IMPORTANCE_ROWS, replace=False)))
    X, y = model.matrix(table), model.target_array(table)
    n_classes = len(model.classes_)
    predict = model.booster_.predict

    def s(m: np.ndarray) -> float:
        return score_raw(metric, model.task, y, np.asarray(predict(m)), n_classes)

    base = s(X)
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    losses = np.zeros(X.shape[1])
    for j in range(X.shape[1]):
        shuffled = X.copy()
        shuffled[:, j] = rng.permutation(shuffled[:, j])
        losses[j] = max(0.0, sign * (base - s(shuffled)))
    return losses
