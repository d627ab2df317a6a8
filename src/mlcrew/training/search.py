"""The model search: candidates scored on shuffled, stratified, seeded folds of the training split.

Order (cut at `training.budget.trials`): LightGBM's defaults, the linear baseline, the spec's
scikit-learn estimators, a portfolio of LightGBM settings ordered by the data's size, then Optuna's
TPE on LightGBM's main parameters, seeded and sequential (it learns from every earlier LightGBM
candidate). Every candidate is fitted once per fold; the folds of a candidate are independent units
(`ctx.map`), so they run on Ray as well as here, and results come back in unit order. LightGBM
stops early on the fold it is scored on and is refitted with the mean of the folds' best rounds.

The out-of-fold predictions then pick a greedy ensemble (Caruana et al. 2004: add, with
replacement, the candidate that most improves the out-of-fold metric, while it improves). Nothing
depends on the clock or on which executor ran what, so a spec and its seed give the same model.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mlcrew.errors import DataError
from mlcrew.spec import LOWER_IS_BETTER, Search
from mlcrew.training.members import (
    TUNED_KEYS,
    LightGBMMember,
    LinearMember,
    Member,
    Problem,
    SklearnMember,
)
from mlcrew.training.metrics import better

if TYPE_CHECKING:
    import numpy as np

ENSEMBLE_STEPS = 25  # greedy additions at most
ENSEMBLE_POOL = 8  # the best candidates the ensemble may draw from

# LightGBM settings tried before any tuning, each for data of about `rows` rows: the portfolio is
# ordered by how close that is to the training split's size (a zero-shot choice from one
# meta-feature; the defaults come first anyway).
PORTFOLIO: tuple[tuple[int, dict[str, Any]], ...] = (
    (300, {"learning_rate": 0.05, "num_leaves": 7, "min_data_in_leaf": 10,
           "feature_fraction": 0.8, "lambda_l2": 1.0}),
    (1_000, {"learning_rate": 0.03, "num_leaves": 15, "min_data_in_leaf": 20,
             "feature_fraction": 0.7, "lambda_l2": 3.0}),
    (3_000, {"learning_rate": 0.1, "num_leaves": 31, "min_data_in_leaf": 5,
             "feature_fraction": 0.9, "lambda_l2": 0.1}),
    (10_000, {"learning_rate": 0.05, "num_leaves": 63, "min_data_in_leaf": 30,
              "feature_fraction": 0.6, "lambda_l2": 1.0}),
    (100_000, {"learning_rate": 0.1, "num_leaves": 127, "min_data_in_leaf": 50,
               "feature_fraction": 0.8, "lambda_l2": 10.0}),
)  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    kind: str  # lightgbm | linear | sklearn
    origin: str  # default | linear | estimator | portfolio | tpe
    params: dict[str, Any] = field(default_factory=dict)
    path: str = ""  # the estimator's dotted path (sklearn)

    def member(self, rounds: int) -> Member:
        if self.kind == "lightgbm":
            return LightGBMMember(dict(self.params), rounds)
        if self.kind == "linear":
            return LinearMember(float(self.params.get("C", 1.0)))
        return SklearnMember(self.path, dict(self.params))


@dataclass(frozen=True)
class SearchData:
    """What every fold fit shares: sent once to wherever the units run."""

    X: np.ndarray
    y: np.ndarray
    folds: tuple[tuple[np.ndarray, np.ndarray], ...]
    problem: Problem
    rounds: int
    patience: int
    in_time_order: bool = False


@dataclass(frozen=True)
class FoldResult:
    prediction: np.ndarray  # raw output for the fold's validation rows
    rounds: int  # LightGBM's best round count on this fold (0 for other kinds)


@dataclass
class Trial:
    number: int
    candidate: Candidate
    score: float
    rounds: int  # what a refit on every training row uses (LightGBM)
    oof: np.ndarray = field(repr=False)
    folds: list[float] = field(default_factory=list)  # the score on each fold (NaN: undefined)

    def describe(self, metric: str) -> dict[str, Any]:
        c = self.candidate
        out: dict[str, Any] = {"trial": self.number, "kind": c.kind, "origin": c.origin}
        out[metric] = self.score
        if c.kind == "lightgbm":
            out["rounds"] = self.rounds
            out.update({k: c.params[k] for k in TUNED_KEYS if k in c.params})
        elif c.kind == "sklearn":
            out["estimator"] = c.path
            out.update(c.params)
        else:
            out["C"] = c.params.get("C", 1.0)
        return out


@dataclass
class Outcome:
    trials: list[Trial]
    weights: dict[int, int]  # trial number -> times chosen by the greedy ensemble
    score: float  # the ensemble's out-of-fold score (the best trial's without an ensemble)
    metric: str
    validation: dict[str, Any]
    covered: np.ndarray = field(repr=False)  # rows with out-of-fold predictions

    @property
    def oof(self) -> np.ndarray:
        """The chosen model's out-of-fold output (the ensemble's blend)."""
        return _blend(self.trials, self.weights)

    @property
    def best(self) -> Trial:
        """The best single candidate (the ensemble may hold others beside it)."""
        return self.trials[best_trial(self.trials, self.metric)]


def best_trial(trials: Sequence[Trial], metric: str) -> int:
    """The first trial with the best score (NaN never wins)."""
    chosen = 0
    for i, t in enumerate(trials):
        if not math.isfinite(trials[chosen].score) or better(metric, t.score, trials[chosen].score):
            chosen = i if math.isfinite(t.score) else chosen
    return chosen


# ---------------------------------------------------------------------- scoring


def score_raw(metric: str, task: str, y: np.ndarray, raw: np.ndarray, n_classes: int) -> float:
    """The metric of raw outputs against integer class indices (or values): the same numbers as
    `classification_metrics` / `regression_metrics`, without the label round trip."""
    import numpy as np
    from sklearn import metrics as m

    if task == "regression":
        fns: dict[str, Callable[..., Any]] = {
            "mae": m.mean_absolute_error,
            "rmse": m.root_mean_squared_error,
            "r2": m.r2_score,
            "mape": m.mean_absolute_percentage_error,
        }
        return float(fns[metric](y, raw))
    proba = raw if raw.ndim == 2 else np.column_stack([1.0 - raw, raw])
    labels = list(range(n_classes))
    if metric == "log_loss":
        return float(m.log_loss(y, proba, labels=labels))
    if metric == "roc_auc":
        if n_classes == 2:
            return float(m.roc_auc_score(y, proba[:, 1]))
        return float(m.roc_auc_score(y, proba, multi_class="ovr", labels=labels))
    pred = (proba[:, 1] >= 0.5).astype("int64") if n_classes == 2 else proba.argmax(axis=1)
    if metric == "accuracy":
        return float(m.accuracy_score(y, pred))
    kw: dict[str, Any] = {"zero_division": 0, "labels": labels}
    kw["average"] = "binary" if n_classes == 2 else "macro"
    if n_classes == 2:
        kw["pos_label"] = 1
    fn = {"precision": m.precision_score, "recall": m.recall_score, "f1": m.f1_score}[metric]
    return float(fn(y, pred, **kw))


# ---------------------------------------------------------------------- folds


def time_ordered(search: Search, split_by_time: bool) -> bool:
    order = search.validation.order
    return order == "time" or (order == "auto" and split_by_time)


def make_folds(
    y: np.ndarray,
    problem: Problem,
    search: Search,
    classes: Sequence[str],
    in_time_order: bool = False,
    purpose: str = "search",
) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Shuffled, seeded folds (stratified by class) or one such holdout, as sorted indices;
    with `in_time_order`, folds that validate on rows later than the ones they learn from.
    `purpose` is what needs them (`search`, or `decision`: calibration and objective.value),
    so an error names what the user can change."""
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    n = len(y)
    v = search.validation
    classify = problem.task == "classification"
    fix = (
        "set training.budget.trials: 1 without training.search"
        if purpose == "search"
        else "or drop training.calibration and objective.value (they are fitted on folds "
        "of the training split)"
    )
    if classify:
        counts = np.bincount(y, minlength=problem.n_classes)
        rare = int(counts.argmin())
        if counts[rare] < 2:
            raise DataError(
                f"class {classes[rare]!r} has {int(counts[rare])} row in the training split; "
                "validating on folds needs at least 2 rows of every class: add rows of it, "
                f"drop it in a transform, {fix}"
            )
    if in_time_order:
        return _time_folds(y, problem, search, classes, fix)
    if v.holdout is not None:
        index = np.arange(n)
        try:
            fit, valid = train_test_split(
                index,
                test_size=v.holdout,
                random_state=problem.seed,
                shuffle=True,
                stratify=y if classify else None,
            )
        except ValueError as exc:  # a holdout too small to hold every class, or empty
            raise DataError(
                f"training.search.validation.holdout {v.holdout:g} of {n} training rows cannot "
                f"be cut ({exc}); use a larger holdout or folds"
            ) from None
        return ((np.sort(fit), np.sort(valid)),)
    k = v.k
    if n < 2 * k:
        raise DataError(
            f"{n} training rows are too few for {k} folds: add rows, lower "
            f"training.search.validation.folds, {fix}"
        )
    if classify:
        k = min(k, int(counts.min()))  # every fold must see every class
        splitter: Any = StratifiedKFold(k, shuffle=True, random_state=problem.seed)
        parts = splitter.split(np.zeros(n), y)
    else:
        parts = KFold(k, shuffle=True, random_state=problem.seed).split(np.zeros(n))
    return tuple((np.sort(a), np.sort(b)) for a, b in parts)


