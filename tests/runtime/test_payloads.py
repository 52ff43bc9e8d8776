"""Payload limits: oversized or malformed data is refused, never stored half-way."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.errors import PayloadInvalid, PayloadTooLarge
from orchestrator.handlers import HandlerContext
from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine
from orchestrator.store import Execution, Repository
from orchestrator.types import ExecutionStatus

#: The tests' payload limit, in bytes of compact JSON.
from tests.support import wait_until

from .conftest import Env, states_in

LIMIT = 2048


def size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def blob(nbytes: int) -> dict[str, str]:
    """A JSON object of about ``nbytes`` bytes."""
    return {"blob": "x" * nbytes}


def assert_storable(machine: StateMachine, execution: Execution) -> None:
    """Every stored payload of the execution reads back and is within the limit."""
    stored = machine.get_execution(execution.id)
    for value in (stored.input, stored.output):
        assert size(value) <= LIMIT
    for event in machine.history(execution.id):
        assert size(event.input) <= LIMIT
        assert size(event.output) <= LIMIT


def producing() -> dict[str, Any]:
    """Prepare -> Produce (a Task, resource ``produce``) -> Finish."""
    return {
        "StartAt": "Prepare",
        "States": {
            "Prepare": {
                "Type": "Pass",
                "Result": "ok",
                "ResultPath": "$.prepared",
                "Next": "Produce",
            },
            "Produce": {"Type": "Task", "Resource": "produce", "Next": "Finish"},
            "Finish": {"Type": "Pass", "End": True},
        },
    }


def growing(*, before: dict[str, Any]) -> dict[str, Any]:
    """Before -> Grow (a Pass whose output is over the limit) -> Never (shrinks it again)."""
    return {
        "StartAt": "Before",
        "States": {
            "Before": {**before, "Next": "Grow"},
            "Grow": {
                "Type": "Pass",
                "Parameters": {"items.$": "States.ArrayRange(1, 1000, 1)"},
                "Next": "Never",
            },
            "Never": {"Type": "Pass", "Parameters": {"n": 1}, "End": True},
        },
    }


@pytest.fixture
def limited(runtime_settings: Settings) -> Iterator[Env]:
    """The test's store and handlers under a 2 KiB payload limit."""
    settings = runtime_settings.model_copy(update={"payload_max_bytes": LIMIT})
    repository = Repository.from_settings(settings)
    yield Env(settings=settings, repo=repository)
    repository.close()


def test_an_input_over_the_limit_is_refused_with_a_clear_error_and_nothing_is_stored(
    limited: Env,
) -> None:
    machine = limited.machine(
        "limited", {"StartAt": "E", "States": {"E": {"Type": "Pass", "End": True}}}
    )

    with pytest.raises(PayloadTooLarge, match=f"input.*{LIMIT}"):
        machine.start(blob(LIMIT), name="too-big")

    assert machine.count_executions() == 0
    # ... while an input of exactly the limit is accepted
    within = {"blob": "x" * (LIMIT - size(blob(0)))}
    assert size(within) == LIMIT
    assert machine.start(within, name="just-fits").output == within


def test_a_malformed_input_is_refused_and_nothing_is_stored(limited: Env) -> None:
    machine = limited.machine("limited", producing())

    with pytest.raises(PayloadInvalid, match="input"):
        machine.start({"price": math.nan})
    with pytest.raises(PayloadInvalid, match="input"):
        machine.start({"nul": "a\x00b"})

    assert machine.count_executions() == 0


def test_a_handler_result_over_the_limit_fails_the_state_with_data_limit_exceeded(
    limited: Env,
) -> None:
    # Given a Task whose handler returns more than the limit
    limited.handlers.register("produce", lambda data: blob(2 * LIMIT))
    machine = limited.machine("limited", producing())

    # When it runs
    failed = machine.start({"n": 1})

    # Then the execution fails with States.DataLimitExceeded, naming the sizes
    assert failed.status == ExecutionStatus.FAILED
    assert failed.error == "States.DataLimitExceeded"
    assert failed.cause is not None
    assert str(LIMIT) in failed.cause
    assert failed.input == {"n": 1}
    history = machine.history(failed.id)
    assert [(e.state_name, e.event_type) for e in history] == [
        ("Prepare", "StateSucceeded"),
        ("Produce", "StateFailed"),
    ]
    assert history[1].error == "States.DataLimitExceeded"
    assert_storable(machine, failed)


