"""`mlcrew server`: every project of one store, each at `/p/{project}/`, in one ASGI application.

Each project is served by its own `ServiceApp` (the stack of `mlcrew serve`: predict and probes
answered by the outer layer, FastAPI built after start-up) with its spec read from the store (the
spec of its latest run), mounted by path prefix: the project sees `/v1/...` as its path and
`/p/{project}` as its root_path, so its pages link under the prefix. The host itself answers
the project list (`/` as HTML, `/v1/projects` as JSON) and `/healthz`.

The list is re-read from the database at most every `ttl` seconds, and at once (within the
same limit) when a request names a project not yet known: a project created while the server
runs appears without a restart. A project whose latest run used another spec gets a fresh
service; the one it replaces keeps answering its in-flight requests and is closed at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from mlcrew import __version__
from mlcrew.api.authorize import AllowAll, Authorizer, action_of
from mlcrew.api.fastpath import send_response
from mlcrew.errors import MlcrewError, NotFoundError, StoreError
from mlcrew.people.host import VISIBLE_KEY
from mlcrew.spec import parse_spec
from mlcrew.store import ProjectInfo, Store

if TYPE_CHECKING:
    # Types only: importing the serving stack loads prometheus_client, which must see
    # PROMETHEUS_MULTIPROC_DIR (set by `mlcrew server --workers N`) when it first loads.
    from mlcrew.api.app import ServiceApp
    from mlcrew.api.fastpath import Receive, Scope, Send

PREFIX = "/p/"
PROJECTS_TTL = 2.0
# A replaced service answers what it already holds, then closes (its prediction log written).
RETIRE_SECONDS = 30.0
STATIC = Path(__file__).parents[1] / "web" / "static"
_JSON = b"application/json"


@dataclass
class Mounted:
    """A project's service and the spec it was built from."""

    app: ServiceApp
    spec_digest: str


