"""The store: metadata in SQL, artifacts by digest. `Store.open` picks both for a project."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from mlcrew.store.artifacts import ArtifactStore, file_digest
from mlcrew.store.db import make_engine, migrate, redact
from mlcrew.store.locks import NamedLock
from mlcrew.store.logs import adopt_unscoped_logs
from mlcrew.store.models import Artifact
from mlcrew.store.models import Project as ProjectRow
from mlcrew.store.scope import project_sessions

__all__ = ["ArtifactStore", "NamedLock", "ProjectInfo", "Store", "file_digest", "now"]

STATE_DIR = ".mlcrew"
# The project of a store opened without a spec (a bare `Store(url, root)` in scripts and tests).
DEFAULT_PROJECT = "default"
# Revisions of a store made before projects existed (one project per store).
UNSCOPED_REVISIONS = ("0001", "0002")


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ProjectInfo:
    """A project of a store: its name, when it first opened the store, its latest run's spec."""

    name: str
    created_at: datetime
    spec_digest: str | None
    updated_at: datetime | None

    def to_json(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "spec_digest": self.spec_digest,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


class Store:
    """Metadata database plus artifact store, opened for one project (`name`, the spec's name).

    Many projects may share one database and one artifact store: every session of this store
    sees and writes only this project's records (store/scope.py); artifacts are shared by digest.
    """

    def __init__(
        self,
        db_url: str,
        artifacts_root: str | Path,
        project: Path | None = None,
        *,
        name: str | None = None,
        engine: Engine | None = None,
        register: bool = True,
        endpoint_url: str | None = None,
    ):
        self.db_url = db_url
        self.project = project
        self.project_name = name or _spec_name(project) or DEFAULT_PROJECT
        self._owns_engine = engine is None
        self.engine = engine if engine is not None else make_engine(db_url)
        before = migrate(self.engine, self.project_name)
        self._sessions = project_sessions(self.engine, self.project_name)
        # endpoint_url: the S3 endpoint from the spec (AWS_ENDPOINT_URL wins when set).
        self.endpoint_url = endpoint_url
        self.artifacts = ArtifactStore(artifacts_root, endpoint_url=endpoint_url)
        if before in UNSCOPED_REVISIONS:  # its prediction logs follow its records
            adopt_unscoped_logs(self.artifacts, self.project_name)
        if register:
            self._register()

    @classmethod
    def open(
        cls,
        project: Path,
        db_url: str | None = None,
        artifacts: str | None = None,
        *,
        name: str | None = None,
        endpoint_url: str | None = None,
    ) -> Store:
        """Open a project's store. Precedence: argument, MLCREW_DB_URL, spec's store.db, SQLite.
        The project's name is `name`, else the `name` in the folder's mlcrew.yaml."""
        state = project / STATE_DIR
        url = db_url or os.environ.get("MLCREW_DB_URL")
        if not url:
            state.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{(state / 'mlcrew.db').resolve()}"
        root = artifacts or os.environ.get("MLCREW_ARTIFACTS") or str(state / "artifacts")
        return cls(url, root, project, name=name, endpoint_url=endpoint_url)

    def for_project(self, name: str) -> Store:
        """The same database and artifact store, opened for project `name` (shares the engine:
        a server holds one connection pool for all its projects)."""
        return Store(
            self.db_url,
            self.artifacts.root,
            None,
            name=name,
            engine=self.engine,
            endpoint_url=self.endpoint_url,
        )

    def _register(self) -> None:
        """Record this project in the store's project list (once; many may open at once)."""
        with self.session() as s:
            if s.get(ProjectRow, self.project_name) is not None:
                return
        values = {"name": self.project_name, "created_at": now()}
        with self.session() as s:
            if self.engine.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                s.execute(pg_insert(ProjectRow).values(values).on_conflict_do_nothing())
            else:
                from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                s.execute(sqlite_insert(ProjectRow).values(values).on_conflict_do_nothing())

    def projects(self) -> list[ProjectInfo]:
        """Every project of this store (not only this one), by name."""
        with self.session() as s:
            rows = s.scalars(select(ProjectRow).order_by(ProjectRow.name)).all()
            return [ProjectInfo(r.name, r.created_at, r.spec_digest, r.updated_at) for r in rows]

    def set_spec(self, spec_digest: str, session: Session) -> None:
        """This project's latest spec (an artifact digest), in the caller's transaction."""
        row = session.get(ProjectRow, self.project_name)
        if row is None:
            row = ProjectRow(name=self.project_name, created_at=now())
            session.add(row)
        row.spec_digest = spec_digest
        row.updated_at = now()

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

    def adopt_artifact(self, path: Path, kind: str, session: Session) -> str:
        """Like put_artifact for a file the caller no longer needs: moved in, not copied."""
        size = path.stat().st_size
        digest = self.artifacts.adopt_file(path)
        self.record_artifact(digest, size, kind, session)
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
        if self._owns_engine:
            self.engine.dispose()


def _spec_name(project: Path | None) -> str | None:
    """The `name` of the project folder's spec, if it has one."""
    if project is None:
        return None
    from mlcrew.spec import SPEC_FILE, load_spec

    if not (project / SPEC_FILE).is_file():
        return None
    return load_spec(project).name
