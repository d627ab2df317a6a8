"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from mlcrew.api.deps import AppState, get_state
from mlcrew.errors import MlcrewError

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    project: str


class Ready(BaseModel):
    status: str
    model: str
    version: int | None = None
    reason: str | None = None


@router.get("/healthz", response_model=Health)
def healthz(state: AppState = Depends(get_state)) -> dict[str, Any]:
    """The service is up; names the project it serves."""
    return {"status": "ok", "project": state.spec.name}


@router.get(
    "/readyz",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "The champion cannot be served yet"}},
)
def readyz(state: AppState = Depends(get_state)) -> Any:
    """Ready when the project's champion is loaded and can answer; 503 (with the reason)
    otherwise, e.g. before the first version passes its gates."""
    name = state.spec.name
    try:
        loaded = state.service.ready(name)
    except MlcrewError as exc:
        return JSONResponse(
            {"status": "not ready", "model": name, "version": None, "reason": str(exc)[:500]},
            status_code=503,
        )
    return {"status": "ready", "model": name, "version": loaded.info.version, "reason": None}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                     "description": "Prometheus text exposition"}},
)  # fmt: skip
def metrics(state: AppState = Depends(get_state)) -> Response:
    """Prometheus metrics: requests by route and status, latency, rows predicted, the version
    each alias serves, and the prediction log's lag."""
    if state.service.log is not None:
        state.metrics.log_pending.set(state.service.log.pending_rows)
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)
