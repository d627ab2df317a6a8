"""Feature cleanup: which features can go, and what removing each costs on the objective metric.

Measured on seeded, shuffled (stratified) folds of the training split with the spec's LightGBM
settings, every fit with the same folds and seed, so two measurements differ only by the columns:
1. permutation importance: each fold's model scored with one column shuffled (cheap; it ranks);
2. drop-column ablation: the model retrained without each feature (the measured cost);
3. grouped ablation: every feature the model does without (shuffling it or dropping it costs
   no more than the tolerance) is dropped at once and retrained; while that group costs more
   than the tolerance, its costliest member goes back.
A cost is how much worse the metric gets (negative: the model is better without the feature).
The default tolerance is the standard error of the full model's score across the folds: a
difference smaller than that cannot be told from the folds' own noise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlcrew.errors import DataError
from mlcrew.pipeline.configs import TrainConfig
from mlcrew.spec import LOWER_IS_BETTER, Search, Validation
from mlcrew.training.members import LightGBMMember, Problem
from mlcrew.training.metrics import default_metric
from mlcrew.training.model import TabularModel, base_params
from mlcrew.training.search import make_folds, score_raw, time_ordered
from mlcrew.training.train import infer_task, resolve_features

if TYPE_CHECKING:
    import numpy as np

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass
class Ablation:
    X: np.ndarray
    y: np.ndarray
    folds: tuple[tuple[np.ndarray, np.ndarray], ...]
    problem: Problem
    params: dict[str, Any]
    rounds: int
    patience: int
    metric: str
    covered: np.ndarray = field(repr=False)

    def loss(self, score: float, full: float) -> float:
        """How much worse `score` is than `full` (positive: worse)."""
        return score - full if self.metric in LOWER_IS_BETTER else full - score

    def score(self, keep: list[int]) -> float:
        """The out-of-fold metric of the model retrained on columns `keep`."""
        import numpy as np

        X = self.X[:, keep]
        categorical = tuple(keep.index(j) for j in self.problem.categorical if j in keep)
        problem = Problem(
            self.problem.task,
            self.problem.n_classes,
            categorical,
            self.problem.seed,
            self.problem.threads,
        )
        oof: Any = None
        for fit, valid in self.folds:
            member = LightGBMMember(dict(self.params), self.rounds)
            member.fit(X[fit], self.y[fit], problem, (X[valid], self.y[valid]), self.patience)
            pred = member.predict(X[valid])
            if oof is None:
                oof = np.zeros((len(self.y), *pred.shape[1:]))
            oof[valid] = pred
        c = self.covered
        return score_raw(self.metric, problem.task, self.y[c], oof[c], problem.n_classes)

    def permutation(self, seed: int) -> tuple[float, list[float], float]:
        """The full model's out-of-fold score, each column's loss when shuffled, and the
        standard error of the score across folds."""
        import numpy as np

        rng = np.random.default_rng(seed)
        p = self.X.shape[1]
        oof: Any = None
        shuffled: list[Any] = [None] * p
        c, task, k = self.covered, self.problem.task, self.problem.n_classes
        per_fold = []
        for fit, valid in self.folds:
            member = LightGBMMember(dict(self.params), self.rounds)
            member.fit(
                self.X[fit],
                self.y[fit],
                self.problem,
                (self.X[valid], self.y[valid]),
                self.patience,
            )
            Xv = self.X[valid]
            pred = member.predict(Xv)
            if oof is None:
                oof = np.zeros((len(self.y), *pred.shape[1:]))
                shuffled = [np.zeros_like(oof) for _ in range(p)]
            oof[valid] = pred
            # A score undefined on one fold alone (a single class) stays out of the spread.
            with contextlib.suppress(ValueError):
                per_fold.append(score_raw(self.metric, task, self.y[valid], pred, k))
            for j in range(p):
                Xp = Xv.copy()
                Xp[:, j] = rng.permutation(Xp[:, j])
                shuffled[j][valid] = member.predict(Xp)
        full = score_raw(self.metric, task, self.y[c], oof[c], k)
        losses = [
            self.loss(score_raw(self.metric, task, self.y[c], s[c], k), full) for s in shuffled
        ]
        n = len(per_fold)
        spread = float(np.std(per_fold, ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        return full, losses, spread


def cleanup(
    cfg: TrainConfig,
    table: Any,
    *,
    tolerance: float | None = None,
    folds: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """What removing each feature costs, and which can go together within `tolerance` (default:
    the standard error of the score across folds)."""
    import numpy as np

    if tolerance is not None and tolerance < 0:
        raise DataError("--tolerance is how much worse the metric may get: 0 or more")
    task, _ = infer_task(table, cfg.target, cfg.task)
    features = resolve_features(table.column_names, cfg.target, cfg.features)
    if len(features) < 2:
        raise DataError("feature cleanup needs at least two features")
    n_classes = len(set(table.column(cfg.target).to_pylist())) if task == "classification" else 0
    params = {**base_params(task, n_classes, cfg.seed, cfg.threads), **cfg.params}
    metric = cfg.metric if cfg.metric != "auto" else default_metric(task)
    model = TabularModel(task, params, cfg.budget.rounds, list(cfg.features.categorical))
    X, y = model.prepare(table, cfg.target, features)
    problem = Problem(task, n_classes, tuple(model.categorical_indices), cfg.seed, cfg.threads)
    validation = cfg.search.validation if cfg.search is not None else Validation()
    if folds is not None:
        validation = validation.model_copy(update={"folds": folds, "holdout": None})
    search = Search(validation=validation)
    split = make_folds(y, problem, search, model.classes_, time_ordered(search, cfg.time_ordered))
    covered = np.zeros(len(y), dtype=bool)
    for _, valid in split:
        covered[valid] = True
    ab = Ablation(
        X, y, split, problem, params, cfg.budget.rounds, max(10, cfg.budget.rounds // 10), metric,
        covered,
    )  # fmt: skip
    p = len(features)
    steps = p + 2
    tick = progress or (lambda what, done, total: None)
    tick("permutation importance", 0, steps)
    full, shuffled, spread = ab.permutation(cfg.seed)
    tolerance_from = "given"
    if tolerance is None:
        tolerance, tolerance_from = round(spread, 6), "the standard error across folds"
    costs: list[float] = []
    for j in range(p):
        tick(f"without {features[j]}", j + 1, steps)
        costs.append(ab.loss(ab.score([i for i in range(p) if i != j]), full))

    # The model does without a feature if shuffling it or retraining without it costs within
    # the tolerance; the likeliest to matter are last, so they go back first.
    def rank(j: int) -> tuple[float, int]:
        return (max(costs[j], shuffled[j]), j)

    group = sorted((j for j in range(p) if min(costs[j], shuffled[j]) <= tolerance), key=rank)
    group_cost = None
    tick("without the removable group", p + 1, steps)
    while group:
        keep = [i for i in range(p) if i not in group]
        if not keep:
            group.pop()  # at least one feature stays
            continue
        group_cost = ab.loss(ab.score(keep), full)
        if group_cost <= tolerance:
            break
        group.pop()  # the costliest member goes back
        group_cost = None
    tick("done", steps, steps)
    removable = sorted(group)
    rows = [
        {
            "name": features[j],
            "cost": round(costs[j], 6),
            "removable": j in removable,
            "permutation": round(shuffled[j], 6),
        }
        for j in range(p)
    ]
    rows.sort(key=lambda r: (not r["removable"], r["cost"], r["name"]))
    names = [features[j] for j in removable]
    exclude = [*cfg.features.exclude, *names]
    return {
        "metric": metric,
        "tolerance": tolerance,
        "tolerance_from": tolerance_from,
        "score": round(full, 6),
        "folds": len(split),
        "features": rows,
        "remove_together": {
            "features": names,
            "cost": None if group_cost is None else round(group_cost, 6),
        },
        "spec_change": _exclude_yaml(exclude) if names else None,
    }


def _exclude_yaml(names: list[str]) -> str:
    """`features: {exclude: [...]}` as YAML to paste, names quoted where YAML needs it."""
    import yaml

    text: str = yaml.safe_dump(
        {"features": {"exclude": names}}, default_flow_style=None, sort_keys=False, width=10**6
    )
    return text.rstrip("\n")


def latest_training_split(store: Any) -> Any:
    """The training split of the project's latest run (what the train stage last read)."""
    import pyarrow.parquet as pq
    from sqlalchemy import select

    from mlcrew.store.models import StageExecution

    with store.session() as s:
        row = s.scalars(
            select(StageExecution)
            .where(StageExecution.stage == "split", StageExecution.state != "failed")
            .order_by(StageExecution.finished_at.desc(), StageExecution.id.desc())
        ).first()
        digest = (row.outputs or {}).get("train") if row is not None else None
    if digest is None:
        raise DataError("no training split yet: run 'mlcrew run' first")
    return pq.read_table(store.artifacts.local_path(digest))
