"""The step API: commands, events, tokens, cursors (no handlers, no clock)."""

from __future__ import annotations

import json
import random
from typing import Any

from orchestrator import asl
from orchestrator.asl import interpreter as it

NOW = 1_700_000_000.0


def task_machine(**task: Any) -> dict[str, Any]:
    return {
        "StartAt": "T",
        "States": {"T": {"Type": "Task", "Resource": "work", "End": True, **task}},
    }


def advance(
    defn: asl.Definition, cursor: dict[str, Any], event: Any = None, **kwargs: Any
) -> asl.StepResult:
    """One step that carries its new cursor over into ``cursor`` (step leaves it alone)."""
    result = asl.step(defn, cursor, event, **kwargs)
    cursor.clear()
    cursor.update(result.cursor)
    return result


def drive_until_command(defn: asl.Definition, cursor: dict[str, Any], now: float = NOW) -> Any:
    while True:
        result = advance(defn, cursor, now=now)
        if not isinstance(result.command, asl.Continue):
            return result.command


def test_a_task_state_yields_a_run_task_command_and_does_not_run_it() -> None:
    defn = asl.load(task_machine(Parameters={"x.$": "$.a"}))
    cursor = asl.start(defn, {"a": 5}, now=NOW)
    command = drive_until_command(defn, cursor)
    assert isinstance(command, asl.RunTask)
    assert command.resource == "work"
    assert command.input == {"x": 5}
    assert command.context["State"]["Name"] == "T"


def test_the_task_result_event_completes_the_execution() -> None:
    defn = asl.load(task_machine(ResultPath="$.out"))
    cursor = asl.start(defn, {"a": 1}, now=NOW)
    command = drive_until_command(defn, cursor)
    event = asl.TaskSucceeded(path=command.path, token=command.token, output=7)
    result = advance(defn, cursor, event, now=NOW)
    assert [e.state for e in result.events] == ["T"]
    final = drive_until_command(defn, cursor)
    assert final == asl.Succeeded(output={"a": 1, "out": 7})


def test_a_stale_or_duplicate_event_changes_nothing() -> None:
    defn = asl.load(task_machine())
    cursor = asl.start(defn, {}, now=NOW)
    command = drive_until_command(defn, cursor)
    stale = asl.TaskSucceeded(path=command.path, token=command.token + 1, output=1)
    assert advance(defn, cursor, stale, now=NOW).events == []
    good = asl.TaskSucceeded(path=command.path, token=command.token, output=2)
    assert len(advance(defn, cursor, good, now=NOW).events) == 1
    assert advance(defn, cursor, good, now=NOW).events == []  # delivered twice
    assert asl.result_of(cursor) == asl.Succeeded(output=2)


