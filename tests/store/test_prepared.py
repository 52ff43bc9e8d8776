"""Prepared statements on PostgreSQL: a single create and a single EXPRESS end.

They are prepared once per pooled connection (``dialect.Prepared``), prepared
again on a connection that forgot them, and store exactly what the statements
they replace store.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from orchestrator.settings import Settings
from orchestrator.store import ExecutionEnd, Repository
from orchestrator.store.dialect import _PREPARED_KEY, _end_one, _insert_one
from orchestrator.types import ExecutionStatus
from tests.store.conftest import DEFINITION
from tests.support import statements


def _forget_on_the_server(repo: Repository) -> None:
    """``DEALLOCATE ALL`` on the pooled connection (what ``DISCARD ALL`` or a pooler does)."""
    with repo.engine.connect() as conn:
        conn.exec_driver_sql("DEALLOCATE ALL")
        conn.commit()


def test_a_single_create_is_prepared_once_per_connection(pg_repo: Repository) -> None:
    _, version, _ = pg_repo.create_or_get_version("orders", DEFINITION)
    with statements(pg_repo.engine) as found:
        first, created = pg_repo.create_execution(version, name="a", input={"x": 1})
        second, _ = pg_repo.create_execution(version, name="b", input={"x": 2}, claim_as="w")
        third, _ = pg_repo.create_execution(version, name="c", input=[1, "two"])
        fourth, _ = pg_repo.create_execution(version, name="d")
    assert created
    # Two statements (with and without a claim, other columns), each prepared once.
    assert [s.split()[0] for s in found] == [
        "PREPARE",
        "EXECUTE",
        "PREPARE",
        "EXECUTE",
        "EXECUTE",
        "EXECUTE",
    ], found
    assert pg_repo.get_execution(first.id) == first
    assert pg_repo.get_execution(second.id) == second
    assert pg_repo.get_execution(third.id) == third
    assert pg_repo.get_execution(fourth.id) == fourth
    with pg_repo.engine.connect() as conn:
        no_input = conn.execute(text("SELECT input IS NULL FROM executions WHERE name = 'd'"))
        assert no_input.scalar() is True  # SQL NULL, as SQLAlchemy's JSON(none_as_null) binds it
    assert (second.status, second.lease_owner) == (ExecutionStatus.RUNNING, "w")
    # The same name again is found, not created twice
    again, created = pg_repo.create_execution(version, name="a", input={"x": 1})
    assert (again, created) == (first, False)


def test_a_connection_that_forgot_its_statements_prepares_them_again(
    pg_repo: Repository,
) -> None:
    _, version, _ = pg_repo.create_or_get_version("orders", DEFINITION)
    pg_repo.create_execution(version, name="a")
    _forget_on_the_server(pg_repo)
    with statements(pg_repo.engine) as found:
        execution, created = pg_repo.create_execution(version, name="b")
    assert created
    assert pg_repo.get_execution(execution.id) == execution
    # The EXECUTE failed (SQLSTATE 26000), and the statement was prepared again.
    assert [s.split()[0] for s in found] == ["EXECUTE", "PREPARE", "EXECUTE"], found


def test_a_connection_that_lost_count_of_its_statements_uses_them(pg_repo: Repository) -> None:
    _, version, _ = pg_repo.create_or_get_version("orders", DEFINITION)
    pg_repo.create_execution(version, name="a")
    with pg_repo.engine.connect() as conn:
        conn.connection.info.pop(_PREPARED_KEY)
    with statements(pg_repo.engine) as found:
        execution, created = pg_repo.create_execution(version, name="b")
    # The PREPARE failed (SQLSTATE 42P05, it exists), and the one there was used.
    assert created
    assert pg_repo.get_execution(execution.id) == execution
    assert [s.split()[0] for s in found] == ["PREPARE", "EXECUTE"], found


def test_a_single_end_stores_what_an_end_of_several_stores(pg_repo: Repository) -> None:
    """The prepared single-row UPDATE against ``UPDATE ... FROM jsonb_to_recordset``."""
    _, version, _ = pg_repo.create_or_get_version("orders", DEFINITION)
    outcomes = [
        {"status": ExecutionStatus.SUCCEEDED, "output": {"y": [1, "é", None]}},
        {"status": ExecutionStatus.SUCCEEDED, "output": None},
        {"status": ExecutionStatus.SUCCEEDED, "output": "text"},
        {"status": ExecutionStatus.FAILED, "error": "States.TaskFailed", "cause": 'it\'s "bad"'},
        {"status": ExecutionStatus.TIMED_OUT, "error": "States.Timeout", "cause": None},
    ]
    alone = [pg_repo.create_execution(version, name=f"alone-{i}")[0] for i in range(5)]
    together = [pg_repo.create_execution(version, name=f"together-{i}")[0] for i in range(5)]
    claimed = pg_repo.claim_many([e.id for e in alone + together], "w", lease_seconds=60)

    def end(execution_id: str, outcome: dict[str, Any]) -> ExecutionEnd:
        return ExecutionEnd(execution_id=execution_id, **outcome)

    with statements(pg_repo.engine) as found:
        single = [
            pg_repo.end_many([end(e.id, o)], "w", claimed=[claimed[e.id]])[0]
            for e, o in zip(alone, outcomes, strict=True)
        ]
    many = pg_repo.end_many(
        [end(e.id, o) for e, o in zip(together, outcomes, strict=True)],
        "w",
        claimed=[claimed[e.id] for e in together],
    )
    assert all(s.startswith("EXECUTE orchestrator_end_one") for s in found[1:])
    columns = "status, output, output IS NULL, error, cause, lease_owner, revision, claim_count"
    with pg_repo.engine.connect() as conn:
        stored = {
            row.name: row[1:]
            for row in conn.execute(text(f"SELECT name, {columns} FROM executions"))  # noqa: S608
        }
    for i, (one, several) in enumerate(zip(single, many, strict=True)):
        assert one is not None
        assert several is not None
        assert one == pg_repo.get_execution(alone[i].id)
        assert stored[f"alone-{i}"] == stored[f"together-{i}"]
        assert (one.output, one.error, one.cause) == (several.output, several.error, several.cause)
    assert stored["alone-1"][2] is True  # a null output is SQL NULL, as before


def test_a_single_end_is_fenced_by_the_lease(pg_repo: Repository) -> None:
    _, version, _ = pg_repo.create_or_get_version("orders", DEFINITION)
    execution, _ = pg_repo.create_execution(version, name="a")
    claimed = pg_repo.claim_many([execution.id], "w", lease_seconds=60)
    end = ExecutionEnd(execution_id=execution.id, status=ExecutionStatus.SUCCEEDED, output=1)
    assert pg_repo.end_many([end], "other", claimed=[claimed[execution.id]]) == [None]
    pg_repo.stop_execution(execution.id, error="Stopped", cause="by the test")
    assert pg_repo.end_many([end], "w", claimed=[claimed[execution.id]]) == [None]
    assert pg_repo.get_execution(execution.id).status == ExecutionStatus.ABORTED


def test_the_prepared_end_reads_the_primary_key_once_its_plan_is_generic(
    pg_repo: Repository,
) -> None:
    """PostgreSQL plans a prepared statement for its values five times, then generically."""
    _, version, _ = pg_repo.create_or_get_version("orders", DEFINITION)
    executions = [pg_repo.create_execution(version, name=f"e{i}")[0] for i in range(8)]
    claimed = pg_repo.claim_many([e.id for e in executions], "w", lease_seconds=60)
    for execution in executions[:7]:
        end = ExecutionEnd(execution_id=execution.id, status=ExecutionStatus.SUCCEEDED)
        assert pg_repo.end_many([end], "w", claimed=[claimed[execution.id]]) != [None]
    name = _end_one(server_clock=True).name
    with pg_repo.engine.connect() as conn:
        plan = "\n".join(
            row[0]
            for row in conn.exec_driver_sql(
                f"EXPLAIN EXECUTE {name} ('SUCCEEDED', NULL, NULL, NULL, now(), %s, 'w')",
                (executions[7].id,),
            )
        )
    assert "pk_executions" in plan, plan
    assert "ix_executions_status" not in plan, plan


def test_prepared_statements_can_be_turned_off_for_a_transaction_pooler(
    postgres_url: str,
) -> None:
    """``ORCHESTRATOR_DATABASE_PREPARED_STATEMENTS=false``: SQLAlchemy's statements only."""
    settings = Settings(database_url=postgres_url, database_prepared_statements=False)
    repo = Repository.from_settings(settings)
    try:
        _, version, _ = repo.create_or_get_version("orders", DEFINITION)
        with statements(repo.engine) as found:
            execution, created = repo.create_execution(version, name="a", input={"x": 1})
            claimed = repo.claim_many([execution.id], "w", lease_seconds=60)
            end = ExecutionEnd(execution_id=execution.id, status=ExecutionStatus.SUCCEEDED)
            [stored] = repo.end_many([end], "w", claimed=[claimed[execution.id]])
        assert created
        assert stored == repo.get_execution(execution.id)
        assert [s.split()[0] for s in found] == ["INSERT", "UPDATE", "UPDATE"], found
    finally:
        repo.close()


def test_a_statement_is_named_by_its_text() -> None:
    """A session that has the name (42P05) has this very statement, not another version's."""
    assert _end_one(server_clock=True).name != _end_one(server_clock=False).name
    assert _insert_one(("id", "name")).name != _insert_one(("id", "name", "input")).name
    assert _insert_one(("id", "name")).name == _insert_one(("id", "name")).name
    assert _end_one(server_clock=True).name.startswith("orchestrator_end_one_")
