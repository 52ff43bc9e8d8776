"""EXPRESS executions: run in memory, only the final row stored, at least once.

On PostgreSQL and SQLite (``database_url``). The worker-side behaviour (a SIGKILLed
worker, ``start_sync`` through a worker) is in ``tests/distributed/test_express_worker.py``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.asl import DefinitionInvalid
from orchestrator.errors import StateMachineTypeNotSupported
from orchestrator.statemachine import StateMachine
from orchestrator.store import Execution, NewExecution, Repository
from orchestrator.store.records import execution_from_json, execution_json
from orchestrator.types import START_TICKET_PREFIX, ExecutionStatus
from tests.support import statements

from .conftest import Env
from .test_commits import FIVE_STATES

#: The bench's 3-state machine: Pass, Task, Succeed.
THREE_STATES: dict[str, Any] = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Result": 1, "ResultPath": "$.prepared", "Next": "Work"},
        "Work": {"Type": "Task", "Resource": "work", "ResultPath": "$.work", "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}


def express(env: Env, name: str, definition: Any, **settings: Any) -> StateMachine:
    """An EXPRESS machine on the test's store, advanced by the test's handlers."""
    created = StateMachine.create(
        name,
        definition,
        repository=env.repo,
        settings=env.with_settings(**settings),
        machine_type="EXPRESS",
    )
    return env.bind(created, **settings)


def pending(env: Env, machine: StateMachine, count: int, prefix: str = "x") -> list[str]:
    """``count`` PENDING executions of ``machine``, created but not advanced."""
    rows = [NewExecution(name=f"{prefix}-{i}", input={"i": i}) for i in range(count)]
    created = dict(env.repo.create_executions_bulk(machine.version_record, rows).created)
    return [created[f"{prefix}-{i}"] for i in range(count)]


def test_an_express_execution_stores_its_end_and_no_history(env: Env) -> None:
    # Given an EXPRESS machine whose Task doubles its input
    calls: list[Any] = []
    env.handlers.register("work", lambda data: calls.append(data) or {"n": 2 * data["i"]})
    machine = express(env, "exp", THREE_STATES)

    # When it runs
    done = machine.start_sync({"i": 21})

    # Then the final row holds the outcome, and no state left a history row
    assert machine.machine_type == "EXPRESS"
    assert done.execution_type == "EXPRESS"
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.output == {"i": 21, "prepared": 1, "work": {"n": 42}}
    assert done.ended_at is not None
    assert done.ended_at >= done.started_at
    assert done.lease_owner is None
    assert env.repo.history(done.id) == []
    assert env.repo.get_execution(done.id) == done
    assert calls == [{"i": 21, "prepared": 1}]


def test_a_failed_express_execution_stores_its_error_and_cause(env: Env) -> None:
    def boom(data: Any) -> Any:
        raise ValueError("no good")

    env.handlers.register("work", boom)
    machine = express(env, "exp-fail", THREE_STATES)

    done = machine.start_sync({"i": 1})

    assert done.status == ExecutionStatus.FAILED
    assert (done.error, done.cause) == ("ValueError", "no good")
    assert done.output is None
    assert env.repo.history(done.id) == []


def test_an_express_output_over_the_limit_fails_the_execution(env: Env) -> None:
    env.handlers.register("work", lambda data: "x" * 300_000)
    machine = express(env, "exp-big", THREE_STATES)

    done = machine.start_sync({"i": 1})

    assert done.status == ExecutionStatus.FAILED
    assert done.error == "States.DataLimitExceeded"


def test_a_standard_machine_refuses_start_sync(env: Env) -> None:
    env.handlers.register("work", lambda data: {})
    machine = env.machine("std", THREE_STATES)

    with pytest.raises(StateMachineTypeNotSupported, match="EXPRESS state machines only"):
        machine.start_sync({"i": 1})
    assert env.repo.count_executions(machine._filter(None, {})) == 0


def test_a_machine_keeps_its_type_and_express_refuses_callbacks(env: Env) -> None:
    express(env, "typed", THREE_STATES)
    with pytest.raises(StateMachineTypeNotSupported, match="'typed' is EXPRESS"):
        env.machine("typed", THREE_STATES)
    callback = {
        "StartAt": "Ask",
        "States": {"Ask": {"Type": "Task", "Resource": "work.waitForTaskToken", "End": True}},
    }
    with pytest.raises(DefinitionInvalid, match="/States/Ask/Resource"):
        express(env, "callback", callback)
    with pytest.raises(DefinitionInvalid, match="unknown machine type"):
        StateMachine.create("odd", THREE_STATES, repository=env.repo, machine_type="FAST")


def test_a_message_of_express_and_standard_executions_takes_each_its_path(env: Env) -> None:
    # Given PENDING executions of an EXPRESS and of a STANDARD machine in one message
    env.handlers.register("work", lambda data: {"ok": True})
    fast = pending(env, express(env, "fast", FIVE_STATES), 3, "f")
    slow = pending(env, env.machine("slow", FIVE_STATES), 3, "s")
    ids = [fast[0], slow[0], fast[1], slow[1], fast[2], slow[2]]

    # When one runner advances the message
    outcome = env.runner().advance_many(ids)

    # Then every execution ended; only the STANDARD ones wrote history
    assert not outcome.errors
    assert not outcome.retry
    for execution_id in ids:
        stored = outcome.executions[execution_id]
        assert stored is not None
        assert stored.status == ExecutionStatus.SUCCEEDED
        assert stored.output["work"] == {"ok": True}
    assert all(env.repo.history(i) == [] for i in fast)
    assert all(len(env.repo.history(i)) == 5 for i in slow)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_an_express_message_costs_two_statements_whatever_its_size(env: Env) -> None:
    # Given an EXPRESS machine, warmed (its definition is parsed and cached)
    env.handlers.register("work", lambda data: {"ok": True})
    machine = express(env, "cheap", FIVE_STATES)
    runner = env.runner()
    runner.advance_many(pending(env, machine, 1, "warm"))
    ids = pending(env, machine, 20)

    # When a message of twenty is advanced
    with statements(env.repo.engine) as sent:
        outcome = runner.advance_many(ids)

    # Then one statement claimed them and one stored their ends
    assert len(sent) == 2, sent
    assert sent[0].startswith("UPDATE executions SET")
    assert "jsonb_to_recordset" in sent[1]
    assert all(outcome.executions[i].status == ExecutionStatus.SUCCEEDED for i in ids)  # type: ignore[union-attr]


def test_an_express_execution_stopped_meanwhile_stays_aborted(env: Env) -> None:
    # Given an EXPRESS execution whose Task stops it (another process's stop)
    machine = express(env, "stopped", THREE_STATES)

    def stop_myself(data: Any, ctx: Any) -> Any:
        env.repo.stop_execution(ctx.execution_id, error="Stopped", cause="by the test")
        return {"late": True}

    env.handlers.register("work", stop_myself)
    [execution_id] = pending(env, machine, 1)

    # When it runs to its end
    env.runner().advance(execution_id)

    # Then the stop stands: the end found no lease and wrote nothing
    stored = env.repo.get_execution(execution_id)
    assert stored.status == ExecutionStatus.ABORTED
    assert stored.output is None


def test_an_express_execution_left_by_a_dead_worker_runs_again_from_the_start(
    env: Env,
) -> None:
    # Given an EXPRESS execution claimed by a worker that died (its lease ran out)
    calls: list[Any] = []
    env.handlers.register("work", lambda data: calls.append(data) or {"ok": True})
    machine = express(env, "again", THREE_STATES)
    [execution_id] = pending(env, machine, 1)
    past = datetime.now(UTC) - timedelta(minutes=5)
    assert env.repo.claim(execution_id, "dead-worker", lease_seconds=1, now=past) is not None

    # When recovery advances it
    recovered = env.runner().recover(grace_seconds=0)

    # Then it ran from its start, once here, and ended with its final row only
    assert recovered == [execution_id]
    stored = env.repo.get_execution(execution_id)
    assert stored.status == ExecutionStatus.SUCCEEDED
    assert calls == [{"i": 0, "prepared": 1}]
    assert env.repo.history(execution_id) == []


def test_an_express_execution_whose_workers_keep_dying_fails(env: Env) -> None:
    env.handlers.register("work", lambda data: {"ok": True})
    machine = express(env, "dying", THREE_STATES)
    [execution_id] = pending(env, machine, 1)
    past = datetime.now(UTC) - timedelta(minutes=5)
    for attempt in range(env.settings.max_step_attempts):
        claimed = env.repo.claim(
            execution_id,
            f"dead-{attempt}",
            lease_seconds=1,
            now=past + timedelta(seconds=attempt * 2),
        )
        assert claimed is not None

    stored = env.runner().advance(execution_id)

    assert stored is not None
    assert stored.status == ExecutionStatus.FAILED
    assert stored.error == "States.Runtime"
    assert "MAX_STEP_ATTEMPTS" in (stored.cause or "")
    assert env.repo.history(execution_id) == []


def test_a_child_of_a_standard_machine_may_be_express(env: Env) -> None:
    # Given a STANDARD machine, and one execution of it created as EXPRESS (a
    # Distributed Map's EXPRESS child)
    env.handlers.register("work", lambda data: {"ok": True})
    machine = env.machine("parent", THREE_STATES)
    child, _ = env.repo.create_execution(
        machine.version_record, name="child", input={"i": 3}, execution_type="EXPRESS"
    )
    standard, _ = env.repo.create_execution(machine.version_record, name="std", input={"i": 4})

    # When both are advanced
    env.runner().advance_many([child.id, standard.id])

    # Then the path was chosen per execution
    assert child.execution_type == "EXPRESS"
    assert standard.execution_type == "STANDARD"
    assert env.repo.history(child.id) == []
    assert len(env.repo.history(standard.id)) == 3
    assert env.repo.get_execution(child.id).status == ExecutionStatus.SUCCEEDED


def test_an_express_execution_cannot_be_redriven(env: Env) -> None:
    def boom(data: Any) -> Any:
        raise ValueError("no good")

    env.handlers.register("work", boom)
    machine = express(env, "no-redrive", THREE_STATES)
    failed = machine.start_sync({"i": 1})

    with pytest.raises(StateMachineTypeNotSupported, match="only STANDARD executions"):
        machine.redrive(failed.id)
    assert env.repo.get_execution(failed.id).status == ExecutionStatus.FAILED


# -- started for a worker under a start ticket (StateMachine.start_async) -----------


def started(env: Env, machine: StateMachine, data: Any, **changes: Any) -> tuple[str, Execution]:
    """What ``start_async`` stores and publishes for an EXPRESS execution: the row,
    RUNNING under a new start ticket, and that row as the message carries it."""
    ticket = f"{START_TICKET_PREFIX}{uuid.uuid4().hex}"
    execution, created = env.repo.create_execution(
        machine.version_record,
        input=data,
        claim_as=ticket,
        lease_seconds=env.settings.lease_seconds,
    )
    assert created
    assert (execution.status, execution.lease_owner) == (ExecutionStatus.RUNNING, ticket)
    return ticket, replace(execution_from_json(execution_json(execution)), **changes)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_started_express_execution_is_run_from_its_message_and_ended_in_one_statement(
    env: Env,
) -> None:
    # Given an EXPRESS execution started for a worker, and a runner already warmed
    seen: list[Any] = []

    def work(data: Any, ctx: Any) -> Any:
        seen.append(env.repo.get_execution(ctx.execution_id).lease_owner)
        return {"n": 2 * data["i"]}

    env.handlers.register("work", work)
    machine = express(env, "started", THREE_STATES)
    runner = env.runner()
    runner.advance_many(pending(env, machine, 1, "warm"))
    seen.clear()
    ticket, row = started(env, machine, {"i": 21})

    # When a worker takes its message
    with statements(env.repo.engine) as sent:
        done = runner.advance_started(row.id, ticket, row)

    # Then it ran under the ticket's lease, with no claim: the end was the one statement
    # (prepared: its first use on a pooled connection prepares it there)
    assert seen == [ticket]
    run = [s for s in sent if not s.startswith("PREPARE")]
    assert [s.split()[0] for s in run if not s.startswith("SELECT")] == ["EXECUTE"], sent
    assert len(run) == 2, sent  # the handler's read of the row, and the end
    assert run[1].startswith("EXECUTE orchestrator_end_one_")
    assert done is not None
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.output == {"i": 21, "prepared": 1, "work": {"n": 42}}
    assert env.repo.get_execution(row.id) == done
    assert done.lease_owner is None
    assert env.repo.history(row.id) == []


def test_a_redelivered_start_is_claimed_from_its_ticket_and_counted(env: Env) -> None:
    # Given a started EXPRESS execution whose first worker died with its message
    # (Celery put it back: redelivered), the ticket's lease still live
    owners: list[Any] = []

    def work(data: Any, ctx: Any) -> Any:
        owners.append(env.repo.get_execution(ctx.execution_id).lease_owner)
        return {"n": 1}

    env.handlers.register("work", work)
    machine = express(env, "redelivered", THREE_STATES)
    ticket, row = started(env, machine, {"i": 1})
    runner = env.runner(owner="second-worker")

    # When the next worker takes the redelivered message
    done = runner.advance_started(row.id, ticket, row, redelivered=True)

    # Then it claimed the execution (a take-over, counted) and ran it under its own lease
    assert owners == ["second-worker"]
    assert done is not None
    assert done.status == ExecutionStatus.SUCCEEDED


def test_a_start_whose_message_waited_half_a_lease_is_claimed_first(env: Env) -> None:
    env.handlers.register("work", lambda data: {"n": 1})
    machine = express(env, "late", THREE_STATES)
    soon = datetime.now(UTC) + timedelta(seconds=env.settings.lease_seconds / 4)
    ticket, row = started(env, machine, {"i": 1}, lease_expires_at=soon)
    claims: list[int] = []
    runner = env.runner(owner="late-worker")
    original = env.repo.claim

    def claim(*args: Any, **kwargs: Any) -> Any:
        found = original(*args, **kwargs)
        claims.append(found.claim_count)
        return found

    runner.repo = _Counting(env.repo, claim)  # type: ignore[assignment]
    done = runner.advance_started(row.id, ticket, row)

    assert claims == [2]  # the ticket's lease taken over: one claim past the start
    assert done is not None
    assert done.status == ExecutionStatus.SUCCEEDED


def test_the_claims_death_count_stops_a_start_that_keeps_killing_its_workers(
    env: Env,
) -> None:
    # Given a started EXPRESS execution redelivered after each of its workers died
    env.handlers.register("work", lambda data: {"n": 1})
    machine = express(env, "poison", THREE_STATES)
    ticket, row = started(env, machine, {"i": 1})
    for attempt in range(env.settings.max_step_attempts):
        assert env.repo.claim(row.id, f"dead-{attempt}", lease_seconds=0.001, ticket=ticket)
        time.sleep(0.01)

    # When the next redelivery comes
    done = env.runner().advance_started(row.id, ticket, row, redelivered=True)

    # Then it fails rather than run again
    assert done is not None
    assert done.status == ExecutionStatus.FAILED
    assert "MAX_STEP_ATTEMPTS" in (done.cause or "")


def test_a_start_stopped_or_taken_over_before_its_end_stores_nothing(env: Env) -> None:
    env.handlers.register("work", lambda data: {"n": 1})
    machine = express(env, "fenced", THREE_STATES)
    # Stopped before the worker took the message
    ticket, row = started(env, machine, {"i": 1})
    assert env.repo.stop_execution(row.id, error="Stopped", cause="by the test")
    done = env.runner().advance_started(row.id, ticket, row)
    assert done is not None
    assert done.status == ExecutionStatus.ABORTED
    assert done.output is None
    # Taken over by a worker the sweeper sent, after the ticket's lease ran out
    ticket, row = started(env, machine, {"i": 2})
    past = datetime.now(UTC) + timedelta(seconds=10 * env.settings.lease_seconds)
    assert env.repo.claim(row.id, "sweepers-worker", lease_seconds=600, now=past) is not None
    done = env.runner().advance_started(row.id, ticket, row)
    assert done is not None
    assert done.status == ExecutionStatus.RUNNING
    assert done.lease_owner == "sweepers-worker"


def test_a_start_message_for_no_stored_execution_is_dropped(env: Env) -> None:
    calls: list[Any] = []
    env.handlers.register("work", lambda data: calls.append(data) or {"n": 1})
    machine = express(env, "gone", THREE_STATES)
    ticket, row = started(env, machine, {"i": 1})
    made_up = replace(row, id=str(uuid.uuid4()))

    assert env.runner().advance_started(made_up.id, ticket, made_up) is None
    assert env.runner().advance_started(made_up.id, ticket, None) is None


def test_a_plain_claim_does_not_take_a_live_ticket_over(env: Env) -> None:
    machine = express(env, "queued", THREE_STATES)
    ticket, row = started(env, machine, {"i": 1})
    assert env.repo.claim(row.id, "other", lease_seconds=60) is None
    taken = env.repo.claim(row.id, "other", lease_seconds=60, ticket="@start:not-its-ticket")
    assert taken is None
    assert env.repo.claim(row.id, "other", lease_seconds=60, ticket=ticket) is not None


class _Counting:
    """A repository whose ``claim`` is replaced; everything else passes through."""

    def __init__(self, repo: Repository, claim: Any) -> None:
        self._repo, self.claim = repo, claim

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)


@pytest.mark.slow
def test_a_started_execution_that_runs_long_keeps_its_tickets_lease(env: Env) -> None:
    # Given a started EXPRESS execution whose Task outlasts the lease (2 s here)
    def slow(data: Any) -> Any:
        time.sleep(env.settings.lease_seconds * 1.6)
        return {"n": 1}

    env.handlers.register("work", slow)
    machine = express(env, "long", THREE_STATES)
    ticket, row = started(env, machine, {"i": 1})

    # When a worker runs it from its message
    done = env.runner().advance_started(row.id, ticket, row)

    # Then the lease keeper renewed the ticket's lease meanwhile, and the end stood
    assert done is not None
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.output == {"i": 1, "prepared": 1, "work": {"n": 1}}
