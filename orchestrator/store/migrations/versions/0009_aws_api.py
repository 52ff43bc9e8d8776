"""The AWS API's own facts about a state machine: role ARN, tags, published versions.

Revision ID: 0009_aws_api
Revises: 0008_map_runs
Create Date: 2026-12-06

A new table ``aws_state_machines``, one row per state machine created or
touched through the AWS JSON API (``orchestrator/aws``), and ``history.path``:
where each state ran (the branch or iteration index at each Parallel/Map level),
so the AWS history can name each Map iteration's index; and ``history.started_at``:
when a Task attempt's handler was called (AWS's ``TaskStarted``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_aws_api"
down_revision: str | Sequence[str] | None = "0008_map_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    json: sa.types.TypeEngine[object] = sa.JSON(none_as_null=True)
    return json.with_variant(
        postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
    )


def upgrade() -> None:
    """Create ``aws_state_machines``; add ``history.path`` and ``history.started_at``."""
    op.create_table(
        "aws_state_machines",
        sa.Column("state_machine_id", sa.Integer(), nullable=False),
        sa.Column("role_arn", sa.Text(), nullable=True),
        sa.Column("tags", _json(), nullable=True),
        sa.Column("published", _json(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["state_machine_id"],
            ["state_machines.id"],
            name=op.f("fk_aws_state_machines_state_machine_id_state_machines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("state_machine_id", name=op.f("pk_aws_state_machines")),
    )

    with op.batch_alter_table("history") as batch:
        batch.add_column(sa.Column("path", _json(), nullable=True))
        batch.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop ``history.started_at``, ``history.path`` and ``aws_state_machines``."""
    with op.batch_alter_table("history") as batch:
        batch.drop_column("started_at")
        batch.drop_column("path")
    op.drop_table("aws_state_machines")
