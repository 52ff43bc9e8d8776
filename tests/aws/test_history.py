"""The stored history mapped onto AWS's events (pure: records built here, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.aws.history import _Builder, describe_states
from orchestrator.client import Execution, HistoryEvent
from orchestrator.types import ExecutionStatus

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def execution(status: ExecutionStatus, **fields: Any) -> Execution:
    base: dict[str, Any] = {
        "id": "e1", "state_machine_id": 1, "version_id": 1, "name": "e1", "status": status,
        "input": {}, "output": None, "error": None, "cause": None, "cursor": None,
        "current_state": None, "priority": 0, "batch_id": None, "source_execution_id": None,
        "source_state_name": None, "started_at": T0, "updated_at": at(9), "ended_at": at(9),
        "lease_owner": None, "lease_expires_at": None, "revision": 1, "last_seq": 0,
        "wake_pending": False, "redrive_count": 0,
    }  # fmt: skip
    return Execution(**{**base, **fields})


def row(
    seq: int, kind: str, state: str, entered: float, done: float, **fields: Any
) -> HistoryEvent:
    return HistoryEvent(
        execution_id="e1", seq=seq, event_type=kind, state_name=state,
        state_type=fields.pop("state_type", None), input={}, output=fields.pop("output", None),
        error=fields.pop("error", None), cause=fields.pop("cause", None),
        attempt=fields.pop("attempt", 0), entered_at=at(entered), recorded_at=at(done),
        path=fields.pop("path", None), started_at=fields.pop("started_at", None),
    )  # fmt: skip


def types(definition: dict[str, Any], ex: Execution, rows: list[HistoryEvent]) -> list[str]:
    builder = _Builder(
        execution=ex, states=describe_states(definition), role_arn=None, region="r", data=True
    )
    return [event["type"] for event in builder.build(rows)]


RETRY = {
    "StartAt": "Work",
    "States": {
        "Work": {
            "Type": "Task",
            "Resource": "work",
            "Retry": [{"ErrorEquals": ["X"]}],
            "Next": "Stop",
        },
        "Stop": {"Type": "Fail", "Error": "Gave", "Cause": "up"},
    },
}


def test_a_retried_task_is_one_entry_with_an_attempt_each_and_a_fail_state_ends_it() -> None:
    rows = [
        row(1, "StateRetrying", "Work", 0, 1, error="X"),
        row(2, "StateSucceeded", "Work", 0, 3, output={}),
        row(3, "StateFailed", "Stop", 3, 3, error="Gave", cause="up"),
    ]
    ended = execution(ExecutionStatus.FAILED, error="Gave", cause="up")
    assert types(RETRY, ended, rows) == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskFailed",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited",
        "FailStateEntered",
        "ExecutionFailed",
    ]


NESTED = {
    "StartAt": "Outer",
    "States": {
        "Outer": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "Inner",
                    "States": {
                        "Inner": {
                            "Type": "Map",
                            "ItemProcessor": {
                                "StartAt": "P",
                                "States": {"P": {"Type": "Pass", "End": True}},
                            },
                            "End": True,
                        }
                    },
                }
            ],
            "End": True,
        }
    },
}


def test_nested_containers_open_outermost_first_before_the_state_inside() -> None:
    # Every state finished in the same step: equal times, order from the rows and the definition
    rows = [
        row(1, "StateSucceeded", "P", 0, 0),
        row(2, "StateSucceeded", "Inner", 0, 0),
        row(3, "StateSucceeded", "Outer", 0, 0),
    ]
    assert types(NESTED, execution(ExecutionStatus.SUCCEEDED), rows) == [
        "ExecutionStarted",
        "ParallelStateEntered",
        "ParallelStateStarted",
        "MapStateEntered",
        "MapStateStarted",
        "MapIterationStarted",
        "PassStateEntered",
        "PassStateExited",
        "MapIterationSucceeded",
        "MapStateSucceeded",
        "MapStateExited",
        "ParallelStateSucceeded",
        "ParallelStateExited",
        "ExecutionSucceeded",
    ]


def test_a_running_execution_has_no_end_event_and_an_aborted_one_says_so() -> None:
    running = execution(ExecutionStatus.RUNNING, ended_at=None)
    assert types(RETRY, running, []) == ["ExecutionStarted"]
    aborted = execution(ExecutionStatus.ABORTED, error="Stop")
    assert types(RETRY, aborted, []) == ["ExecutionStarted", "ExecutionAborted"]


MAP = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemProcessor": {
                "StartAt": "Work",
                "States": {"Work": {"Type": "Task", "Resource": "work", "End": True}},
            },
            "End": True,
        }
    },
}


def test_recorded_paths_give_each_iteration_its_own_index_in_any_order() -> None:
    # Given iterations that finished out of order (1 before 0), each row with its path
    rows = [
        row(1, "StateSucceeded", "Work", 0, 1, path=[1]),
        row(2, "StateSucceeded", "Work", 0, 2, path=[0]),
        row(3, "StateSucceeded", "Each", 0, 2, path=[]),
    ]
    builder = _Builder(
        execution=execution(ExecutionStatus.SUCCEEDED),
        states=describe_states(MAP),
        role_arn=None,
        region="r",
        data=True,
    )
    events = builder.build(rows)
    iterations = [
        (e["type"], e[key]["index"])
        for e in events
        for key in ("mapIterationStartedEventDetails", "mapIterationSucceededEventDetails")
        if key in e
    ]
    # Then each iteration is started and succeeds under its own index, and the two
    # entries of Work (same name, same entry time) are two entries, not a retry
    assert iterations == [
        ("MapIterationStarted", 1),
        ("MapIterationSucceeded", 1),
        ("MapIterationStarted", 0),
        ("MapIterationSucceeded", 0),
    ]
    assert [e["type"] for e in events].count("TaskStateEntered") == 2


def test_each_attempt_is_scheduled_and_started_when_its_handler_was_called() -> None:
    rows = [
        row(1, "StateRetrying", "Work", 0, 1, error="X", started_at=at(0.5)),
        row(2, "StateSucceeded", "Work", 0, 4, output={}, started_at=at(3)),
    ]
    builder = _Builder(
        execution=execution(ExecutionStatus.SUCCEEDED),
        states=describe_states(RETRY),
        role_arn=None,
        region="r",
        data=True,
    )
    events = builder.build(rows)
    started = [e["timestamp"] for e in events if e["type"] in ("TaskScheduled", "TaskStarted")]
    assert started == [at(0.5).timestamp()] * 2 + [at(3).timestamp()] * 2
