"""API tokens and declared consumers.

A token is 256 random bits shown once; the store keeps only its SHA-256 (a fast hash is right
for random secrets: there is nothing to guess). Each has a public id, an owner (a user of the
project, or a declared consumer, whose tokens may only `query`), a scope that is a subset of the
owner's actions, an optional expiry, when it was last used, and a revocation time.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from mlcrew.errors import AuthError, ConflictError, MlcrewError, NotFoundError
from mlcrew.people.audit import record_in
from mlcrew.people.identity import Identity
from mlcrew.people.roles import Action, actions_of, parse_role, parse_scope
from mlcrew.people.tables import ApiToken, Consumer, RoleGrant
from mlcrew.people.users import check_name
from mlcrew.store import Store, now

PREFIX = "mlc_"
MAX_DAYS = 3650
# last_used is written at most this often per token (a busy consumer must not write per request)
TOUCH_SECONDS = 60
CONSUMER_SCOPE: frozenset[Action] = frozenset({"query"})


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    id: str
    owner: str
    kind: str  # user | consumer
    scope: list[str]
    created: str
    expires: str | None
    last_used: str | None
    revoked: str | None

    @classmethod
    def of(cls, row: ApiToken) -> TokenInfo:
        return cls(
            row.id,
            row.owner or row.consumer or "",
            "consumer" if row.consumer else "user",
            list(row.scope or []),
            row.created_at.isoformat(),
            _iso(row.expires_at),
            _iso(row.last_used_at),
            _iso(row.revoked_at),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "kind": self.kind,
            "scope": self.scope,
            "created": self.created,
            "expires": self.expires,
            "last_used": self.last_used,
            "revoked": self.revoked,
        }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def declared_consumers(store: Store, project: str, from_spec: Iterable[str] = ()) -> list[str]:
    """Consumers named in the spec's serving.consumers plus those declared through the API."""
    with store.session() as s:
        stored = s.scalars(select(Consumer.name).where(Consumer.project == project)).all()
    return sorted({*from_spec, *stored})


def declare_consumer(store: Store, project: str, name: str, *, actor: str) -> None:
    check_name(name, "consumer name")
    with store.session() as s:
        if s.get(Consumer, (project, name)) is not None:
            raise ConflictError(f"consumer {name} is declared already")
        s.add(Consumer(project=project, name=name, created_at=now()))
        record_in(s, project, actor, "consumer.declare", name)


def create_token(
    store: Store,
    project: str,
    owner: str,
    *,
    actor: str,
    scope: list[str] | None = None,
    expires_days: int | None = None,
    consumers: Iterable[str] = (),
) -> tuple[str, TokenInfo]:
    """A new token for a user of the project or a declared consumer: (the secret, its record).
    The secret is returned once and never stored."""
    check_name(owner, "token owner")
    if expires_days is not None and not 1 <= expires_days <= MAX_DAYS:
        raise MlcrewError(f"--expires must be from 1 to {MAX_DAYS} days, got {expires_days}")
    at = now()
    with store.session() as s:
        grant = s.get(RoleGrant, (project, owner))
        consumer = None
        if grant is not None:
            role = parse_role(grant.role)
            allowed = actions_of(role, bool(grant.external))
        elif owner in set(consumers) or s.get(Consumer, (project, owner)) is not None:
            consumer, allowed = owner, CONSUMER_SCOPE
        else:
            raise NotFoundError(
                f"{owner!r} is neither a user of {project} nor a declared consumer: add them "
                f"(mlcrew user add {owner} --role ROLE) or declare the consumer "
                "(serving.consumers in mlcrew.yaml)"
            )
        chosen = parse_scope(scope, allowed) if scope else sorted(allowed)
        secret = PREFIX + secrets.token_urlsafe(32)
        row = ApiToken(
            id="tok_" + secrets.token_hex(6),
            project=project,
            digest=digest(secret),
            owner=None if consumer else owner,
            consumer=consumer,
            scope=list(chosen),
            created_at=at,
            expires_at=at + timedelta(days=expires_days) if expires_days else None,
        )
        s.add(row)
        details = {"id": row.id, "scope": row.scope, "expires": _iso(row.expires_at)}
        record_in(s, project, actor, "token.create", owner, details)
        s.flush()
        return secret, TokenInfo.of(row)


