"""Starting by name, stopping, redriving, and chaining executions."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.errors import ExecutionAlreadyExists, LeaseLost
from orchestrator.handlers import HandlerContext, input_transformer, input_transformers
from orchestrator.statemachine import MessageRefused, StateMachine
from orchestrator.store import Execution, ExecutionFilter
from orchestrator.types import CorrelationOutcome, ExecutionStatus
from tests.support import wait_until

from .conftest import LEASE_SECONDS, SQLITE_IN_SLOW_TIER, Env, states_in

#: The lease of the test whose handler outlives it, in seconds.
SHORT_LEASE_SECONDS = 1.0


class Calls:
    """A handler that records each call and returns its input with a mark."""

    def __init__(self, mark: str) -> None:
        self.mark = mark
        self.inputs: list[Any] = []

    def __call__(self, data: Any, ctx: HandlerContext) -> Any:
        self.inputs.append(data)
        return {**data, self.mark: True}


def three_tasks() -> dict[str, Any]:
    """Tasks ``one`` -> ``two`` -> ``three``, resources of the same names."""
    return {
        "StartAt": "One",
        "States": {
            "One": {"Type": "Task", "Resource": "one", "Next": "Two"},
            "Two": {"Type": "Task", "Resource": "two", "Next": "Three"},
            "Three": {"Type": "Task", "Resource": "three", "End": True},
        },
    }


# -- starting by name ----------------------------------------------------------------


def test_starting_the_same_name_with_the_same_input_returns_the_existing_execution(
    env: Env,
) -> None:
    # Given an execution started under a name
    calls = {name: Calls(name) for name in ("one", "two", "three")}
    for name, handler in calls.items():
        env.handlers.register(name, handler)
    machine = env.machine("named", three_tasks())
    first = machine.start({"order": 1}, name="order-1")

    # When the same name is started again with an equal input
    again = machine.start({"order": 1.0}, name="order-1")

    # Then it is the same execution, and nothing ran twice
    assert again.id == first.id
    assert again.status == ExecutionStatus.SUCCEEDED
    assert machine.count_executions() == 1
    assert [len(c.inputs) for c in calls.values()] == [1, 1, 1]

    # ... while a different input under that name is refused, and nothing is stored
    with pytest.raises(ExecutionAlreadyExists, match="order-1"):
        machine.start({"order": 2}, name="order-1")
    assert machine.count_executions() == 1
    assert len(machine.history(first.id)) == 3


# -- stopping --------------------------------------------------------------------------


class Gate:
    """A handler that blocks until released, and says when it has been entered."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, data: Any) -> Any:
        self.entered.set()
        assert self.release.wait(30)
        return data


@pytest.fixture
def gate() -> Iterator[Gate]:
    """A gate released at teardown (so no worker thread outlives its test)."""
    opened = Gate()
    yield opened
    opened.release.set()


