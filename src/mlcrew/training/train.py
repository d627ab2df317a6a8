"""The train stage: the model search within a work budget (trials x rounds), then the final fit.

Without `training.search`, `trials: 1` trains LightGBM's defaults on every training row (as
before the search existed, so such models keep their bytes). With a search (or more trials), the
candidates of `mlcrew.training.search` are scored on shuffled, stratified, seeded folds of the
training split, and the chosen model (one LightGBM, or a greedy ensemble) is refitted on all of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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

    col = table.column(target)
    t = col.type
    if task == "regression" and not (pa.types.is_integer(t) or pa.types.is_floating(t)):
        sample = sorted({str(v) for v in col.to_pylist()[:1000] if v is not None})[:3]
        raise DataError(
            f"task: regression needs a numeric target, but {target!r} holds {t} values (e.g. "
            f"{', '.join(map(repr, sample))}); set task: classification in mlcrew.yaml, or fix "
            "the column (a CSV source says which values are not numbers)"
        )
    if task != "auto":
        return task, f"task: {task} in mlcrew.yaml"
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


MapUnits = Callable[[Callable[..., Any], Any, list[Any]], list[Any]]


@dataclass
class Trained:
    model: TabularModel
    record: dict[str, Any]  # what the stage records (task and why, trials, ensemble, ...)
    outcome: Outcome | None  # the search's trials, if there was a search


def local_map(fn: Callable[..., Any], shared: Any, units: list[Any]) -> list[Any]:
    return [fn(shared, u) for u in units]


def run(ctx: StageContext[TrainConfig]) -> StageResult:
    cfg = ctx.config
    table = ctx.inputs.table("split.train")
    trained = train_model(
        cfg,
        table,
        map_units=lambda fn, shared, units: ctx.map(fn, shared, units, cpus=cfg.threads),
    )
    if trained.outcome is not None and not ctx.dry_run:
        _track(ctx, trained.outcome, trained.record["metric"])  # a reproduction is not tracked
    out = ctx.workdir / "model.json"
    out.write_text(trained.model.to_json())
    return StageResult({"model": out}, trained.record)


def train_model(cfg: TrainConfig, table: Any, map_units: MapUnits = local_map) -> Trained:
    """The train stage without the pipeline: the search (if any) and the final model."""
    target = cfg.target
    if target not in table.column_names:
        raise DataError(f"target {target!r} is not a column of the training data")
    task, why = infer_task(table, target, cfg.task)
    features = resolve_features(table.column_names, target, cfg.features)
    n_classes = len(set(table.column(target).to_pylist())) if task == "classification" else 0
    if task == "classification" and n_classes < 2:
        raise DataError(f"target {target!r} has a single class in the training data")
    if cfg.value is not None:  # a value that does not fit the task fails before any fit
        from mlcrew.training.decision import check_value

        check_value(cfg.value, task, sorted({str(v) for v in table.column(target).to_pylist()}))
    seed = cfg.seed
    base = base_params(task, n_classes, seed, cfg.threads)
    params = {**base, **cfg.params}
    metric = cfg.metric if cfg.metric != "auto" else default_metric(task)
    search = cfg.search if cfg.search is not None else Search() if cfg.budget.trials > 1 else None
    model = TabularModel(task, params, cfg.budget.rounds, list(cfg.features.categorical))
    record: dict[str, Any] = {"task": task, "task_reason": why, "features": features}
    outcome = None
    if search is None:
        model.fit(table, target, features)
        record |= {"trials": [], "params": {k: params[k] for k in TUNED_KEYS if k in params}}
    else:
        found, outcome = _search(cfg, model, table, features, search, base, metric, map_units)
        record |= found
    if task == "classification" and (cfg.calibration != "none" or cfg.value is not None):
        record["decision"] = _decide(cfg, model, table, outcome, map_units)
    record |= {
        "rows": table.num_rows,
        "rounds": model.rounds or cfg.budget.rounds,
        "seed": seed,
        "metric": metric,
        "importance": _importance(model, table, target, metric, seed),
    }
    return Trained(model, record, outcome)


def _search(
    cfg: TrainConfig,
    model: TabularModel,
    table: Any,
    features: list[str],
    search: Search,
    base: dict[str, Any],
    metric: str,
    map_units: MapUnits,
) -> tuple[dict[str, Any], Outcome]:
    """Search, then refit the chosen members on every training row into `model`."""
    from mlcrew.training.search import SearchData, make_folds, run_search, time_ordered

    X, y = model.prepare(table, cfg.target, features)
    n_classes = len(model.classes_)
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
    in_time = time_ordered(search, cfg.time_ordered)
    folds = make_folds(y, problem, search, model.classes_, in_time)
    data = SearchData(X, y, folds, problem, rounds, patience, in_time)
    outcome = run_search(
        data,
        search,
        trials=cfg.budget.trials,
        metric=metric,
        base=base,
        user=dict(cfg.params),
        map_units=map_units,
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
    best = outcome.best
    chosen_params = best.candidate.params if best.candidate.kind == "lightgbm" else {}
    found = {
        "trials": [t.describe(metric) for t in outcome.trials],
        "validation": outcome.validation,
        "early_stopping": patience,
        "ensemble": [
            {"trial": n, "weight": round(c / total, 6)} for n, c in outcome.weights.items()
        ],
        "valid_score": outcome.score,
        "params": {k: chosen_params[k] for k in TUNED_KEYS if k in chosen_params},
    }
    return found, outcome


def _decide(
    cfg: TrainConfig,
    model: TabularModel,
    table: Any,
    outcome: Outcome | None,
    map_units: MapUnits,
) -> dict[str, Any]:
    """Calibration and the value-optimal decision, fitted on out-of-fold predictions: the
    search's, or (without a search) those of the final settings on 5 seeded folds."""
    from mlcrew.training import decision as d
    from mlcrew.training.search import SearchData, make_folds, run_search, time_ordered

    X, y = model.matrix(table), model.target_array(table)
    if outcome is None:
        plain = Search(linear=False, portfolio=False, tuner="none", ensemble=False)
        n_classes = len(model.classes_)
        problem = Problem(
            model.task, n_classes, tuple(model.categorical_indices), cfg.seed, cfg.threads
        )
        in_time = time_ordered(plain, cfg.time_ordered)
        folds = make_folds(y, problem, plain, model.classes_, in_time, purpose="decision")
        data = SearchData(X, y, folds, problem, cfg.budget.rounds, 0, in_time)
        outcome = run_search(
            data,
            plain,
            trials=1,
            metric=cfg.metric if cfg.metric != "auto" else default_metric("classification"),
            base=model.params,
            user={},
            map_units=map_units,
        )
    covered = outcome.covered
    oof, yc = outcome.oof[covered], y[covered]
    out: dict[str, Any] = {"rows": int(covered.sum())}
    if cfg.calibration != "none":
        model.calibration_ = d.fit_calibration(cfg.calibration, oof, yc, len(model.classes_))
        out["calibration"] = cfg.calibration
        out["brier_before"] = _brier(model, oof, yc)
        oof = d.apply_calibration(model.calibration_, oof)
        out["brier_after"] = _brier(model, oof, yc)
    if cfg.value is not None:
        matrix = d.value_matrix(cfg.value, model.classes_)
        plain_pred = model.class_indices(oof)
        out["value_default"] = d.classification_value(matrix, yc, plain_pred)
        if cfg.value.kind == "binary":
            pos = d.positive_index(cfg.value, model.classes_)
            p_pos = model.probabilities(oof)[:, pos]
            threshold = d.best_threshold(matrix, yc, p_pos, pos)
            model.decision_ = {"positive": pos, "threshold": threshold}
            out |= {"positive": model.classes_[pos], "threshold": threshold}
        else:
            model.decision_ = {"matrix": matrix.tolist()}
            out["rule"] = "the class of highest expected value"
        out["value"] = d.classification_value(matrix, yc, model.class_indices(oof))
    return out


def _brier(model: TabularModel, raw: np.ndarray, y: np.ndarray) -> float:
    from mlcrew.training.decision import brier

    return brier(model.probabilities(raw), y)


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
