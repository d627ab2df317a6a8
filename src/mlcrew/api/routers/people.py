"""People of the project over REST (admins): users, tokens and declared consumers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from mlcrew.api.deps import AppState, get_identity, get_state
from mlcrew.api.schemas import BAD_INPUT, NOT_FOUND, UNAVAILABLE, Message
from mlcrew.errors import ConflictError, MlcrewError
from mlcrew.people import tokens, users
from mlcrew.people.identity import Identity
from mlcrew.people.roles import ACTIONS, Role

router = APIRouter(prefix="/v1", tags=["people"], responses=UNAVAILABLE)

CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Message, "description": "Exists already, or would leave no admin"}
}
NAME = Path(..., max_length=64)
T = TypeVar("T")


def _checked(call: Callable[[], T]) -> T:
    """What the library refuses for the project's state (a scope beyond the owner's role,
    --external for a role other than labeler) is a 409 naming what to change."""
    try:
        return call()
    except MlcrewError as exc:
        if type(exc) is not MlcrewError:
            raise
        raise HTTPException(409, str(exc)[:500]) from exc


class UserOut(BaseModel):
    name: str
    role: str
    external: bool
    created: str
    disabled: bool
    has_password: bool


class UserIn(BaseModel):
    name: str = Field(..., min_length=1, max_length=64, pattern=f"^{users.NAME_PATTERN.pattern}$")
    role: Role
    external: StrictBool = Field(
        False, description="An outsourced labeler (only with role labeler)."
    )
    password: str | None = Field(None, min_length=users.MIN_PASSWORD, max_length=users.MAX_PASSWORD)

    model_config = ConfigDict(extra="forbid")


class TokenOut(BaseModel):
    id: str
    owner: str
    kind: str = Field(description="user or consumer")
    scope: list[str]
    created: str
    expires: str | None
    last_used: str | None
    revoked: str | None


class TokenIn(BaseModel):
    owner: str = Field(
        ...,
        min_length=1,
        max_length=64,
        pattern=f"^{users.NAME_PATTERN.pattern}$",
        description="A user or a consumer.",
    )
    scope: list[Literal[ACTIONS]] | None = Field(  # type: ignore[valid-type]
        None, description="Actions (a subset of the owner's); default: all of the owner's."
    )
    expires_days: int | None = Field(None, ge=1, le=tokens.MAX_DAYS)

    model_config = ConfigDict(extra="forbid")


class NewToken(BaseModel):
    token: str = Field(description="The secret: shown this once, never again.")
    info: TokenOut


class ConsumerIn(BaseModel):
    name: str = Field(..., min_length=1, max_length=64, pattern=f"^{users.NAME_PATTERN.pattern}$")

    model_config = ConfigDict(extra="forbid")


@router.get("/users", response_model=list[UserOut])
def get_users(state: AppState = Depends(get_state)) -> list[dict[str, Any]]:
    """The project's people and their roles."""
    return [u.to_json() for u in users.list_users(state.store, state.spec.name)]


@router.post("/users", response_model=UserOut, status_code=201, responses={**CONFLICT, **BAD_INPUT})
def post_user(
    body: UserIn, state: AppState = Depends(get_state), who: Identity = Depends(get_identity)
) -> dict[str, Any]:
    """Add a person with a role (and a password to sign in with, if given)."""
    info = _checked(
        lambda: users.add_user(
            state.store,
            state.spec.name,
            body.name,
            body.role,
            actor=who.actor,
            external=body.external,
            password=body.password,
        )
    )
    state.gate.forget()
    return info.to_json()


@router.delete("/users/{user}", status_code=204, responses={**NOT_FOUND, **CONFLICT})
def delete_user(
    user: str = NAME, state: AppState = Depends(get_state), who: Identity = Depends(get_identity)
) -> Response:
    """Take a person out of the project; their tokens are revoked and sessions ended. Not
    oneself (another admin, or the CLI, can)."""
    if user == who.name and who.via in ("token", "session"):
        raise ConflictError("you cannot remove yourself: ask another admin, or use the CLI")
    users.remove_user(state.store, state.spec.name, user, actor=who.actor)
    state.gate.forget()
    return Response(status_code=204)


@router.get("/tokens", response_model=list[TokenOut])
def get_tokens(state: AppState = Depends(get_state)) -> list[dict[str, Any]]:
    """Every token of the project (never the secrets)."""
    return [t.to_json() for t in tokens.list_tokens(state.store, state.spec.name)]


@router.post(
    "/tokens", response_model=NewToken, status_code=201, responses={**NOT_FOUND, **CONFLICT}
)
def post_token(
    body: TokenIn, state: AppState = Depends(get_state), who: Identity = Depends(get_identity)
) -> dict[str, Any]:
    """A new token for a user or a declared consumer; the secret is in this answer only."""
    secret, info = _checked(
        lambda: tokens.create_token(
            state.store,
            state.spec.name,
            body.owner,
            actor=who.actor,
            scope=list(body.scope) if body.scope else None,
            expires_days=body.expires_days,
            consumers=state.spec.serving.consumers,
        )
    )
    return {"token": secret, "info": info.to_json()}


@router.delete("/tokens/{token_id}", response_model=TokenOut, responses={**NOT_FOUND, **CONFLICT})
def delete_token(
    token_id: str = Path(..., max_length=32),
    state: AppState = Depends(get_state),
    who: Identity = Depends(get_identity),
) -> dict[str, Any]:
    """Revoke a token: it stops working at once on this server. Not the one this request
    uses (revoke it with another token, or the CLI)."""
    if token_id == who.token_id:
        raise ConflictError("this request uses that token: revoke it with another, or the CLI")
    info = tokens.revoke_token(state.store, state.spec.name, token_id, actor=who.actor)
    state.gate.forget()
    return info.to_json()


@router.get("/consumers")
def get_consumers(state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Declared consumers: the spec's serving.consumers and those declared here."""
    names = tokens.declared_consumers(state.store, state.spec.name, state.spec.serving.consumers)
    return {"consumers": names, "require_consumer": state.spec.serving.require_consumer}


@router.post("/consumers", status_code=201, responses={**CONFLICT, **BAD_INPUT})
def post_consumer(
    body: ConsumerIn, state: AppState = Depends(get_state), who: Identity = Depends(get_identity)
) -> dict[str, Any]:
    """Declare a consumer and give it its first token (scope query)."""
    _checked(lambda: tokens.declare_consumer(state.store, state.spec.name, body.name,
                                             actor=who.actor))  # fmt: skip
    secret, info = tokens.create_token(
        state.store, state.spec.name, body.name, actor=who.actor, scope=["query"]
    )
    return {"name": body.name, "token": secret, "info": info.to_json()}
