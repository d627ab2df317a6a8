"""Liveness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from mlcrew.api.deps import AppState, get_state

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(state: AppState = Depends(get_state)) -> dict[str, Any]:
    """The service is up; names the project it serves."""
    return {"status": "ok", "project": state.spec.name}
