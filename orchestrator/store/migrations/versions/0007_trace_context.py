"""The trace context of an execution: the parent of every advance's span.

Revision ID: 0007_trace_context
Revises: 0006_express
Create Date: 2026-12-06

``executions.trace_context`` (JSON, nullable) holds the W3C trace context
(``traceparent``, ``tracestate``) that the first traced advance stored, so an
execution's spans stay one trace across requeues, wake-ups and recovery.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_trace_context"
down_revision: str | Sequence[str] | None = "0006_express"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    json: sa.types.TypeEngine[object] = sa.JSON(none_as_null=True)
    return json.with_variant(
        postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
    )


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("trace_context", _json(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("trace_context")