class HostApp:
    """The ASGI application of `mlcrew server`."""

    def __init__(
        self,
        store: Store,
        *,
        authorizer: Authorizer | None = None,
        ttl: float = PROJECTS_TTL,
        access_log: bool | None = None,
        require_sign_in: bool = False,
    ) -> None:
        # require_sign_in: every project's routes need a token or a session whatever the
        # address (`mlcrew server` sets it); without it each project's gate decides as under
        # `mlcrew serve` (people in the project or a non-loopback address).
        self.require_sign_in = require_sign_in
        self.store = store
        self.authorizer: Authorizer = authorizer or AllowAll()
        self.ttl = ttl
        self.access_log = access_log
        self._projects: dict[str, ProjectInfo] = {}
        self._read_at = float("-inf")
        self._mounted: dict[str, Mounted] = {}
        self._retired: list[ServiceApp] = []
        self._lock = threading.Lock()  # one service built per project at a time

    # -- the project list
    def projects(self, *, fresh: bool = False) -> dict[str, ProjectInfo]:
        """The store's projects, re-read when older than `ttl` (or when `fresh` and older
        than a tenth of it, so unknown names cannot make every request hit the database)."""
        age = time.monotonic() - self._read_at
        if age >= self.ttl or (fresh and age >= self.ttl / 10):
            self._projects = {p.name: p for p in self.store.projects()}
            self._read_at = time.monotonic()
        return self._projects

    def service(self, name: str) -> ServiceApp:
        """The project's service, built (and started) on first need or when its spec changed.
        Blocking: database and model loading; call it off the event loop."""
        info = self.projects().get(name) or self.projects(fresh=True).get(name)
        if info is None:
            raise NotFoundError(
                f"no project named {name[:64]!r} in this store; the list is at /v1/projects"
            )
        if info.spec_digest is None:
            raise NotFoundError(
                f"project {name!r} has no run yet; run 'mlcrew run' (or 'mlcrew label import') in "
                "its folder (with this store's --db and --artifacts)"
            )
        mounted = self._mounted.get(name)
        if mounted is not None and mounted.spec_digest == info.spec_digest:
            return mounted.app
        with self._lock:
            mounted = self._mounted.get(name)
            if mounted is not None and mounted.spec_digest == info.spec_digest:
                return mounted.app
            app = self._build(info.name, info.spec_digest)
            self._mounted[name] = Mounted(app, info.spec_digest)
            if mounted is not None:
                self._retire(mounted.app)
            return app

    def _retire(self, app: ServiceApp) -> None:
        """Close a replaced service once its in-flight requests are done. Only its own parts:
        `ServiceApp.shutdown` also resets process-wide settings the other services rely on."""
        self._retired.append(app)

        def close() -> None:
            if app in self._retired:
                self._retired.remove(app)
                _close_service(app)

        timer = threading.Timer(RETIRE_SECONDS, close)
        timer.daemon = True
        timer.start()

    def _current(self, name: str) -> ServiceApp | None:
        """The project's service when the list is fresh and its spec unchanged: the path of
        nearly every request, which then touches neither the database nor a thread."""
        if time.monotonic() - self._read_at >= self.ttl:
            return None
        info, mounted = self._projects.get(name), self._mounted.get(name)
        if info is None or mounted is None or mounted.spec_digest != info.spec_digest:
            return None
        return mounted.app

    def _build(self, name: str, spec_digest: str) -> ServiceApp:
        from mlcrew.api.app import create_app

        store = self.store.for_project(name)
        try:
            text = store.artifacts.read_bytes(spec_digest).decode()
        except NotFoundError as exc:
            raise StoreError(
                f"the spec of its latest run is not in the artifact store ({exc}); is "
                "--artifacts the store its runs used?"
            ) from None
        spec = parse_spec(text, f"{name} (spec of its latest run, {spec_digest[:12]})")
        app = create_app(
            None, spec, store, access_log=self.access_log, require_sign_in=self.require_sign_in
        )
        app.startup()
        return app

    # -- ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        full: str = scope["path"]
        root: str = str(scope.get("root_path", "")).rstrip("/")
        path = (full[len(root) :] or "/") if root and full.startswith(root) else full
        if path.startswith(PREFIX):
            await self._project(scope, receive, send, path)
            return
        refusal = self.authorizer.check(None, action_of(scope["method"], path), scope)
        if refusal is not None:
            await _reply(send, refusal.status, {"detail": refusal.detail}, refusal.headers)
        elif scope["method"] not in ("GET", "HEAD"):
            await _reply(send, 405, {"detail": "only GET here"}, ((b"allow", b"GET"),))
        elif path == "/v1/projects":
            listing = await asyncio.to_thread(self._listing, scope.get(VISIBLE_KEY))
            await _reply(send, 200, {"projects": listing})
        elif path == "/":
            listing = await asyncio.to_thread(self._listing, scope.get(VISIBLE_KEY))
            await send_response(
                send, 200, _page(listing, root).encode(), b"text/html; charset=utf-8"
            )
        elif path == "/healthz":
            await _reply(send, 200, {"status": "ok", "version": __version__})
        elif path == "/static/style.css":
            css = (STATIC / "style.css").read_bytes()
            await send_response(send, 200, css, b"text/css; charset=utf-8")
        else:
            detail = f"nothing at {path[:200]}; projects are served under /p/NAME/ (see /)"
            await _reply(send, 404, {"detail": detail})

    async def _project(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        name, slash, rest = path[len(PREFIX) :].partition("/")
        if not slash:  # /p/name -> /p/name/, so the page's relative links resolve
            root = str(scope.get("root_path", "")).rstrip("/")
            location = f"{root}{PREFIX}{name}/".encode("latin-1", "replace")
            await send_response(send, 308, b"", b"text/plain", ((b"location", location),))
            return
        inner = "/" + rest
        refusal = self.authorizer.check(name, action_of(scope["method"], inner), scope)
        if refusal is not None:
            await _reply(send, refusal.status, {"detail": refusal.detail}, refusal.headers)
            return
        app = self._current(name)
        try:
            if app is None:
                app = await asyncio.to_thread(self.service, name)
        except NotFoundError as exc:
            await _reply(send, 404, {"detail": str(exc)})
            return
        except MlcrewError as exc:
            await _reply(send, 503, {"detail": f"project {name!r} cannot be served: {exc}"[:600]})
            return
        app.build_soon()
        # ASGI's convention (Starlette's too): `path` keeps the prefix, `root_path` names it.
        child = dict(scope)
        child["root_path"] = str(scope.get("root_path", "")).rstrip("/") + f"{PREFIX}{name}"
        await app(child, receive, send)

    def _listing(self, visible: set[str] | None = None) -> list[dict[str, str | None]]:
        """Every project, or those in `visible` (what the authorizer let the caller see)."""
        return [
            {**p.to_json(), "url": f"{PREFIX}{p.name}/"}
            for p in self.projects(fresh=True).values()
            if visible is None or p.name in visible
        ]

    def startup(self) -> None:
        """Serve every project that has a run from the first request on."""
        for name, info in self.projects(fresh=True).items():
            if info.spec_digest is not None:
                with contextlib.suppress(MlcrewError):
                    self.service(name)

    def shutdown(self) -> None:
        for app in [m.app for m in self._mounted.values()] + self._retired:
            with contextlib.suppress(Exception):
                app.shutdown()
        self._mounted.clear()
        self._retired.clear()
        self.store.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await asyncio.to_thread(self.startup)
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)[:500]})
                    return
                for mounted in self._mounted.values():
                    mounted.app.build_soon()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self.shutdown)
                await send({"type": "lifespan.shutdown.complete"})
                return


