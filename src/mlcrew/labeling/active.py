"""Which items are worth labeling next, and what the model suggests for each.

Two jobs, both pure functions over NumPy arrays so the labeling store, the CLI and the
benchmarks share them:

- `priorities`: the order in which unlabelled items are served (lower = sooner). `random` is
  the seeded baseline; `uncertainty` ranks by how unsure the model is (margin or entropy of
  its predicted probabilities) and, with `diversity` > 0, picks the first batch greedily so
  that it does not spend every label on one confusing corner of the data: each pick trades
  uncertainty against the distance to the items already picked.
- `prelabels`: a model trained on the labels so far (logistic regression while labels are
  few, deterministic LightGBM after) predicts every item; its top class and probability are
  the suggestion a labeler confirms or overrides. `suggestions` turns any probability matrix
  (for instance the champion's) into the same records.

Everything is seeded and single-threaded unless told otherwise: the same inputs and seed give
the same order and the same suggestions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from mlcrew.errors import DataError

if TYPE_CHECKING:
    from numpy.typing import NDArray

Measure = Literal["margin", "entropy"]
OrderBy = Literal["random", "uncertainty"]
Learner = Literal["auto", "logistic", "lightgbm"]

# Below this many labels a linear model beats boosted trees (and fits in milliseconds): on
# the digits example logistic regression is ahead at 200, 500 and 1,000 labels.
LINEAR_BELOW = 1000
# The greedy diverse batch looks only at this many times its size of the most uncertain
# items: it stays O(batch^2 x features) on a pool of millions.
CANDIDATES_PER_PICK = 10
DEFAULT_BATCH = 50


@dataclass(frozen=True)
class Prelabel:
    """A model's suggestion for one item: the class it would pick and its probability."""

    label: str
    score: float

    def to_json(self) -> dict[str, str | float]:
        return {"label": self.label, "score": self.score}


@dataclass(frozen=True)
class Prediction:
    """What a model says about the pool: probabilities (rows = items, columns = `classes`)."""

    classes: tuple[str, ...]
    proba: NDArray[np.float64]
    model: Literal["logistic", "lightgbm", "given"]

    def suggestions(self) -> list[Prelabel]:
        return suggestions(self.proba, self.classes)


def uncertainty(proba: NDArray[np.float64], measure: Measure = "margin") -> NDArray[np.float64]:
    """How unsure each row of predicted probabilities is, in [0, 1] (1 = a coin toss).

    margin: 1 - (best - second best); entropy: Shannon entropy divided by log(classes)."""
    p = _probabilities(proba)
    if p.shape[1] < 2:
        return np.zeros(p.shape[0])
    if measure == "margin":
        top2 = np.sort(p, axis=1)[:, -2:]
        return np.clip(1.0 - (top2[:, 1] - top2[:, 0]), 0.0, 1.0)
    if measure == "entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log(p), 0.0)
        entropy: NDArray[np.float64] = -terms.sum(axis=1) / np.log(p.shape[1])
        return np.clip(entropy, 0.0, 1.0)
    raise ValueError(f"unknown uncertainty measure {measure!r}; valid: margin, entropy")


def random_priorities(n: int, seed: int) -> NDArray[np.float64]:
    """The baseline: a seeded shuffle, as priorities 0..n-1."""
    order = np.random.default_rng(seed).permutation(n)
    return _ranks(order, n)


def priorities(
    proba: NDArray[np.float64] | None,
    features: NDArray[np.float64] | None = None,
    *,
    by: OrderBy = "uncertainty",
    measure: Measure = "margin",
    diversity: float = 0.0,
    batch: int = DEFAULT_BATCH,
    seed: int = 0,
) -> NDArray[np.float64]:
    """Priorities (lower = sooner) for the unlabelled items, one per row.

    `proba` is the model's probabilities for the pool (None before there is a model: every
    item is then equally uncertain, so the order is random, or spread out when `diversity`
    > 0). With `diversity` > 0 and `features`, the first `batch` items are picked greedily:
    each next pick maximises (1 - diversity) x uncertainty + diversity x its distance to the
    nearest item already picked (both scaled to [0, 1]); the rest follow by uncertainty.
    Ties break by a seeded shuffle, never by row position."""
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be between 0 and 1, got {diversity}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    n = _pool_size(proba, features)
    if by == "random":
        return random_priorities(n, seed)
    if by != "uncertainty":
        raise ValueError(f"unknown order {by!r}; valid: random, uncertainty")
    if n == 0:
        return np.zeros(0)
    u = np.zeros(n) if proba is None else uncertainty(proba, measure)
    # Most uncertain first; equal uncertainty in a seeded random order.
    tiebreak = np.random.default_rng(seed).permutation(n)
    order = np.lexsort((tiebreak, -u))
    if diversity > 0.0 and features is not None and n > 1:
        head = _diverse_head(order, u, _scaled(features), diversity, min(batch, n))
        rest = order[~np.isin(order, head, assume_unique=True)]
        order = np.concatenate([head, rest])
    return _ranks(order, n)


def suggestions(proba: NDArray[np.float64], classes: Sequence[str]) -> list[Prelabel]:
    """The top class and its probability per row (ties go to the class listed first)."""
    p = _probabilities(proba)
    if p.shape[1] != len(classes):
        raise ValueError(f"{p.shape[1]} probability columns for {len(classes)} classes")
    best = np.argmax(p, axis=1)
    return [
        Prelabel(label=classes[int(j)], score=round(float(p[i, j]), 6)) for i, j in enumerate(best)
    ]


