"""Group claim and group commit: the executions of one ``run_executions`` message.

They are claimed in one statement and their final checkpoints committed in one
transaction (``Runner.advance_many``); each keeps its own lease, history and
recovery, and a committed state never runs twice.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from orchestrator.handlers import HandlerContext
from orchestrator.statemachine import StateMachine
from orchestrator.store import NewExecution
from orchestrator.types import ExecutionStatus

from .conftest import Env, states_in
from .test_commits import FIVE_STATES, Crash, counting_commits, is_checkpoint, three_tasks


def pending(env: Env, machine: StateMachine, count: int, prefix: str = "g") -> list[str]:
    """``count`` PENDING executions of ``machine``, created but not advanced."""
    rows = [NewExecution(name=f"{prefix}-{i}", input={"i": i}) for i in range(count)]
    created = dict(env.repo.create_executions_bulk(machine.version_record, rows).created)
    return [created[f"{prefix}-{i}"] for i in range(count)]


def counting_claims(env: Env) -> list[str]:
    """Collect the claim statements (an UPDATE that sets the lease owner, not the cursor)."""
    claims: list[str] = []

    def before_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sets_owner = statement.startswith("UPDATE executions SET") and "lease_owner=" in statement
        if sets_owner and not is_checkpoint(statement):
            claims.append(statement)

    event.listen(env.repo.engine, "before_cursor_execute", before_execute)
    return claims


def test_a_group_is_claimed_in_one_statement_and_its_ends_commit_together(env: Env) -> None:
    # Given ten PENDING executions of the five-state machine
    env.handlers.register("work", lambda data: {"ok": True})
    machine = env.machine("five", FIVE_STATES)
    ids = pending(env, machine, 10)
    claims = counting_claims(env)

    # When one runner advances them as a group
    with counting_commits(env.repo) as commits:
        outcome = env.runner().advance_many(ids)

    # Then one statement claimed them and one transaction ended them all
    assert len(claims) == 1
    assert len(commits) == 2
    # And each ended with its own output and history, every state once
    assert not outcome.errors
    assert not outcome.retry
    for i, execution_id in enumerate(ids):
        done = env.execution(execution_id)
        assert outcome.executions[execution_id] == done
        assert done.status == ExecutionStatus.SUCCEEDED
        assert done.output == {"i": i, "prepared": 1, "work": {"ok": True}, "status": "done"}
        assert done.lease_owner is None
        assert states_in(machine.history(execution_id)) == [
            "Prepare",
            "Work",
            "Route",
            "Finish",
            "Done",
        ]


def test_a_crash_before_the_group_commit_runs_each_task_again_once_with_its_key(
    env: Env,
) -> None:
    # Given five executions whose worker dies at the group commit
    calls: list[str] = []

    def work(data: Any, ctx: HandlerContext) -> Any:
        calls.append(ctx.idempotency_key)
        return {"ok": True}

    env.handlers.register("work", work)
    machine = env.machine("five", FIVE_STATES)
    ids = pending(env, machine, 5)

    def before_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if is_checkpoint(statement):
            raise Crash

    event.listen(env.repo.engine, "before_cursor_execute", before_execute)
    try:
        env.runner(owner="doomed").advance_many(ids)
    except Crash:
        pass
    finally:
        event.remove(env.repo.engine, "before_cursor_execute", before_execute)

    # Then nothing after the claim is stored
    for execution_id in ids:
        crashed = env.execution(execution_id)
        assert crashed.status == ExecutionStatus.RUNNING
        assert crashed.cursor is None
        assert machine.history(execution_id) == []

    # When their leases run out and another worker takes the group over
    with env.repo.engine.begin() as conn:
        conn.execute(text("UPDATE executions SET lease_expires_at = '2000-01-01T00:00:00+00:00'"))
    outcome = env.runner(owner="rescuer").advance_many(ids)

    # Then each finishes with every state once; its Task ran twice with one key
    assert all(
        e is not None and e.status == ExecutionStatus.SUCCEEDED for e in outcome.executions.values()
    )
    for execution_id in ids:
        assert states_in(machine.history(execution_id)) == [
            "Prepare",
            "Work",
            "Route",
            "Finish",
            "Done",
        ]
    assert len(calls) == 10
    assert len(set(calls)) == 5


def test_an_execution_stopped_before_the_group_commit_stays_stopped_the_others_end(
    env: Env,
) -> None:
    # Given three executions; while the third runs its Task, the first (already
    # ended in memory, its final checkpoint waiting for the group) is stopped
    machine = env.machine("five", FIVE_STATES)
    ids = pending(env, machine, 3)

    def work(data: Any, ctx: HandlerContext) -> Any:
        if ctx.execution_id == ids[2]:
            env.repo.stop_execution(ids[0], error="Stopped")
        return {"ok": True}

    env.handlers.register("work", work)

    # When the group is advanced
    outcome = env.runner().advance_many(ids)

    # Then the stop wins for the first (its checkpoint wrote nothing), the others end
    first = env.execution(ids[0])
    assert first.status == ExecutionStatus.ABORTED
    assert outcome.executions[ids[0]] == first
    assert machine.history(ids[0]) == []
    for execution_id in ids[1:]:
        assert env.execution(execution_id).status == ExecutionStatus.SUCCEEDED


def test_executions_held_elsewhere_are_left_alone_and_the_rest_of_the_group_runs(
    env: Env,
) -> None:
    # Given three executions, the second held by a live worker
    env.handlers.register("work", lambda data: {"ok": True})
    machine = env.machine("five", FIVE_STATES)
    ids = pending(env, machine, 3)
    assert env.repo.claim(ids[1], "someone-else", lease_seconds=60) is not None

    # When a runner advances the group
    outcome = env.runner().advance_many(ids)

    # Then it did not touch the held one, and ended the others
    assert outcome.executions[ids[1]] is None
    held = env.execution(ids[1])
    assert held.status == ExecutionStatus.RUNNING
    assert held.lease_owner == "someone-else"
    assert env.execution(ids[0]).status == ExecutionStatus.SUCCEEDED
    assert env.execution(ids[2]).status == ExecutionStatus.SUCCEEDED


def test_a_database_error_mid_group_commits_what_ended_and_hands_back_the_rest(
    env: Env,
) -> None:
    # Given three executions of A -> B -> Between -> C; the database fails at the
    # second one's first commit (A's result, before B's handler)
    env.handlers.register("work", lambda data: {"ok": True})
    machine = env.machine("three", three_tasks())
    ids = pending(env, machine, 3)
    seen = [0]

    def before_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if is_checkpoint(statement):
            seen[0] += 1
            if seen[0] == 3:  # the first execution committed A, then B; its end waits
                raise OperationalError(statement, {}, Exception("server closed"))

    event.listen(env.repo.engine, "before_cursor_execute", before_execute)
    try:
        outcome = env.runner().advance_many(
            ids, transient=lambda exc: isinstance(exc, OperationalError)
        )
    finally:
        event.remove(env.repo.engine, "before_cursor_execute", before_execute)

    # Then the first execution, which ended, is committed by the group commit
    assert env.execution(ids[0]).status == ExecutionStatus.SUCCEEDED
    assert outcome.executions[ids[0]] == env.execution(ids[0])
    # And the second and third are handed back (leases released) to be retried
    assert outcome.retry == ids[1:]
    assert isinstance(outcome.cause, OperationalError)
    for execution_id in ids[1:]:
        left = env.execution(execution_id)
        assert left.status == ExecutionStatus.RUNNING
        assert left.lease_owner is None


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_on_postgresql_a_group_of_short_executions_costs_two_statements(env: Env) -> None:
    # Given ten PENDING executions of the five-state machine, on a warm runner
    env.handlers.register("work", lambda data: {"ok": True})
    machine = env.machine("five", FIVE_STATES)
    runner = env.runner()
    runner.advance_many(pending(env, machine, 1, "warm"))
    ids = pending(env, machine, 10)
    sent: list[str] = []

    def before_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    # When they are advanced as one message
    event.listen(env.repo.engine, "before_cursor_execute", before_execute)
    try:
        outcome = runner.advance_many(ids)
    finally:
        event.remove(env.repo.engine, "before_cursor_execute", before_execute)

    # Then one statement claimed them and one stored their ends with their history
    assert len(sent) == 2, sent
    assert "jsonb_to_recordset" in sent[1]
    for execution_id in ids:
        assert outcome.executions[execution_id].status == ExecutionStatus.SUCCEEDED  # type: ignore[union-attr]
        assert len(machine.history(execution_id)) == 5
