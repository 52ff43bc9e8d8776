"""Races settled by the store: two advancers, two messages, a message against its timeout."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any

import pytest

from orchestrator.handlers import HandlerContext
from orchestrator.statemachine import MessageRefused, send_message
from orchestrator.store import Repository
from orchestrator.types import CorrelationOutcome, ExecutionStatus

# -- two processes advancing the same executions --------------------------------------
from tests.support import wait_until

from . import ledger
from .conftest import Child, Env, states_in

pytestmark = pytest.mark.slow  # processes racing on one execution


def connected(racer: Child) -> bool:
    """The racer is connected and waiting (or it died: the caller shows why)."""
    return "ready" in racer.lines() or racer.process.poll() is not None


def test_two_processes_racing_to_advance_an_execution_never_both_advance_it(
    env: Env, spawn: Callable[..., Child], tmp_path: Path
) -> None:
    # Given three PENDING executions of a 4-state machine nobody has claimed yet
    ledger_path = tmp_path / "ledger.jsonl"
    machine = env.machine("raced", ledger.task_chain(4))
    ids = [
        env.repo.create_execution(machine.version_record, name=f"race-{i}", input={"n": 0})[0].id
        for i in range(3)
    ]

    # ... and two worker processes, connected and waiting for the starting gun
    options = {"--url": env.settings.database_url, "--ledger": str(ledger_path), "--delay": "0.05"}
    racers = [
        spawn("advance", *chain(*options.items()), "--owner", f"racer-{n}", "--ids", *ids)
        for n in range(2)
    ]
    for racer in racers:
        wait_until(partial(connected, racer), timeout=30, what="the racers to connect")
        assert racer.process.poll() is None, racer.errors()

    # When both are told to advance the same executions at the same moment
    for racer in racers:
        racer.send_line("go")
    for racer in racers:
        assert racer.wait() == 0, racer.errors()

    # Then each execution was advanced by exactly one of them
    reports = [json.loads(line) for r in racers for line in r.lines() if line != "ready"]
    winners = Counter(report["id"] for report in reports if report["advanced"])
    assert winners == Counter(ids)

    # ... which alone ran its handlers, each state once
    entries = ledger.read(ledger_path)
    for execution_id in ids:
        calls = [e for e in entries if e["execution_id"] == execution_id]
        assert len({e["pid"] for e in calls}) == 1
        assert [e["state"] for e in calls] == ledger.state_names(4)

        # ... and the history has no duplicates
        history = machine.history(execution_id)
        assert states_in(history) == ledger.state_names(4)
        assert len({e.seq for e in history}) == len(history) == 4
        assert machine.get_execution(execution_id).output == {"n": 4}


# -- two messages racing for one waiting execution --------------------------------------


def awaiting_order(timeout_seconds: int | None = None) -> dict[str, Any]:
    """Wait for a message correlated on the order id, then ship with its data."""
    wait: dict[str, Any] = {
        "Type": "Message",
        "CorrelationKey": "order_id",
        "CorrelationValuePath": "$.order",
        "ResultPath": "$.message",
        "Next": "Ship",
    }
    states: dict[str, Any] = {
        "Await": wait,
        "Ship": {"Type": "Task", "Resource": "ship", "End": True},
    }
    if timeout_seconds is not None:
        wait.update(TimeoutSeconds=timeout_seconds, TimeoutPath="GaveUp")
        states["GaveUp"] = {
            "Type": "Pass",
            "Result": "gave up",
            "ResultPath": "$.outcome",
            "End": True,
        }
    return {"StartAt": "Await", "States": states}


class Shipments:
    """The ``ship`` handler: records each call, returns what it shipped."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, data: Any, ctx: HandlerContext) -> Any:
        with self._lock:
            self.calls.append((ctx.execution_id, data["message"]))
        return {"shipped": data["order"], "by": data["message"]["sender"]}


