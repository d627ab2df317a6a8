"""A labeler's two hot routes, answered in the outer layer (api/fastpath.py) like predict:
`GET /v1/labeling/next` and `POST /v1/labeling/tasks/{task_id}/labels`.

Every item a labeler finishes is one of each. Through FastAPI a pair cost ~6 ms of one core
(dependency injection, validating the response model, the thread pool hand-off), the queue
itself ~1.5 ms, so one worker topped out near 160 labeled items a second and twenty labelers
who never pause queued behind each other. Here a request is checked by hand against the same
rules as the router's models, handed to the queue on a worker thread (the queue blocks on its
database) and answered with orjson bytes.

Anything out of the ordinary is handed on to the FastAPI router, which gives the documented
answer: a query or body the router would refuse (so every 422 keeps its one shape), a refusal
by the gate, a database that cannot be reached. The OpenAPI operations stay declared in
api/routers/labeling.py, and tests call both paths.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from mlcrew.labeling import queue
from mlcrew.labeling.access import labeler_of, task_json
from mlcrew.labeling.labelspec import LabelSpecs
from mlcrew.people.identity import Identity
from mlcrew.store import Store
from mlcrew.store.checkpoint import Checkpointer, quiet_checkpoints
from mlcrew.store.db import make_engine

NEXT_ROUTE = "/v1/labeling/next"
LABEL_ROUTE = "/v1/labeling/tasks/{task_id}/labels"
_TASKS = "/v1/labeling/tasks/"
_LABELS = "/labels"
MAX_TASK_ID = 2**62  # as the router's path parameter
MAX_SECONDS = 86_400  # as LabelIn.seconds
MAX_BODY = 64 * 1024  # a label is a few bytes; anything larger goes to the router
THREADS = 4  # requests waiting on PostgreSQL at once: more only pass the interpreter lock around
BUSY_MS = 5  # the event loop's longest wait for SQLite's write lock
_FIELDS = frozenset(("label", "confirmed", "seconds"))


class Forward(Exception):
    """Hand this request to the FastAPI application."""


@dataclass(frozen=True)
class _Db:
    """The queue's view of the store through the engine that answers on the event loop."""

    engine: Engine
    project_name: str


