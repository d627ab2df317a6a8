"""Liveness, readiness and Prometheus metrics, as documented routes. The service's outer layer
(api/fastpath.py) answers GET on these paths itself, with the same functions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from mlcrew.api.deps import AppState, get_state
from mlcrew.serving.health import exposition, liveness, readiness

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
    return liveness(state.spec.name)


@router.get(
    "/readyz",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "The champion cannot be served yet"}},
)
def readyz(state: AppState = Depends(get_state)) -> Any:
    """Ready when the project's champion is loaded and can answer; 503 (with the reason)
    otherwise, e.g. before the first version passes its gates."""
    status, doc = readiness(state.service, state.spec.name, state.spec.modeled)
    return doc if status == 200 else JSONResponse(doc, status_code=status)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                     "description": "Prometheus text exposition"}},
)  # fmt: skip
def metrics(state: AppState = Depends(get_state)) -> Response:
    """Prometheus metrics: requests by route and status, latency, rows predicted, the version
    each alias serves, and the prediction log's lag."""
    body, content_type = exposition(state.service, state.metrics)
    return Response(body, media_type=content_type)
