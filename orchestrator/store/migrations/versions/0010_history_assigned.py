"""History shows what each state assigned: ``history.assigned``.

Revision ID: 0010_history_assigned
Revises: 0007_trace_context
Create Date: 2026-12-06

A nullable JSON column holding the workflow variables a state assigned (name ->
value, issue 13). The existing JSON columns hold the state's input and output,
which AWS shows apart from the assignment, so none is reused. Existing rows read
as "assigned nothing".
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_history_assigned"
down_revision: str | Sequence[str] | None = "0007_trace_context"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    json: sa.types.TypeEngine[object] = sa.JSON(none_as_null=True)
    return json.with_variant(
        postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
    )


def upgrade() -> None:
    """Add ``history.assigned``."""
    with op.batch_alter_table("history") as batch:
        batch.add_column(sa.Column("assigned", _json(), nullable=True))


def downgrade() -> None:
    """Drop ``history.assigned``."""
    with op.batch_alter_table("history") as batch:
        batch.drop_column("assigned")
