"""Monitor reports: drift and performance of served models on new data."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from mlcrew.api.deps import AppState, get_state
from mlcrew.api.schemas import BAD_INPUT, NOT_FOUND, UNAVAILABLE
from mlcrew.monitoring.reports import get_report, list_reports

router = APIRouter(prefix="/v1/monitor", tags=["monitoring"], responses=UNAVAILABLE)


@router.get("/reports", responses=BAD_INPUT)
def reports(
    limit: Annotated[int, Query(ge=1, le=1000, description="How many, newest first.")] = 20,
    state: AppState = Depends(get_state),
) -> dict[str, Any]:
    """The latest monitor reports, newest first."""
    return {"reports": list_reports(state.store, state.spec.name, limit)}


@router.get("/reports/{report_id}", responses={**NOT_FOUND, **BAD_INPUT})
def report(
    report_id: Annotated[int, Path(ge=1, le=2**63 - 1)], state: AppState = Depends(get_state)
) -> dict[str, Any]:
    """One full report: drift per feature and performance on new data."""
    return get_report(state.store, report_id)


@router.get("/timeline", responses=BAD_INPUT)
def timeline_route(
    limit: Annotated[int, Query(ge=1, le=1000, description="How many windows and events.")] = 200,
    state: AppState = Depends(get_state),
) -> dict[str, Any]:
    """The loop's windows (oldest first: drift, real and estimated performance), alerts,
    retrains and alias moves of the served model."""
    from mlcrew.monitoring.pages import timeline

    return timeline(state.store, state.spec.name, limit)
