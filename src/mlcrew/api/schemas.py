"""Response shapes shared by the routes, so every documented status has its real schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Message(BaseModel):
    """An error with one message (404, 405, 409, 413, 415, 503)."""

    detail: str


class Problem(BaseModel):
    row: int | None = Field(description="Index of the row in `rows`; null when not about a row.")
    field: str | None = Field(description="The field, parameter or part of the body at fault.")
    error: str


class Problems(BaseModel):
    """Bad input (422): every problem found, each naming its row and field."""

    detail: list[Problem]


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Message, "description": "Not found"}}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": Message, "description": "The metadata database cannot be reached"}
}
BAD_INPUT: dict[int | str, dict[str, Any]] = {
    422: {"model": Problems, "description": "Invalid parameters"}
}