@pytest.fixture
def renewals(env: Env, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every lease renewal on the test's store, in order: ``renewed`` or ``lost``."""
    seen: list[str] = []
    renew = env.repo.renew_lease

    def recorded(*args: Any, **kwargs: Any) -> Any:
        try:
            expiry = renew(*args, **kwargs)
        except LeaseLost:
            seen.append("lost")
            raise
        seen.append("renewed")
        return expiry

    monkeypatch.setattr(env.repo, "renew_lease", recorded)
    return seen


def test_stopping_a_running_execution_aborts_it_and_its_worker_loses_the_lease(
    env: Env, gate: Gate, renewals: list[str]
) -> None:
    # Given an execution whose worker thread is inside its first Task's handler
    later = Calls("two")
    env.handlers.register("one", gate)
    env.handlers.register("two", later)
    env.handlers.register("three", Calls("three"))
    machine = env.machine("stoppable", three_tasks())
    finished: list[Execution] = []
    worker = threading.Thread(
        target=lambda: finished.append(machine.start({"n": 1}, name="long-one"))
    )
    worker.start()
    assert gate.entered.wait(10)
    (running,) = machine.list_executions(name_prefix="long-one").items
    assert running.status == ExecutionStatus.RUNNING
    assert running.lease_owner == machine.runner.owner

    # When it is stopped, and the handler returns once the lease keeper's renewal was refused
    assert machine.stop(running.id, error="Operator.Stop", cause="changed my mind") is True
    wait_until(lambda: "lost" in renewals, timeout=5 * LEASE_SECONDS, what="a refused renewal")
    gate.release.set()
    worker.join(30)

    # Then it is ABORTED with the stop's error; the worker committed nothing more
    (seen_by_worker,) = finished
    stopped = machine.get_execution(running.id)
    assert seen_by_worker == stopped
    assert stopped.status == ExecutionStatus.ABORTED
    assert (stopped.error, stopped.cause) == ("Operator.Stop", "changed my mind")
    assert stopped.lease_owner is None
    assert stopped.ended_at is not None
    assert machine.history(running.id) == []
    assert later.inputs == []

    # ... and stopping it again changes nothing
    assert machine.stop(running.id) is False
    assert machine.get_execution(running.id) == stopped


def test_stopping_a_waiting_execution_cancels_its_wait_so_a_later_message_is_refused(
    env: Env,
) -> None:
    # Given an execution parked on a Message state
    machine = env.machine(
        "listener",
        {
            "StartAt": "Listen",
            "States": {"Listen": {"Type": "Message", "CorrelationKey": "k", "End": True}},
        },
    )
    waiting = machine.start("v-1")
    assert waiting.status == ExecutionStatus.WAITING

    # When it is stopped
    assert machine.stop(waiting.id) is True

    # Then its correlation is cancelled, and a message for it is refused
    (correlation,) = env.repo.execution_correlations(waiting.id)
    assert correlation.outcome == CorrelationOutcome.CANCELLED
    with pytest.raises(MessageRefused, match="cancelled"):
        env.send("k", "v-1", {"late": True})
    assert machine.get_execution(waiting.id).status == ExecutionStatus.ABORTED


@SQLITE_IN_SLOW_TIER
def test_a_handler_running_longer_than_the_lease_keeps_it_and_recovery_leaves_it_alone(
    env: Env, gate: Gate, renewals: list[str]
) -> None:
    # Given an execution on a 1 s lease whose handler runs for 2.5 s
    env.handlers.register("one", gate)
    env.handlers.register("two", Calls("two"))
    env.handlers.register("three", Calls("three"))
    machine = env.machine("slow", three_tasks(), lease_seconds=SHORT_LEASE_SECONDS)
    finished: list[Execution] = []
    worker = threading.Thread(target=lambda: finished.append(machine.start({}, name="slow")))
    worker.start()
    assert gate.entered.wait(10)
    (running,) = machine.list_executions(name_prefix="slow").items

    # When recovery sweeps meanwhile
    rescuer = env.runner(owner="rescuer")
    swept: list[str] = []
    deadline = time.monotonic() + 2.5 * SHORT_LEASE_SECONDS
    while time.monotonic() < deadline:
        swept.extend(rescuer.recover(grace_seconds=0))
        time.sleep(0.1)
    gate.release.set()
    worker.join(30)

    # Then the lease keeper renewed the lease while the handler ran, never losing it,
    # and recovery never took the execution over
    assert renewals.count("renewed") >= 2
    assert "lost" not in renewals
    assert swept == []
    (done,) = finished
    assert done.status == ExecutionStatus.SUCCEEDED
    assert states_in(machine.history(running.id)) == ["One", "Two", "Three"]


# -- redrive ---------------------------------------------------------------------------


class Broken:
    """A handler that fails until it is fixed."""

    def __init__(self) -> None:
        self.fixed = False
        self.calls = 0

    def __call__(self, data: Any) -> Any:
        self.calls += 1
        if not self.fixed:
            raise RuntimeError("card declined")
        return {**data, "two": "fixed"}


def test_redriving_a_failed_execution_continues_from_the_failed_state(env: Env) -> None:
    # Given an execution that failed in its second state
    first, broken, third = Calls("one"), Broken(), Calls("three")
    env.handlers.register("one", first)
    env.handlers.register("two", broken)
    env.handlers.register("three", third)
    machine = env.machine("redrivable", three_tasks())
    failed = machine.start({"n": 1})
    assert failed.status == ExecutionStatus.FAILED
    assert (failed.error, failed.cause) == ("RuntimeError", "card declined")

    # When the handler is fixed and the execution redriven
    broken.fixed = True
    redriven = machine.redrive(failed.id)

    # Then it continues from the failed state, with that state's input, and succeeds
    assert redriven.id == failed.id
    assert redriven.status == ExecutionStatus.SUCCEEDED
    assert redriven.output == {"n": 1, "one": True, "two": "fixed", "three": True}
    assert redriven.redrive_count == 1
    assert (redriven.error, redriven.cause) == (None, None)
    assert len(first.inputs) == 1
    assert broken.calls == 2
    history = machine.history(failed.id)
    assert [(e.state_name, e.event_type) for e in history] == [
        ("One", "StateSucceeded"),
        ("Two", "StateFailed"),
        ("Two", "StateSucceeded"),
        ("Three", "StateSucceeded"),
    ]
    assert history[1].input == history[2].input == {"n": 1, "one": True}

    # ... and a succeeded execution cannot be redriven
    with pytest.raises(ValueError, match="SUCCEEDED"):
        machine.redrive(failed.id)


# -- chaining --------------------------------------------------------------------------


@pytest.fixture
def transformer_name() -> Iterator[str]:
    """A unique name for an input transformer registered by the test."""
    name = f"runtime-test-{uuid.uuid4().hex[:8]}"
    yield name
    input_transformers._transformers.pop(name, None)


def source_machine() -> dict[str, Any]:
    """Price -> Total -> Done, each adding to its input."""
    return {
        "StartAt": "Price",
        "States": {
            "Price": {"Type": "Pass", "Result": 40, "ResultPath": "$.price", "Next": "Total"},
            "Total": {"Type": "Task", "Resource": "total", "Next": "Done"},
            "Done": {"Type": "Pass", "Result": "yes", "ResultPath": "$.done", "End": True},
        },
    }


def echo_machine() -> dict[str, Any]:
    return {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True}}}


