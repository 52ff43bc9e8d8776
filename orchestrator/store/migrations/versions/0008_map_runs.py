"""Map Runs: one per entry into a Distributed Map state, and the children's links.

Revision ID: 0008_map_runs
Revises: 0010_history_assigned
Create Date: 2026-12-06

A new table ``map_runs`` (parent execution, state, the children's version, limits,
the reader's position, counts per status, the result writer). ``executions`` gains
``parent_execution_id``, ``map_run_id`` and ``item_index``.

The counts per status are kept by a trigger on ``executions`` (after an UPDATE of
``status`` of a row with a ``map_run_id``), so every way a child changes status
(claim, checkpoint, group commit, stop, redrive) counts, exactly once, in the
transaction that changed it. The trigger appends a row to ``map_run_deltas``
rather than updating ``map_runs``: a child's transaction then never waits for the
run's row (two transactions each holding children and wanting the run's row would
deadlock). The repository folds the deltas into ``map_runs`` under its lock.
Inserts are counted by the code that inserts children.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008_map_runs"
down_revision: str | Sequence[str] | None = "0010_history_assigned"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    json: sa.types.TypeEngine[object] = sa.JSON(none_as_null=True)
    return json.with_variant(
        postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
    )


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False)


#: status -> counter column (RUNNING and WAITING both count as running, as AWS's do).
_COLUMNS = {
    "PENDING": "pending_count",
    "RUNNING": "running_count",
    "WAITING": "running_count",
    "SUCCEEDED": "succeeded_count",
    "FAILED": "failed_count",
    "TIMED_OUT": "timed_out_count",
    "ABORTED": "aborted_count",
}


def _delta(old: str, new: str) -> str:
    """An INSERT of one row of deltas moving a child from ``old``'s counter to ``new``'s."""
    columns, values = [], []
    for column in dict.fromkeys(_COLUMNS.values()):
        statuses = ", ".join(f"'{s}'" for s, c in _COLUMNS.items() if c == column)
        columns.append(column.removesuffix("_count"))
        values.append(
            f"(CASE WHEN {new}.status IN ({statuses}) THEN 1 ELSE 0 END)"
            f" - (CASE WHEN {old}.status IN ({statuses}) THEN 1 ELSE 0 END)"
        )
    names, deltas = ", ".join(columns), ", ".join(values)
    # Built from the constants above only (no input reaches it).
    return f"INSERT INTO map_run_deltas (map_run_id, {names}) VALUES (NEW.map_run_id, {deltas})"  # noqa: S608


# Built from the constants above only (no input reaches it).
_PG_FUNCTION = f"""
CREATE FUNCTION map_run_child_status() RETURNS trigger AS $$
BEGIN
    {_delta("OLD", "NEW")};
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""

_PG_TRIGGER = """
CREATE TRIGGER map_run_child_status AFTER UPDATE OF status ON executions
FOR EACH ROW WHEN (NEW.map_run_id IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION map_run_child_status()
"""

_SQLITE_TRIGGER = f"""
CREATE TRIGGER map_run_child_status AFTER UPDATE OF status ON executions
FOR EACH ROW WHEN NEW.map_run_id IS NOT NULL AND OLD.status IS NOT NEW.status
BEGIN
    {_delta("OLD", "NEW")};
END
"""


def upgrade() -> None:
    """Create ``map_runs``, the children's columns and the counting trigger."""
    op.create_table(
        "map_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("parent_execution_id", sa.String(length=36), nullable=False),
        sa.Column("dispatch_key", sa.String(length=255), nullable=False),
        sa.Column("state_key", sa.String(length=255), nullable=False),
        sa.Column("state_name", sa.String(length=255), nullable=False),
        sa.Column("label", sa.String(length=255), nullable=True),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("execution_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("max_concurrency", sa.Integer(), nullable=False),
        sa.Column("tolerated_failure_percentage", sa.Float(), nullable=True),
        sa.Column("tolerated_failure_count", sa.Integer(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("created_count", sa.Integer(), nullable=False),
        sa.Column("released_count", sa.Integer(), nullable=False),
        sa.Column("feeding_done", sa.Boolean(), nullable=False),
        _count("pending_count"),
        _count("running_count"),
        _count("succeeded_count"),
        _count("failed_count"),
        _count("timed_out_count"),
        _count("aborted_count"),
        sa.Column("result_writer", _json(), nullable=True),
        sa.Column("parent_redrive_count", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=256), nullable=True),
        sa.Column("cause", sa.Text(), nullable=True),
        sa.Column("started_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.Column("stopped_at", _time(), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_execution_id"],
            ["executions.id"],
            name=op.f("fk_map_runs_parent_execution_id_executions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["state_machine_versions.id"],
            name=op.f("fk_map_runs_version_id_state_machine_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_map_runs")),
        sa.UniqueConstraint(
            "parent_execution_id",
            "dispatch_key",
            name=op.f("uq_map_runs_parent_execution_id_dispatch_key"),
        ),
    )
    op.create_index(op.f("ix_map_runs_parent_execution_id"), "map_runs", ["parent_execution_id"])
    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "map_run_deltas",
        sa.Column("id", big, nullable=False),
        sa.Column("map_run_id", sa.String(length=36), nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("pending", "running", "succeeded", "failed", "timed_out", "aborted")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_map_run_deltas")),
    )
    op.create_index(op.f("ix_map_run_deltas_map_run_id"), "map_run_deltas", ["map_run_id"])
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("parent_execution_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("map_run_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("item_index", sa.Integer(), nullable=True))
        batch.create_index(batch.f("ix_executions_parent_execution_id"), ["parent_execution_id"])
        batch.create_index("ix_executions_map_run_item", ["map_run_id", "item_index"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    """Drop the trigger, the children's columns and ``map_runs``."""
    op.execute(
        "DROP TRIGGER IF EXISTS map_run_child_status"
        + (" ON executions" if op.get_bind().dialect.name == "postgresql" else "")
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS map_run_child_status()")
    with op.batch_alter_table("executions") as batch:
        batch.drop_index("ix_executions_map_run_item")
        batch.drop_index(batch.f("ix_executions_parent_execution_id"))
        batch.drop_column("item_index")
        batch.drop_column("map_run_id")
        batch.drop_column("parent_execution_id")
    op.drop_index(op.f("ix_map_run_deltas_map_run_id"), table_name="map_run_deltas")
    op.drop_table("map_run_deltas")
    op.drop_index(op.f("ix_map_runs_parent_execution_id"), table_name="map_runs")
    op.drop_table("map_runs")
