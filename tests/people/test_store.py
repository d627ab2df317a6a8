"""People, tokens, sessions and the audit log in the metadata store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from mlcrew.errors import AuthError, ConflictError, MlcrewError, NotFoundError
from mlcrew.people import audit, sessions, tokens, users
from mlcrew.people.roles import MATRIX
from mlcrew.people.tables import ApiToken, WebSession
from mlcrew.store import Store, now

P = "bike-demand"


@pytest.fixture()
def store(db_url: str, tmp_path: Path) -> Store:
    return Store(db_url, tmp_path / "artifacts")


def test_users_roles_and_the_last_admin(store: Store) -> None:
    users.add_user(store, P, "ann", "admin", actor="root", password="a-long-password")
    users.add_user(store, P, "bob", "labeler", actor="ann", external=True)
    users.add_user(store, "other", "bob", "viewer", actor="ann")  # one user, two projects
    listed = {u.name: u for u in users.list_users(store, P)}
    assert listed["ann"].role == "admin" and listed["ann"].has_password
    assert listed["bob"].external and not listed["bob"].has_password
    assert users.count_users(store, P) == (2, 1)
    with pytest.raises(ConflictError, match="already in bike-demand"):
        users.add_user(store, P, "bob", "viewer", actor="ann")
    with pytest.raises(MlcrewError, match="--external is for outsourced labelers"):
        users.add_user(store, P, "cid", "viewer", actor="ann", external=True)
    with pytest.raises(MlcrewError, match="too short"):
        users.add_user(store, P, "cid", "viewer", actor="ann", password="short")
    with pytest.raises(MlcrewError, match="not valid"):
        users.add_user(store, P, "no spaces", "viewer", actor="ann")
    with pytest.raises(ConflictError, match="last admin"):
        users.remove_user(store, P, "ann", actor="root")
    users.remove_user(store, P, "bob", actor="ann")
    assert [u.name for u in users.list_users(store, P)] == ["ann"]
    assert [u.name for u in users.list_users(store, "other")] == ["bob"]  # still there
    with pytest.raises(NotFoundError):
        users.remove_user(store, P, "bob", actor="ann")
    users.remove_user(store, P, "ann", actor="root")  # the only person: may go
    assert users.count_users(store, P) == (0, 0)


def test_passwords_are_argon2_and_checked(store: Store) -> None:
    users.add_user(store, P, "ann", "scientist", actor="root", password="a-long-password")
    who = users.check_password(store, P, "ann", "a-long-password")
    assert who is not None and who.role == "scientist" and who.may("run_pipelines")
    assert not who.may("promote")
    assert users.check_password(store, P, "ann", "a-wrong-password") is None
    assert users.check_password(store, P, "nobody", "a-long-password") is None
    assert users.check_password(store, "other", "ann", "a-long-password") is None  # not in it
    stored = {u.name: u for u in users.list_users(store, P)}
    assert stored["ann"].has_password


def test_tokens_scope_expiry_revocation(store: Store) -> None:
    users.add_user(store, P, "eve", "engineer", actor="root")
    secret, info = tokens.create_token(store, P, "eve", actor="root", scope=["query,promote"])
    assert secret.startswith("mlc_") and len(secret) > 40 and info.scope == ["query", "promote"]
    who = tokens.resolve_token(store, P, secret)
    assert who.name == "eve" and who.actions == {"query", "promote"} and who.token_id == info.id
    with pytest.raises(MlcrewError, match="may not manage people"):
        tokens.create_token(store, P, "eve", actor="root", scope=["manage_people"])
    with pytest.raises(MlcrewError, match="unknown action"):
        tokens.create_token(store, P, "eve", actor="root", scope=["fly"])
    with pytest.raises(NotFoundError, match="neither a user"):
        tokens.create_token(store, P, "zed", actor="root")
    # Only the hash is kept.
    with store.session() as s:
        row = s.get(ApiToken, info.id)
        assert (
            row is not None
            and row.digest == tokens.digest(secret)
            and secret not in str(row.__dict__)
        )
        assert row.last_used_at is not None
    # Expired.
    late, late_info = tokens.create_token(store, P, "eve", actor="root", expires_days=1)
    tokens.resolve_token(store, P, late)
    with store.session() as s:
        s.execute(
            update(ApiToken)
            .where(ApiToken.id == late_info.id)
            .values(expires_at=now() - timedelta(minutes=1))
        )
    with pytest.raises(AuthError, match="expired"):
        tokens.resolve_token(store, P, late)
    # Revoked.
    tokens.revoke_token(store, P, info.id, actor="root")
    with pytest.raises(AuthError, match="revoked"):
        tokens.resolve_token(store, P, secret)
    with pytest.raises(AuthError, match="unknown token"):
        tokens.resolve_token(store, P, "mlc_" + "x" * 43)
    with pytest.raises(AuthError, match="unknown token"):
        tokens.resolve_token(store, "other", late)  # another project's
    listed = {t.id: t for t in tokens.list_tokens(store, P)}
    assert listed[info.id].revoked is not None and listed[late_info.id].expires is not None
    # Removing a person revokes their tokens.
    third, _ = tokens.create_token(store, P, "eve", actor="root")
    users.remove_user(store, P, "eve", actor="root")
    with pytest.raises(AuthError, match="revoked"):
        tokens.resolve_token(store, P, third)


def test_consumer_tokens_only_query(store: Store) -> None:
    with pytest.raises(NotFoundError):
        tokens.create_token(store, P, "checkout", actor="root")
    secret, info = tokens.create_token(store, P, "checkout", actor="root", consumers=["checkout"])
    assert info.kind == "consumer" and info.scope == ["query"]
    who = tokens.resolve_token(store, P, secret, ["checkout"])
    assert who.consumer == "checkout" and who.actions == {"query"}
    with pytest.raises(AuthError, match="no longer a consumer"):
        tokens.resolve_token(store, P, secret, [])  # taken out of the spec
    tokens.declare_consumer(store, P, "billing", actor="root")
    assert tokens.declared_consumers(store, P, ["checkout"]) == ["billing", "checkout"]
    bill, _ = tokens.create_token(store, P, "billing", actor="root")
    assert tokens.resolve_token(store, P, bill).consumer == "billing"


def test_sessions_expire_and_end(store: Store) -> None:
    users.add_user(store, P, "ann", "viewer", actor="root", password="a-long-password")
    session_id, csrf = sessions.start_session(store, P, "ann")
    who = sessions.find_session(store, P, session_id)
    assert who is not None and who.name == "ann" and who.csrf == csrf and who.via == "session"
    assert sessions.find_session(store, "other", session_id) is None
    assert sessions.find_session(store, P, session_id + "x") is None
    with store.session() as s:
        assert s.get(WebSession, session_id) is None  # stored hashed, not as the cookie value
        s.execute(update(WebSession).values(expires_at=now() - timedelta(seconds=1)))
    assert sessions.find_session(store, P, session_id) is None
    again, _ = sessions.start_session(store, P, "ann")
    sessions.end_session(store, again)
    assert sessions.find_session(store, P, again) is None


def test_every_change_is_audited(store: Store) -> None:
    users.add_user(store, P, "ann", "admin", actor="root")
    _, info = tokens.create_token(store, P, "ann", actor="ann")
    tokens.revoke_token(store, P, info.id, actor="ann")
    users.add_user(store, P, "bob", "viewer", actor="ann")
    users.remove_user(store, P, "bob", actor="ann")
    got = [(e.actor, e.action, e.target) for e in audit.events(store, P)]
    assert got == [
        ("ann", "user.remove", "bob"),
        ("ann", "user.add", "bob"),
        ("ann", "token.revoke", "ann"),
        ("ann", "token.create", "ann"),
        ("root", "user.add", "ann"),
    ]
    assert audit.events(store, "other") == []
    assert MATRIX["admin"] >= MATRIX["manager"]
