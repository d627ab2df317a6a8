"""The labeling page (/label): the item, the classes with their keys, the guidelines. The page's
script (static/label.js) talks to /v1/labeling; this route only hands it the label spec, the
session's CSRF token and where the project is mounted."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from mlcrew.api.deps import AppState, get_identity, get_state
from mlcrew.api.routers.pages import TEMPLATES, root_path
from mlcrew.errors import Forbidden
from mlcrew.labeling.access import labeler_of
from mlcrew.labeling.labelspec import NOT_IMPORTED, guidelines_html
from mlcrew.people.identity import Identity
from mlcrew.spec import RESERVED_KEYS, Labeling

router = APIRouter(tags=["pages"], include_in_schema=False)

# Keys handed to classes the spec gives none, in this order (the page's own keys excluded).
SPARE_KEYS = "1234567890abcdeghijklmnopqrtvwxyz"


@dataclass(frozen=True)
class Choice:
    name: str
    key: str | None
    description: str


def choices(labeling: Labeling) -> list[Choice]:
    """The classes with the key that picks each: the spec's, else the first spare one (digits,
    then letters), so every class of a short list can be picked without the mouse."""
    taken = {c.key.lower() for c in labeling.classes if c.key}
    spare = [k for k in SPARE_KEYS if k not in taken and k not in RESERVED_KEYS]
    out = []
    for c in labeling.classes:
        key = c.key or (spare.pop(0) if spare else None)
        out.append(Choice(c.name, key, c.description))
    return out


@router.get("/label", response_class=HTMLResponse)
def label_page(
    request: Request,
    state: AppState = Depends(get_state),
    who: Identity = Depends(get_identity),
) -> HTMLResponse:
    root = root_path(request)
    context: dict[str, Any] = {
        "project": state.spec.name,
        "root": root,
        "csrf": who.csrf or "",
        "signed_in": who.name if who.via == "session" else "",
        # External labelers see this page only: no links to pages they cannot open.
        "overview": who.may("read_models") and not who.external,
        "problem": None,
    }
    spec = state.labels().find()
    status = 200
    if spec is None:
        context["problem"], status = NOT_IMPORTED, 404
    else:
        try:
            labeler_of(who, spec)
        except Forbidden as exc:
            context["problem"], status = str(exc), 403
    if spec is not None and context["problem"] is None:
        labeling = spec.labeling
        classes = [asdict(c) for c in choices(labeling)]
        context.update(
            classes=classes,
            guidelines=guidelines_html(spec.guidelines) if spec.guidelines.strip() else "",
            multi=labeling.task == "multi",
            config={
                "root": root,
                "csrf": who.csrf or "",
                "task": labeling.task,
                "show": labeling.show,
                "classes": classes,
                "suggestions": labeling.prelabel != "none",
            },
        )
    return TEMPLATES.TemplateResponse(request, "label.html", context, status_code=status)
