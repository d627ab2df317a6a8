"""The one check every request passes, in the service's outer layer: who is asking (bearer
token, session cookie, the local owner, or nobody) and whether the route's action is theirs.

Authentication is required once the project has people, or when the server listens beyond
loopback; until then the local owner (the OS user) has every right, as before people existed.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

from mlcrew.errors import AuthError, MlcrewError
from mlcrew.people.identity import ANONYMOUS, Identity, local_owner
from mlcrew.people.limits import LoginLimiter
from mlcrew.people.roles import DESCRIPTIONS
from mlcrew.people.routes import ROUTES, key
from mlcrew.people.sessions import COOKIE, CSRF_HEADER, LOGIN_CSRF_COOKIE
from mlcrew.spec import Serving
from mlcrew.store import Store

IDENTITY = "mlcrew.identity"  # where the identity waits in the ASGI scope for the routes
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CACHE_SECONDS = 2.0
# The interface `mlcrew serve` listens on, for its worker processes.
LISTEN_ENV = "MLCREW_LISTEN_HOST"
ADD_ADMIN = "mlcrew user add NAME --role admin --password-stdin"


@dataclass(frozen=True)
class Denial:
    status: int
    detail: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


def is_loopback(host: str | None) -> bool:
    if host is None or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class NoAdmin(MlcrewError):
    """The server needs sign-ins but the project has no admin to give anyone access."""

    exit_code = 2


def require_an_admin(store: Store) -> None:
    """`mlcrew server` always requires sign-in: refuse to start while nobody could sign in as an
    admin of any project of the store."""
    from mlcrew.people.users import count_admins_anywhere

    if count_admins_anywhere(store) == 0:
        raise NoAdmin(
            "mlcrew server requires sign-in, but no project of this store has an admin: create "
            f"one in a project folder that uses this store with `{ADD_ADMIN} -p DIR`"
        )


class Gate:
    def __init__(
        self,
        store: Store,
        project: str,
        serving: Serving,
        listen_host: str | None = None,
        *,
        require: bool = False,
    ) -> None:
        self.store, self.project, self.serving = store, project, serving
        # `require`: sign-in whatever the address (`mlcrew server`, which checks for an admin
        # in the whole store at start: a project's members may sign in without one of its own).
        self.hosted = require
        self.exposed = require or not is_loopback(listen_host)
        self.limiter = LoginLimiter()
        self.owner = local_owner()
        self._people: tuple[float, int, int] = (-1e9, 0, 0)
        self._tokens: dict[str, tuple[float, Identity | AuthError]] = {}
        self._lock = threading.Lock()

    # -- when sign-in is needed ---------------------------------------------------------------
    def counts(self, fresh: bool = False) -> tuple[int, int]:
        """(people, admins) of the project, re-read at most every CACHE_SECONDS."""
        from mlcrew.people.users import count_users

        at, people, admins = self._people
        if fresh or time.monotonic() - at > CACHE_SECONDS:
            people, admins = count_users(self.store, self.project)
            self._people = (time.monotonic(), people, admins)
        return people, admins

    def required(self) -> bool:
        return self.exposed or self.counts()[0] > 0

    def check_startup(self) -> None:
        """Refuse to serve when sign-ins are needed and nobody could sign in as an admin."""
        if self.hosted:
            return
        people, admins = self.counts(fresh=True)
        if (self.exposed or people) and not admins:
            why = "it listens beyond loopback" if self.exposed else "the project has people"
            raise NoAdmin(
                f"this server requires sign-in ({why}) but {self.project} has no admin: "
                f"create one with `{ADD_ADMIN}`"
            )

    def forget(self) -> None:
        """Drop cached answers (after a revocation or a people change in this process)."""
        with self._lock:
            self._tokens.clear()
            self._people = (-1e9, 0, 0)

    # -- who is asking ------------------------------------------------------------------------
    def consumers(self) -> list[str]:
        return list(self.serving.consumers)

    def identify(self, headers: list[tuple[bytes, bytes]]) -> Identity:
        """The caller; AuthError for a bearer token that stands for nobody."""
        bearer = cookie = None
        for name, value in headers:
            if name == b"authorization":
                bearer = value.decode("latin-1")
            elif name == b"cookie":
                cookie = value.decode("latin-1")
        if bearer is not None:
            scheme, _, secret = bearer.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                raise AuthError("send the token as 'Authorization: Bearer TOKEN'")
            return self._token(secret.strip())
        if cookie is not None:
            session_id = cookies(cookie).get(COOKIE)
            if session_id:
                from mlcrew.people.sessions import find_session

                found = find_session(self.store, self.project, session_id)
                if found is not None:
                    return found
        return ANONYMOUS if self.required() else self.owner

    def _token(self, secret: str) -> Identity:
        from mlcrew.people.tokens import digest, resolve_token

        cache_key = digest(secret)
        hit = self._tokens.get(cache_key)
        if hit is None or time.monotonic() - hit[0] > CACHE_SECONDS:
            answer: Identity | AuthError
            try:
                answer = resolve_token(self.store, self.project, secret, self.consumers())
            except AuthError as exc:
                answer = exc
            with self._lock:
                if len(self._tokens) > 10_000:
                    self._tokens.clear()
                self._tokens[cache_key] = (time.monotonic(), answer)
            hit = self._tokens[cache_key]
        if isinstance(hit[1], AuthError):
            raise hit[1]
        return hit[1]

    # -- may they ------------------------------------------------------------------------------
    def admit(
        self, scope: MutableMapping[str, Any], template: str | None, form_csrf: str | None = None
    ) -> Identity | Denial:
        """The caller if the route's action is theirs (and the session's CSRF token came with a
        state-changing request); else the refusal. `template` None: no route matched."""
        method: str = scope["method"]
        route = key(method, template or "")
        if template is not None and route not in ROUTES:
            return Denial(403, f"{method} {template} declares no action, so nobody may use it")
        action = ROUTES.get(route)
        try:
            who = self.identify(scope["headers"])
        except AuthError as exc:
            if template is not None and action is None:  # an open route: bad credentials
                who = ANONYMOUS  # are no credentials (a probe must not fail on them)
            else:
                return _unauthorised(str(exc))
        scope[IDENTITY] = who
        if template is None:
            return who if who.via != "anonymous" else _unauthorised(_SIGN_IN)
        if action is not None and who.via == "anonymous":
            return _unauthorised(_SIGN_IN)
        if method in UNSAFE and not self._csrf_ok(scope, who, form_csrf):
            return Denial(
                403,
                "missing or wrong CSRF token: reload the page and try again (API callers: "
                f"send the {CSRF_HEADER} header, or use a bearer token)",
            )
        if action is None:
            return who
        if not who.may(action):
            role = f" ({who.role}{', external' if who.external else ''})" if who.role else ""
            if who.token_id is not None:
                role += f" with token {who.token_id}"
            return Denial(403, f"{who.name}{role} may not {DESCRIPTIONS[action]}")
        if action == "query" and self.serving.require_consumer and who.consumer is None:
            return Denial(
                403,
                "this service answers declared consumers only (serving.require_consumer): "
                "ask an admin for a consumer token (mlcrew token create CONSUMER)",
            )
        return who

    def _csrf_ok(self, scope: MutableMapping[str, Any], who: Identity, form: str | None) -> bool:
        if who.via == "session":
            sent = form or header(scope, CSRF_HEADER.encode())
            return sent is not None and hmac.compare_digest(sent, who.csrf or "")
        if who.via == "anonymous":
            # No session yet (the sign-in form): the form's token must match its cookie.
            cookie = cookies(header(scope, b"cookie") or "").get(LOGIN_CSRF_COOKIE)
            return bool(form and cookie and hmac.compare_digest(form, cookie))
        return True  # bearer tokens and the local owner carry no ambient credentials


_SIGN_IN = "sign in at /login, or send 'Authorization: Bearer TOKEN'"


def _unauthorised(detail: str) -> Denial:
    return Denial(401, detail, ((b"www-authenticate", b'Bearer realm="mlcrew"'),))


def header(scope: MutableMapping[str, Any], name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return str(v.decode("latin-1"))
    return None


def cookies(text: str) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(text)
    except Exception:  # a malformed Cookie header is no cookie
        return {}
    return {k: m.value for k, m in jar.items()}


def is_form(scope: MutableMapping[str, Any]) -> bool:
    ctype = header(scope, b"content-type") or ""
    return ctype.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded"
