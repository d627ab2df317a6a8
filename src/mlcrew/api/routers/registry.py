"""Registry: the alias audit log, and gated alias moves (promotion) over REST."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from mlcrew.api.deps import AppState, get_identity, get_state
from mlcrew.api.schemas import BAD_INPUT, NOT_FOUND, UNAVAILABLE
from mlcrew.errors import NotFoundError, PromotionRefused
from mlcrew.registry.promotion import history, promote
from mlcrew.registry.versions import ALIAS_PATTERN, MAX_VERSION

router = APIRouter(prefix="/v1/models", tags=["registry"], responses=UNAVAILABLE)

NAME = Path(..., max_length=64, description="The model's name.")
ALIAS = Path(
    ...,
    pattern=f"^{ALIAS_PATTERN.pattern}$",
    description="The alias to move: champion, challenger or any lowercase name.",
)


class AliasEventOut(BaseModel):
    at: str
    actor: str
    alias: str
    from_: int | None = Field(alias="from")
    to: int | None
    reason: str
    forced: bool
    action: str = Field(description="promote or rollback")
    verdict: dict[str, Any]

    model_config = ConfigDict(populate_by_name=True)


class HistoryOut(BaseModel):
    name: str
    events: list[AliasEventOut] = Field(description="Newest first.")


class PromoteIn(BaseModel):
    version: int = Field(..., ge=1, le=MAX_VERSION)
    reason: str = Field(
        ..., min_length=1, max_length=2000, pattern=r"\S", description="Goes into the audit log."
    )
    force: StrictBool = Field(False, description="Skip the gates; recorded as forced.")

    model_config = ConfigDict(extra="forbid")

    @field_validator("version", mode="before")
    @classmethod
    def _a_json_integer(cls, value: Any) -> Any:
        # `"2"` or `true` is refused rather than guessed at; 2.0 is an integer in JSON.
        if isinstance(value, str | bool):
            raise ValueError("version must be an integer")
        return value


class PromoteOut(BaseModel):
    name: str
    alias: str
    moved: bool = Field(description="False if the alias already pointed to this version.")
    event: AliasEventOut | None


class Refused(BaseModel):
    detail: str
    reasons: list[str]


def _actor(request: Request) -> str:
    """The caller as the gate identified it: the token's or session's user (the local owner
    when no people are configured)."""
    return get_identity(request).actor


@router.get(
    "/{name}/history",
    response_model=HistoryOut,
    responses={**NOT_FOUND, **BAD_INPUT},
)
def get_history(
    name: str = NAME,
    alias: str | None = Query(None, max_length=32, description="Only this alias."),
    limit: int = Query(100, ge=1, le=10_000),
    state: AppState = Depends(get_state),
) -> dict[str, Any]:
    """Every move of the model's aliases, newest first: when, who, from, to, why, forced."""
    _known_model(state, name)
    return {"name": name, "events": [e.to_json() for e in history(state.store, name, alias, limit)]}


@router.post(
    "/{name}/aliases/{alias}",
    response_model=PromoteOut,
    responses={
        **NOT_FOUND,
        409: {"model": Refused, "description": "The gates refused the promotion; see reasons."},
        **BAD_INPUT,
    },
)
def move_alias(
    request: Request,
    body: PromoteIn,
    name: str = NAME,
    alias: str = ALIAS,
    state: AppState = Depends(get_state),
) -> Any:
    """Promote a version to an alias, gated like `mlcrew promote` (verdict passed, not worse
    than the current holder on the same test data by more than registry.margin)."""
    _known_model(state, name)
    try:
        move = promote(
            state.store,
            name,
            body.version,
            alias=alias,
            reason=body.reason,
            actor=_actor(request),
            force=body.force,
            margin=state.spec.registry.margin,
        )
    except PromotionRefused as exc:
        return JSONResponse({"detail": str(exc), "reasons": exc.reasons}, status_code=409)
    return {
        "name": name,
        "alias": alias,
        "moved": move is not None,
        "event": move.to_json() if move else None,
    }


def _known_model(state: AppState, name: str) -> None:
    from mlcrew.registry.versions import list_versions

    if not any(v.name == name for v in list_versions(state.store, name)):
        raise NotFoundError(f"no model named {name!r}")
