"""Statements that pick executions by id read the primary key, even on stale statistics.

Right after a bulk insert, before autovacuum has analyzed the table, PostgreSQL
believes it holds almost no PENDING or RUNNING rows. The status tests of a claim
or an end then looked selective enough for the planner to read the status index
and filter out every other active execution: a claim of ten read all 3,000 here.
The status is written so that no index serves it (``dialect.unindexed``), which
leaves the primary key. Each statement's plan is taken with EXPLAIN on the exact
SQL and parameters the repository sent.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from orchestrator.store import ExecutionEnd, NewExecution, Repository
from orchestrator.store.records import Checkpoint
from orchestrator.types import ExecutionStatus
from tests.store.conftest import DEFINITION

ROWS = 3000


def _plans(repo: Repository, work: Any) -> list[str]:
    """Run ``work``; return the EXPLAIN of each UPDATE of executions it sent."""
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("UPDATE EXECUTIONS", "WITH R AS")):
            sent.append((statement, parameters))

    event.listen(repo.engine, "before_cursor_execute", capture)
    try:
        work()
    finally:
        event.remove(repo.engine, "before_cursor_execute", capture)
    assert sent, "no UPDATE of executions was sent"
    plans = []
    raw = repo.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in sent:
            cursor.execute("EXPLAIN " + statement, parameters)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
        raw.rollback()
    finally:
        raw.close()
    return plans


def _by_primary_key(plan: str) -> None:
    assert "pk_executions" in plan, plan
    assert "ix_executions_status_lease" not in plan, plan
    assert "Seq Scan on executions" not in plan, plan


def test_claims_and_ends_read_the_primary_key_before_any_analyze(pg_repo: Repository) -> None:
    _, version, _ = pg_repo.create_or_get_version("orders", DEFINITION)
    created = pg_repo.create_executions_bulk(
        version, [NewExecution(name=f"e{i}", input={"i": i}) for i in range(ROWS)]
    ).created
    ids = list(created.values())

    claimed: dict[str, Any] = {}

    def claim() -> None:
        claimed.update(pg_repo.claim_many(ids[:10], "w", lease_seconds=60))
        assert pg_repo.claim(ids[10], "w", lease_seconds=60) is not None

    for plan in _plans(pg_repo, claim):
        _by_primary_key(plan)
    assert len(claimed) == 10

    group = ids[:5]
    ends = [ExecutionEnd(execution_id=i, status=ExecutionStatus.SUCCEEDED) for i in group]

    def end() -> None:
        stored = pg_repo.end_many(ends, "w", claimed=[claimed[i] for i in group])
        assert all(row is not None and row.status == ExecutionStatus.SUCCEEDED for row in stored)

    for plan in _plans(pg_repo, end):
        _by_primary_key(plan)

    final = Checkpoint(cursor=None, status=ExecutionStatus.SUCCEEDED, may_have_waits=False)

    def checkpoint() -> None:
        stored = pg_repo.checkpoint_many([(i, "w", final) for i in ids[5:10]])
        assert all(row is not None for row in stored)

    for plan in _plans(pg_repo, checkpoint):
        _by_primary_key(plan)


def test_end_many_returns_the_claimed_rows_with_their_ends(pg_repo: Repository) -> None:
    """Nothing is read back: the rows returned are the claimed ones with the end applied."""
    _, version, _ = pg_repo.create_or_get_version("orders", DEFINITION)
    first, _ = pg_repo.create_execution(version, name="a", input={"x": 1})
    second, _ = pg_repo.create_execution(version, name="b", input={"x": 2})
    claimed = pg_repo.claim_many([first.id, second.id], "w", lease_seconds=60)
    ends = [
        ExecutionEnd(execution_id=first.id, status=ExecutionStatus.SUCCEEDED, output={"y": [1]}),
        ExecutionEnd(execution_id=second.id, status=ExecutionStatus.FAILED, error="E", cause="c"),
    ]
    pg_repo.release(second.id, "w")  # the second one's lease is lost meanwhile
    stored = pg_repo.end_many(ends, "w", claimed=[claimed[first.id], claimed[second.id]])
    assert stored[1] is None
    assert stored[0] == pg_repo.get_execution(first.id)
    assert stored[0] is not None
    assert stored[0].output == {"y": [1]}


def test_the_hot_statements_stay_in_sqlalchemys_compiled_cache() -> None:
    """Each has a cache key: SQLAlchemy compiles it once, not at every execution.

    A construct without one (a custom element missing its traversal) makes the
    whole statement uncacheable; the claim was compiled at every message that way
    (12% of a worker's samples).
    """
    from orchestrator.store.dialect import _SERVER_CLOCK, CALLER_CLOCK, PostgresDialect
    from orchestrator.store.repository._checkpoints import _FULL, _SHORT, _update
    from orchestrator.store.repository._runs import _claim_many_statement, _claim_statement

    for clock in (CALLER_CLOCK, _SERVER_CLOCK):
        statements: list[Any] = [_claim_statement(clock), _claim_many_statement(clock)]
        for shape in ("running", "renewing", "waiting", "ended", "released"):
            for full in (True, False):
                statements.append(_update(shape, full, clock))
        for columns in (_FULL, _SHORT):
            statements.append(PostgresDialect().logged_checkpoint(_update("ended", True), columns))
        for statement in statements:
            assert statement._generate_cache_key() is not None, statement
