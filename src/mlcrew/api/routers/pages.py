"""Server-rendered pages. The overview: project, last run's stages, the champion and its verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from mlcrew.api.deps import AppState, get_state
from mlcrew.errors import NotFoundError
from mlcrew.pipeline.runner import load_run, status
from mlcrew.registry.versions import CHAMPION, aliases, get_version, list_versions

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parents[2] / "web" / "templates"))

router = APIRouter(tags=["pages"], include_in_schema=False)


def overview_context(state: AppState) -> dict[str, Any]:
    try:
        run: dict[str, Any] | None = load_run(state.store, None)
    except NotFoundError:
        run = None
    try:
        champion: Any = get_version(state.store, state.spec.name, CHAMPION)
    except NotFoundError:
        champion = None
    versions = list_versions(state.store, state.spec.name)
    return {
        "spec": state.spec,
        "run": run,
        "stages": status(state.project, state.store, state.spec),
        "champion": champion,
        "aliases": aliases(state.store, state.spec.name),
        "versions": list(reversed(versions))[:10],
        "db": state.store.db_label,
    }


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, state: AppState = Depends(get_state)) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, "overview.html", overview_context(state))
