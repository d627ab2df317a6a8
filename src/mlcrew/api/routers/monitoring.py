"""Monitor reports: drift and performance of served models on new data."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from mlcrew.api.deps import AppState, get_state
from mlcrew.monitoring.reports import get_report, list_reports

router = APIRouter(prefix="/v1/monitor", tags=["monitoring"])


@router.get("/reports")
def reports(limit: int = 20, state: AppState = Depends(get_state)) -> dict[str, Any]:
    """The latest monitor reports, newest first."""
    return {"reports": list_reports(state.store, state.spec.name, limit)}


@router.get("/reports/{report_id}")
def report(report_id: int, state: AppState = Depends(get_state)) -> dict[str, Any]:
    """One full report: drift per feature and performance on new data."""
    return get_report(state.store, report_id)
