"""projects: a `projects` table and a `project` column on every project-owned table

Revision ID: 0003
Revises: 0002

A store made before this revision held one project; its records move under the project that
opens it (the store passes the name in `config.attributes["project"]`). Unique keys become per
project. `model_versions` and `aliases` are rebuilt (their keys change, and the first release
left those constraints unnamed); the other tables only gain a column, so nothing that other
tables reference by foreign key is ever dropped.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import context, op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
OWNED = ("runs", "stage_executions", "lineage", "alias_events", "monitor_reports")
PROJECT = sa.String(64)


def _project_name() -> str:
    name = context.config.attributes.get("project")
    return str(name) if name else "default"


def _model_versions(name: str) -> sa.Table:
    return op.create_table(
        name,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", PROJECT, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("model_digest", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("spec_digest", sa.String(64), nullable=False),
        sa.Column("data_digests", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("verdict", sa.JSON, nullable=False),
        sa.Column("metric", sa.String(32)),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("project", "name", "version"),
        sa.UniqueConstraint("project", "name", "model_digest"),
    )


def _aliases(name: str) -> sa.Table:
    return op.create_table(
        name,
        sa.Column("project", PROJECT, primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("alias", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )


def _rebuild(table: str, columns: list[str], make: object) -> None:
    """Copy `table` into a new table of the new shape under the current project, then swap."""
    conn = op.get_bind()
    temp = f"{table}_0003"
    make(temp)  # type: ignore[operator]
    cols = ", ".join(columns)
    conn.execute(
        sa.text(f"insert into {temp} (project, {cols}) select :p, {cols} from {table}"),
        {"p": _project_name()},
    )
    op.drop_table(table)
    op.rename_table(temp, table)


def upgrade() -> None:
    conn = op.get_bind()
    name = _project_name()
    postgres = conn.dialect.name == "postgresql"
    for table in OWNED:
        # '' (no project) for a row written without one: it belongs to nobody, so nobody sees it.
        op.add_column(table, sa.Column("project", PROJECT, nullable=False, server_default=""))
        conn.execute(sa.text(f"update {table} set project = :p"), {"p": name})
        if postgres:  # SQLite cannot drop a default without rebuilding the table
            op.alter_column(table, "project", server_default=None)
        op.create_index(f"ix_{table}_project", table, ["project"])

    columns = "id name version model_digest run_id spec_digest data_digests metrics verdict"
    _rebuild("model_versions", [*columns.split(), "metric", "created_at"], _model_versions)
    op.create_index("ix_model_versions_name", "model_versions", ["name"])
    op.create_index("ix_model_versions_project", "model_versions", ["project"])
    if postgres:  # the copied ids were given explicitly: move the sequence past them
        conn.execute(
            sa.text(
                "select setval(pg_get_serial_sequence('model_versions', 'id'), "
                "coalesce((select max(id) from model_versions), 0) + 1, false)"
            )
        )
    _rebuild("aliases", ["name", "alias", "version", "updated_at"], _aliases)
    op.create_index("ix_aliases_project", "aliases", ["project"])

    projects = op.create_table(
        "projects",
        sa.Column("name", PROJECT, primary_key=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("spec_digest", sa.String(64)),
        sa.Column("updated_at", TZ),
    )
    first = conn.execute(sa.text("select min(started_at) from runs")).scalar()
    if first is not None or conn.execute(sa.text("select count(*) from model_versions")).scalar():
        latest = conn.execute(
            sa.text(
                "select spec_digest from runs where kind = 'run' order by started_at desc limit 1"
            )
        ).scalar()
        stamp = datetime.now(UTC)
        op.bulk_insert(
            projects,
            [
                {
                    "name": name,
                    "created_at": first if isinstance(first, datetime) else stamp,
                    "spec_digest": latest,
                    "updated_at": stamp,
                }
            ],
        )


def downgrade() -> None:
    # Folding many projects back into one would have to drop all but one project's records.
    raise NotImplementedError(
        "revision 0003 cannot be undone in place: restore the backup taken before the upgrade"
    )