def _time_folds(
    y: np.ndarray, problem: Problem, search: Search, classes: Sequence[str], fix: str
) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Expanding-window folds (scikit-learn's TimeSeriesSplit), or the last share as holdout."""
    import numpy as np
    from sklearn.model_selection import TimeSeriesSplit

    n = len(y)
    v = search.validation
    if v.holdout is not None:
        cut = n - max(1, round(n * v.holdout))
        parts = [(np.arange(cut), np.arange(cut, n))]
    else:
        if n < 2 * (v.k + 1):
            raise DataError(
                f"{n} training rows are too few for {v.k} time-ordered folds: add rows, lower "
                f"training.search.validation.folds, {fix}"
            )
        parts = list(TimeSeriesSplit(n_splits=v.k).split(np.zeros(n)))
    if problem.task == "classification":
        for i, (fit, _) in enumerate(parts):
            absent = sorted(set(range(problem.n_classes)) - set(np.unique(y[fit]).tolist()))
            if absent:
                names = ", ".join(repr(classes[a]) for a in absent)
                raise DataError(
                    f"time-ordered validation fold {i + 1} learns from rows without class "
                    f"{names}; set training.search.validation.order: shuffle, or fewer folds"
                )
        scored = np.unique(y[np.concatenate([b for _, b in parts])])
        if len(scored) < 2:
            raise DataError(
                f"the time-ordered validation rows (the later part of the training split) all "
                f"hold class {classes[int(scored[0])]!r}; no classifier can be scored on them: "
                "set training.search.validation.order: shuffle"
            )
    return tuple((np.asarray(a), np.asarray(b)) for a, b in parts)


# ---------------------------------------------------------------------- one unit of work


def fit_fold(data: SearchData, unit: tuple[Candidate, int]) -> FoldResult:
    """Fit one candidate on one fold's training rows and predict its validation rows."""
    candidate, f = unit
    fit_idx, valid_idx = data.folds[f]
    X, y = data.X, data.y
    member = candidate.member(data.rounds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter of linear fits on tiny folds
        if isinstance(member, LightGBMMember):
            member.fit(
                X[fit_idx],
                y[fit_idx],
                data.problem,
                valid=(X[valid_idx], y[valid_idx]),
                patience=data.patience,
            )
            return FoldResult(member.predict(X[valid_idx]), member.best_rounds_)
        member.fit(X[fit_idx], y[fit_idx], data.problem)
        return FoldResult(member.predict(X[valid_idx]), 0)


# ---------------------------------------------------------------------- the search


def fixed_candidates(
    search: Search, base: dict[str, Any], user: dict[str, Any], n_rows: int
) -> list[Candidate]:
    out = [Candidate("lightgbm", "default", {**base, **user})]
    if search.linear:
        out.append(Candidate("linear", "linear", {"C": 1.0}))
    for est in search.estimators:
        out.append(Candidate("sklearn", "estimator", dict(est.params), est.class_))
    if search.portfolio:
        ordered = sorted(PORTFOLIO, key=lambda p: abs(math.log(p[0]) - math.log(max(n_rows, 1))))
        out += [Candidate("lightgbm", "portfolio", {**base, **p, **user}) for _, p in ordered]
    return out


def _space(n_rows: int, fixed: dict[str, Any]) -> dict[str, Any]:
    from optuna.distributions import FloatDistribution, IntDistribution

    space: dict[str, Any] = {
        "learning_rate": FloatDistribution(0.01, 0.3, log=True),
        "num_leaves": IntDistribution(4, 256, log=True),
        "min_data_in_leaf": IntDistribution(2, max(3, min(200, n_rows // 4)), log=True),
        "feature_fraction": FloatDistribution(0.4, 1.0),
        "lambda_l2": FloatDistribution(1e-3, 10.0, log=True),
    }
    return {k: d for k, d in space.items() if k not in fixed}


def run_search(
    data: SearchData,
    search: Search,
    *,
    trials: int,
    metric: str,
    base: dict[str, Any],
    user: dict[str, Any],
    map_units: Callable[[Callable[..., Any], SearchData, list[Any]], list[Any]],
    on_trial: Callable[[Trial], None] | None = None,
) -> Outcome:
    """Score candidates within `trials`; `map_units` runs fold fits (the stage's executor)."""
    import numpy as np

    problem = data.problem
    n = len(data.y)
    covered = np.zeros(n, dtype=bool)
    for _, valid in data.folds:
        covered[valid] = True
    done: list[Trial] = []

    def per_fold(oof: np.ndarray) -> list[float]:
        out = []
        for _, valid in data.folds:
            try:
                out.append(
                    score_raw(metric, problem.task, data.y[valid], oof[valid], problem.n_classes)
                )
            except ValueError:  # undefined on this fold alone (a single class)
                out.append(float("nan"))
        return out

    def evaluate(batch: list[Candidate]) -> list[Trial]:
        """Score a batch (its fold fits as one map), append the trials to `done`."""
        units = [(c, f) for c in batch for f in range(len(data.folds))]
        results: list[FoldResult] = map_units(fit_fold, data, units)
        out = []
        k = len(data.folds)
        for i, c in enumerate(batch):
            parts = results[i * k : (i + 1) * k]
            first = parts[0].prediction
            oof = np.zeros((n, *first.shape[1:]), dtype=np.float64)
            for (_, valid), part in zip(data.folds, parts, strict=True):
                oof[valid] = part.prediction
            s = score_raw(metric, problem.task, data.y[covered], oof[covered], problem.n_classes)
            rounds = round(sum(p.rounds for p in parts) / k) if c.kind == "lightgbm" else 0
            trial = Trial(len(done), c, s, max(1, rounds) if rounds else 0, oof, per_fold(oof))
            done.append(trial)
            out.append(trial)
            if on_trial is not None:
                on_trial(trial)
        return out

    evaluate(fixed_candidates(search, base, user, n)[:trials])
    if search.tuner == "tpe" and len(done) < trials:
        _tpe(data, trials - len(done), metric, user, done, evaluate, base)
    if not any(math.isfinite(t.score) for t in done):
        raise DataError(
            f"no candidate of the model search has a finite {metric} on the validation folds; "
            "check the target and objective.metric"
        )
    # Guard against a lucky winner (many candidates on few rows: the best out-of-fold score
    # flatters itself): the first candidate, in the search's order of preference, within one
    # standard error of the best is chosen, and an ensemble is kept only if it beats that one
    # by more than one standard error of their fold-by-fold difference.
    start = one_standard_error(done, metric)
    weights = {start: 1}
    if search.ensemble and len(done) > 1:
        blend = greedy_ensemble(done, data.y, covered, metric, problem, start)
        if len(blend) > 1 and _clearly_better(
            per_fold(_blend(done, blend)), done[start].folds, metric
        ):
            weights = blend
    if len(weights) == 1:
        score = done[next(iter(weights))].score
    else:
        score = score_raw(
            metric,
            problem.task,
            data.y[covered],
            _blend(done, weights)[covered],
            problem.n_classes,
        )
    validation: dict[str, Any] = (
        {"holdout": search.validation.holdout}
        if search.validation.holdout is not None
        else {"folds": len(data.folds)}
    )
    if data.in_time_order:
        validation["order"] = "time"
    return Outcome(done, weights, score, metric, validation, covered)


def _tpe(
    data: SearchData,
    count: int,
    metric: str,
    user: dict[str, Any],
    done: list[Trial],
    evaluate: Callable[[list[Candidate]], list[Trial]],
    base: dict[str, Any],
) -> None:
    """`count` more LightGBM candidates, each asked of TPE after the previous one is told."""
    import optuna
    from optuna.trial import create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = _space(len(data.y), user)
    if not space:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(
            seed=data.problem.seed, n_startup_trials=5, multivariate=True
        )
    direction: Literal["minimize", "maximize"] = (
        "minimize" if metric in LOWER_IS_BETTER else "maximize"
    )
    study = optuna.create_study(direction=direction, sampler=sampler)
    for t in done:  # every LightGBM candidate so far teaches the sampler
        p = t.candidate.params
        if t.candidate.kind != "lightgbm" or not math.isfinite(t.score):
            continue
        given = {k: p[k] for k in space if k in p}
        if len(given) == len(space) and all(space[k]._contains(v) for k, v in given.items()):
            study.add_trial(create_trial(params=given, distributions=space, value=t.score))
    for _ in range(count):
        asked = study.ask(space)
        params = {k: _tidy(v) for k, v in asked.params.items()}
        trial = evaluate([Candidate("lightgbm", "tpe", {**base, **params, **user})])[0]
        if math.isfinite(trial.score):
            study.tell(asked, trial.score)
        else:
            study.tell(asked, state=optuna.trial.TrialState.FAIL)


def _tidy(value: Any) -> Any:
    """Floats to 6 significant digits: records read well, and the model's params say the same."""
    return float(f"{value:.6g}") if isinstance(value, float) else value


def _blend(trials: Sequence[Trial], weights: dict[int, int]) -> np.ndarray:
    total = sum(weights.values())
    out: Any = None
    for i, w in weights.items():
        part = trials[i].oof * (w / total)
        out = part if out is None else out + part
    return out  # type: ignore[no-any-return]


def _loss_gaps(a: list[float], b: list[float], metric: str) -> list[float]:
    """Per fold, how much worse `a` is than `b` (positive: worse), where both are defined."""
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    return [
        sign * (x - y) for x, y in zip(a, b, strict=True) if math.isfinite(x) and math.isfinite(y)
    ]


def _standard_error(gaps: list[float]) -> float | None:
    import statistics

    if len(gaps) < 2:
        return None
    return statistics.stdev(gaps) / math.sqrt(len(gaps))


PREFERENCE = ("linear", "default", "estimator", "portfolio", "tpe")  # simplest first


def one_standard_error(trials: Sequence[Trial], metric: str) -> int:
    """The simplest trial (the linear baseline, LightGBM's defaults, the named estimators, the
    portfolio, then TPE's, each in search order) whose fold scores are within one standard
    error of the best trial's (paired by fold); the best itself if there are no folds to
    compare (a holdout)."""
    best = best_trial(trials, metric)
    ordered = sorted(trials, key=lambda t: (PREFERENCE.index(t.candidate.origin), t.number))
    for t in ordered:
        if not math.isfinite(t.score):
            continue
        if t.number == best:
            return best
        gaps = _loss_gaps(t.folds, trials[best].folds, metric)
        se = _standard_error(gaps)
        if se is not None and sum(gaps) / len(gaps) <= se:
            return t.number
    return best


def _clearly_better(a: list[float], b: list[float], metric: str) -> bool:
    """Is `a` better than `b` by more than one standard error of their fold differences?"""
    gaps = _loss_gaps(a, b, metric)
    se = _standard_error(gaps)
    if se is None:
        return bool(gaps) and sum(gaps) < 0
    return -sum(gaps) / len(gaps) > se


def greedy_ensemble(
    trials: Sequence[Trial],
    y: np.ndarray,
    covered: np.ndarray,
    metric: str,
    problem: Problem,
    start: int | None = None,
) -> dict[int, int]:
    """Caruana's forward selection with replacement over out-of-fold outputs; trial -> count.
    Starts from trial `start` (default: the best) and adds only strict improvements, so it is
    never worse out of fold than where it started."""
    finite = [t for t in trials if math.isfinite(t.score)]
    lower = metric in LOWER_IS_BETTER
    pool = sorted(finite, key=lambda t: (t.score if lower else -t.score, t.number))[:ENSEMBLE_POOL]
    yc = y[covered]

    def s(raw: np.ndarray) -> float:
        return score_raw(metric, problem.task, yc, raw[covered], problem.n_classes)

    first = pool[0] if start is None else trials[start]
    counts = {first.number: 1}
    current = first.oof.copy()
    current_score = first.score
    for _ in range(ENSEMBLE_STEPS - 1):
        total = sum(counts.values())
        pick, pick_score = None, current_score
        for t in pool:
            value = s((current * total + t.oof) / (total + 1))
            if better(metric, value, pick_score):
                pick, pick_score = t, value
        if pick is None:
            break
        counts[pick.number] = counts.get(pick.number, 0) + 1
        current = (current * total + pick.oof) / (total + 1)
        current_score = pick_score
    return dict(sorted(counts.items()))
