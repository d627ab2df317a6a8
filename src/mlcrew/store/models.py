"""SQLAlchemy tables of the metadata store. Schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back as aware UTC: SQLite stores no zone, PostgreSQL does."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None:
            # Naive means UTC; an aware time in another zone is converted, not relabelled.
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class ProjectOwned:
    """A record that belongs to one project. A store's sessions see and write only its own
    project's records (store/scope.py); artifacts, being content-addressed, are shared."""

    project: Mapped[str] = mapped_column(String(64), index=True)


class Project(Base):
    """A project of this store: its name is the spec's `name`. `spec_digest` is the spec of its
    latest run (an artifact), so a server can serve it from the store alone."""

    __tablename__ = "projects"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    spec_digest: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Artifact(Base):
    """A content-addressed blob in the artifact store."""

    __tablename__ = "artifacts"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Run(ProjectOwned, Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # run | reproduce
    of_run: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))  # running | ok | failed
    spec_digest: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class StageExecution(ProjectOwned, Base):
    """One stage in one run: either executed (and cacheable by `key`) or served from the cache."""

    __tablename__ = "stage_executions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seed: Mapped[int | None] = mapped_column(Integer)
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    outputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    record: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16))  # executed | cached | failed
    # Versions of the libraries the stage declares, as they were when it executed.
    libraries: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seconds: Mapped[float] = mapped_column(default=0.0)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LineageEdge(ProjectOwned, Base):
    """parent artifact --(stage execution)--> child artifact."""

    __tablename__ = "lineage"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    parent: Mapped[str] = mapped_column(String(64), index=True)
    child: Mapped[str] = mapped_column(String(64), index=True)
    execution_id: Mapped[int] = mapped_column(ForeignKey("stage_executions.id"))


class ModelVersion(ProjectOwned, Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("project", "name", "version"),
        UniqueConstraint("project", "name", "model_digest"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    model_digest: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(40))
    spec_digest: Mapped[str] = mapped_column(String(64))
    data_digests: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    verdict: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The objective metric the version was evaluated on (what promotion compares).
    metric: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Alias(ProjectOwned, Base):
    __tablename__ = "aliases"
    # Declared again (not only by ProjectOwned) to be the first part of the primary key.
    project: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    alias: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AliasEvent(ProjectOwned, Base):
    """One move of an alias: the audit log. Written in the same transaction as the move."""

    __tablename__ = "alias_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    alias: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))  # promote | rollback
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    forced: Mapped[bool] = mapped_column(Boolean)
    verdict: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class MonitorReport(ProjectOwned, Base):
    __tablename__ = "monitor_reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    data_digest: Mapped[str] = mapped_column(String(64))
    report_digest: Mapped[str] = mapped_column(String(64))
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MonitorWindow(ProjectOwned, Base):
    """A closed window of the prediction log: its rows are those logged at `start_at` <= at <
    `end_at` for model `name`; `report_id` holds its drift report. `performance` grows as
    late labels arrive."""

    __tablename__ = "monitor_windows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rows: Mapped[int] = mapped_column(BigInteger)
    report_id: Mapped[int | None] = mapped_column(Integer)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    performance: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AlertEvent(ProjectOwned, Base):
    """One firing of an alert rule, and how its webhook delivery went."""

    __tablename__ = "alert_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    rule: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    window_id: Mapped[int | None] = mapped_column(Integer)
    value: Mapped[float | None] = mapped_column()
    message: Mapped[str] = mapped_column(Text)
    delivery: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DatasetVersion(ProjectOwned, Base):
    """One distinct content of a source or a transform's output: the same bytes are the same
    version, whichever run made them. `parents` name the versions it was made from."""

    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("project", "name", "version"),
        UniqueConstraint("project", "name", "digest"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # source | sql | python
    rows: Mapped[int] = mapped_column(BigInteger)
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    parents: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    run_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DatasetNode(ProjectOwned, Base):
    """The node cache: a node's key (its code, config and input digests) -> the version it
    made. A known key is not executed again."""

    __tablename__ = "dataset_nodes"
    project: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
