"""A step whose worker dies every time is failed after a few attempts, not recovered for ever.

``executions.claim_count`` counts the claims since the last checkpoint; past
``ORCHESTRATOR_MAX_STEP_ATTEMPTS`` the runner fails the execution at claim time.
The workers here die for real: a ``tests.runtime.worker_script`` child whose
handler SIGKILLs its own process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator import asl
from orchestrator.statemachine import StateMachine, send_message
from orchestrator.store import ExecutionFilter
from orchestrator.types import ExecutionStatus

from . import ledger
from .conftest import Child, Env, states_in

#: The children's lease: short, so that each recovery can follow the last kill soon.
CHILD_LEASE_SECONDS = 0.5


def child_args(env: Env, ledger_path: Path, die: str, limit: int) -> list[str]:
    return [
        "--url", env.settings.database_url,
        "--ledger", str(ledger_path),
        "--lease", str(CHILD_LEASE_SECONDS),
        "--die", die,
        "--max-step-attempts", str(limit),
    ]  # fmt: skip


def start_in_child(
    spawn: Callable[..., Child], env: Env, args: list[str], machine: StateMachine, name: str
) -> str:
    """Start execution ``name`` in a child whose handler SIGKILLs it; return the id."""
    child = spawn("start", *args, "--machine", machine.name, "--name", name, "--input", '{"n": 0}')
    assert child.wait() == -9, child.errors()
    (execution,) = machine.list_executions(ExecutionFilter(name_prefix=name)).items
    return execution.id


def recover_in_child(
    spawn: Callable[..., Child], env: Env, args: list[str], execution_id: str
) -> int:
    """Once the dead worker's lease expired, advance the execution in a new child; its exit code."""
    wait_for_lease_expiry(env, execution_id)
    child = spawn("advance", *args, "--ids", execution_id)
    child.send_line("go")
    return child.wait()


def wait_for_lease_expiry(env: Env, execution_id: str) -> None:
    expires = env.execution(execution_id).lease_expires_at
    if expires is not None:
        time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)


@pytest.mark.slow
def test_a_step_that_kills_its_worker_every_time_fails_after_the_attempt_limit(
    env: Env, spawn: Callable[..., Child], tmp_path: Path
) -> None:
    # Given a one-Task machine whose handler SIGKILLs the worker on every call
    # (here, in the test process, the handler only records its call)
    limit = 3
    ledger_path = tmp_path / "ledger.jsonl"
    env.handlers.register(ledger.LEDGER_RESOURCE, ledger.ledger_handler(ledger_path, delay=0))
    machine = env.machine("poison", ledger.task_chain(1))
    args = child_args(env, ledger_path, "always", limit)

    # When it is started, and recovered by a new worker each time its worker died,
    # until the step ran `limit` times
    execution_id = start_in_child(spawn, env, args, machine, "doomed")
    for _ in range(limit - 1):
        assert recover_in_child(spawn, env, args, execution_id) == -9
    assert env.execution(execution_id).status == ExecutionStatus.RUNNING

    # ... and recovered once more
    wait_for_lease_expiry(env, execution_id)
    done = env.runner(max_step_attempts=limit).advance(execution_id)

    # Then it is FAILED with States.Runtime, naming the state, without running it again
    assert done is not None
    assert done.status == ExecutionStatus.FAILED
    assert done.error == asl.errors.RUNTIME
    cause = done.cause or ""
    assert f"state 'S01' was attempted {limit} times without progress" in cause
    assert "ORCHESTRATOR_MAX_STEP_ATTEMPTS" in cause
    calls = ledger.read(ledger_path)
    assert [e["state"] for e in calls] == ["S01"] * limit
    assert len({e["pid"] for e in calls}) == limit  # each call a worker that died
    assert os.getpid() not in {e["pid"] for e in calls}
    (failed,) = env.repo.history(execution_id)
    assert (failed.event_type, failed.state_name) == ("StateFailed", "S01")

    # ... and a redrive grants the step its attempts again
    redriven = env.repo.redrive(execution_id)
    assert redriven is not None
    assert redriven.claim_count == 0


