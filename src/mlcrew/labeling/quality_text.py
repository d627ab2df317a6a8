"""The quality report as terminal tables (`mlcrew label quality`)."""

from __future__ import annotations

from rich.table import Table

from mlcrew.labeling.quality import QualityReport
from mlcrew.labeling.votes import Statistic


def figure(stat: Statistic) -> str:
    if stat.value is None:
        return f"— ({stat.reason})"
    return f"{stat.value:.3f} on {stat.items} items"


def quality_tables(report: QualityReport) -> list[Table]:
    a = report.agreement
    summary = Table(title="Agreement", show_header=False, box=None)
    summary.add_row("[bold]labels[/]", f"{report.votes} on {report.items} items")
    summary.add_row("[bold]Krippendorff's alpha[/]", figure(a.alpha))
    fleiss = figure(a.fleiss)
    if a.fleiss.value is not None:
        fleiss += f" ({a.fleiss.raters} labels each; {a.fleiss.items_left_out} items left out)"
    summary.add_row("[bold]Fleiss' kappa[/]", fleiss)
    c = report.consensus
    summary.add_row("[bold]consensus[/]", c.method + (f" ({c.reason})" if c.reason else ""))
    gold = {g.labeler: g for g in report.gold}
    quality = {q.labeler: q for q in c.annotators}
    people = Table(title="Labelers")
    for column in ("labeler", "labels", "gold", "mean kappa", "agreement", "cleanlab quality"):
        people.add_column(column)
    for lab in a.labelers:
        g = gold.get(lab.labeler)
        people.add_row(
            lab.labeler,
            str(lab.votes),
            f"{g.correct}/{g.answered}" if g and g.answered else "—",
            f"{lab.mean_kappa.value:.3f}" if lab.mean_kappa.value is not None else "—",
            f"{lab.observed.value:.1%}" if lab.observed.value is not None else "—",
            f"{quality[lab.labeler].quality:.3f}" if lab.labeler in quality else "—",
        )
    classes = Table(title="Per class (one vs rest)")
    for column in ("class", "votes", "alpha", "Fleiss' kappa"):
        classes.add_column(column)
    for k in a.classes:
        alpha, kappa = k.alpha.value, k.fleiss.value
        classes.add_row(
            k.name,
            str(k.votes),
            "—" if alpha is None else f"{alpha:.3f}",
            "—" if kappa is None else f"{kappa:.3f}",
        )
    issues = Table(title="Likely label errors (most likely first)")
    for column in ("rank", "item", "label", "model suggests", "score"):
        issues.add_column(column)
    for i in report.label_issues.issues[:10]:
        issues.add_row(str(i.rank), i.item, i.label, i.suggested, f"{i.score:.3f}")
    if report.label_issues.reason:
        issues.caption = report.label_issues.reason
    elif len(report.label_issues.issues) > 10:
        issues.caption = f"{len(report.label_issues.issues)} in all; --json lists them"
    return [summary, people, classes, issues]
