"""The labeling tables of the metadata store (revision 0005): label specs as imported, tasks,
the assignments that hold each labeler's label, and the append-only history of every step."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from mlcrew.store.models import Base, ProjectOwned, UTCDateTime


class LabelSpecRecord(ProjectOwned, Base):
    """A label spec as imported (the `labeling:` section with its guidelines' text): what the
    queue, the pages and `mlcrew server` use, and what exported labels point back to."""

    __tablename__ = "label_specs"
    __table_args__ = (UniqueConstraint("project", "digest", name="uq_label_specs"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    guidelines: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LabelTask(ProjectOwned, Base):
    """One item to label. `assigned` counts the labelers holding or having labeled it (never more
    than `needed`, the spec's overlap); `open` is `assigned < needed`, kept as a column so the
    next task is one index range scan away at a million tasks. Gold items are never open: they
    are served apart, to everyone, unannounced."""

    __tablename__ = "label_tasks"
    __table_args__ = (
        UniqueConstraint("project", "item", name="uq_label_tasks_item"),
        Index("ix_label_tasks_queue", "project", "open", "priority", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    gold: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    prelabel: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    needed: Mapped[int] = mapped_column(Integer)
    assigned: Mapped[int] = mapped_column(Integer, default=0)
    labels: Mapped[int] = mapped_column(Integer, default=0)
    open: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LabelAssignment(ProjectOwned, Base):
    """A task in one labeler's queue, and their label once submitted. One row per (task,
    labeler): a labeler labels an item once, so a repeated submission is never a second label."""

    __tablename__ = "label_assignments"
    __table_args__ = (
        UniqueConstraint("project", "task_id", "labeler", name="uq_label_assignments"),
        Index("ix_label_assignments_queue", "project", "labeler", "state", "assigned_at"),
        Index("ix_label_assignments_task", "project", "task_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(Integer)
    labeler: Mapped[str] = mapped_column(String(64))
    # assigned | submitted | skipped | flagged | expired
    state: Mapped[str] = mapped_column(String(16))
    gold: Mapped[bool] = mapped_column(Boolean, default=False)
    label: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    suggested: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    # accepted | rejected | corrected, by a reviewer who is not the labeler
    review: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reviewer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class LabelEvent(ProjectOwned, Base):
    """Every labeling step (submit, undo, skip, flag, review), never changed afterwards."""

    __tablename__ = "label_events"
    __table_args__ = (Index("ix_label_events_task", "project", "task_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(Integer)
    labeler: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


# The tables for Core statements (imports, refreshes, and the queue, which answers thousands of
# requests a second): these name the project themselves, because the store's project filter
# (store/scope.py) applies to ORM statements only. tests/labeling/test_projects.py checks it.
TASKS = cast(Table, LabelTask.__table__)
ASSIGNMENTS = cast(Table, LabelAssignment.__table__)
EVENTS = cast(Table, LabelEvent.__table__)