@pytest.mark.slow
def test_a_step_committed_after_a_kill_starts_the_count_again(
    env: Env, spawn: Callable[..., Child], tmp_path: Path
) -> None:
    # Given three Tasks whose handler kills its worker on the first call of each,
    # and a limit of two attempts per step
    ledger_path = tmp_path / "ledger.jsonl"
    machine = env.machine("flaky", ledger.task_chain(3))
    args = child_args(env, ledger_path, "first", 2)

    # When it is started (S01 kills the worker) and recovered after every kill
    execution_id = start_in_child(spawn, env, args, machine, "flaky")
    assert env.execution(execution_id).claim_count == 1
    exits = []
    for committed in (["S01"], ["S01", "S02"]):
        exits.append(recover_in_child(spawn, env, args, execution_id))
        # each recovery committed the step that killed the last worker, then died on
        # the next one: the commit started the count again
        stored = env.execution(execution_id)
        assert states_in(env.repo.history(execution_id)) == committed
        assert (stored.status, stored.claim_count) == (ExecutionStatus.RUNNING, 0)
    exits.append(recover_in_child(spawn, env, args, execution_id))

    # Then four claims, three kills, and it succeeded: no step was attempted thrice
    assert exits == [-9, -9, 0]
    done = env.execution(execution_id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.cause
    assert done.output == {"n": 3}
    assert [e["state"] for e in ledger.read(ledger_path)] == [
        "S01",
        "S01",
        "S02",
        "S02",
        "S03",
        "S03",
    ]


def three_messages() -> dict[str, Any]:
    """Three Message states in a row, each keeping its input (the correlation value)."""
    names = ["M1", "M2", "M3"]
    states: dict[str, Any] = {
        name: {"Type": "Message", "CorrelationKey": "k", "ResultPath": None, "Next": following}
        for name, following in zip(names, [*names[1:], None], strict=True)
    }
    del states["M3"]["Next"]
    states["M3"]["End"] = True
    return {"StartAt": "M1", "States": states}


def test_a_parked_execution_resumed_again_and_again_does_not_accumulate_attempts(
    env: Env,
) -> None:
    # Given an execution that parks three times, with a limit of one attempt per step
    machine = env.machine("listener", three_messages(), max_step_attempts=1)
    waiting = machine.start("v-1")
    assert waiting.status == ExecutionStatus.WAITING
    settings = env.with_settings(max_step_attempts=1)
    runner = env.runner(max_step_attempts=1)

    # When each message resumes it (a claim each time)
    for parked in (1, 2):
        assert send_message("k", "v-1", repository=env.repo, settings=settings, runner=runner) == [
            waiting.id
        ]
        # Then the checkpoint that parked it again started the count again
        stored = env.execution(waiting.id)
        assert (stored.status, stored.claim_count) == (ExecutionStatus.WAITING, 0), stored.cause
        assert len(env.repo.execution_correlations(waiting.id)) == parked + 1
    assert send_message("k", "v-1", repository=env.repo, settings=settings, runner=runner) == [
        waiting.id
    ]

    # ... and it ends SUCCEEDED, not failed for its repeated claims
    done = env.execution(waiting.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.cause
    assert done.output == "v-1"


def test_only_a_claim_that_takes_the_execution_over_counts(env: Env) -> None:
    # Given a new PENDING execution
    machine = env.machine("quiet", ledger.task_chain(1))
    created, _ = env.repo.create_execution(machine.version_record, name="quiet")
    assert created.claim_count == 0

    def claim(owner: str) -> int:
        claimed = env.repo.claim(created.id, owner, lease_seconds=60)
        assert claimed is not None
        return claimed.claim_count

    # When it is claimed, claimed again by the same owner (a retried statement),
    # released and claimed again, then taken over once the lease is gone
    assert claim("a") == 1
    assert claim("a") == 1
    assert env.repo.release(created.id, "a")
    assert claim("a") == 2
    assert env.repo.release(created.id, "a")
    assert claim("b") == 3