class LabelingFastPath:
    """Answers the two routes for one project's store.

    On PostgreSQL the queue runs on worker threads: a request spends most of its time waiting
    on the server, and others go on meanwhile. On SQLite it runs on the event loop itself: the
    work is a millisecond of CPU, writers take turns on SQLite's one lock anyway, and handing
    each request to a thread cost more than the work (measured: 2.9 against 1.3 ms of CPU per
    next + submit, the interpreter lock passed back and forth). So that nothing can hold the
    loop up, that engine waits at most BUSY_MS for a write lock held by another process (an
    import, `mlcrew label refresh`) and the request then moves to a thread that waits as long
    as it must; its commits never checkpoint the log (store/checkpoint.py) and a Checkpointer
    thread does.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        # Shared with the FastAPI application's state, so both see one cached label spec.
        self.specs = LabelSpecs(store)
        self._pool: ThreadPoolExecutor | None = None
        self._db: _Db | None = None
        self._checkpointer: Checkpointer | None = None
        self._lock = threading.Lock()

    @staticmethod
    def route(method: str, path: str) -> str | None:
        """The route template this layer answers for the request, or None."""
        if path == NEXT_ROUTE:
            return NEXT_ROUTE if method == "GET" else None
        if (
            method == "POST"
            and path.startswith(_TASKS)
            and path.endswith(_LABELS)
            and path.count("/") == 5
        ):
            return LABEL_ROUTE
        return None

    async def answer(
        self, route: str, path: str, query: bytes, body: bytes, who: Identity, root_path: str
    ) -> tuple[int, bytes]:
        """The status and JSON body; raises Forward for what the router must answer."""
        work: Callable[[queue.QueueDb], dict[str, Any]]
        if route == NEXT_ROUTE:
            ahead = _ahead(query)
            status = 200

            def work(db: queue.QueueDb) -> dict[str, Any]:
                spec = self.specs.current()
                views, progress = queue.next_with_progress(
                    db, spec, labeler_of(who, spec), 1 + ahead
                )
                out = [task_json(v, spec, root_path) for v in views]
                return {
                    "task": out[0] if out else None,
                    "ahead": out[1:],
                    "progress": progress.to_json(),
                }

        else:
            task_id = _task_id(path)
            label, confirmed, seconds = _label_body(body)
            status = 201

            def work(db: queue.QueueDb) -> dict[str, Any]:
                spec = self.specs.current()
                done = queue.submit(
                    db,
                    spec,
                    labeler_of(who, spec),
                    task_id,
                    label,
                    confirmed=confirmed,
                    seconds=seconds,
                    actor=who.actor,
                )
                return done.to_json()

        try:
            db: queue.QueueDb = self._own()
            if self._checkpointer is not None:  # SQLite: on the loop, unless the lock is taken
                try:
                    return status, orjson.dumps(work(db))
                except OperationalError as exc:
                    if not _busy(exc):
                        raise
                db = self.store
            if self._pool is None:
                self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="mlcrew-labeling")
            doc = await asyncio.get_running_loop().run_in_executor(self._pool, work, db)
        except SQLAlchemyError as exc:  # the router retries, or says the database is down
            raise Forward from exc
        return status, orjson.dumps(doc)

    def _own(self) -> _Db:
        """This layer's own engine, made on first use. On SQLite the event loop queries through
        it; on PostgreSQL its connections skip the ping on checkout (a round trip per request):
        a connection that died fails the request over to the router, on pinged connections."""
        if self._db is None:
            with self._lock:
                if self._db is None:
                    engine = make_engine(self.store.db_url, pre_ping=False)
                    if engine.dialect.name == "sqlite":
                        event.listen(engine, "connect", _short_wait)
                        quiet_checkpoints(engine)
                        self._checkpointer = Checkpointer(self.store.engine)
                        self._checkpointer.start()
                    self._db = _Db(engine, self.store.project_name)
        return self._db

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
        if self._checkpointer is not None:
            self._checkpointer.stop()
        if self._db is not None:
            self._db.engine.dispose()


def _short_wait(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_MS}")
    cur.close()


def _busy(exc: OperationalError) -> bool:
    """SQLite's write lock was held by someone else past the short wait."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _ahead(query: bytes) -> int:
    """`?ahead=N` (0 to queue.MAX_AHEAD); other parameters are ignored, as the router does."""
    if not query:
        return 0
    found = [
        v for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True) if k == "ahead"
    ]
    if not found:
        return 0
    value = found[0]
    if len(found) > 1 or not (value.isascii() and value.isdigit() and len(value) <= 2):
        raise Forward
    if int(value) > queue.MAX_AHEAD:
        raise Forward
    return int(value)


def _task_id(path: str) -> int:
    text = path[len(_TASKS) : -len(_LABELS)]
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        raise Forward
    task_id = int(text)
    if not 1 <= task_id <= MAX_TASK_ID:
        raise Forward
    return task_id


def _label_body(body: bytes) -> tuple[str | list[str], bool, float | None]:
    """The router's LabelIn, for bodies it would take as they are; else Forward."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Forward from None
    if type(doc) is not dict or "label" not in doc or not _FIELDS.issuperset(doc):
        raise Forward
    label = doc["label"]
    if not (type(label) is str or (type(label) is list and all(type(x) is str for x in label))):
        raise Forward
    confirmed = doc.get("confirmed", False)
    seconds = doc.get("seconds")
    if type(confirmed) is not bool:
        raise Forward
    if seconds is not None and not (type(seconds) in (int, float) and 0 <= seconds <= MAX_SECONDS):
        raise Forward
    return label, confirmed, None if seconds is None else float(seconds)
