"""The service's outer layer, in plain ASGI: every request is counted, timed and access-logged,
and `POST /v1/models/{name}/predict` and the probes (`GET /healthz`, `/readyz`, `/metrics`) are
answered right here.

Predict is the hot route, so it skips the framework's per-request machinery: the body is read as
bytes up to `serving.max_body_bytes` (a larger Content-Length is refused before reading), parsed
once with orjson, handed to `PredictionService.predict` and answered with orjson bytes. Its
OpenAPI operation is declared in api/routers/predict.py.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from mlcrew.api.labeling_fast import MAX_BODY as MAX_LABEL_BODY
from mlcrew.api.labeling_fast import Forward, LabelingFastPath
from mlcrew.errors import (
    ConflictError,
    Forbidden,
    LabelError,
    LimitExceeded,
    ModelInputError,
    NotFoundError,
    QueryError,
    QueryTimeout,
    StoreError,
    TrackingError,
)
from mlcrew.people.gate import Denial, Gate
from mlcrew.people.identity import Identity
from mlcrew.registry.versions import ALIAS_PATTERN as ALIAS
from mlcrew.registry.versions import ALIAS_RULE, MAX_VERSION
from mlcrew.serving.access import AccessLog
from mlcrew.serving.health import exposition, liveness, readiness
from mlcrew.serving.metrics import ServiceMetrics
from mlcrew.serving.predict import PredictionService
from mlcrew.serving.validation import excerpt

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PREDICT_ROUTE = "/v1/models/{name}/predict"
_PREFIX = "/v1/models/"
_SUFFIX = "/predict"
MAX_NAME = 64
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_JSON = b"application/json"


# The library's errors whose message is the whole answer, by HTTP status (this layer's and the
# FastAPI application's handlers, api/errors.py, both read this table).
ERROR_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (NotFoundError, 404),
    (QueryError, 400),
    (QueryTimeout, 408),
    (LimitExceeded, 413),
    (StoreError, 503),
    (Forbidden, 403),
    (ConflictError, 409),
    (LabelError, 422),
    (TrackingError, 422),
)


def status_of(exc: Exception) -> int | None:
    """The HTTP status of a library error in ERROR_STATUS (None for any other exception)."""
    for error, status in ERROR_STATUS:
        if isinstance(exc, error):
            return status
    return None


class Reply(Exception):
    """A finished error response from inside the predict path."""

    def __init__(self, status: int, detail: Any, headers: list[tuple[bytes, bytes]] | None = None):
        self.status = status
        self.detail = detail
        self.headers = headers or []


def _problem(field: str | None, error: str, row: int | None = None) -> dict[str, Any]:
    return {"row": row, "field": field, "error": error}


def problem(field: str | None, error: str, row: int | None = None) -> Reply:
    return Reply(422, [_problem(field, error, row)])


class ServiceMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        service: PredictionService,
        metrics: ServiceMetrics,
        access: AccessLog | None,
        project: str,
        gate: Gate | None = None,
        labeling: LabelingFastPath | None = None,
        modeled: bool = True,
    ) -> None:
        self.app = app
        self.gate = gate
        self.labeling = labeling
        self.service = service
        self.metrics = metrics
        self.access = access
        self.max_body = service.serving.max_body_bytes
        # GET on these is answered here too: probes and scrapes must not wait for the web
        # framework, which a worker loads after it is ready (api/app.py).
        self.probes: dict[str, Callable[[], tuple[int, bytes, bytes]]] = {
            "/healthz": lambda: (200, orjson.dumps(liveness(project)), _JSON),
            "/readyz": lambda: _json_reply(*readiness(service, project, modeled)),
            "/metrics": lambda: (200, *_text(*exposition(service, metrics))),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        full: str = scope["path"]
        # Mounted under a prefix (`mlcrew server`: /p/NAME), the path holds the prefix too.
        root: str = scope.get("root_path", "")
        path = (full[len(root) :] or "/") if root and full.startswith(root) else full
        method: str = scope["method"]
        probe = self.probes.get(path) if method == "GET" else None
        if path.startswith(_PREFIX) and path.endswith(_SUFFIX) and path.count("/") == 4:
            route = PREDICT_ROUTE
            try:
                consumer = None
                if self.gate is not None and method == "POST":
                    who = self.gate.admit(scope, route)
                    if isinstance(who, Denial):
                        await self._deny(scope, send, who, route, method, path, start)
                        return
                    consumer = who.actor if who.via in ("token", "session") else None
                status, body, rid, headers = await self._predict(
                    scope, receive, method, path, consumer
                )
            except Exception:  # a bug: the server answers 500; count and log it
                self._record(scope, route, method, full, 500, start, "-")
                raise
            await _respond(send, status, body, rid, headers)
        elif probe is not None:
            route = path
            if self.gate is not None:
                who = self.gate.admit(scope, route)
                if isinstance(who, Denial):
                    await self._deny(scope, send, who, route, method, path, start)
                    return
            rid = _request_id(scope) or self.service.new_request_id()
            try:
                status, body, ctype = probe()
            except Exception:
                self._record(scope, route, method, full, 500, start, rid)
                raise
            await _respond(send, status, body, rid, [], ctype)
        elif self.labeling is not None and (template := self.labeling.route(method, path)):
            await self._label(scope, receive, send, template, path, start)
            return
        else:
            await self._forward(scope, receive, send, start)
            return
        self._record(scope, route, method, full, status, start, rid)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, start: float) -> None:
        """Hand the request to the web framework, counting, timing and logging it here."""
        rid = _request_id(scope) or self.service.new_request_id()
        seen = [500]
        header = (b"x-request-id", rid.encode())

        async def send_tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen[0] = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_tagged)
        finally:
            found = scope.get("route")
            route = getattr(found, "path", None) or "unmatched"
            self._record(scope, route, scope["method"], scope["path"], seen[0], start, rid)

    async def _label(
        self, scope: Scope, receive: Receive, send: Send, route: str, path: str, start: float
    ) -> None:
        """A labeler's next task or label (api/labeling_fast.py); the framework answers
        whatever that layer hands on."""
        assert self.labeling is not None
        method: str = scope["method"]
        who = self.gate.admit(scope, route) if self.gate is not None else None
        body: bytes | None = b""
        if method == "POST" and isinstance(who, Identity):
            body, receive = await _read_small(scope, receive, MAX_LABEL_BODY)
        if not isinstance(who, Identity) or body is None:
            await self._forward(scope, receive, send, start)
            return
        rid = _request_id(scope) or self.service.new_request_id()
        try:
            status, doc = await self.labeling.answer(
                route,
                path,
                scope.get("query_string", b""),
                body,
                who,
                str(scope.get("root_path", "")),
            )
        except Forward:
            await self._forward(scope, _replay(body, receive), send, start)
            return
        except Exception as exc:
            known = status_of(exc)
            if known is None:  # a bug: the server answers 500; count and log it
                self._record(scope, route, method, scope["path"], 500, start, rid)
                raise
            status, doc = known, _message(exc)
        await _respond(send, status, doc, rid, [])
        self._record(scope, route, method, scope["path"], status, start, rid)

    async def _deny(
        self,
        scope: Scope,
        send: Send,
        denial: Denial,
        route: str,
        method: str,
        path: str,
        start: float,
    ) -> None:
        rid = _request_id(scope) or self.service.new_request_id()
        body = orjson.dumps({"detail": denial.detail})
        await _respond(send, denial.status, body, rid, list(denial.headers))
        self._record(scope, route, method, path, denial.status, start, rid)

    def _record(
        self, scope: Scope, route: str, method: str, path: str, status: int, start: float, rid: str
    ) -> None:
        elapsed = time.perf_counter() - start
        self.metrics.observe(route, method, status, elapsed)
        if self.access is not None:
            client = scope.get("client")
            self.access.record(client[0] if client else "-", method, path, status, elapsed, rid)

    async def _predict(
        self, scope: Scope, receive: Receive, method: str, path: str, consumer: str | None = None
    ) -> tuple[int, bytes, str, list[tuple[bytes, bytes]]]:
        rid = _request_id(scope) or self.service.new_request_id()
        try:
            if method != "POST":
                raise Reply(405, f"{method} is not allowed here; use POST", [(b"allow", b"POST")])
            name = path[len(_PREFIX) : -len(_SUFFIX)]
            body = await self._body(scope, receive)
            alias, version = _query(scope)
            rows = _rows(body)
            if len(name) > MAX_NAME:
                raise NotFoundError(f"no model named {excerpt(name)}")
            result = self.service.predict(
                name, rows, alias=alias, version=version, request_id=rid, consumer=consumer
            )
            return 200, orjson.dumps(result.to_json()), rid, []
        except Reply as reply:
            return reply.status, orjson.dumps({"detail": reply.detail}), rid, reply.headers
        except ModelInputError as exc:
            return 422, orjson.dumps({"detail": exc.problems}), rid, []
        except (NotFoundError, LimitExceeded, StoreError) as exc:
            return status_of(exc) or 500, _message(exc), rid, []

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        """The body, refused with 415 for a non-JSON type and 413 past the size limit."""
        ctype, length = _body_headers(scope)
        if ctype is None or not _is_json(ctype):
            got = "none" if ctype is None else excerpt(ctype.decode("latin-1"))
            raise Reply(415, f"send the rows as JSON (Content-Type: application/json), got {got}")
        limit = self.max_body
        if length is not None and length.isdigit() and int(length) > limit:
            raise self._too_large(limit)
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @staticmethod
    def _too_large(limit: int) -> Reply:
        return Reply(
            413,
            f"request body larger than serving.max_body_bytes={limit}; send fewer rows per "
            "request (or use batch scoring)",
        )


async def send_response(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """A whole response in two ASGI messages (this layer's and `mlcrew server`'s host's)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    rid: str,
    headers: list[tuple[bytes, bytes]],
    content_type: bytes = _JSON,
) -> None:
    await send_response(
        send, status, body, content_type, [(b"x-request-id", rid.encode()), *headers]
    )


