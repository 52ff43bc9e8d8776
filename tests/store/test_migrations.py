"""The Alembic migrations build exactly the schema of ``models.py``, and reverse cleanly."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, String, inspect

from orchestrator.store import make_engine
from orchestrator.store.migrations import (
    VERSION_TABLE,
    alembic_config,
    current,
    downgrade,
    upgrade,
)
from orchestrator.store.models import Base


def schema_drift(url: str) -> list[Any]:
    """What Alembic autogenerate would change to make the database match the models."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def tables_and_revision(url: str) -> tuple[set[str], str | None]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names()) - {VERSION_TABLE}, current(conn)
    finally:
        engine.dispose()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def test_upgraded_schema_equals_the_models(empty_database_url: str) -> None:
    # Given an empty database, when it is migrated to head
    upgrade(empty_database_url)

    # Then autogenerate finds nothing to change, and the database is at head
    assert schema_drift(empty_database_url) == []
    tables, revision = tables_and_revision(empty_database_url)
    assert tables == set(Base.metadata.tables)
    assert revision == head_revision()


@pytest.mark.slow
def test_downgrade_then_upgrade_round_trips(empty_database_url: str) -> None:
    # Given a migrated database
    upgrade(empty_database_url)

    # When it is downgraded to base, every table of ours is gone
    downgrade(empty_database_url)
    assert tables_and_revision(empty_database_url) == (set(), None)

    # And when it is upgraded again, the schema equals the models once more
    upgrade(empty_database_url)
    assert schema_drift(empty_database_url) == []


def test_the_test_template_is_at_head(database_url: str) -> None:
    # The per-test databases are copies of a migrated template
    assert tables_and_revision(database_url)[1] == head_revision()


def test_the_drift_check_sees_a_changed_model(empty_database_url: str) -> None:
    # Given a migrated database and models that differ from it
    upgrade(empty_database_url)
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["executions"].append_column(Column("extra", Integer(), nullable=True))
    changed.tables["history"].c.event_type.type = String(10)

    # When they are compared, then both differences are reported
    engine = make_engine(empty_database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
            )
            diff = compare_metadata(context, changed)
    finally:
        engine.dispose()
    kinds = sorted(str(d[0][0]) if isinstance(d, list) else str(d[0]) for d in diff)
    assert kinds == ["add_column", "modify_type"]
