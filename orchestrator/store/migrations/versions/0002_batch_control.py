"""Batch control: the leader's position and heartbeat, the failure guard, archived failures.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

Only the ``batches`` table changes; every new column is nullable or has a
server default, so existing batches read as "no position, guard armed, nothing
archived". ``status`` gains the values PAUSED and CANCELLED: it is a VARCHAR(16)
without a CHECK constraint (``native_enum=False``), so no DDL is needed for them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    "position",
    "leader",
    "heartbeat_at",
    "status_reason",
    "failure_rate",
    "guard_observed",
    "guard_armed",
    "warning",
    "failures_archived_at",
    "archived_count",
)


def _json() -> sa.types.TypeEngine[object]:
    json: sa.types.TypeEngine[object] = sa.JSON(none_as_null=True)
    return json.with_variant(
        postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
    )


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the batch-control columns to ``batches``."""
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("position", _json(), nullable=True))
        batch.add_column(sa.Column("leader", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", _time(), nullable=True))
        batch.add_column(sa.Column("status_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("failure_rate", sa.Float(), nullable=True))
        batch.add_column(
            sa.Column("guard_observed", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch.add_column(
            sa.Column("guard_armed", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch.add_column(sa.Column("warning", sa.Text(), nullable=True))
        batch.add_column(sa.Column("failures_archived_at", _time(), nullable=True))
        batch.add_column(
            sa.Column("archived_count", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )


def downgrade() -> None:
    """Drop the batch-control columns; PAUSED/CANCELLED batches read back as FAILED."""
    op.execute(
        sa.text(
            "UPDATE batches SET status = 'FAILED', "
            "error = COALESCE(error, 'status ' || status || ' lost by downgrade') "
            "WHERE status IN ('PAUSED', 'CANCELLED')"
        )
    )
    with op.batch_alter_table("batches") as batch:
        for column in reversed(_COLUMNS):
            batch.drop_column(column)
