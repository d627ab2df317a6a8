"""`GET /v1/audit`: the project's audit log, for admins and managers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from mlcrew.api.deps import AppState, get_state
from mlcrew.api.schemas import BAD_INPUT, UNAVAILABLE
from mlcrew.people.audit import events

router = APIRouter(prefix="/v1", tags=["audit"], responses=UNAVAILABLE)


@router.get("/audit", responses=BAD_INPUT)
def get_audit(
    limit: int = Query(100, ge=1, le=10_000), state: AppState = Depends(get_state)
) -> dict[str, Any]:
    """State-changing actions, newest first: who, when, action, target, details."""
    return {"events": [e.to_json() for e in events(state.store, state.spec.name, limit)]}
