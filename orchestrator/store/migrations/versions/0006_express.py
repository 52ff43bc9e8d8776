"""Express executions: the machine's type, and each execution's.

Revision ID: 0006_express
Revises: 0005_task_tokens
Create Date: 2026-12-06

``state_machines.type`` is ``STANDARD`` or ``EXPRESS`` (AWS's state machine type,
fixed at creation). ``executions.execution_type`` is copied from the machine at
start, or chosen by a Distributed Map for its children, so the runner picks its
path per execution. Existing rows read as STANDARD (the server default).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_express"
down_revision: str | Sequence[str] | None = "0005_task_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _type_column(name: str) -> sa.Column[str]:
    return sa.Column(
        name, sa.String(length=16), server_default=sa.text("'STANDARD'"), nullable=False
    )


def upgrade() -> None:
    """Add ``state_machines.type`` and ``executions.execution_type``."""
    with op.batch_alter_table("state_machines") as batch:
        batch.add_column(_type_column("type"))
    with op.batch_alter_table("executions") as batch:
        batch.add_column(_type_column("execution_type"))


def downgrade() -> None:
    """Drop both columns."""
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("execution_type")
    with op.batch_alter_table("state_machines") as batch:
        batch.drop_column("type")