def race_messages(env: Env, value: Any, senders: list[str]) -> dict[str, Any]:
    """Send one message per sender at once, each thread on its own connection pool.

    Returns:
        Sender -> the ids its message resumed, or the MessageRefused it got.
    """
    barrier = threading.Barrier(len(senders))
    results: dict[str, Any] = {}

    def send(sender: str) -> None:
        repo = Repository.from_settings(env.settings)
        try:
            repo.find_correlations("order_id", value)  # connect before the start line
            barrier.wait(timeout=10)
            results[sender] = send_message(
                "order_id",
                value,
                {"sender": sender},
                repository=repo,
                settings=env.settings,
                runner=env.runner(owner=f"sender-{sender}"),
            )
        except MessageRefused as exc:
            results[sender] = exc
        finally:
            repo.close()

    threads = [threading.Thread(target=send, args=(s,)) for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


@pytest.mark.parametrize("order", [101, 102, 103])
def test_two_messages_racing_for_one_waiting_execution_resume_it_exactly_once(
    env: Env, order: int
) -> None:
    # Given an execution parked on a Message state for order 101
    ship = Shipments()
    env.handlers.register("ship", ship)
    machine = env.machine("orders", awaiting_order())
    waiting = machine.start({"order": order})
    assert waiting.status == ExecutionStatus.WAITING

    # When two senders deliver a message for it at the same moment
    results = race_messages(env, order, ["alice", "bob"])

    # Then exactly one message resumed it; the other was refused, naming the execution
    won = {sender for sender, result in results.items() if result == [waiting.id]}
    lost = {sender: r for sender, r in results.items() if isinstance(r, MessageRefused)}
    assert len(won) == 1
    assert len(lost) == 1
    (refusal,) = lost.values()
    assert waiting.id in refusal.reason

    # ... and the execution ran on once, with the winner's data
    (winner,) = won
    done = machine.get_execution(waiting.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.output == {"shipped": order, "by": winner}
    assert ship.calls == [(waiting.id, {"sender": winner})]
    assert states_in(machine.history(waiting.id)) == ["Await", "Ship"]
    (correlation,) = env.repo.find_correlations("order_id", order)
    assert correlation.outcome == CorrelationOutcome.MESSAGE
    assert correlation.message == {"sender": winner}


# -- a message after the timeout ---------------------------------------------------------


def test_a_message_after_the_timeout_is_refused_and_the_execution_took_the_timeout_path(
    env: Env,
) -> None:
    # Given an execution waiting at most one second for its message
    ship = Shipments()
    env.handlers.register("ship", ship)
    machine = env.machine("orders", awaiting_order(timeout_seconds=1))
    waiting = machine.start({"order": 7})
    assert waiting.status == ExecutionStatus.WAITING

    # When the timeout passes and the timer sweeper runs
    runner = env.runner()
    assert runner.fire_due_timers() == []  # not due yet
    wait_until(lambda: bool(runner.fire_due_timers()), timeout=10, what="the timeout timer")

    # Then the execution took the TimeoutPath
    done = machine.get_execution(waiting.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.output["outcome"] == "gave up"
    assert done.output["message"]["status"] == "TIMEOUT"
    assert states_in(machine.history(waiting.id)) == ["Await", "GaveUp"]

    # ... and a late message is refused with a reason that says the wait timed out
    with pytest.raises(MessageRefused, match="timed out") as refused:
        env.send("order_id", 7, {"sender": "late"})
    assert waiting.id in refused.value.reason
    assert ship.calls == []
    assert machine.get_execution(waiting.id) == done


def test_a_message_after_the_timeout_but_before_the_sweeper_is_refused_as_timed_out(
    env: Env,
) -> None:
    # Given an execution whose one-second wait for a message has passed, unswept
    machine = env.machine("orders", awaiting_order(timeout_seconds=1))
    waiting = machine.start({"order": 8})
    (correlation,) = env.repo.execution_correlations(waiting.id)
    assert correlation.timeout_at is not None
    time.sleep(max(0.0, correlation.timeout_at.timestamp() - time.time()) + 0.05)

    # When a message comes, the execution still takes the TimeoutPath
    with pytest.raises(MessageRefused) as refused:
        env.send("order_id", 8, {"sender": "late"})
    assert env.runner().fire_due_timers() == [waiting.id]
    assert machine.get_execution(waiting.id).output["outcome"] == "gave up"

    # Then the refusal says the wait timed out (it says "already ended (None)")
    assert "timed out" in refused.value.reason
