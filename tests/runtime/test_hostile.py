"""Executions that would run for ever, crash on every recovery, or skip a wait."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy.exc

from orchestrator import asl
from orchestrator.errors import DefinitionInvalid, InvalidName, PayloadInvalid
from orchestrator.statemachine import StateMachine
from orchestrator.types import ExecutionStatus, TimerKind
from tests.hostile.definitions import self_looping_pass

from .conftest import Env, states_in

#: A small event limit, so that a runaway execution is caught in well under a second.
LIMIT = 300


def self_looping_choice() -> dict[str, Any]:
    """A Choice whose every branch leads back to it."""
    return {
        "StartAt": "Again",
        "States": {
            "Again": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "Done"}],
                "Default": "Again",
            },
            "Done": {"Type": "Succeed"},
        },
    }


@pytest.mark.parametrize("definition", [self_looping_pass(), self_looping_choice()])
def test_an_execution_that_loops_on_itself_fails_at_the_event_limit(
    env: Env, definition: dict[str, Any]
) -> None:
    # Given a state machine that never ends and a limit of LIMIT events
    machine = env.machine("runaway", definition, max_events_per_execution=LIMIT)

    # When it is started in this process
    execution = machine.start({"n": 1})

    # Then the start returns, with the execution FAILED by the limit the setting gave
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error == asl.errors.RUNTIME
    assert f"limit of {LIMIT} history events" in (execution.cause or "")
    # ... and its history stopped at the limit instead of growing for ever
    assert len(env.repo.history(execution.id)) <= LIMIT + 1


def test_the_runner_ends_a_runaway_even_if_the_engine_counted_nothing(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an engine whose own event limit is out of reach
    real_step = asl.step

    def uncounted(*args: Any, **kwargs: Any) -> Any:
        return real_step(*args, **{**kwargs, "max_events": 10**9})

    monkeypatch.setattr(asl, "step", uncounted)
    machine = env.machine("runaway", self_looping_pass(), max_events_per_execution=LIMIT)

    # When a self-looping machine starts
    execution = machine.start({})

    # Then the runner's backstop (twice the limit, in steps) ends it
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error == asl.errors.RUNTIME
    assert "ORCHESTRATOR_MAX_EVENTS_PER_EXECUTION" in (execution.cause or "")


def test_the_event_limit_counts_the_rows_stored_by_earlier_advances(env: Env) -> None:
    # Given an execution that loops through a Wait: each advance is short
    definition = self_looping_pass()
    definition["States"]["Loop"] = {"Type": "Wait", "Seconds": 0, "Next": "Again"}
    machine = env.machine("ticking", definition, max_events_per_execution=LIMIT)

    # When it runs
    execution = machine.start({})

    # Then it still ends at the limit
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error == asl.errors.RUNTIME


def test_an_unexpected_exception_ends_the_execution_failed_not_running(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a step that raises something nobody expected, at the second state
    definition = {
        "StartAt": "One",
        "States": {
            "One": {"Type": "Pass", "Result": 1, "Next": "Two"},
            "Two": {"Type": "Pass", "End": True},
        },
    }
    machine = env.machine("poison", definition)
    real_step = asl.step

    def exploding(defn: Any, cursor: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if cursor["root"]["s"] == "Two":
            raise OverflowError("int too large to convert to float")
        return real_step(defn, cursor, *args, **kwargs)

    monkeypatch.setattr(asl, "step", exploding)

    # When it is started
    execution = machine.start({})

    # Then it ended FAILED with States.Runtime and the cause, not RUNNING
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error == asl.errors.RUNTIME
    assert "OverflowError: int too large to convert to float" in (execution.cause or "")
    assert execution.lease_owner is None
    # ... and nothing is left for the recovery sweep to crash on again
    assert env.runner().recover(grace_seconds=0) == []


def test_a_database_error_still_hands_the_execution_back_for_recovery(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a step during which the database goes away
    machine = env.machine(
        "outage", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    )

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionError("gone"))

    monkeypatch.setattr(asl, "step", unreachable)

    # When it is started, the error reaches the caller (a worker retries it) ...
    with pytest.raises(sqlalchemy.exc.OperationalError):
        machine.start({}, name="outage-1")

    # ... and the execution stays RUNNING, released, to be recovered later
    execution = machine.list_executions().items[0]
    assert execution.status == ExecutionStatus.RUNNING
    assert execution.lease_owner is None


def one_hour_wait() -> dict[str, Any]:
    """Wait an hour, then succeed."""
    return {
        "StartAt": "Nap",
        "States": {
            "Nap": {"Type": "Wait", "Seconds": 3600, "Next": "Done"},
            "Done": {"Type": "Succeed"},
        },
    }


def test_a_redriven_execution_stopped_during_a_wait_waits_again(env: Env) -> None:
    # Given an execution parked on a one-hour Wait, then stopped
    machine = env.machine("napper", one_hour_wait())
    parked = machine.start({})
    assert parked.status == ExecutionStatus.WAITING
    assert machine.stop(parked.id)

    # When it is redriven
    redriven = machine.redrive(parked.id)

    # Then it waits again (the timer the stop cancelled did not fire)
    assert redriven.status == ExecutionStatus.WAITING
    assert states_in(env.repo.history(parked.id)) == []
    open_timers = [t for t in env.repo.execution_timers(parked.id) if not t.fired]
    assert [t.kind for t in open_timers] == [TimerKind.WAIT]


def test_a_redriven_execution_stopped_during_a_retry_back_off_waits_again(env: Env) -> None:
    # Given a Task whose retry parks an hour, stopped while it waits
    calls: list[Any] = []

    def flaky(data: Any) -> Any:
        calls.append(data)
        raise RuntimeError("busy")

    env.handlers.register("flaky", flaky)
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "flaky",
                "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 3600}],
                "End": True,
            }
        },
    }
    machine = env.machine("backoff", definition)
    parked = machine.start({})
    assert parked.status == ExecutionStatus.WAITING
    assert machine.stop(parked.id)

    # When it is redriven
    redriven = machine.redrive(parked.id)

    # Then the back-off is not cut short: the handler was not called again
    assert redriven.status == ExecutionStatus.WAITING
    assert len(calls) == 1
    open_timers = [t for t in env.repo.execution_timers(parked.id) if not t.fired]
    assert [t.kind for t in open_timers] == [TimerKind.RETRY]


def test_lone_surrogates_from_python_raise_payload_invalid(env: Env) -> None:
    # A definition, an input and a message holding "\ud800" are refused up front
    with pytest.raises(DefinitionInvalid, match="lone surrogate"):
        env.machine(
            "bad-result",
            {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "\ud800", "End": True}}},
        )
    machine = env.machine("fine", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    with pytest.raises(PayloadInvalid, match="lone surrogate"):
        machine.start({"a": "\ud800"})
    with pytest.raises(PayloadInvalid, match="lone surrogate"):
        machine.start_async({"a": "\ud800"}, publisher=lambda ids, priority: None)
    with pytest.raises(PayloadInvalid, match="lone surrogate"):
        env.send("order", "o-1", {"x": "\ud800"})
    assert machine.count_executions() == 0


@pytest.mark.parametrize("name", ["", "a b", "nul\x00", "\ud800", "x" * 81, "a/b", "new\nline"])
def test_execution_names_aws_would_refuse_are_refused_before_the_database(
    env: Env, name: str
) -> None:
    machine = env.machine("named", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})

    with pytest.raises(InvalidName, match="execution name"):
        machine.start({}, name=name)

    assert machine.count_executions() == 0


def test_a_definition_larger_than_the_limit_is_refused_text_or_parsed(env: Env) -> None:
    # Given a limit of 2 KiB and a valid definition of about 4 KiB
    big = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "x" * 4000, "End": True}}}
    settings = env.with_settings(definition_max_bytes=2048)

    # When it is stored, as a structure or as text
    for definition in (big, json.dumps(big)):
        with pytest.raises(DefinitionInvalid, match="ORCHESTRATOR_DEFINITION_MAX_BYTES"):
            StateMachine.create("big", definition, repository=env.repo, settings=settings)

    # Then nothing was stored; under the limit it is
    assert StateMachine.list(repository=env.repo) == []
    StateMachine.create("big", big, repository=env.repo, settings=env.settings)


def test_the_expression_time_limit_setting_reaches_the_engine(env: Env) -> None:
    # Given a JSONata state whose expression takes far more than a millisecond
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "Slow",
        "States": {
            "Slow": {
                "Type": "Pass",
                "Output": "{% $sum($map([1..100000], function($v) { $v * 2 })) %}",
                "End": True,
            }
        },
    }
    machine = env.machine("slow", definition, expression_timeout_ms=1)

    # When it runs under a 1 ms expression limit
    execution = machine.start({})

    # Then the expression was stopped by the setting's limit
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error == asl.errors.QUERY_EVALUATION_ERROR
    assert "D1012" in (execution.cause or "")


def test_the_map_item_limit_setting_reaches_the_engine(env: Env) -> None:
    # Given an inline Map and a limit of 2 items
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                "End": True,
            }
        },
    }
    machine = env.machine("each", definition, max_map_items=2)

    # When it is given 2 items, then 3
    within, over = machine.start([1, 2]), machine.start([1, 2, 3])

    # Then the first succeeds and the second fails, naming the setting
    assert within.status == ExecutionStatus.SUCCEEDED
    assert over.status == ExecutionStatus.FAILED
    assert over.error == asl.errors.RUNTIME
    assert "ORCHESTRATOR_MAX_MAP_ITEMS" in (over.cause or "")
