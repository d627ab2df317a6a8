"""monitoring: windows of the prediction log, and alert events

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "monitor_windows",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(64), nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("start_at", TZ, nullable=False),
        sa.Column("end_at", TZ, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("report_id", sa.Integer),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("performance", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(64), nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False, index=True),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("window_id", sa.Integer),
        sa.Column("value", sa.Float),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("delivery", sa.JSON, nullable=False),
        sa.Column("fired_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alert_events")
    op.drop_table("monitor_windows")
