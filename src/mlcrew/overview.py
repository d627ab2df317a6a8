"""The project overview: what the overview page (and anyone else) shows of a project at a glance.

A view model in the core, so the web page only renders it: the last run, each stage's state,
the champion and its verdict, versions, aliases and their history, the latest drift report and
a ready-to-send example request for the champion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcrew.errors import NotFoundError
from mlcrew.monitoring.reports import get_report, list_reports
from mlcrew.pipeline.runs import load_run
from mlcrew.pipeline.status import status
from mlcrew.registry.promotion import AliasMove, history
from mlcrew.registry.versions import CHAMPION, VersionInfo, aliases, get_version, list_versions
from mlcrew.spec import Spec
from mlcrew.store import Store
from mlcrew.training.metrics import resolve_metric

if TYPE_CHECKING:
    from mlcrew.labeling.status import LabelStatus
    from mlcrew.serving.loader import ModelCache


@dataclass(frozen=True)
class Overview:
    spec: Spec
    run: dict[str, Any] | None
    stages: list[dict[str, Any]]
    champion: VersionInfo | None
    aliases: dict[str, int]
    versions: list[VersionInfo]  # newest first, at most 10
    alias_history: list[AliasMove]  # newest first, at most 10
    db: str
    example: str  # a JSON request body for the champion, "" without a champion
    monitor: dict[str, Any] | None
    metric: str
    labeling: LabelStatus | None = None  # None: the project has no imported label spec

    def context(self) -> dict[str, Any]:
        """The fields as a template context."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def project_overview(
    project: Path | None, spec: Spec, store: Store, models: ModelCache | None = None
) -> Overview:
    """Everything the overview shows; `models` (a loaded-model cache) spares a model load."""
    try:
        run: dict[str, Any] | None = load_run(store, None, spec.name)
    except NotFoundError:
        run = None
    try:
        champion: VersionInfo | None = get_version(store, spec.name, CHAMPION)
    except NotFoundError:
        champion = None
    versions = list_versions(store, spec.name)
    latest = champion or (versions[-1] if versions else None)
    example = ""
    if champion is not None:
        example = json.dumps({"rows": [example_row(_schema(store, spec.name, champion, models))]})
    reports = list_reports(store, spec.name, limit=1)
    from mlcrew.labeling.status import label_status

    counts = label_status(store)  # reads the label spec once: None until an import
    labeling = counts if counts.label_spec is not None else None
    return Overview(
        spec=spec,
        run=run,
        stages=status(project, store, spec),
        champion=champion,
        aliases=aliases(store, spec.name),
        versions=list(reversed(versions))[:10],
        alias_history=history(store, spec.name, limit=10),
        db=store.db_label,
        example=example,
        monitor=get_report(store, reports[0]["id"]) if reports else None,
        metric=resolve_metric(spec.objective.metric, latest.metrics if latest else {}),
        labeling=labeling,
    )


def _schema(
    store: Store, name: str, version: VersionInfo, models: ModelCache | None
) -> list[dict[str, Any]]:
    if models is not None:
        return models.load(version).model.input_schema()
    from mlcrew.training.model import TabularModel

    return TabularModel.from_json(store.artifacts.read_bytes(version.model_digest)).input_schema()


def example_row(schema: list[dict[str, Any]]) -> dict[str, Any]:
    """A plausible row for a model's input schema, each value of the JSON type it expects."""
    return {f["name"]: example_value(f) for f in schema}


def example_value(field: dict[str, Any]) -> Any:
    """A plausible value of the JSON type a client has: a known category, or the middle of the
    training range. A category over an integer column (weekday) is shown as the integer: its
    levels are kept as text ("0"), and the model maps 0 and "0" to the same level."""
    if field["type"] == "category":
        return category_value(str(field["categories"][0]) if field["categories"] else "")
    low, high = field.get("range") or (None, None)
    if low is None or high is None:
        return {"integer": 0, "boolean": False}.get(field["type"], 0.0)
    middle = (low + high) / 2
    return int(middle) if field["type"] == "integer" else round(middle, 3)


def category_value(level: str) -> int | str:
    """A category level as a client sends it: integer text ("0") as the integer it came from."""
    return int(level) if level.lstrip("-").isdigit() and str(int(level)) == level else level
