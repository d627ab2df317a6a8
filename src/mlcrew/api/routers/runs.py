"""Runs and stage status."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from mlcrew.api.deps import AppState, get_state
from mlcrew.api.schemas import BAD_INPUT, NOT_FOUND, UNAVAILABLE
from mlcrew.pipeline.runs import list_runs, load_run
from mlcrew.pipeline.status import status

router = APIRouter(prefix="/v1", tags=["runs"], responses=UNAVAILABLE)

Limit = Annotated[int, Query(ge=1, le=1000, description="How many, newest first.")]


@router.get("/runs", responses=BAD_INPUT)
def get_runs(limit: Limit = 20, state: AppState = Depends(get_state)) -> dict[str, Any]:
    """The latest runs: status, what executed, verdict and champion."""
    return {"runs": list_runs(state.store, limit, state.spec.name)}


@router.get("/runs/latest", responses=NOT_FOUND)
def latest_run(state: AppState = Depends(get_state)) -> dict[str, Any]:
    """The most recent pipeline run."""
    return load_run(state.store, None, state.spec.name)


@router.get("/runs/{run_id}", responses={**NOT_FOUND, **BAD_INPUT})
def get_run(
    run_id: Annotated[str, Path(max_length=100)], state: AppState = Depends(get_state)
) -> dict[str, Any]:
    """One run by id."""
    return load_run(state.store, run_id, state.spec.name)


@router.get("/status")
def get_status(state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Each stage as fresh, stale (and why) or never run."""
    return {"stages": status(state.project, state.store, state.spec)}