def _body_headers(scope: Scope) -> tuple[bytes | None, bytes | None]:
    """The request's Content-Type and Content-Length, as sent (None when absent)."""
    ctype = length = None
    for key, value in scope["headers"]:
        if key == b"content-type":
            ctype = value
        elif key == b"content-length":
            length = value
    return ctype, length


async def _read_small(scope: Scope, receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """A JSON body of at most `limit` bytes, or None (with a receive that still yields all of
    it) for another type or a larger body: the framework answers those."""
    ctype, length = _body_headers(scope)
    if ctype is None or not _is_json(ctype) or (length is not None and not length.isdigit()):
        return None, receive
    if length is not None and int(length) > limit:
        return None, receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, _replay(b"".join(chunks), receive, disconnected=True)
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = message.get("more_body", False)
        if size > limit:
            return None, _replay(b"".join(chunks), receive, more=more)
        if not more:
            return b"".join(chunks), receive


def _replay(
    body: bytes, receive: Receive, *, more: bool = False, disconnected: bool = False
) -> Receive:
    """A receive that yields `body` (already read) first, then what `receive` has left."""
    pending = [{"type": "http.request", "body": body, "more_body": more}]
    if disconnected:
        pending.append({"type": "http.disconnect"})

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


def _json_reply(status: int, doc: dict[str, Any]) -> tuple[int, bytes, bytes]:
    return status, orjson.dumps(doc), _JSON


def _text(body: bytes, content_type: str) -> tuple[bytes, bytes]:
    return body, content_type.encode("latin-1")


def _is_json(ctype: bytes) -> bool:
    media = ctype.split(b";", 1)[0].strip().lower()
    return media == _JSON or (media.startswith(b"application/") and media.endswith(b"+json"))


def _request_id(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            text = value.decode("latin-1")
            return text if _REQUEST_ID.fullmatch(text) else None
    return None


def _query(scope: Scope) -> tuple[str | None, int | None]:
    raw: bytes = scope.get("query_string", b"")
    if not raw:
        return None, None
    alias = version = None
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if key == "alias":
            if not ALIAS.fullmatch(value):
                raise problem("alias", f"expected {ALIAS_RULE}, got {excerpt(value)}")
            alias = value
        elif key == "version":
            if not (value.isascii() and value.isdigit() and len(value) <= 10) or not (
                1 <= int(value) <= MAX_VERSION
            ):
                raise problem(
                    "version", f"expected a whole number from 1 to {MAX_VERSION}, got "
                    f"{excerpt(value)}"
                )  # fmt: skip
            version = int(value)
    return alias, version


def _rows(body: bytes) -> list[Any]:
    """The `rows` of a JSON body; 422 naming what is wrong with the body otherwise."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        doc = _lenient(body, exc)
    if type(doc) is not dict:
        raise problem("body", 'expected a JSON object like {"rows": [{...}]}')
    if len(doc) != 1 or "rows" not in doc:
        problems = [] if "rows" in doc else [_problem("rows", "Field required")]
        problems += [
            _problem(excerpt(k, 60).strip("'"), "unknown field; the body holds only 'rows'")
            for k in list(doc)[:10]
            if k != "rows"
        ]
        raise Reply(422, problems)
    return doc["rows"]  # type: ignore[no-any-return]


def _lenient(body: bytes, exc: orjson.JSONDecodeError) -> Any:
    """Parse what orjson refuses but Python's json reads (NaN, integers past 64 bits), so the
    error can name the row and field; anything else is invalid JSON."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise problem("body", f"invalid JSON: {str(exc)[:120]}") from None


def _message(exc: Exception) -> bytes:
    text = str(exc)
    return orjson.dumps({"detail": text if len(text) <= 500 else text[:500] + "..."})
