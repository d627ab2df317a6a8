"""Server-rendered pages. The overview: project, last run's stages, the champion and its verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from mlcrew.api.deps import AppState, get_identity, get_state
from mlcrew.overview import project_overview
from mlcrew.wording import plural

WEB = Path(__file__).parents[2] / "web"
TEMPLATES = Jinja2Templates(directory=str(WEB / "templates"))
TEMPLATES.env.filters["plural"] = plural  # {{ n | plural("new row") }}: "1 new row", "2 new rows"

router = APIRouter(tags=["pages"], include_in_schema=False)


def root_path(request: Request) -> str:
    """The prefix the service is mounted under ('/p/NAME' in `mlcrew server`, '' alone): every
    link and script URL of a page starts with it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, state: AppState = Depends(get_state)) -> HTMLResponse:
    view = project_overview(state.project, state.spec, state.store, state.models)
    who = get_identity(request)
    context = {
        **view.context(),
        "base_url": str(request.base_url).rstrip("/"),
        "root": root_path(request),
        # The page's own requests (Try it) carry the session's CSRF token.
        "csrf": who.csrf or "",
        "signed_in": who.name if who.via == "session" else "",
    }
    return TEMPLATES.TemplateResponse(request, "overview.html", context)


def _schema_fields(schema: dict[str, Any], components: dict[str, Any]) -> list[dict[str, Any]]:
    """The fields of a JSON schema (following one $ref), for the API reference page."""
    ref = schema.get("$ref", "")
    if ref:
        schema = components.get(ref.rsplit("/", 1)[-1], {})
    required = set(schema.get("required", []))
    fields = []
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type") or prop.get("$ref", "").rsplit("/", 1)[-1] or "any"
        if kind == "array":
            items = prop.get("items", {})
            kind = f"list of {items.get('type') or items.get('$ref', '').rsplit('/', 1)[-1]}"
        fields.append(
            {
                "name": name,
                "type": kind,
                "required": name in required,
                "description": prop.get("description", ""),
            }
        )
    return fields


@router.get("/docs", response_class=HTMLResponse)
def api_reference(request: Request) -> HTMLResponse:
    """The REST API, rendered from the OpenAPI document (no scripts from elsewhere)."""
    doc = request.app.openapi()
    components = doc.get("components", {}).get("schemas", {})
    endpoints = []
    for path, methods in doc.get("paths", {}).items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            endpoints.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "tag": (op.get("tags") or [""])[0],
                    "parameters": op.get("parameters", []),
                    "body": _schema_fields(body.get("schema", {}), components) if body else [],
                    "responses": sorted(op.get("responses", {})),
                }
            )
    context = {"doc": doc, "endpoints": endpoints, "root": root_path(request)}
    return TEMPLATES.TemplateResponse(request, "api.html", context)


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    return FileResponse(WEB / "static" / "favicon.ico", media_type="image/x-icon")