def list_tokens(store: Store, project: str) -> list[TokenInfo]:
    with store.session() as s:
        rows = s.scalars(
            select(ApiToken).where(ApiToken.project == project).order_by(ApiToken.created_at)
        ).all()
        return [TokenInfo.of(r) for r in rows]


def revoke_token(store: Store, project: str, token_id: str, *, actor: str) -> TokenInfo:
    with store.session() as s:
        row = s.get(ApiToken, token_id[:32])
        if row is None or row.project != project:
            raise NotFoundError(f"no token {token_id[:32]!r} in {project}; see mlcrew token list")
        if row.revoked_at is None:
            row.revoked_at = now()
            record_in(s, project, actor, "token.revoke", row.owner or row.consumer or "", {
                "id": row.id
            })  # fmt: skip
        s.flush()
        return TokenInfo.of(row)


def resolve_token(
    store: Store, project: str, secret: str, consumers: Iterable[str] = ()
) -> Identity:
    """The identity a bearer token stands for; AuthError saying why when it stands for none."""
    from mlcrew.people.users import grant_identity

    if not secret.startswith(PREFIX) or len(secret) > 100:
        raise AuthError("the bearer token is not an mlcrew token (they start with mlc_)")
    at = now()
    with store.session() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.digest == digest(secret))).first()
        if row is None or row.project != project:
            raise AuthError("unknown token: create one with mlcrew token create NAME")
        if row.revoked_at is not None:
            raise AuthError(f"token {row.id} was revoked on {row.revoked_at:%Y-%m-%d %H:%M} UTC")
        if row.expires_at is not None and row.expires_at <= at:
            raise AuthError(f"token {row.id} expired on {row.expires_at:%Y-%m-%d %H:%M} UTC")
        if row.last_used_at is None or (at - row.last_used_at).total_seconds() > TOUCH_SECONDS:
            row.last_used_at = at
        token_id, owner, consumer = row.id, row.owner, row.consumer
        scope: frozenset[Action] = frozenset(row.scope or [])
    if consumer is not None:
        if consumer not in set(consumers) and not _stored_consumer(store, project, consumer):
            raise AuthError(f"token {token_id} belongs to {consumer}, no longer a consumer")
        return Identity(consumer, "token", scope & CONSUMER_SCOPE, consumer=consumer,
                        token_id=token_id)  # fmt: skip
    user = grant_identity(store, project, owner or "", "token")
    if user is None:
        raise AuthError(f"token {token_id} belongs to {owner}, who is no longer in {project}")
    return Identity(
        user.name, "token", scope & user.actions, user.role, user.external, token_id=token_id
    )


def _stored_consumer(store: Store, project: str, name: str) -> bool:
    with store.session() as s:
        return s.get(Consumer, (project, name)) is not None


def token_projects(store: Store, secret: str) -> set[str]:
    """The projects a valid token's holder may see listed: where its owner has a role (only
    the token's own project for a consumer or an external labeler). AuthError when the token
    stands for nobody."""
    if not secret.startswith(PREFIX) or len(secret) > 100:
        raise AuthError("the bearer token is not an mlcrew token (they start with mlc_)")
    at = now()
    with store.session() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.digest == digest(secret))).first()
        if row is None or row.revoked_at is not None:
            raise AuthError("unknown or revoked token: create one with mlcrew token create NAME")
        if row.expires_at is not None and row.expires_at <= at:
            raise AuthError(f"token {row.id} expired on {row.expires_at:%Y-%m-%d %H:%M} UTC")
        if row.consumer is not None or row.owner is None:
            return {row.project}
        grants = s.scalars(select(RoleGrant).where(RoleGrant.user == row.owner)).all()
        visible = {g.project for g in grants if not g.external}
        return visible | {row.project} if row.project in {g.project for g in grants} else visible
