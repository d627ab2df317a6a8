"""alias events (the audit log of alias moves), stage library versions, version metric

Revision ID: 0002
Revises: 0001
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "stage_executions",
        sa.Column("libraries", sa.JSON, nullable=False, server_default="{}"),
    )
    op.add_column("model_versions", sa.Column("metric", sa.String(32)))
    events = op.create_table(
        "alias_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, index=True),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_version", sa.Integer),
        sa.Column("to_version", sa.Integer),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("forced", sa.Boolean, nullable=False),
        sa.Column("verdict", sa.JSON, nullable=False),
        sa.Column("at", TZ, nullable=False),
    )
    # Aliases set before the audit log existed get one event each, so history and alias agree.
    conn = op.get_bind()
    rows = conn.execute(sa.text("select name, alias, version, updated_at from aliases")).all()
    if rows:
        op.bulk_insert(
            events,
            [
                {
                    "name": r[0],
                    "alias": r[1],
                    "action": "promote",
                    "from_version": None,
                    "to_version": r[2],
                    "actor": "mlcrew (migration)",
                    "reason": "set before the audit log existed",
                    "forced": False,
                    "verdict": {},
                    "at": r[3] if isinstance(r[3], datetime) else datetime.now(UTC),
                }
                for r in rows
            ],
        )


def downgrade() -> None:
    op.drop_table("alias_events")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("metric")
    with op.batch_alter_table("stage_executions") as batch:
        batch.drop_column("libraries")
