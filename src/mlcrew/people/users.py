"""People of a project: users (argon2 password hashes) and their one role grant per project."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from mlcrew.errors import ConflictError, MlcrewError, NotFoundError
from mlcrew.people.audit import record_in
from mlcrew.people.identity import Identity
from mlcrew.people.roles import Role, actions_of, parse_role
from mlcrew.people.tables import ApiToken, RoleGrant, User, WebSession
from mlcrew.store import Store, now

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
NAME_RULE = "1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024


@dataclass(frozen=True)
class UserInfo:
    name: str
    role: str
    external: bool
    created: str
    disabled: bool
    has_password: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "external": self.external,
            "created": self.created,
            "disabled": self.disabled,
            "has_password": self.has_password,
        }


def check_name(name: str, what: str = "user name") -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise MlcrewError(f"{what} {name[:64]!r} is not valid: use {NAME_RULE}")
    return name


def _hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise MlcrewError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise MlcrewError(f"the password is too long: use at most {MAX_PASSWORD} characters")
    return str(_hasher().hash(password))


def add_user(
    store: Store,
    project: str,
    name: str,
    role: Role,
    *,
    actor: str,
    external: bool = False,
    password: str | None = None,
) -> UserInfo:
    """Grant `role` in `project` to `name`, creating the user if new (with the password, if
    given; a user without one uses tokens only)."""
    check_name(name)
    if external and role != "labeler":
        raise MlcrewError("--external is for outsourced labelers: use it with --role labeler")
    hashed = hash_password(password) if password is not None else None
    at = now()
    with store.session() as s:
        user = s.get(User, name)
        if user is None:
            user = User(name=name, password_hash=hashed, created_at=at, disabled=False)
            s.add(user)
        elif hashed is not None:
            user.password_hash = hashed
        if s.get(RoleGrant, (project, name)) is not None:
            raise ConflictError(
                f"{name} is already in {project}; remove them first to change the role "
                f"(mlcrew user remove {name})"
            )
        s.add(RoleGrant(project=project, user=name, role=role, external=external, created_at=at))
        details = {"role": role, "external": external}
        record_in(s, project, actor, "user.add", name, details)
        s.flush()
        return UserInfo(name, role, external, at.isoformat(), user.disabled, bool(hashed))


def remove_user(store: Store, project: str, name: str, *, actor: str) -> None:
    """Take `name` out of `project`: the grant, their tokens and sessions there go; the user
    goes too once no project holds them. The last admin stays while others remain."""
    with store.session() as s:
        grant = s.get(RoleGrant, (project, name))
        if grant is None:
            raise NotFoundError(f"{name[:64]!r} is not in {project}; see mlcrew user list")
        if grant.role == "admin":
            admins = _count(s, project, admin=True)
            others = _count(s, project) - 1
            if admins == 1 and others > 0:
                raise ConflictError(
                    f"{name} is the last admin of {project} and others remain: add another "
                    "admin first (mlcrew user add NAME --role admin --password-stdin)"
                )
        s.delete(grant)
        s.execute(
            update(ApiToken)
            .where(
                ApiToken.project == project, ApiToken.owner == name, ApiToken.revoked_at.is_(None)
            )
            .values(revoked_at=now())
        )
        s.execute(delete(WebSession).where(WebSession.project == project, WebSession.user == name))
        s.flush()
        left = s.scalar(select(func.count()).select_from(RoleGrant).where(RoleGrant.user == name))
        if not left:
            user = s.get(User, name)
            if user is not None:
                s.delete(user)
        record_in(s, project, actor, "user.remove", name, {"role": grant.role})


def _count(s: Session, project: str, admin: bool = False) -> int:
    query = select(func.count()).select_from(RoleGrant).where(RoleGrant.project == project)
    if admin:
        query = query.where(RoleGrant.role == "admin")
    return int(s.scalar(query) or 0)


def count_admins_anywhere(store: Store) -> int:
    """Enabled admins of any project of the store (what `mlcrew server` needs to start)."""
    with store.session() as s:
        query = (
            select(func.count())
            .select_from(RoleGrant)
            .join(User, User.name == RoleGrant.user)
            .where(RoleGrant.role == "admin", User.disabled.is_(False))
        )
        return int(s.scalar(query) or 0)


def list_users(store: Store, project: str) -> list[UserInfo]:
    with store.session() as s:
        rows = s.execute(
            select(RoleGrant, User)
            .join(User, User.name == RoleGrant.user)
            .where(RoleGrant.project == project)
            .order_by(RoleGrant.user)
        ).all()
        return [
            UserInfo(
                u.name,
                g.role,
                bool(g.external),
                _iso(u.created_at),
                bool(u.disabled),
                u.password_hash is not None,
            )
            for g, u in rows
        ]


def _iso(at: datetime) -> str:
    return at.isoformat()


def count_users(store: Store, project: str) -> tuple[int, int]:
    """(people, admins) of the project."""
    with store.session() as s:
        return _count(s, project), _count(s, project, admin=True)


def grant_identity(store: Store, project: str, name: str, via: Any) -> Identity | None:
    """The identity of an enabled user of the project (None if not in it, or disabled)."""
    with store.session() as s:
        row = s.execute(
            select(RoleGrant, User)
            .join(User, User.name == RoleGrant.user)
            .where(RoleGrant.project == project, RoleGrant.user == name)
        ).first()
        if row is None or row[1].disabled:
            return None
        grant = row[0]
        role = parse_role(grant.role)
        return Identity(
            name, via, actions_of(role, bool(grant.external)), role, bool(grant.external)
        )


_DUMMY: dict[str, str] = {}


def check_password(store: Store, project: str, name: str, password: str) -> Identity | None:
    """The user's identity if the password is theirs; None otherwise (unknown users cost the
    same hashing time, so timing does not tell who exists)."""
    from argon2.exceptions import InvalidHashError, VerificationError

    hasher = _hasher()
    with store.session() as s:
        user = s.get(User, name) if NAME_PATTERN.fullmatch(name) else None
        stored = user.password_hash if user is not None else None
    if stored is None:
        if "hash" not in _DUMMY:
            _DUMMY["hash"] = hasher.hash("not a password of anyone")
        stored, user = _DUMMY["hash"], None
    try:
        hasher.verify(stored, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    return grant_identity(store, project, name, "session")
