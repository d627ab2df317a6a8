"""Datasets over REST, and read-only SQL over them: `GET /v1/datasets[/NAME[@V]]`, a profile
with suggested checks, a diff of two versions, and `POST /v1/query` (streamed results as JSON,
CSV, Arrow or Parquet). Queries run in the data sandbox with time, row and memory limits."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from mlcrew.api.deps import AppState, get_state
from mlcrew.api.schemas import BAD_INPUT, NOT_FOUND, UNAVAILABLE, Message
from mlcrew.data.catalog import (
    diff_datasets,
    list_datasets,
    profile_dataset,
    show_dataset,
    suggest_checks,
)
from mlcrew.data.query import MEDIA, Limits, QueryResult, encode, prefetch, run_query

router = APIRouter(tags=["data"], responses=UNAVAILABLE)

Ref = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(@[0-9]+)?$",
        max_length=80,
        description="NAME (the latest version) or NAME@VERSION.",
    ),
]
MAX_ROWS = 10_000_000  # the most any server may allow (serving.query.rows)
QUERY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Message, "description": "Not one SELECT, not valid SQL, or forbidden"},
    404: {"model": Message, "description": "A table that is not a dataset"},
    408: {"model": Message, "description": "The query ran past the time limit"},
    413: {"model": Message, "description": "Over the row or memory limit"},
}


class QueryRequest(BaseModel):
    sql: str = Field(min_length=1, max_length=100_000, description="One SELECT over datasets.")
    format: Literal["json", "csv", "arrow", "parquet"] = "json"
    limit: int = Field(
        10_000, ge=0, le=MAX_ROWS, description="At most this many rows (serving.query.rows)."
    )


@router.get("/v1/datasets")
def get_datasets(state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Every dataset (sources and transforms) at its latest version."""
    return {"datasets": list_datasets(state.store)}


@router.get("/v1/datasets/{ref}", responses=NOT_FOUND)
def get_dataset(
    ref: Ref,
    state: AppState = Depends(get_state),
    profile: Annotated[bool, Query(description="Include per-column statistics.")] = True,
) -> dict[str, Any]:
    """One version: schema, rows, lineage, checks and (by default) its profile."""
    return show_dataset(state.store, ref, profile=profile)


@router.get("/v1/datasets/{ref}/profile", responses=NOT_FOUND)
def get_profile(
    ref: Ref,
    state: AppState = Depends(get_state),
    suggest: Annotated[bool, Query(description="Add checks inferred from the data.")] = False,
) -> dict[str, Any]:
    """Per-column statistics computed in DuckDB (and suggested checks)."""
    doc = profile_dataset(state.store, ref)
    if suggest:
        default = state.spec.dataset.from_ if state.spec.dataset else None
        doc["suggested"] = suggest_checks(doc, None if doc["name"] == default else doc["name"])
    return doc


@router.get("/v1/datasets/{ref}/diff", responses={**NOT_FOUND, **BAD_INPUT})
def get_diff(
    ref: Ref,
    to: Annotated[str, Query(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(@[0-9]+)?$", max_length=80)],
    state: AppState = Depends(get_state),
    key: Annotated[list[str], Query(max_length=8, description="Columns that identify a row.")] = [],  # noqa: B006
) -> dict[str, Any]:
    """`ref` against `to`: schema changes, row counts, statistic deltas, rows changed by key."""
    return diff_datasets(state.store, ref, to, key or None)


@router.post("/v1/query", responses={**QUERY_ERRORS, **BAD_INPUT})
async def post_query(body: QueryRequest, state: AppState = Depends(get_state)) -> Response:
    """Read-only SQL over the project's datasets (each a table by name, or NAME@VERSION).
    JSON answers {"columns": [...], "rows": [[...], ...]}; results stream in batches."""
    limits = Limits.of(state.spec.serving.query)

    def start() -> tuple[QueryResult, bytes, Iterator[bytes] | None]:
        result = run_query(state.store, body.sql, body.limit, limits)
        try:
            return result, *prefetch(encode(result, body.format))
        except BaseException:
            result.close()
            raise

    result, head, rest = await run_in_threadpool(start)
    headers = {
        "x-mlcrew-row-limit": str(body.limit),
        "x-mlcrew-tables": ", ".join(f"{n}@{v}" for n, v in sorted(result.tables.items())),
    }
    if body.format == "parquet":
        headers["content-disposition"] = 'attachment; filename="query.parquet"'
    if rest is None:  # all of it is here: one response, no streaming
        return Response(head, media_type=MEDIA[body.format], headers=headers)
    return StreamingResponse(
        itertools.chain([head], rest), media_type=MEDIA[body.format], headers=headers
    )
