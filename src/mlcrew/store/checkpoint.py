"""Moving SQLite's write-ahead log into the database off the request path.

In WAL mode the commit that takes the log past `wal_autocheckpoint` pages (1,000 by default)
copies it into the database file and syncs it, inside that commit: a labeler's submit now and
then took tens of milliseconds longer, and twenty labelers at once queued behind it. A server
turns that off on the connections that answer requests (`quiet_checkpoints`) and runs a passive
checkpoint on its own thread every second instead: passive checkpoints never block readers or
writers, and SQLite releases the interpreter lock while it syncs.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)
INTERVAL_SECONDS = 1.0


def quiet_checkpoints(engine: Engine) -> None:
    """New connections of `engine` never checkpoint in a commit (a Checkpointer must run)."""

    def off(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.close()

    event.listen(engine, "connect", off)


class Checkpointer:
    """A daemon thread running `PRAGMA wal_checkpoint(PASSIVE)` on `engine` every interval."""

    def __init__(self, engine: Engine, interval: float = INTERVAL_SECONDS) -> None:
        self.engine = engine
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="mlcrew-wal-checkpoint", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.checkpoint()

    def checkpoint(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            self.rounds += 1
        except SQLAlchemyError as exc:  # the next round tries again; requests are unaffected
            log.warning("WAL checkpoint failed: %s", str(exc).splitlines()[0])

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.checkpoint()  # leave the log short for whoever opens the database next
