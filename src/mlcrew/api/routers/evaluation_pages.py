"""The domain expert's page: one version's evaluation (value in money, gates, slices, confusion,
curves, calibration), and the same as a downloadable Markdown or self-contained HTML report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from mlcrew.api.deps import AppState, get_state
from mlcrew.api.routers.pages import TEMPLATES, root_path
from mlcrew.registry.versions import CHAMPION, MAX_VERSION, list_versions
from mlcrew.training.report import charts, evaluation, money, render

router = APIRouter(tags=["pages"], include_in_schema=False)
TEMPLATES.env.filters["money"] = money
Version = Annotated[int | None, Query(ge=1, le=MAX_VERSION)]


@router.get("/models/{name}/evaluation", response_class=HTMLResponse)
def evaluation_page(
    request: Request, name: str, version: Version = None, state: AppState = Depends(get_state)
) -> HTMLResponse:
    doc = evaluation(state.store, name, version or CHAMPION)
    versions = [v.version for v in list_versions(state.store) if v.name == name]
    context = {
        "root": root_path(request),
        "doc": doc,
        "charts": charts(doc),
        "versions": versions,
    }
    return TEMPLATES.TemplateResponse(request, "evaluation.html", context)


@router.get("/models/{name}/evaluation/report.{fmt}")
def evaluation_report(
    name: str, fmt: str, version: Version = None, state: AppState = Depends(get_state)
) -> Response:
    from mlcrew.errors import NotFoundError

    if fmt not in ("md", "html"):
        raise NotFoundError(f"no report format {fmt!r}: use report.md or report.html")
    doc = evaluation(state.store, name, version or CHAMPION)
    filename = f"{name}-v{doc['model']['version']}-evaluation.{fmt}"
    return Response(
        render(doc, fmt),
        media_type="text/markdown; charset=utf-8" if fmt == "md" else "text/html; charset=utf-8",
        headers={"content-disposition": f'inline; filename="{filename}"'},
    )
