"""Named locks shared by every process that uses one metadata database.

SQLite: `flock` on a file beside the database (released by the kernel when a process dies).
PostgreSQL: a session-level advisory lock on a connection held for the lock's lifetime (released
by the server when the connection drops). Either way a killed holder never leaves a stale lock,
which is also how a `running` run whose process died is told apart from a live one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine


def _key(name: str) -> int:
    """A signed 64-bit advisory lock key for a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def lock_file(engine: Engine, name: str) -> Path:
    db = engine.url.database
    if not db or db == ":memory:":
        import tempfile

        db = os.path.join(tempfile.gettempdir(), "mlcrew-memory-db")
    safe = hashlib.sha256(name.encode()).hexdigest()[:16]
    return Path(f"{db}.{safe}.lock")


class NamedLock:
    """`with NamedLock(engine, "run:bike-demand").hold(on_wait): ...`"""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name

    @property
    def _sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def hold(self, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Take the lock, waiting for it if another process holds it (`on_wait` is called once
        before waiting, so a caller can say why it pauses)."""
        if self._sqlite:
            path = lock_file(self.engine, self.name)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if on_wait:
                        on_wait()
                    fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the lock
            return
        conn: Any = self.engine.connect()
        try:
            key = _key(self.name)
            got = conn.execute(text("select pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            conn.commit()
            if not got:
                if on_wait:
                    on_wait()
                conn.execute(text("select pg_advisory_lock(:k)"), {"k": key})
                conn.commit()
            try:
                yield
            finally:
                conn.execute(text("select pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        finally:
            conn.close()

    def is_held(self) -> bool:
        """True if some process (this one included) holds the lock right now."""
        if self._sqlite:
            path = lock_file(self.engine, self.name)
            if not path.exists():
                return False
            fd = os.open(path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            finally:
                os.close(fd)
            return False
        with self.engine.connect() as conn:
            key = _key(self.name)
            got = conn.execute(text("select pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            if got:
                conn.execute(text("select pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
            return not got
