"""The MLOps engineer's page: a model's monitoring windows, charts and timeline, and the same as
a self-contained HTML report."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from mlcrew.api.deps import AppState, get_state
from mlcrew.api.routers.pages import TEMPLATES, root_path
from mlcrew.monitoring.pages import charts, events_of, render, timeline

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/models/{name}/monitoring", response_class=HTMLResponse)
def monitoring_page(
    request: Request, name: str, state: AppState = Depends(get_state)
) -> HTMLResponse:
    doc = timeline(state.store, name)
    context = {
        "root": root_path(request),
        "doc": doc,
        "charts": charts(doc),
        "events": events_of(doc),
    }
    return TEMPLATES.TemplateResponse(request, "monitoring.html", context)


@router.get("/models/{name}/monitoring/report.html")
def monitoring_report(name: str, state: AppState = Depends(get_state)) -> Response:
    return Response(
        render(timeline(state.store, name)),
        media_type="text/html; charset=utf-8",
        headers={"content-disposition": f'inline; filename="{name}-monitoring.html"'},
    )
