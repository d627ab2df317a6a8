"""Tracked runs over REST: the list (filtered and sorted), one run with every metric point, and
runs side by side. Runs are written by `mlcrew.start_run` and the pipeline's search."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import StringConstraints

from mlcrew.api.deps import AppState, get_state
from mlcrew.api.schemas import BAD_INPUT, NOT_FOUND, UNAVAILABLE
from mlcrew.experiments import compare_runs, list_runs, show_run
from mlcrew.experiments.read import FILTER_PATTERN, FILTER_RULE, SORT_PATTERN

router = APIRouter(prefix="/v1/experiments", tags=["experiments"], responses=UNAVAILABLE)

RunId = Annotated[
    str, Path(min_length=4, max_length=32, description="A run id, or its first 4+ characters.")
]


@router.get("/runs", responses=BAD_INPUT)
def get_runs(
    state: AppState = Depends(get_state),
    filter: Annotated[
        list[Annotated[str, StringConstraints(pattern=FILTER_PATTERN)]],
        Query(description=f"Keep runs where this holds: {FILTER_RULE}."),
    ] = [],  # noqa: B006 (FastAPI copies the default)
    sort: Annotated[
        str | None,
        Query(
            pattern=SORT_PATTERN,
            description="params.KEY, metrics.KEY or tags.KEY; -KEY: descending.",
        ),
    ] = None,
    source: Annotated[str | None, Query(pattern="^(api|pipeline)$")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many.")] = 100,
) -> dict[str, Any]:
    """Tracked runs, newest first: status, params, tags and the last value of each metric."""
    runs = list_runs(state.store, filters=filter, sort=sort, limit=limit, source=source)
    return {"runs": [r.to_json() for r in runs]}


@router.get("/runs/{run_id}", responses={**NOT_FOUND, **BAD_INPUT})
def get_run(run_id: RunId, state: AppState = Depends(get_state)) -> dict[str, Any]:
    """One run: params, tags, artifacts and every point of every metric."""
    return show_run(state.store, run_id)


@router.get("/compare", responses={**NOT_FOUND, **BAD_INPUT})
def get_compare(
    runs: Annotated[list[str], Query(min_length=2, max_length=20, description="Run ids.")],
    state: AppState = Depends(get_state),
) -> dict[str, Any]:
    """Runs side by side: each param (and whether it differs), each metric's last, min, max."""
    return compare_runs(state.store, runs)
