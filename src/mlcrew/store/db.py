"""The metadata database: SQLite under `.mlcrew/` by default (WAL mode), PostgreSQL by URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mlcrew.errors import StoreError

HEAD_REVISION = "0008"
MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    # Read pages through a memory map and keep 16 MB of them per connection (SQLite's default
    # cache is 2 MB): at a million labeling tasks the queue's indexes no longer fit in 2 MB,
    # and each miss was a read() system call.
    cur.execute("PRAGMA mmap_size=268435456")
    cur.execute("PRAGMA cache_size=-16000")
    cur.close()


def make_engine(url: str, *, pre_ping: bool = True) -> Engine:
    """An engine for a store URL. On PostgreSQL a connection is pinged as it leaves the pool
    (a restarted server is met with a fresh connection, not an error) unless `pre_ping` is
    False: a caller that retries a failed request elsewhere saves that round trip."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        engine = create_engine(
            url, future=True, pool_pre_ping=pre_ping and url.startswith("postgresql")
        )
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(f"cannot use database URL {redact(url)}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        user = cred.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            row = conn.execute(text("select version_num from alembic_version")).first()
        except SQLAlchemyError:
            return None
        return str(row[0]) if row else None


def migrate(engine: Engine, project: str) -> str | None:
    """Bring the schema to the head revision. Alembic is imported only when work is due.
    Records of a store made before projects existed move under `project` (revision 0003).
    Returns the revision the database had (None for a new one)."""
    from mlcrew.store.locks import NamedLock

    try:
        found = current_revision(engine)
        if found == HEAD_REVISION:
            return found
        # Two processes opening a fresh store at once must not both create the tables.
        with NamedLock(engine, "mlcrew:migrate").hold():
            found = current_revision(engine)
            if found == HEAD_REVISION:
                return found
            from alembic import command
            from alembic.config import Config

            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                cfg.attributes["project"] = project
                command.upgrade(cfg, "head")
            return found
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot open the metadata database {redact(str(engine.url))}: "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}"
        ) from exc


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