def test_a_retry_waits_the_backoff_then_runs_the_task_again_with_the_attempt_counted() -> None:
    retry = [{"ErrorEquals": ["E"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 2}]
    defn = asl.load(task_machine(Retry=retry))
    cursor = asl.start(defn, {}, now=NOW)
    waits = []
    for attempt in range(3):
        command = drive_until_command(defn, cursor)
        assert isinstance(command, asl.RunTask)
        assert command.attempt == attempt
        failed = asl.TaskFailed(path=command.path, token=command.token, error="E", cause="c")
        result = advance(defn, cursor, failed, now=NOW)
        if isinstance(result.command, asl.WaitUntil):
            waits.append(result.command.until - NOW)
            fired = asl.TimerFired(path=result.command.path, token=result.command.token)
            advance(defn, cursor, fired, now=result.command.until)
    assert waits == [2.0, 6.0]
    assert asl.result_of(cursor) == asl.Failed(error="E", cause="c")


def test_max_delay_seconds_caps_the_backoff_and_full_jitter_stays_below_it() -> None:
    retry = [
        {
            "ErrorEquals": ["States.ALL"],
            "IntervalSeconds": 10,
            "BackoffRate": 10,
            "MaxAttempts": 5,
            "MaxDelaySeconds": 15,
            "JitterStrategy": "FULL",
        }
    ]
    defn = asl.load(task_machine(Retry=retry))
    cursor = asl.start(defn, {}, now=NOW)
    rng = random.Random(7)
    delays = []
    for _ in range(5):
        command = drive_until_command(defn, cursor)
        failed = asl.TaskFailed(path=command.path, token=command.token, error="X")
        wait = advance(defn, cursor, failed, now=NOW, rng=rng).command
        assert isinstance(wait, asl.WaitUntil)
        delays.append(wait.until - NOW)
        advance(defn, cursor, asl.TimerFired(path=wait.path, token=wait.token), now=NOW)
    assert all(0 <= d <= 15 for d in delays)
    assert len(set(delays)) > 1  # jitter varies the delays


def test_max_attempts_zero_never_retries() -> None:
    retry = [{"ErrorEquals": ["E"], "MaxAttempts": 0}]
    catch = [{"ErrorEquals": ["E"], "Next": "Caught"}]
    defn = asl.load(
        {
            "StartAt": "T",
            "States": {
                "T": {"Type": "Task", "Resource": "w", "Retry": retry, "Catch": catch, "End": True},
                "Caught": {"Type": "Pass", "End": True},
            },
        }
    )
    cursor = asl.start(defn, {"k": 1}, now=NOW)
    command = drive_until_command(defn, cursor)
    advance(
        defn, cursor, asl.TaskFailed(path=command.path, token=command.token, error="E"), now=NOW
    )
    final = drive_until_command(defn, cursor)
    assert final == asl.Succeeded(output={"Error": "E", "Cause": ""})


def test_parallel_branches_dispatch_tasks_together_and_join_in_branch_order() -> None:
    branch = {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": "w", "End": True}}}
    defn = asl.load(
        {
            "StartAt": "P",
            "States": {"P": {"Type": "Parallel", "Branches": [branch] * 3, "End": True}},
        }
    )
    cursor = asl.start(defn, {}, now=NOW)
    commands = []
    while True:
        command = advance(defn, cursor, now=NOW).command
        if isinstance(command, asl.Idle):
            break
        if isinstance(command, asl.RunTask):
            commands.append(command)
    assert [c.path for c in commands] == [(0,), (1,), (2,)]
    for c in reversed(commands):
        event = asl.TaskSucceeded(path=c.path, token=c.token, output=c.path[0])
        advance(defn, cursor, event, now=NOW)
    assert drive_until_command(defn, cursor) == asl.Succeeded(output=[0, 1, 2])


def test_map_max_concurrency_limits_outstanding_tasks() -> None:
    processor = {"StartAt": "I", "States": {"I": {"Type": "Task", "Resource": "w", "End": True}}}
    defn = asl.load(
        {
            "StartAt": "M",
            "States": {
                "M": {"Type": "Map", "MaxConcurrency": 2, "ItemProcessor": processor, "End": True}
            },
        }
    )
    cursor = asl.start(defn, [1, 2, 3, 4, 5], now=NOW)
    done: list[Any] = []
    peak = 0
    while True:
        outstanding = []
        while True:
            command = advance(defn, cursor, now=NOW).command
            if isinstance(command, asl.RunTask):
                outstanding.append(command)
            elif not isinstance(command, asl.Continue):
                break
        if isinstance(command, asl.Succeeded):
            done = command.output
            break
        peak = max(peak, len(outstanding))
        for c in outstanding:
            out = c.input * 10
            advance(
                defn, cursor, asl.TaskSucceeded(path=c.path, token=c.token, output=out), now=NOW
            )
    assert peak == 2
    assert done == [10, 20, 30, 40, 50]


def test_the_cursor_is_json_and_a_copy_resumes_identically() -> None:
    defn = asl.load(
        {
            "StartAt": "W",
            "States": {
                "W": {"Type": "Wait", "Seconds": 30, "Next": "T"},
                "T": {"Type": "Task", "Resource": "w", "ResultPath": "$.r", "End": True},
            },
        }
    )
    cursor = asl.start(defn, {"a": [1, {"b": None}]}, now=NOW)
    wait = drive_until_command(defn, cursor)
    assert isinstance(wait, asl.WaitUntil)
    assert wait.until == NOW + 30
    restored = json.loads(json.dumps(cursor))
    advance(defn, restored, asl.TimerFired(path=wait.path, token=wait.token), now=wait.until)
    task = drive_until_command(defn, json.loads(json.dumps(restored)))
    assert isinstance(task, asl.RunTask)
    assert task.input == {"a": [1, {"b": None}]}


def test_a_message_state_yields_a_wait_for_message_with_its_correlation() -> None:
    defn = asl.load(
        {
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Message",
                    "CorrelationKey": "order_id",
                    "CorrelationValuePath": "$.order.id",
                    "TimeoutSeconds": 60,
                    "TimeoutPath": "Late",
                    "ResultPath": "$.message",
                    "Next": "Done",
                },
                "Late": {"Type": "Fail", "Error": "Late"},
                "Done": {"Type": "Succeed"},
            },
        }
    )
    cursor = asl.start(defn, {"order": {"id": "o-1"}}, now=NOW)
    command = drive_until_command(defn, cursor)
    assert isinstance(command, asl.WaitForMessage)
    assert (command.correlation_key, command.correlation_value) == ("order_id", "o-1")
    assert command.timeout_at == NOW + 60
    received = asl.MessageReceived(path=command.path, token=command.token, data={"paid": True})
    advance(defn, cursor, received, now=NOW + 1)
    final = drive_until_command(defn, cursor)
    assert final == asl.Succeeded(output={"order": {"id": "o-1"}, "message": {"paid": True}})


