"""Task tokens: what a ``.waitForTaskToken`` Task waits for.

Revision ID: 0005_task_tokens
Revises: 0004_step_attempts
Create Date: 2026-12-06

A new table ``task_tokens`` (the SHA-256 of each token, never the token, with
its execution, state, attempt, status, deadlines and outcome). ``timers.kind``
gains the value TASK_TOKEN: it is a VARCHAR(16) without a CHECK constraint
(``native_enum=False``), so no DDL is needed for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_task_tokens"
down_revision: str | Sequence[str] | None = "0004_step_attempts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    json: sa.types.TypeEngine[object] = sa.JSON(none_as_null=True)
    return json.with_variant(
        postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
    )


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _big_pk() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


_STATUSES = ("WAITING", "SUCCEEDED", "FAILED", "TIMED_OUT", "NO_HEARTBEAT", "CANCELLED")


def upgrade() -> None:
    """Create ``task_tokens``."""
    op.create_table(
        "task_tokens",
        sa.Column("id", _big_pk(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("execution_id", sa.String(length=36), nullable=False),
        sa.Column("state_name", sa.String(length=255), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(*_STATUSES, name="tasktokenstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("payload", _json(), nullable=True),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("heartbeat_at", _time(), nullable=True),
        sa.Column("timeout_at", _time(), nullable=True),
        sa.Column("heartbeat_seconds", sa.Float(), nullable=True),
        sa.Column("timer_id", _big_pk(), nullable=True),
        sa.Column("called_at", _time(), nullable=True),
        sa.Column("completed_at", _time(), nullable=True),
        sa.Column("output", _json(), nullable=True),
        sa.Column("error", sa.String(length=256), nullable=True),
        sa.Column("cause", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name=op.f("fk_task_tokens_execution_id_executions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["timer_id"],
            ["timers.id"],
            name=op.f("fk_task_tokens_timer_id_timers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_task_tokens_token_hash")),
    )
    op.create_index(
        op.f("ix_task_tokens_execution_id"), "task_tokens", ["execution_id"], unique=False
    )
    op.create_index(op.f("ix_task_tokens_timer_id"), "task_tokens", ["timer_id"], unique=False)


def downgrade() -> None:
    """Drop ``task_tokens``; TASK_TOKEN timers go with it (their tokens are gone)."""
    op.drop_index(op.f("ix_task_tokens_timer_id"), table_name="task_tokens")
    op.drop_index(op.f("ix_task_tokens_execution_id"), table_name="task_tokens")
    op.drop_table("task_tokens")
    op.execute(sa.text("DELETE FROM timers WHERE kind = 'TASK_TOKEN'"))
