"""Who may label, and a task as the labeler's client receives it: shared by the REST router
(api/routers/labeling.py), the pages and the outer layer's fast path (api/labeling_fast.py)."""

from __future__ import annotations

from typing import Any

from mlcrew.errors import Forbidden
from mlcrew.labeling.labelspec import LabelSpec
from mlcrew.labeling.queue import Labeler, TaskView
from mlcrew.people.identity import Identity


def labeler_of(who: Identity, spec: LabelSpec) -> Labeler:
    """The caller as a labeler, if the label spec lets them label (labeling.labelers)."""
    allowed = spec.labeling.labelers
    if allowed and who.name not in allowed and (who.role or "") not in allowed:
        raise Forbidden(
            f"the label spec names who may label (labeling.labelers: {', '.join(allowed)}); "
            f"{who.name} is not among them"
        )
    return Labeler(who.name, any_task=who.may("label") and not who.external)


def task_json(view: TaskView, spec: LabelSpec, root_path: str) -> dict[str, Any]:
    """The task's JSON; a stored image becomes a URL under the service's root path."""
    doc = view.to_json()
    show = spec.labeling.show
    value = view.payload.get(show) if show == "image" else None
    if isinstance(value, dict):
        url = value.get("uri") or f"{root_path.rstrip('/')}/v1/labeling/tasks/{view.id}/image"
        doc["payload"] = {**view.payload, "image": {"url": url, "type": value.get("type")}}
    return doc
