"""Who may see `mlcrew server`'s own pages (the project list): a holder of a valid token, who
sees the projects they have a role in. Each project's routes are guarded by that project's
`Gate` (people/gate.py); this authorizer only answers for the host's pages."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from mlcrew.api.authorize import Action, Refusal
from mlcrew.errors import AuthError
from mlcrew.people.tokens import token_projects
from mlcrew.store import Store

# Where the host puts the projects the caller may see listed.
VISIBLE_KEY = "mlcrew.visible_projects"
OPEN_PATHS = ("/healthz", "/static/style.css")
SIGN_IN = (
    "sign in: send 'Authorization: Bearer TOKEN' (mlcrew token create NAME -p DIR), or open "
    "/p/PROJECT/ in a browser to sign in there"
)


class SignedInHost:
    """An `Authorizer` for `mlcrew server`: the project list needs a valid token."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def check(
        self, project: str | None, action: Action, scope: MutableMapping[str, Any]
    ) -> Refusal | None:
        if project is not None or scope.get("path") in OPEN_PATHS:
            return None
        bearer = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                bearer = value.decode("latin-1")
        challenge = ((b"www-authenticate", b'Bearer realm="mlcrew"'),)
        if bearer is None or not bearer.lower().startswith("bearer "):
            return Refusal(401, SIGN_IN, challenge)
        try:
            scope[VISIBLE_KEY] = token_projects(self.store, bearer[7:].strip())
        except AuthError as exc:
            return Refusal(401, str(exc), challenge)
        return None
