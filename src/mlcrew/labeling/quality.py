"""The labeling quality report: agreement, gold accuracy, consensus and likely label errors.

Pure functions over votes (see votes.py): the store and the faces (REST, CLI, pages) only gather
the votes, gold answers and item features and show the report.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from mlcrew.errors import DataError
from mlcrew.labeling.agreement import Agreement, agreement
from mlcrew.labeling.consensus import (
    Consensus,
    ItemConsensus,
    apply_corrections,
    cleanlab_consensus,
    most_disagreement,
)
from mlcrew.labeling.label_errors import (
    LabelIssues,
    OutOfFold,
    find_label_errors,
    out_of_fold_probabilities,
)
from mlcrew.labeling.votes import LabelValue, Task, Vote, Votes, check_gold, check_votes

Every = Literal["day"] | int  # gold accuracy over time: per UTC day, or per N submissions


@dataclass(frozen=True)
class GoldScore:
    """A labeler's answers on gold items: `accuracy` = correct / answered (None when none)."""

    labeler: str
    correct: int
    answered: int
    accuracy: float | None


@dataclass(frozen=True)
class Period:
    """One labeler's work in one period: a UTC day "2026-11-22", or a run of their submissions
    "1-50" (their 1st to 50th label, in time order).

    `confirmed` counts labels that took the shown pre-label as it was, so agreement with the
    model is not read as quality. `agreement` = agreed / compared over (their vote, another
    labeler's vote on the same item) pairs; `gold_accuracy` = gold_correct / gold_answered.
    Either is None when the period has nothing to compare.
    """

    labeler: str
    period: str
    labels: int
    confirmed: int
    gold_correct: int
    gold_answered: int
    gold_accuracy: float | None
    agreed: int
    compared: int
    agreement: float | None


@dataclass(frozen=True)
class QualityReport:
    task: Task
    classes: tuple[str, ...]
    items: int
    votes: int
    labelers: tuple[str, ...]
    agreement: Agreement
    gold: tuple[GoldScore, ...]
    over_time: tuple[Period, ...]
    consensus: Consensus
    disagreements: tuple[ItemConsensus, ...]
    out_of_fold: OutOfFold
    label_issues: LabelIssues

    def to_dict(self, *, items: bool = True, issues: int | None = None) -> dict[str, Any]:
        """JSON-ready: label sets as sorted lists, no NaN, the bulky probabilities left out.

        `items=False` leaves out the consensus of every item (a project has a million) and keeps
        its counts; `issues` keeps the first N label issues (`total` says how many there are).
        """
        out = _jsonable(self)
        out["out_of_fold"].pop("probs")
        out["out_of_fold"]["items"] = len(self.out_of_fold.probs or {})
        consensus = out["consensus"]
        consensus["tied"] = sum(c.tied for c in self.consensus.items)
        consensus["reviewed"] = sum(c.reviewed for c in self.consensus.items)
        consensus["count"] = len(self.consensus.items)
        if not items:
            consensus.pop("items")
        found = out["label_issues"]
        found["total"] = len(self.label_issues.issues)
        if issues is not None:
            found["issues"] = found["issues"][:issues]
        return dict(out)


def parse_every(every: str) -> Every:
    """'day' or a positive number of submissions, as typed on a command line or in a URL."""
    if every == "day":
        return "day"
    if every.isdigit() and int(every) >= 1:
        return int(every)
    raise DataError(f"every must be 'day' or a positive number of submissions, not {every!r}")


def _correct(label: LabelValue, answer: LabelValue) -> bool:
    return label == answer


def gold_accuracy(votes: Votes, gold: Mapping[str, LabelValue]) -> tuple[GoldScore, ...]:
    """Per labeler: how many gold items they answered and how many they got right (exact match;
    for multi-label the whole set must match)."""
    out = []
    for name in votes.labelers:
        answered = [v for v in votes.votes if v.labeler == name and v.item in gold]
        correct = sum(_correct(v.label, gold[v.item]) for v in answered)
        accuracy = round(correct / len(answered), 6) if answered else None
        out.append(GoldScore(name, correct, len(answered), accuracy))
    return tuple(out)


