"""Agreement between labelers: Krippendorff's alpha, Fleiss' kappa, pairwise Cohen's kappa.

Each figure is computed on "units" holding one coded value per labeler. A single-label task has
one unit per item, valued by the class. A multi-label task has one unit per (item, class), valued
yes/no, so its overall figure pools every class's yes/no decisions. Per-class figures are
one-vs-rest: each unit is reduced to "this class or not". An undefined figure (one labeler, no
shared items, a single value in use, so chance agreement is total) is None with the reason.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from typing import cast

from mlcrew.labeling.votes import Statistic, Votes

Unit = tuple[str, str | None]  # (item, class for a multi-label yes/no unit, else None)
Ratings = dict[Unit, dict[str, int]]  # unit -> labeler -> coded value


@dataclass(frozen=True, kw_only=True)
class FleissKappa(Statistic):
    """Fleiss' kappa needs the same number of raters per item: `raters` votes on each of `items`;
    `items_left_out` had another number of votes."""

    raters: int = 0
    items_left_out: int = 0


@dataclass(frozen=True)
class PairKappa:
    """Cohen's kappa of two labelers on the items both labeled."""

    a: str
    b: str
    kappa: Statistic


@dataclass(frozen=True)
class LabelerAgreement:
    """How one labeler agrees with the others.

    `mean_kappa` is their pairwise Cohen's kappas averaged with each partner weighted by the
    items shared; `observed` is the share of (their vote, another vote on the same item) pairs
    that match.
    """

    labeler: str
    votes: int
    mean_kappa: Statistic
    observed: Statistic


@dataclass(frozen=True)
class ClassAgreement:
    """One class against the rest: alpha and Fleiss' kappa on "this class or not"."""

    name: str
    votes: int  # votes that picked this class
    alpha: Statistic
    fleiss: FleissKappa


@dataclass(frozen=True)
class Agreement:
    alpha: Statistic
    fleiss: FleissKappa
    pairs: tuple[PairKappa, ...]
    labelers: tuple[LabelerAgreement, ...]
    classes: tuple[ClassAgreement, ...] = field(default=())


def ratings(votes: Votes, one_class: str | None = None) -> tuple[Ratings, tuple[str, ...]]:
    """Coded units and the names of their values (classes, or no/yes)."""
    out: Ratings = {}
    if votes.task == "single" and one_class is None:
        index = {c: i for i, c in enumerate(votes.classes)}
        for v in votes.votes:
            # check_votes made every single-label vote one class name
            out.setdefault((v.item, None), {})[v.labeler] = index[cast(str, v.label)]
        return out, votes.classes
    classes = votes.classes if one_class is None else (one_class,)
    for v in votes.votes:
        picked = {v.label} if isinstance(v.label, str) else v.label
        for c in classes:
            unit = (v.item, c if votes.task == "multi" and one_class is None else None)
            out.setdefault(unit, {})[v.labeler] = int(c in picked)
    return out, ("no", "yes")


def _items(units: list[Unit]) -> int:
    return len({u[0] for u in units})


def _single_value(r: Ratings, units: list[Unit], names: tuple[str, ...]) -> str | None:
    used = {value for u in units for value in r[u].values()}
    return names[used.pop()] if len(used) == 1 else None


def krippendorff_alpha(r: Ratings, names: tuple[str, ...]) -> Statistic:
    """Nominal alpha through the `krippendorff` package, on units with two or more votes."""
    import krippendorff
    import numpy as np

    pairable = [u for u, coded in r.items() if len(coded) >= 2]
    if not pairable:
        return Statistic(None, 0, "no item has labels from two or more labelers")
    only = _single_value(r, pairable, names)
    if only is not None:
        return Statistic(
            None,
            _items(pairable),
            f"every label is {only!r}: with one value in use, agreement "
            "expected by chance is total and alpha is undefined",
        )
    labelers = sorted({name for u in pairable for name in r[u]})
    row = {name: i for i, name in enumerate(labelers)}
    data = np.full((len(labelers), len(pairable)), np.nan)
    for j, u in enumerate(pairable):
        for name, value in r[u].items():
            data[row[name], j] = value
    alpha = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    return _finite(alpha, _items(pairable), "alpha is undefined on these labels")


