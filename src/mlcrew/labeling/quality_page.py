"""What the managers' labeling page shows, computed once for the template: progress,
throughput, agreement and gold accuracy per labeler over time, disagreements, likely errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcrew.labeling.project_quality import project_quality
from mlcrew.labeling.quality import Period, QualityReport
from mlcrew.labeling.status import LabelStatus, label_status
from mlcrew.spec import Spec
from mlcrew.store import Store

BAR_HEIGHT = 80  # px of the tallest throughput bar


@dataclass(frozen=True)
class Bar:
    period: str
    labels: int
    height: int


@dataclass(frozen=True)
class LabelerRow:
    labeler: str
    labels: int
    confirmed: int
    gold: str  # "2/3 (67%)" or "—"
    mean_kappa: float | None
    agreement: float | None
    quality: float | None  # cleanlab's annotator quality
    periods: dict[str, Period]


@dataclass(frozen=True)
class ManagerView:
    status: LabelStatus
    report: QualityReport
    periods: list[str]
    bars: list[Bar]
    labelers: list[LabelerRow]

    def context(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "report": self.report,
            "periods": self.periods,
            "bars": self.bars,
            "labelers": self.labelers,
            "done_share": (
                self.status.complete_items / (self.status.tasks - self.status.gold)
                if self.status.tasks > self.status.gold
                else 0.0
            ),
        }


def manager_view(store: Store, spec: Spec | None, project: Path | None) -> ManagerView:
    status = label_status(store)
    report = project_quality(store, spec=spec, project=project, every="day")
    periods = sorted({p.period for p in report.over_time})
    totals = {day: sum(p.labels for p in report.over_time if p.period == day) for day in periods}
    top = max(totals.values(), default=0)
    bars = [Bar(day, n, round(BAR_HEIGHT * n / top) if top else 0) for day, n in totals.items()]
    gold = {g.labeler: g for g in report.gold}
    quality = {q.labeler: q.quality for q in report.consensus.annotators}
    rows = []
    for lab in report.agreement.labelers:
        mine = [p for p in report.over_time if p.labeler == lab.labeler]
        g = gold.get(lab.labeler)
        rows.append(
            LabelerRow(
                labeler=lab.labeler,
                labels=lab.votes,
                confirmed=sum(p.confirmed for p in mine),
                gold=(
                    f"{g.correct}/{g.answered} ({g.accuracy:.0%})"
                    if g is not None and g.accuracy is not None
                    else "—"
                ),
                mean_kappa=lab.mean_kappa.value,
                agreement=lab.observed.value,
                quality=quality.get(lab.labeler),
                periods={p.period: p for p in mine},
            )
        )
    return ManagerView(status, report, periods, bars, rows)
