"""experiments: tracked runs with their params, metric points (in chunks), tags and artifacts

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "exp_runs",
        sa.Column("num", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(32), nullable=False, unique=True),
        sa.Column("project", sa.String(64), nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("parent", sa.String(32), index=True),
        sa.Column("pipeline_run", sa.String(40)),
        sa.Column("seed", sa.BigInteger),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("heartbeat_at", TZ, nullable=False),
        sa.Column("ended_at", TZ),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_exp_runs_started", "exp_runs", ["project", "started_at"])
    op.create_table(
        "exp_params",
        sa.Column("run", sa.Integer, sa.ForeignKey("exp_runs.num"), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "exp_metrics",
        sa.Column("run", sa.Integer, sa.ForeignKey("exp_runs.num"), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("points", sa.Integer, nullable=False),
        sa.Column("steps", sa.LargeBinary, nullable=False),
        sa.Column("values", sa.LargeBinary, nullable=False),
        sa.Column("ats", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "exp_metric_last",
        sa.Column("run", sa.Integer, sa.ForeignKey("exp_runs.num"), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("min", sa.Float),
        sa.Column("max", sa.Float),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "exp_tags",
        sa.Column("run", sa.Integer, sa.ForeignKey("exp_runs.num"), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "exp_artifacts",
        sa.Column("run", sa.Integer, sa.ForeignKey("exp_runs.num"), primary_key=True),
        sa.Column("path", sa.String(500), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "exp_artifacts",
        "exp_tags",
        "exp_metric_last",
        "exp_metrics",
        "exp_params",
        "exp_runs",
    ):
        op.drop_table(table)
