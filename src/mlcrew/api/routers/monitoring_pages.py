"""The MLOps engineer's page: a model's monitoring windows, charts and timeline, and the same as
a self-contained HTML report."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from mlcrew.api.deps import AppState, get_state
from mlcrew.api.routers.pages import TEMPLATES, root_path
from mlcrew.monitoring.pages import charts, events_of, render, timeline

router = APIRouter(tags=["pages"], include_in_schema=False)


def _known(state: AppState, name: str) -> str:
    """The model's name, if it has a registered version (404 otherwise, as other pages)."""
    from mlcrew.errors import NotFoundError
    from mlcrew.registry.versions import list_versions

    known = sorted({v.name for v in list_versions(state.store)})
    if name not in known:
        raise NotFoundError(
            f"no model named {name[:64]!r}; known models: {', '.join(known) or 'none yet'}"
        )
    return name


@router.get("/models/{name}/monitoring", response_class=HTMLResponse)
def monitoring_page(
    request: Request, name: str, state: AppState = Depends(get_state)
) -> HTMLResponse:
    doc = timeline(state.store, _known(state, name))
    context = {
        "root": root_path(request),
        "doc": doc,
        "charts": charts(doc),
        "events": events_of(doc),
    }
    return TEMPLATES.TemplateResponse(request, "monitoring.html", context)


@router.get("/models/{name}/monitoring/report.html")
def monitoring_report(name: str, state: AppState = Depends(get_state)) -> Response:
    import re

    known = _known(state, name)
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", known)
    return Response(
        render(timeline(state.store, known)),
        media_type="text/html; charset=utf-8",
        headers={"content-disposition": f'inline; filename="{filename}-monitoring.html"'},
    )