def test_a_states_all_catch_catches_data_limit_exceeded_from_a_task_as_aws_does(
    limited: Env,
) -> None:
    # Given the same Task with a States.ALL catcher
    limited.handlers.register("produce", lambda data: blob(2 * LIMIT))
    definition = producing()
    definition["States"]["Produce"]["Catch"] = [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Recover"}
    ]
    definition["States"]["Recover"] = {"Type": "Pass", "End": True}
    machine = limited.machine("limited", definition)

    # When it runs, Then the catcher takes the error and the execution succeeds
    caught = machine.start({"n": 1})
    assert caught.status == ExecutionStatus.SUCCEEDED
    assert caught.output["error"]["Error"] == "States.DataLimitExceeded"
    assert states_in(machine.history(caught.id)) == ["Prepare", "Recover"]
    assert_storable(machine, caught)


def test_a_state_output_over_the_limit_fails_the_execution_with_data_limit_exceeded(
    limited: Env,
) -> None:
    # Given a Pass state that builds an array larger than the limit
    machine = limited.machine(
        "limited", growing(before={"Type": "Pass", "Result": 1, "ResultPath": "$.one"})
    )

    # When it runs
    failed = machine.start({"n": 1})

    # Then the execution fails with States.DataLimitExceeded, and all it stored is readable
    assert failed.status == ExecutionStatus.FAILED
    assert failed.error == "States.DataLimitExceeded"
    assert failed.cause is not None
    assert str(LIMIT) in failed.cause
    assert "Never" not in states_in(machine.history(failed.id))
    assert_storable(machine, failed)


def test_a_state_output_over_the_limit_keeps_committed_states_so_redrive_does_not_rerun_them(
    limited: Env,
) -> None:
    # Given Task "Before" committed, then a Pass state whose output is over the limit
    calls: list[str] = []

    def before(data: Any, ctx: HandlerContext) -> Any:
        calls.append(ctx.state)
        return data

    limited.handlers.register("before", before)
    machine = limited.machine(
        "limited", growing(before={"Type": "Task", "Resource": "before", "ResultPath": "$.one"})
    )
    failed = machine.start({"n": 1})
    assert failed.error == "States.DataLimitExceeded"
    assert states_in(machine.history(failed.id)) == ["Before"]

    # When it is redriven (and fails again at the same state)
    redriven = machine.redrive(failed.id)

    # Then the committed Task did not run again, and its history row is not repeated
    assert redriven.error == "States.DataLimitExceeded"
    assert calls == ["Before"]
    assert states_in(machine.history(failed.id)) == ["Before"]


def test_a_state_output_over_the_limit_after_a_resume_is_not_skipped_by_a_redrive(
    limited: Env,
) -> None:
    # Given an execution that parked on a Wait, then grows over the limit once resumed
    machine = limited.machine("limited", growing(before={"Type": "Wait", "Seconds": 1}))
    parked = machine.start({"n": 1})
    assert parked.status == ExecutionStatus.WAITING
    runner = limited.runner()
    wait_until(lambda: runner.fire_due_timers() == [parked.id], timeout=10, what="the timer")
    failed = machine.get_execution(parked.id)
    assert failed.error == "States.DataLimitExceeded"

    # When it is redriven
    redriven = machine.redrive(failed.id)

    # Then the oversized state fails again: it is not skipped to "Never"
    assert failed.current_state in ("Before", "Grow")
    assert redriven.status == ExecutionStatus.FAILED
    assert redriven.error == "States.DataLimitExceeded"
    assert "Never" not in states_in(machine.history(failed.id))


def test_a_handler_returning_what_json_cannot_hold_fails_the_state_cleanly(limited: Env) -> None:
    limited.handlers.register("produce", lambda data: {"ratio": math.inf})
    machine = limited.machine("limited", producing())

    failed = machine.start({"n": 1})

    assert failed.status == ExecutionStatus.FAILED
    assert failed.error == "States.TaskFailed"
    assert failed.cause is not None
    assert "JSON" in failed.cause
    assert_storable(machine, failed)