def fit_predict(
    labelled: NDArray[np.float64],
    labels: Sequence[str],
    pool: NDArray[np.float64],
    *,
    classes: Sequence[str],
    seed: int = 0,
    threads: int = 1,
    rounds: int = 100,
    learner: Learner = "auto",
) -> Prediction | None:
    """Train on the labels so far and predict the pool's class probabilities.

    None when there is nothing to learn yet (fewer than two distinct classes labelled).
    `learner` auto: logistic regression (on standardised features) below `LINEAR_BELOW`
    labels, otherwise LightGBM with the settings that make it bit-for-bit repeatable.
    Probability columns follow `classes`; a class nobody has used yet gets probability 0."""
    classes = tuple(classes)
    x = np.asarray(labelled, dtype=np.float64)
    pool_x = np.asarray(pool, dtype=np.float64)
    if x.ndim != 2 or pool_x.ndim != 2 or x.shape[1] != pool_x.shape[1]:
        raise DataError(
            f"the labelled items have {x.shape[1:] or 'no'} feature columns and the pool "
            f"{pool_x.shape[1:] or 'no'}: both need the same numeric columns"
        )
    if x.shape[0] != len(labels):
        raise DataError(f"{x.shape[0]} labelled rows but {len(labels)} labels")
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise DataError(
            f"labels {', '.join(map(repr, unknown))} are not among the classes of the label "
            f"spec ({', '.join(classes)})"
        )
    seen = sorted(set(labels), key=classes.index)
    if len(seen) < 2 or pool_x.shape[0] == 0:
        return None
    y = np.array([seen.index(label) for label in labels])
    if learner == "logistic" or (learner == "auto" and len(labels) < LINEAR_BELOW):
        proba_seen = _logistic(x, y, pool_x, seed)
        model: Literal["logistic", "lightgbm"] = "logistic"
    else:
        proba_seen = _lightgbm(x, y, pool_x, len(seen), seed, threads, rounds)
        model = "lightgbm"
    proba = np.zeros((pool_x.shape[0], len(classes)))
    for j, name in enumerate(seen):
        proba[:, classes.index(name)] = proba_seen[:, j]
    return Prediction(classes=classes, proba=proba, model=model)


# ---------------------------------------------------------------------------- internals


def _logistic(
    x: NDArray[np.float64], y: NDArray[np.int_], pool: NDArray[np.float64], seed: int
) -> NDArray[np.float64]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
    )
    model.fit(x, y)
    return np.asarray(model.predict_proba(pool), dtype=np.float64)


def _lightgbm(
    x: NDArray[np.float64],
    y: NDArray[np.int_],
    pool: NDArray[np.float64],
    n_classes: int,
    seed: int,
    threads: int,
    rounds: int,
) -> NDArray[np.float64]:
    import lightgbm as lgb

    from mlcrew.training.model import base_params

    params = base_params("classification", n_classes, seed, threads)
    data = lgb.Dataset(x, label=y, params={"verbosity": -1, "max_bin": 255})
    booster = lgb.train(params, data, num_boost_round=rounds)
    raw = np.asarray(booster.predict(pool, num_threads=threads), dtype=np.float64)
    if n_classes == 2:
        return np.column_stack([1.0 - raw, raw])
    return raw


def _probabilities(proba: NDArray[np.float64]) -> NDArray[np.float64]:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be a 2-D array (items x classes), got {p.shape}")
    if p.size and (not np.isfinite(p).all() or (p < 0).any()):
        raise ValueError("probabilities must be finite and non-negative")
    return p


def _pool_size(proba: NDArray[np.float64] | None, features: NDArray[np.float64] | None) -> int:
    sizes = {int(a.shape[0]) for a in (proba, features) if a is not None}
    if len(sizes) > 1:
        raise ValueError(f"probabilities and features disagree on the pool size: {sorted(sizes)}")
    if not sizes:
        raise ValueError("give the pool's probabilities, its features, or both")
    return sizes.pop()


def _scaled(features: NDArray[np.float64]) -> NDArray[np.float64]:
    """Standardised features (constant columns left at 0), so no column dominates distances."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or not np.isfinite(f).all():
        raise ValueError("features must be a finite 2-D array (items x columns)")
    std = f.std(axis=0)
    scaled: NDArray[np.float64] = np.divide(
        f - f.mean(axis=0), std, out=np.zeros_like(f), where=std > 0
    )
    return scaled


def _diverse_head(
    order: NDArray[np.intp],
    u: NDArray[np.float64],
    scaled: NDArray[np.float64],
    diversity: float,
    size: int,
) -> NDArray[np.intp]:
    """Greedy batch among the most uncertain candidates: uncertainty vs distance to picks."""
    candidates = order[: min(len(order), size * CANDIDATES_PER_PICK)]
    points = scaled[candidates]
    cu = u[candidates]
    span = float(cu.max() - cu.min())
    cu_scaled = (cu - cu.min()) / span if span > 0 else np.zeros_like(cu)
    nearest = np.full(len(candidates), np.inf)
    taken = np.zeros(len(candidates), dtype=bool)
    picks: list[int] = []
    for _ in range(min(size, len(candidates))):
        if picks:
            finite = nearest[~taken]
            top = float(finite.max()) if finite.size else 0.0
            spread = nearest / top if top > 0 else np.zeros_like(nearest)
        else:
            spread = np.ones(len(candidates))
        score = (1.0 - diversity) * cu_scaled + diversity * spread
        score[taken] = -np.inf
        # argmax takes the first maximum: candidates are already in the seeded uncertainty order.
        best = int(np.argmax(score))
        taken[best] = True
        picks.append(best)
        distance = np.sqrt(((points - points[best]) ** 2).sum(axis=1))
        nearest = np.minimum(nearest, distance)
    return candidates[np.array(picks, dtype=np.intp)]


def _ranks(order: NDArray[np.intp], n: int) -> NDArray[np.float64]:
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.arange(n, dtype=np.float64)
    return ranks
