"""labeling: label specs, tasks, assignments (each labeler's label) and the labeling history

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "label_specs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(64), nullable=False, index=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("guidelines", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("project", "digest", name="uq_label_specs"),
    )
    op.create_table(
        "label_tasks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(64), nullable=False, index=True),
        sa.Column("item", sa.String(128), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("gold", sa.JSON),
        sa.Column("prelabel", sa.JSON),
        sa.Column("priority", sa.Float, nullable=False),
        sa.Column("needed", sa.Integer, nullable=False),
        sa.Column("assigned", sa.Integer, nullable=False),
        sa.Column("labels", sa.Integer, nullable=False),
        sa.Column("open", sa.Boolean, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("project", "item", name="uq_label_tasks_item"),
    )
    op.create_index("ix_label_tasks_queue", "label_tasks", ["project", "open", "priority", "id"])
    op.create_table(
        "label_assignments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(64), nullable=False, index=True),
        sa.Column("task_id", sa.Integer, nullable=False),
        sa.Column("labeler", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("gold", sa.Boolean, nullable=False),
        sa.Column("label", sa.JSON),
        sa.Column("suggested", sa.JSON),
        sa.Column("confirmed", sa.Boolean, nullable=False),
        sa.Column("assigned_at", TZ, nullable=False),
        sa.Column("submitted_at", TZ),
        sa.Column("seconds", sa.Float),
        sa.Column("review", sa.String(16)),
        sa.Column("reviewer", sa.String(64)),
        sa.Column("note", sa.Text),
        sa.UniqueConstraint("project", "task_id", "labeler", name="uq_label_assignments"),
    )
    op.create_index(
        "ix_label_assignments_queue",
        "label_assignments",
        ["project", "labeler", "state", "assigned_at"],
    )
    op.create_index("ix_label_assignments_task", "label_assignments", ["project", "task_id"])
    op.create_table(
        "label_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(64), nullable=False, index=True),
        sa.Column("task_id", sa.Integer, nullable=False),
        sa.Column("labeler", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("label", sa.JSON),
        sa.Column("note", sa.Text),
    )
    op.create_index("ix_label_events_task", "label_events", ["project", "task_id"])


def downgrade() -> None:
    op.drop_table("label_events")
    op.drop_table("label_assignments")
    op.drop_table("label_tasks")
    op.drop_table("label_specs")