def test_executions_chain_from_a_sources_output_or_named_state_and_link_both_ways(
    env: Env, transformer_name: str
) -> None:
    # Given a succeeded source execution, and a transformer registered by name
    env.handlers.register("total", lambda data: {**data, "total": data["price"] + 2})
    source = env.machine("source", source_machine())
    upstream = source.start({"order": "A-1"})
    assert upstream.status == ExecutionStatus.SUCCEEDED

    @input_transformer(transformer_name)
    def invoice(output: Any) -> Any:
        return {"invoice_for": output["order"], "amount": output["total"]}

    # When two executions are chained from it: one from its final output, one from
    # the output of its state "Total" through the transformer
    target = env.machine("target", echo_machine())
    from_output = target.start(source_execution_id=upstream.id)
    from_state = target.start(
        source_execution_id=upstream.id,
        source_state_name="Total",
        input_transformer=transformer_name,
    )
    unrelated = target.start({"not": "chained"})

    # Then their inputs come from the source
    assert (
        from_output.input
        == upstream.output
        == {
            "order": "A-1",
            "price": 40,
            "total": 42,
            "done": "yes",
        }
    )
    assert from_state.input == {"invoice_for": "A-1", "amount": 42}
    assert from_state.output == from_state.input

    # ... and the link is stored and queryable both ways
    assert (from_output.source_execution_id, from_output.source_state_name) == (upstream.id, None)
    assert (from_state.source_execution_id, from_state.source_state_name) == (upstream.id, "Total")
    assert unrelated.source_execution_id is None
    chained = target.list_executions(ExecutionFilter(source_execution_id=upstream.id))
    assert [e.id for e in chained.items] == [from_output.id, from_state.id]
    assert target.count_executions(source_execution_id=upstream.id) == 2
    assert source.get_execution(chained.items[0].source_execution_id or "").id == upstream.id
    other = source.start({"order": "B-2"})
    assert [e.id for e in source.list_executions(unlinked_to="target").items] == [other.id]


def test_chaining_from_an_unfinished_source_or_unknown_state_or_transformer_fails_clearly(
    env: Env,
) -> None:
    # Given a source still waiting, and one that succeeded
    listener = env.machine(
        "listener",
        {"StartAt": "L", "States": {"L": {"Type": "Message", "CorrelationKey": "k", "End": True}}},
    )
    waiting = listener.start("x")
    env.handlers.register("total", lambda data: {**data, "total": 1})
    done = env.machine("source", source_machine()).start({"order": "C"})
    target: StateMachine = env.machine("target", echo_machine())

    # When chaining from what has no output, Then each refusal says why; nothing is stored
    with pytest.raises(ValueError, match="WAITING"):
        target.start(source_execution_id=waiting.id)
    with pytest.raises(ValueError, match="no finished state 'Nope'"):
        target.start(source_execution_id=done.id, source_state_name="Nope")
    with pytest.raises(KeyError, match="no input transformer named 'missing-transformer'"):
        target.start(source_execution_id=done.id, input_transformer="missing-transformer")
    assert target.count_executions() == 0
