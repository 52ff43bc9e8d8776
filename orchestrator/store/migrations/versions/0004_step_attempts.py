"""Step attempts: count the claims of an execution since its last checkpoint.

Revision ID: 0004_step_attempts
Revises: 0002
Create Date: 2026-12-06

``executions.claim_count`` grows by one with every claim that takes an execution
over and is reset to 0 by every checkpoint, so a step whose worker dies every time
(SIGKILL, out of memory, a hard time limit) is seen and failed instead of being
recovered for ever (``ORCHESTRATOR_MAX_STEP_ATTEMPTS``). The server default reads
every existing execution as "no attempt yet".
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_step_attempts"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``executions.claim_count``."""
    with op.batch_alter_table("executions") as batch:
        batch.add_column(
            sa.Column("claim_count", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )


def downgrade() -> None:
    """Drop ``executions.claim_count``."""
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("claim_count")
