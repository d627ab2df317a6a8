"""The experiment-tracking tables of the metadata store (revision 0006): tracked runs, and their
params, metric points, tags and artifacts, one row each (so runs can be filtered and compared in
SQL, never by unpacking JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from mlcrew.store.models import Base, ProjectOwned, UTCDateTime

KEY_LENGTH = 250
VALUE_LENGTH = 6000


class TrackedRun(ProjectOwned, Base):
    """A tracked run: training code's `start_run`, or a trial or fold of the pipeline's search.
    `heartbeat_at` moves with every flush, so a run whose process died shows as lost."""

    __tablename__ = "exp_runs"
    __table_args__ = (Index("ix_exp_runs_started", "project", "started_at"),)
    # `num` is what the points, params, tags and artifacts refer to (4 bytes a row, not the
    # 32 of the id people see and type).
    num: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # running | finished | failed
    source: Mapped[str] = mapped_column(String(16))  # api | pipeline
    parent: Mapped[str | None] = mapped_column(String(32), index=True)
    pipeline_run: Mapped[str | None] = mapped_column(String(40))
    seed: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)


class TrackedParam(Base):
    __tablename__ = "exp_params"
    run: Mapped[int] = mapped_column(ForeignKey("exp_runs.num"), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class TrackedMetric(Base):
    """A chunk of one metric's points as one flush wrote them: steps, values (NaN and
    infinities as they are) and times (ms since the epoch) as little-endian int64 / float64 /
    int64 arrays, in the order they were logged. One row per flush and metric, not per point:
    storing 10,000 points is one insert of 240 KB, not 10,000 inserts."""

    __tablename__ = "exp_metrics"
    run: Mapped[int] = mapped_column(ForeignKey("exp_runs.num"), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    points: Mapped[int] = mapped_column(Integer)
    steps: Mapped[bytes] = mapped_column(LargeBinary)
    values: Mapped[bytes] = mapped_column(LargeBinary)
    ats: Mapped[bytes] = mapped_column(LargeBinary)


class TrackedMetricLast(Base):
    """Each metric of a run in one row, kept up to date by every flush: how many points, the
    last one (the highest step; of equal steps, the one logged last), min and max (NULL: NaN,
    or no finite point). What run lists filter and sort on."""

    __tablename__ = "exp_metric_last"
    run: Mapped[int] = mapped_column(ForeignKey("exp_runs.num"), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    points: Mapped[int] = mapped_column(BigInteger)
    step: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float | None] = mapped_column(Float)
    min: Mapped[float | None] = mapped_column(Float)
    max: Mapped[float | None] = mapped_column(Float)
    at: Mapped[int] = mapped_column(BigInteger)


class TrackedTag(Base):
    __tablename__ = "exp_tags"
    run: Mapped[int] = mapped_column(ForeignKey("exp_runs.num"), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class TrackedArtifact(Base):
    """A file logged with a run: its name in the run, and its content in the artifact store."""

    __tablename__ = "exp_artifacts"
    run: Mapped[int] = mapped_column(ForeignKey("exp_runs.num"), primary_key=True)
    path: Mapped[str] = mapped_column(String(500), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)


RUNS = cast(Table, TrackedRun.__table__)
PARAMS = cast(Table, TrackedParam.__table__)
METRICS = cast(Table, TrackedMetric.__table__)
LAST = cast(Table, TrackedMetricLast.__table__)
TAGS = cast(Table, TrackedTag.__table__)
ARTIFACTS = cast(Table, TrackedArtifact.__table__)