def _page(listing: list[dict[str, str | None]], root: str) -> str:
    """The host's front page: each project with a link to its overview."""
    rows = "".join(
        f'<tr><td><a href="{root}{html.escape(str(p["url"]))}">{html.escape(str(p["name"]))}'
        f"</a></td><td>{html.escape(str(p['updated_at'] or 'no run yet'))}</td></tr>"
        for p in listing
    )
    body = (
        f'<table class="metrics" data-testid="projects"><thead><tr><th>project</th>'
        f"<th>latest run started</th></tr></thead><tbody>{rows}</tbody></table>"
        if listing
        else '<p class="empty">No project in this store yet. Point a project at it '
        "(MLCREW_DB_URL, MLCREW_ARTIFACTS) and run 'mlcrew run'.</p>"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>projects · mlcrew</title><link rel="stylesheet" href="{root}/static/style.css">'
        '</head><body><header><h1><span class="brand">mlcrew</span> projects</h1>'
        f'<p class="muted">JSON at <a href="{root}/v1/projects">/v1/projects</a></p></header>'
        f'<main><section class="card">{body}</section></main></body></html>'
    )


async def _reply(
    send: Send, status: int, doc: object, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    await send_response(send, status, orjson.dumps(doc), _JSON, headers)


def host_from_env() -> HostApp:
    """The host of the store named by MLCREW_DB_URL and MLCREW_ARTIFACTS (for worker processes)."""
    import os

    from mlcrew.errors import ProjectError

    url, artifacts = os.environ.get("MLCREW_DB_URL"), os.environ.get("MLCREW_ARTIFACTS")
    if not url or not artifacts:
        raise ProjectError("set MLCREW_DB_URL and MLCREW_ARTIFACTS to the store to serve")
    from mlcrew.people.host import SignedInHost

    store = open_host_store(url, artifacts)
    return HostApp(store, authorizer=SignedInHost(store), require_sign_in=True)


def open_host_store(db_url: str, artifacts: str) -> Store:
    """The store as the host sees it: opened for no project of its own (it only lists them and
    opens each project's view with `Store.for_project`). A store made before projects existed
    must first be upgraded by its project, which alone knows the name its records move under."""
    from mlcrew.store import UNSCOPED_REVISIONS
    from mlcrew.store.db import current_revision, make_engine, redact

    engine = make_engine(db_url)
    try:
        found = current_revision(engine)
    finally:
        engine.dispose()
    if found in UNSCOPED_REVISIONS:
        raise StoreError(
            f"the metadata database {redact(db_url)} was made before projects existed "
            f"(revision {found}); upgrade it once from its project folder, e.g. 'mlcrew status "
            "-p DIR' with MLCREW_DB_URL set to it, so its records move under that project"
        )
    return Store(db_url, artifacts, None, name=HOST_PROJECT, register=False)


# The host's own store handle is opened under this name, which no spec can take (specs start
# with a letter or digit), so the host registers no project of its own.
HOST_PROJECT = "_host"


def _close_service(app: ServiceApp) -> None:
    with contextlib.suppress(Exception):
        app.service.close()
        if app.access is not None:
            app.access.close()
