"""The input every quality figure is computed from: one vote per (item, labeler), checked once.

Quality functions are pure: they take votes, the class list and gold answers, never the store, so
the same figures come out of a test fixture, the CLI and the REST API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeAlias

from mlcrew.errors import DataError

Task = Literal["single", "multi"]
# A single-label vote is one class; a multi-label vote is the set of classes that apply.
LabelValue: TypeAlias = str | frozenset[str]


@dataclass(frozen=True)
class Vote:
    """One labeler's submitted label for one item; `at` orders it in time (figures over time);
    `confirmed`: the label is the pre-label shown, taken as it was."""

    item: str
    labeler: str
    label: LabelValue
    at: datetime | None = None
    confirmed: bool = False


@dataclass(frozen=True)
class Statistic:
    """A figure, or None with the reason it is undefined (never NaN, so JSON stays valid).

    `items` counts the items the figure was computed on.
    """

    value: float | None
    items: int
    reason: str | None = None


@dataclass(frozen=True)
class Votes:
    """Checked votes: every label is a known class, at most one vote per (item, labeler)."""

    task: Task
    classes: tuple[str, ...]
    votes: tuple[Vote, ...]

    @property
    def items(self) -> tuple[str, ...]:
        """Items in first-seen order."""
        return tuple(dict.fromkeys(v.item for v in self.votes))

    @property
    def labelers(self) -> tuple[str, ...]:
        """Labelers sorted by name, so every table lists them the same way."""
        return tuple(sorted({v.labeler for v in self.votes}))

    def by_item(self) -> dict[str, dict[str, LabelValue]]:
        """item -> {labeler: label}, items in first-seen order."""
        out: dict[str, dict[str, LabelValue]] = {}
        for v in self.votes:
            out.setdefault(v.item, {})[v.labeler] = v.label
        return out


def check_votes(votes: Iterable[Vote], classes: Sequence[str], task: Task = "single") -> Votes:
    """Validate votes against the class list; a bad vote is named by item and labeler."""
    known = tuple(classes)
    if not known:
        raise DataError("the label spec has no classes: list at least two under labeling.classes")
    if len(set(known)) != len(known):
        raise DataError(f"labeling.classes lists a class twice: {list(known)}")
    seen: set[tuple[str, str]] = set()
    out: list[Vote] = []
    for v in votes:
        where = f"item {v.item!r}, labeler {v.labeler!r}"
        if (v.item, v.labeler) in seen:
            raise DataError(f"{where}: two votes for the same item by the same labeler")
        seen.add((v.item, v.labeler))
        if task == "single":
            if not isinstance(v.label, str):
                raise DataError(f"{where}: a single-label task takes one class, got {v.label!r}")
            unknown = {v.label} - set(known)
        else:
            if isinstance(v.label, str):
                v = Vote(v.item, v.labeler, frozenset([v.label]), v.at, v.confirmed)
            unknown = set(v.label) - set(known)
        if unknown:
            raise DataError(
                f"{where}: unknown class {sorted(unknown)}; the classes are {list(known)}"
            )
        out.append(v)
    return Votes(task, known, tuple(out))


def check_gold(
    gold: Mapping[str, LabelValue], checked: Votes, what: str = "gold answer"
) -> dict[str, LabelValue]:
    """Gold answers (or corrections) in the task's shape; one outside the class list is named."""
    out: dict[str, LabelValue] = {}
    for item, answer in gold.items():
        value: LabelValue = answer
        if checked.task == "multi" and isinstance(answer, str):
            value = frozenset([answer])
        labels = {value} if isinstance(value, str) else set(value)
        unknown = labels - set(checked.classes)
        if unknown or (checked.task == "single" and not isinstance(value, str)):
            raise DataError(
                f"{what} for item {item!r}: {answer!r} is not one of {list(checked.classes)}"
            )
        out[item] = value
    return out