def test_a_message_timeout_goes_to_the_timeout_path_state() -> None:
    defn = asl.load(
        {
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Message",
                    "CorrelationKey": "k",
                    "TimeoutSeconds": 5,
                    "TimeoutPath": "Late",
                    "ResultPath": "$.timeout",
                    "Next": "Done",
                },
                "Late": {"Type": "Pass", "End": True},
                "Done": {"Type": "Succeed"},
            },
        }
    )
    cursor = asl.start(defn, {}, now=NOW)
    command = drive_until_command(defn, cursor)
    advance(defn, cursor, asl.TimerFired(path=command.path, token=command.token), now=NOW + 5)
    final = drive_until_command(defn, cursor)
    assert isinstance(final, asl.Succeeded)
    assert final.output["timeout"]["status"] == "TIMEOUT"


def test_the_execution_times_out_at_its_timeout_seconds() -> None:
    defn = asl.load(
        {
            "TimeoutSeconds": 10,
            "StartAt": "W",
            "States": {"W": {"Type": "Wait", "Seconds": 100, "End": True}},
        }
    )
    cursor = asl.start(defn, {}, now=NOW)
    wait = drive_until_command(defn, cursor)
    assert wait.until == NOW + 10  # woken at the deadline, not after the wait
    result = advance(defn, cursor, now=NOW + 10)
    assert result.command == asl.Failed(
        error="States.Timeout", cause="The execution timed out", timed_out=True
    )


def test_history_events_record_input_output_and_times() -> None:
    defn = asl.load(
        {
            "StartAt": "A",
            "States": {"A": {"Type": "Pass", "Result": 1, "ResultPath": "$.r", "End": True}},
        }
    )
    cursor = asl.start(defn, {"x": 0}, now=NOW)
    result = advance(defn, cursor, now=NOW + 1)
    (event,) = result.events
    assert (event.state, event.type, event.status) == ("A", "Pass", "succeeded")
    assert (event.input, event.output) == ({"x": 0}, {"x": 0, "r": 1})
    assert (event.entered_at, event.exited_at) == (NOW, NOW + 1)


def test_the_context_object_carries_execution_and_state_fields() -> None:
    defn = asl.load(
        {
            "StartAt": "A",
            "States": {
                "A": {
                    "Type": "Pass",
                    "Parameters": {
                        "id.$": "$$.Execution.Id",
                        "state.$": "$$.State.Name",
                        "entered.$": "$$.State.EnteredTime",
                        "machine.$": "$$.StateMachine.Name",
                    },
                    "End": True,
                }
            },
        }
    )
    ctx = it.execution_context(
        execution_id="e-1", name="n", input={}, start_time=NOW, state_machine_name="orders"
    )
    cursor = asl.start(defn, {}, now=NOW)
    advance(defn, cursor, now=NOW, context=ctx)
    assert asl.result_of(cursor) == asl.Succeeded(
        output={
            "id": "e-1",
            "state": "A",
            "entered": "2023-11-14T22:13:20.000Z",
            "machine": "orders",
        }
    )
