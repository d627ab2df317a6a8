"""The store: metadata in SQL, artifacts by digest. `Store.open` picks both for a project."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from mlcrew.store.artifacts import ArtifactStore, file_digest
from mlcrew.store.db import make_engine, migrate, redact, session_factory
from mlcrew.store.locks import NamedLock
from mlcrew.store.models import Artifact

__all__ = ["ArtifactStore", "NamedLock", "Store", "file_digest", "now"]

STATE_DIR = ".mlcrew"


def now() -> datetime:
    return datetime.now(UTC)


class Store:
    """Metadata database plus artifact store of one project."""

    def __init__(
        self,
        db_url: str,
        artifacts_root: str | Path,
        project: Path | None = None,
        *,
        endpoint_url: str | None = None,
    ):
        self.db_url = db_url
        self.project = project
        self.engine = make_engine(db_url)
        migrate(self.engine)
        self._sessions = session_factory(self.engine)
        # endpoint_url: the S3 endpoint from the spec (AWS_ENDPOINT_URL wins when set).
        self.artifacts = ArtifactStore(artifacts_root, endpoint_url=endpoint_url)

    @classmethod
    def open(
        cls,
        project: Path,
        db_url: str | None = None,
        artifacts: str | None = None,
        *,
        endpoint_url: str | None = None,
    ) -> Store:
        """Open a project's store. Precedence: argument, MLCREW_DB_URL, spec's store.db, SQLite."""
        state = project / STATE_DIR
        url = db_url or os.environ.get("MLCREW_DB_URL")
        if not url:
            state.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{(state / 'mlcrew.db').resolve()}"
        root = artifacts or os.environ.get("MLCREW_ARTIFACTS") or str(state / "artifacts")
        return cls(url, root, project, endpoint_url=endpoint_url)

    @property
    def db_label(self) -> str:
        return redact(self.db_url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any error."""
        with self._sessions.begin() as s:
            yield s

    def put_artifact(self, path: Path, kind: str, session: Session) -> str:
        """Store a file and record it (in the caller's transaction)."""
        digest = self.artifacts.put_file(path)
        self.record_artifact(digest, path.stat().st_size, kind, session)
        return digest

    def record_artifact(self, digest: str, size: int, kind: str, session: Session) -> None:
        """Record a stored blob; safe when another process records the same digest at once."""
        values = {"digest": digest, "size": size, "kind": kind, "created_at": now()}
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            session.execute(pg_insert(Artifact).values(values).on_conflict_do_nothing())
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            session.execute(sqlite_insert(Artifact).values(values).on_conflict_do_nothing())

    def lock(self, name: str) -> NamedLock:
        """A lock shared by every process using this metadata database."""
        return NamedLock(self.engine, name)

    def close(self) -> None:
        self.engine.dispose()
