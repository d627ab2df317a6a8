"""Server-rendered pages. The overview: project, last run's stages, the champion and its verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from mlcrew.api.deps import AppState, get_state
from mlcrew.errors import NotFoundError
from mlcrew.monitoring.reports import get_report, list_reports
from mlcrew.pipeline.runs import load_run
from mlcrew.pipeline.status import status
from mlcrew.registry.promotion import history
from mlcrew.registry.versions import CHAMPION, aliases, get_version, list_versions
from mlcrew.training.metrics import resolve_metric
from mlcrew.wording import plural

WEB = Path(__file__).parents[2] / "web"
TEMPLATES = Jinja2Templates(directory=str(WEB / "templates"))
TEMPLATES.env.filters["plural"] = plural  # {{ n | plural("new row") }}: "1 new row", "2 new rows"

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
    latest = champion or (versions[-1] if versions else None)
    example: dict[str, Any] = {}
    if champion is not None:
        schema = state.models.get(state.spec.name, CHAMPION).model.input_schema()
        example = {f["name"]: _example_value(f) for f in schema}
    return {
        "spec": state.spec,
        "run": run,
        "stages": status(state.project, state.store, state.spec),
        "champion": champion,
        "aliases": aliases(state.store, state.spec.name),
        "versions": list(reversed(versions))[:10],
        "alias_history": history(state.store, state.spec.name, limit=10),
        "db": state.store.db_label,
        "example": json.dumps({"rows": [example]}) if example else "",
        "monitor": _latest_monitor(state),
        "metric": resolve_metric(state.spec.objective.metric, latest.metrics if latest else {}),
    }


def _latest_monitor(state: AppState) -> dict[str, Any] | None:
    latest = list_reports(state.store, state.spec.name, limit=1)
    return get_report(state.store, latest[0]["id"]) if latest else None


def _example_value(field: dict[str, Any]) -> Any:
    """A plausible value of the JSON type a client has: a known category, or the middle of the
    training range. A category over an integer column (weekday) is shown as the integer: its
    levels are kept as text ("0"), and the model maps 0 and "0" to the same level."""
    if field["type"] == "category":
        level = field["categories"][0] if field["categories"] else ""
        return int(level) if level.lstrip("-").isdigit() and str(int(level)) == level else level
    low, high = field.get("range") or (None, None)
    if low is None or high is None:
        return {"integer": 0, "boolean": False}.get(field["type"], 0.0)
    middle = (low + high) / 2
    return int(middle) if field["type"] == "integer" else round(middle, 3)


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, state: AppState = Depends(get_state)) -> HTMLResponse:
    context = {**overview_context(state), "base_url": str(request.base_url).rstrip("/")}
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
    return TEMPLATES.TemplateResponse(request, "api.html", {"doc": doc, "endpoints": endpoints})


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    return FileResponse(WEB / "static" / "favicon.ico", media_type="image/x-icon")
