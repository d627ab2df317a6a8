"""One label per item from its votes: majority, or cleanlab's multi-annotator consensus.

Majority ties go to the class listed first in the label spec, and the item is marked `tied` so a
reviewer can settle it. cleanlab's CROWDLAB consensus weighs each labeler by their estimated
quality and a model's out-of-fold predicted probabilities; when it cannot run (a multi-label task,
one labeler, most items labeled once, no predicted probabilities) the consensus falls back to
majority and says why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from mlcrew.labeling.votes import LabelValue, Votes

Method = Literal["majority", "cleanlab"]


@dataclass(frozen=True)
class ItemConsensus:
    """The consensus label of one item.

    `agreement` is the share of votes that back the consensus (for multi-label: the mean over the
    classes anyone picked of the share of votes agreeing on that class's yes/no); `quality` is
    cleanlab's consensus quality score, None under majority; `tied` says the votes were tied.
    The label of an item a reviewer corrected is the correction (`reviewed`).
    """

    item: str
    label: LabelValue
    votes: int
    agreement: float
    tied: bool
    quality: float | None = None
    reviewed: bool = False  # a reviewer's correction set the label


def apply_corrections(consensus: Consensus, corrections: Mapping[str, LabelValue]) -> Consensus:
    """A reviewer's corrected label is the item's label, whatever the votes say."""
    if not corrections:
        return consensus
    items = tuple(
        replace(c, label=corrections[c.item], reviewed=True) if c.item in corrections else c
        for c in consensus.items
    )
    return replace(consensus, items=items)


@dataclass(frozen=True)
class AnnotatorQuality:
    """cleanlab's estimate of one labeler's quality and their agreement with the consensus."""

    labeler: str
    quality: float
    agreement_with_consensus: float
    labeled: int
    worst_class: str


@dataclass(frozen=True)
class Consensus:
    method: Method
    items: tuple[ItemConsensus, ...]
    annotators: tuple[AnnotatorQuality, ...] = ()
    reason: str | None = None  # why majority was used when cleanlab was asked for


def _majority_single(item: str, labels: list[str], order: dict[str, int]) -> ItemConsensus:
    counts = Counter(labels)
    top = max(counts.values())
    winners = sorted((c for c, n in counts.items() if n == top), key=order.__getitem__)
    return ItemConsensus(
        item, winners[0], len(labels), round(top / len(labels), 6), len(winners) > 1
    )


def _majority_multi(
    item: str, labels: list[frozenset[str]], classes: tuple[str, ...]
) -> ItemConsensus:
    n = len(labels)
    chosen: set[str] = set()
    shares: list[float] = []
    tied = False
    for c in classes:
        yes = sum(c in picked for picked in labels)
        if yes == 0:
            continue
        if 2 * yes > n:
            chosen.add(c)
        tied = tied or 2 * yes == n
        shares.append(max(yes, n - yes) / n)
    agreement = round(sum(shares) / len(shares), 6) if shares else 1.0
    return ItemConsensus(item, frozenset(chosen), n, agreement, tied)


def majority(votes: Votes) -> Consensus:
    """Majority label per item. Single-label ties go to the class listed first in the spec;
    multi-label keeps a class picked by more than half the votes (exactly half: a tie, left out)."""
    order = {c: i for i, c in enumerate(votes.classes)}
    items = []
    for item, by_labeler in votes.by_item().items():
        labels = list(by_labeler.values())
        if votes.task == "single":
            items.append(_majority_single(item, [str(x) for x in labels], order))
        else:
            sets = [x if isinstance(x, frozenset) else frozenset([x]) for x in labels]
            items.append(_majority_multi(item, sets, votes.classes))
    return Consensus("majority", tuple(items))


def cleanlab_consensus(votes: Votes, pred_probs: Mapping[str, Sequence[float]] | None) -> Consensus:
    """cleanlab's multi-annotator consensus and annotator quality, or majority with the reason.

    `pred_probs` maps an item to a model's out-of-fold probabilities over the spec's classes.
    """
    fallback = majority(votes)
    by_item = votes.by_item()
    labelers = votes.labelers
    multi = sum(len(v) >= 2 for v in by_item.values())
    reason = None
    if votes.task == "multi":
        reason = "cleanlab's multi-annotator consensus is for single-label tasks"
    elif len(labelers) < 2:
        reason = "cleanlab's consensus needs votes from two or more labelers"
    elif 2 * multi < len(by_item):
        reason = (
            f"only {multi} of {len(by_item)} items have two or more labels; cleanlab's consensus "
            "needs most items labeled more than once"
        )
    elif pred_probs is None:
        reason = "no out-of-fold predicted probabilities (the items have no numeric features)"
    elif missing := [item for item in by_item if item not in pred_probs]:
        reason = (
            f"{len(missing)} labeled items have no predicted probabilities, e.g. {missing[0]!r}"
        )
    if reason is not None or pred_probs is None:
        return Consensus("majority", fallback.items, reason=reason)
    return _run_cleanlab(votes, by_item, labelers, pred_probs, fallback)


def _run_cleanlab(
    votes: Votes,
    by_item: dict[str, dict[str, LabelValue]],
    labelers: tuple[str, ...],
    pred_probs: Mapping[str, Sequence[float]],
    fallback: Consensus,
) -> Consensus:
    import warnings

    import numpy as np
    from cleanlab.multiannotator import get_label_quality_multiannotator

    index = {c: i for i, c in enumerate(votes.classes)}
    column = {name: j for j, name in enumerate(labelers)}
    items = list(by_item)
    table = np.full((len(items), len(labelers)), np.nan)
    for i, item in enumerate(items):
        for name, label in by_item[item].items():
            table[i, column[name]] = index[str(label)]
    probs = np.array([list(pred_probs[item]) for item in items], dtype=float)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = get_label_quality_multiannotator(table, probs, verbose=False)
    except (ValueError, IndexError) as exc:
        return Consensus("majority", fallback.items, reason=f"cleanlab could not run: {exc}")
    quality = result["label_quality"]
    out = []
    for i, item in enumerate(items):
        row = quality.iloc[i]
        label = votes.classes[int(row["consensus_label"])]
        given = [str(x) for x in by_item[item].values()]
        out.append(
            ItemConsensus(
                item,
                label,
                len(given),
                round(given.count(label) / len(given), 6),
                tied=fallback.items[i].tied,
                quality=round(float(row["consensus_quality_score"]), 6),
            )
        )
    stats = result["annotator_stats"]
    annotators = tuple(
        AnnotatorQuality(
            labelers[int(j)],
            round(float(s["annotator_quality"]), 6),
            round(float(s["agreement_with_consensus"]), 6),
            int(s["num_examples_labeled"]),
            votes.classes[int(s["worst_class"])],
        )
        for j, s in stats.iterrows()
    )
    return Consensus("cleanlab", tuple(out), tuple(sorted(annotators, key=lambda a: a.labeler)))


def most_disagreement(consensus: Consensus, limit: int = 20) -> tuple[ItemConsensus, ...]:
    """Items labeled more than once, least agreement first (then most votes, then item)."""
    shared = [c for c in consensus.items if c.votes >= 2 and c.agreement < 1.0]
    return tuple(sorted(shared, key=lambda c: (c.agreement, -c.votes, c.item))[:limit])
