"""Indexes on the executions' optional links hold only the rows that have one.

Revision ID: 0011_partial_indexes
Revises: 0009_aws_api
Create Date: 2026-12-06

``batch_id``, ``source_execution_id``, ``parent_execution_id`` and ``map_run_id``
are NULL for every execution started on its own. Their indexes held an entry for
each of those NULLs, and since every claim and every end changes the status (an
indexed column, so no update is HOT), each of those writes added a new entry to
all nine indexes of the table. Partial indexes (``WHERE ... IS NOT NULL``) serve
the same lookups (``batch_id = :id`` implies it is not NULL) and cost nothing for
rows without the link: four index insertions fewer per write of such a row.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_partial_indexes"
down_revision: str | Sequence[str] | None = "0009_aws_api"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Index name -> its columns; the first column is the optional link.
_INDEXES: dict[str, list[str]] = {
    "ix_executions_batch_id": ["batch_id"],
    "ix_executions_source_execution_id": ["source_execution_id"],
    "ix_executions_parent_execution_id": ["parent_execution_id"],
    "ix_executions_map_run_item": ["map_run_id", "item_index"],
}


def upgrade() -> None:
    """Rebuild the four indexes as partial ones."""
    for name, columns in _INDEXES.items():
        where = sa.text(f"{columns[0]} IS NOT NULL")
        op.drop_index(name, table_name="executions")
        op.create_index(name, "executions", columns, postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    """Back to full indexes."""
    for name, columns in _INDEXES.items():
        op.drop_index(name, table_name="executions")
        op.create_index(name, "executions", columns)