def fleiss_kappa(r: Ratings, names: tuple[str, ...]) -> FleissKappa:
    """Fleiss' kappa (statsmodels) on the units holding the most common number of votes (>= 2;
    on a tie, the larger number of raters)."""
    import numpy as np
    from statsmodels.stats.inter_rater import fleiss_kappa as fleiss

    sizes = Counter(len(coded) for coded in r.values() if len(coded) >= 2)
    if not sizes:
        return FleissKappa(
            value=None,
            items=0,
            reason="no item has labels from two or more labelers",
            items_left_out=_items(list(r)),
        )
    raters = max(sizes, key=lambda n: (sizes[n], n))
    used = [u for u, coded in r.items() if len(coded) == raters]
    left_out = _items(list(r)) - _items(used)
    only = _single_value(r, used, names)
    if only is not None:
        return FleissKappa(
            value=None,
            items=_items(used),
            raters=raters,
            items_left_out=left_out,
            reason=f"every label is {only!r}: kappa is undefined when one value is in use",
        )
    table = np.zeros((len(used), len(names)), dtype=int)
    for i, u in enumerate(used):
        for value in r[u].values():
            table[i, value] += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        kappa = float(fleiss(table, method="fleiss"))
    stat = _finite(kappa, _items(used), "kappa is undefined on these labels")
    return FleissKappa(
        value=stat.value,
        items=stat.items,
        reason=stat.reason,
        raters=raters,
        items_left_out=left_out,
    )


def cohen_kappa(r: Ratings, names: tuple[str, ...], a: str, b: str) -> Statistic:
    """Cohen's kappa (scikit-learn) of labelers a and b on the units both labeled."""
    from sklearn.metrics import cohen_kappa_score

    shared = [u for u, coded in r.items() if a in coded and b in coded]
    if not shared:
        return Statistic(None, 0, f"{a} and {b} labeled no item in common")
    first = [r[u][a] for u in shared]
    second = [r[u][b] for u in shared]
    if len(set(first) | set(second)) == 1:
        return Statistic(
            None,
            _items(shared),
            f"{a} and {b} gave {names[first[0]]!r} to every shared item: "
            "kappa is undefined when chance agreement is total",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(cohen_kappa_score(first, second, labels=list(range(len(names)))))
    return _finite(value, _items(shared), "kappa is undefined on these labels")


def _finite(value: float, items: int, reason: str) -> Statistic:
    if math.isfinite(value):
        return Statistic(round(value, 6), items)
    return Statistic(None, items, reason)


def pairwise(
    r: Ratings, names: tuple[str, ...], labelers: tuple[str, ...]
) -> tuple[PairKappa, ...]:
    return tuple(PairKappa(a, b, cohen_kappa(r, names, a, b)) for a, b in combinations(labelers, 2))


def per_labeler(
    r: Ratings, pairs: tuple[PairKappa, ...], labelers: tuple[str, ...]
) -> tuple[LabelerAgreement, ...]:
    out = []
    for name in labelers:
        mine = [p.kappa for p in pairs if name in (p.a, p.b) and p.kappa.value is not None]
        weight = sum(k.items for k in mine)
        if weight:
            mean = Statistic(
                round(sum((k.value or 0.0) * k.items for k in mine) / weight, 6), weight
            )
        else:
            mean = Statistic(None, 0, f"no defined kappa with another labeler for {name}")
        same = total = 0
        for coded in r.values():
            if name in coded:
                for other, value in coded.items():
                    if other != name:
                        total += 1
                        same += value == coded[name]
        shared = _items([u for u, coded in r.items() if name in coded and len(coded) > 1])
        observed = (
            Statistic(round(same / total, 6), shared)
            if total
            else Statistic(None, 0, f"no other labeler labeled an item {name} labeled")
        )
        votes = _items([u for u, coded in r.items() if name in coded])
        out.append(LabelerAgreement(name, votes, mean, observed))
    return tuple(out)


def agreement(votes: Votes) -> Agreement:
    """Every agreement figure of a set of votes: overall, per pair, per labeler, per class."""
    r, names = ratings(votes)
    labelers = votes.labelers
    pairs = pairwise(r, names, labelers)
    classes = []
    for c in votes.classes:
        rc, yes_no = ratings(votes, c)
        picked = sum(
            1 for v in votes.votes if (v.label == c if isinstance(v.label, str) else c in v.label)
        )
        classes.append(
            ClassAgreement(c, picked, krippendorff_alpha(rc, yes_no), fleiss_kappa(rc, yes_no))
        )
    return Agreement(
        alpha=krippendorff_alpha(r, names),
        fleiss=fleiss_kappa(r, names),
        pairs=pairs,
        labelers=per_labeler(r, pairs, labelers),
        classes=tuple(classes),
    )
