"""A worker killed with SIGKILL mid-execution loses nothing: recovery resumes it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.statemachine import StateMachine
from orchestrator.store import ExecutionFilter, LeaseLost
from orchestrator.types import ExecutionStatus
from tests.support import wait_until

from . import ledger
from .conftest import Child, Env, states_in

pytestmark = pytest.mark.slow  # worker child processes killed and paused

STATES = 20
KILL_AFTER = 8
#: The child's lease: short, so that recovery can take over soon after the kill.
CHILD_LEASE_SECONDS = 1.0
HANDLER_DELAY = 0.1


def start_worker(spawn: Callable[..., Child], env: Env, ledger_path: Path, name: str) -> Child:
    """A worker process that starts execution ``name`` of machine "twenty" and runs it."""
    return spawn(
        "start",
        "--url", env.settings.database_url,
        "--ledger", str(ledger_path),
        "--delay", str(HANDLER_DELAY),
        "--lease", str(CHILD_LEASE_SECONDS),
        "--machine", "twenty",
        "--name", name,
        "--input", '{"n": 0}',
    )  # fmt: skip


def committed(machine: StateMachine, name: str) -> list[str]:
    """The states of execution ``name`` committed so far (none before it exists)."""
    page = machine.list_executions(ExecutionFilter(name_prefix=name))
    if not page.items:
        return []
    return states_in(machine.history(page.items[0].id))


def seconds_until(moment: datetime) -> float:
    return (moment - datetime.now(UTC)).total_seconds()


def test_a_worker_killed_mid_execution_is_finished_by_recovery_with_every_state_once(
    env: Env, spawn: Callable[..., Child], tmp_path: Path
) -> None:
    # Given a 20-state machine whose every Task records its idempotency key in a ledger
    ledger_path = tmp_path / "ledger.jsonl"
    handler = ledger.ledger_handler(ledger_path, delay=HANDLER_DELAY)
    env.handlers.register(ledger.LEDGER_RESOURCE, handler)
    machine = env.machine("twenty", ledger.task_chain(STATES))

    # ... and a worker process running an execution of it
    child = start_worker(spawn, env, ledger_path, "doomed")

    # When the worker is killed with SIGKILL once 8 states are committed
    wait_until(
        lambda: len(committed(machine, "doomed")) >= KILL_AFTER or child.process.poll() is not None,
        timeout=30,
        what="8 committed states",
    )
    child.kill()
    assert child.process.returncode == -9, child.errors()
    (killed,) = machine.list_executions(ExecutionFilter(name_prefix="doomed")).items
    before = states_in(machine.history(killed.id))
    assert KILL_AFTER <= len(before) < STATES
    assert killed.status == ExecutionStatus.RUNNING

    # Then recovery leaves it alone while the dead worker's lease is live ...
    rescuer = env.runner(owner="rescuer")
    expires = killed.lease_expires_at
    assert expires is not None
    if seconds_until(expires) > 0.2:  # (a very slow machine may already be past it)
        assert rescuer.recover(grace_seconds=0) == []

    # ... and finishes it once the lease has expired
    time.sleep(max(0.0, seconds_until(expires)) + 0.05)
    assert rescuer.recover(grace_seconds=0) == [killed.id]

    done = machine.get_execution(killed.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.output == {"n": STATES}

    # The history shows every state exactly once, in order, with nothing else
    history = machine.history(killed.id)
    assert states_in(history) == ledger.state_names(STATES)
    assert [e.seq for e in history] == list(range(1, len(history) + 1))
    assert {e.event_type for e in history} == {"StateSucceeded"}
    assert [e.output for e in history] == [{"n": i} for i in range(1, STATES + 1)]

    # Every handler call is in the ledger once, except the one in flight at the
    # kill, which may have run twice, with the same idempotency key
    entries = ledger.read(ledger_path)
    keys_by_state: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        keys_by_state[entry["state"]].add(entry["key"])
    assert sorted(keys_by_state) == ledger.state_names(STATES)
    assert all(len(keys) == 1 for keys in keys_by_state.values()), keys_by_state

    calls = Counter(entry["state"] for entry in entries)
    repeated = {state for state, count in calls.items() if count > 1}
    in_flight = ledger.state_names(STATES)[len(before)]
    assert repeated <= {in_flight}
    assert calls[in_flight] in (1, 2)
    if calls[in_flight] == 2:  # once by the killed worker, once by the rescuer
        assert {e["pid"] for e in entries if e["state"] == in_flight} == {child.pid, os.getpid()}
    assert [e["state"] for e in entries] == sorted(e["state"] for e in entries)
    # Nothing committed before the kill ran again in the rescuer
    rescued = {e["state"] for e in entries if e["pid"] != child.pid}
    assert rescued == set(ledger.state_names(STATES)[len(before) :])


def pause_outside_a_write(child: Child, env: Env, execution_id: str) -> None:
    """SIGSTOP the child at a moment it holds no lock on the execution.

    A process stopped inside a checkpoint or a lease renewal would keep its row
    (PostgreSQL) or the database (SQLite) locked until it is continued; a probe
    write that does not return at once says so, and the child is let go and
    stopped again a little later.
    """
    for _ in range(50):
        os.kill(child.pid, signal.SIGSTOP)
        probe = threading.Thread(target=lambda: _renew_as_nobody(env, execution_id))
        probe.start()
        probe.join(0.5)
        if not probe.is_alive():
            return
        os.kill(child.pid, signal.SIGCONT)
        probe.join(30)
        time.sleep(0.03)
    pytest.fail("could not pause the worker outside a write")


def _renew_as_nobody(env: Env, execution_id: str) -> None:
    with contextlib.suppress(LeaseLost):
        env.repo.renew_lease(execution_id, "probe", lease_seconds=1)


def test_a_paused_worker_whose_lease_was_taken_over_commits_nothing_when_it_wakes(
    env: Env, spawn: Callable[..., Child], tmp_path: Path
) -> None:
    # Given a worker process running the 20-state execution, paused (SIGSTOP) inside
    # the handler of its third state
    ledger_path = tmp_path / "ledger.jsonl"
    env.handlers.register(
        ledger.LEDGER_RESOURCE, ledger.ledger_handler(ledger_path, delay=HANDLER_DELAY)
    )
    machine = env.machine("twenty", ledger.task_chain(STATES))
    child = start_worker(spawn, env, ledger_path, "zombie")
    wait_until(
        lambda: len(ledger.read(ledger_path)) >= 3 or child.process.poll() is not None,
        timeout=30,
        what="the third handler call",
    )
    (execution,) = machine.list_executions(ExecutionFilter(name_prefix="zombie")).items
    pause_outside_a_write(child, env, execution.id)
    paused_at = states_in(machine.history(execution.id))

    # When its lease expires and recovery finishes the execution meanwhile
    rescuer = env.runner(owner="rescuer")
    wait_until(
        lambda: rescuer.recover(grace_seconds=0) == [execution.id],
        timeout=10,
        what="the lease to expire",
        interval=0.1,
    )
    assert machine.get_execution(execution.id).status == ExecutionStatus.SUCCEEDED
    finished = machine.history(execution.id)

    # ... and then the paused worker wakes up and carries on
    os.kill(child.pid, signal.SIGCONT)
    assert child.wait() == 0, child.errors()

    # Then it committed nothing: the history is the rescuer's, every state once
    assert machine.history(execution.id) == finished
    assert states_in(finished) == ledger.state_names(STATES)
    assert json.loads(child.lines()[-1]) == {"id": execution.id, "status": "SUCCEEDED"}
    # ... and the woken worker called no handler after the one it was paused in
    names = ledger.state_names(STATES)
    by_child = [e["state"] for e in ledger.read(ledger_path) if e["pid"] == child.pid]
    assert by_child in (names[: len(paused_at)], names[: len(paused_at) + 1])
