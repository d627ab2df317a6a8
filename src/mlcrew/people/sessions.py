"""Web sessions: the cookie holds 256 random bits, the store their SHA-256, the user, an expiry
and the session's CSRF token (sent back in forms and the X-CSRF-Token header)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete

from mlcrew.people.identity import Identity
from mlcrew.people.tables import WebSession
from mlcrew.people.users import grant_identity
from mlcrew.store import Store, now

COOKIE = "mlcrew_session"
LOGIN_CSRF_COOKIE = "mlcrew_login_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
LIFETIME = timedelta(hours=12)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


def start_session(store: Store, project: str, user: str) -> tuple[str, str]:
    """A new session for `user`: (the cookie value, its CSRF token)."""
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    at = now()
    with store.session() as s:
        s.execute(delete(WebSession).where(WebSession.expires_at <= at))  # sweep the stale
        s.add(
            WebSession(
                digest=_digest(session_id),
                project=project,
                user=user,
                csrf=csrf,
                created_at=at,
                expires_at=at + LIFETIME,
            )
        )
    return session_id, csrf


def find_session(store: Store, project: str, session_id: str) -> Identity | None:
    """The signed-in user of a live session of this project (None: expired, ended or unknown)."""
    if len(session_id) > 100:
        return None
    with store.session() as s:
        row = s.get(WebSession, _digest(session_id))
        if row is None or row.project != project or row.expires_at <= now():
            return None
        user, csrf = row.user, row.csrf
    who = grant_identity(store, project, user, "session")
    if who is None:
        return None
    return Identity(who.name, "session", who.actions, who.role, who.external, csrf=csrf)


def end_session(store: Store, session_id: str) -> None:
    with store.session() as s:
        s.execute(delete(WebSession).where(WebSession.digest == _digest(session_id)))