def _periods(mine: list[Vote], every: Every) -> dict[str, list[Vote]]:
    timed = sorted(enumerate(mine), key=lambda p: (p[1].at is None, p[1].at or 0, p[0]))
    if every == "day":
        days: dict[str, list[Vote]] = {}
        for _, v in timed:
            if v.at is not None:  # a vote without a time cannot be placed on a day
                days.setdefault(v.at.date().isoformat(), []).append(v)
        return days
    ordered = [v for _, v in timed] if all(v.at is not None for v in mine) else mine
    return {
        f"{start + 1}-{min(start + every, len(ordered))}": ordered[start : start + every]
        for start in range(0, len(ordered), every)
    }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def over_time(
    votes: Votes, gold: Mapping[str, LabelValue], every: Every = "day"
) -> tuple[Period, ...]:
    """Per labeler and period (UTC day, or run of `every` submissions): labels, confirmed
    suggestions, gold accuracy and agreement with the others. Votes keep their input order
    where they carry no time."""
    if every != "day" and (isinstance(every, bool) or every < 1):
        raise DataError(f"every must be 'day' or a positive number of submissions, not {every!r}")
    by_item = votes.by_item()
    out: list[Period] = []
    for name in votes.labelers:
        mine = [v for v in votes.votes if v.labeler == name]
        for period, group in _periods(mine, every).items():
            answered = [v for v in group if v.item in gold]
            correct = sum(_correct(v.label, gold[v.item]) for v in answered)
            agreed = compared = 0
            for v in group:
                for other, label in by_item[v.item].items():
                    if other != name:
                        compared += 1
                        agreed += label == v.label
            out.append(
                Period(
                    labeler=name,
                    period=period,
                    labels=len(group),
                    confirmed=sum(v.confirmed for v in group),
                    gold_correct=correct,
                    gold_answered=len(answered),
                    gold_accuracy=_ratio(correct, len(answered)),
                    agreed=agreed,
                    compared=compared,
                    agreement=_ratio(agreed, compared),
                )
            )
    return tuple(out)


def quality_report(
    votes: Iterable[Vote],
    classes: Sequence[str],
    *,
    task: Task = "single",
    gold: Mapping[str, LabelValue] | None = None,
    features: Mapping[str, Sequence[float]] | None = None,
    seed: int = 0,
    every: Every = "day",
    disagreements: int = 20,
    corrections: Mapping[str, LabelValue] | None = None,
) -> QualityReport:
    """Every quality figure of a label project's votes.

    `features` maps items to numeric feature vectors; with them, a model's out-of-fold
    probabilities on the majority labels drive cleanlab's consensus and the label-error search.
    Gold items count toward agreement and consensus like any other item. `corrections` are
    reviewers' corrected labels by item: they become the items' consensus, and the items leave
    the label-error list (a reviewer has looked at them already); the labelers' own votes still
    count for agreement and gold accuracy.
    """
    checked = check_votes(votes, classes, task)
    answers = check_gold(gold or {}, checked)
    majority_labels = _majority_labels(checked)
    if task == "multi":
        oof = OutOfFold(None, 0, "label-error search is for single-label tasks")
    elif not features:
        oof = OutOfFold(None, 0, "the items have no numeric features to train a model on")
    else:
        oof = out_of_fold_probabilities(features, majority_labels, checked.classes, seed=seed)
    fixed = check_gold(corrections or {}, checked, what="corrected label")
    consensus = apply_corrections(cleanlab_consensus(checked, oof.probs), fixed)
    if oof.probs is None:
        issues = LabelIssues((), 0, oof.reason)
    else:
        labels = {c.item: str(c.label) for c in consensus.items}
        found = find_label_errors(labels, oof.probs, checked.classes)
        kept = [i for i in found.issues if i.item not in fixed]
        issues = replace(found, issues=tuple(replace(i, rank=r + 1) for r, i in enumerate(kept)))
    return QualityReport(
        task=task,
        classes=checked.classes,
        items=len(checked.items),
        votes=len(checked.votes),
        labelers=checked.labelers,
        agreement=agreement(checked),
        gold=gold_accuracy(checked, answers),
        over_time=over_time(checked, answers, every),
        consensus=consensus,
        disagreements=most_disagreement(consensus, disagreements),
        out_of_fold=oof,
        label_issues=issues,
    )


def _majority_labels(checked: Votes) -> dict[str, str]:
    from mlcrew.labeling.consensus import majority

    return {c.item: str(c.label) for c in majority(checked).items if isinstance(c.label, str)}


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
