"""Long waits and retry back-offs park with a timer; short ones sleep in the worker."""

from __future__ import annotations

import time
from typing import Any

from orchestrator.handlers import HandlerContext
from orchestrator.types import ExecutionStatus, TimerKind

#: A park threshold above the 1 s Wait and back-off of these machines: they sleep.
from tests.support import wait_until

from .conftest import PARK_THRESHOLD_SECONDS, SQLITE_IN_SLOW_TIER, Env, states_in

LONG_THRESHOLD_SECONDS = 1.5


def napping_machine() -> dict[str, Any]:
    """A 1 s Wait between two Pass states."""
    return {
        "StartAt": "Before",
        "States": {
            "Before": {"Type": "Pass", "Next": "Nap"},
            "Nap": {"Type": "Wait", "Seconds": 1, "Next": "After"},
            "After": {"Type": "Pass", "Result": "awake", "ResultPath": "$.after", "End": True},
        },
    }


def retrying_machine() -> dict[str, Any]:
    """A Task retried once after a 1 s back-off."""
    return {
        "StartAt": "Flaky",
        "States": {
            "Flaky": {
                "Type": "Task",
                "Resource": "flaky",
                "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 1}],
                "End": True,
            }
        },
    }


class FailsOnce:
    """Raises on the first attempt, then returns the attempt number; records attempts."""

    def __init__(self) -> None:
        self.attempts: list[int] = []

    def __call__(self, data: Any, ctx: HandlerContext) -> Any:
        self.attempts.append(ctx.attempt)
        if ctx.attempt == 0:
            raise ConnectionError("try again later")
        return {"attempt": ctx.attempt}


def test_a_wait_longer_than_the_park_threshold_parks_and_the_due_timer_resumes_it(
    env: Env,
) -> None:
    # Given a 1 s Wait, longer than the 0.5 s park threshold
    assert PARK_THRESHOLD_SECONDS < 1
    machine = env.machine("napper", napping_machine())

    # When an execution reaches it
    started = time.monotonic()
    parked = machine.start({})

    # Then it parks at once, WAITING with a WAIT timer, and nobody holds its lease
    assert time.monotonic() - started < 1
    assert parked.status == ExecutionStatus.WAITING
    assert parked.lease_owner is None
    (timer,) = env.repo.execution_timers(parked.id)
    assert (timer.kind, timer.fired) == (TimerKind.WAIT, False)
    assert states_in(machine.history(parked.id)) == ["Before"]

    # ... the timer does not fire early, and once due it resumes the execution
    runner = env.runner()
    assert runner.fire_due_timers() == []
    assert env.execution(parked.id).status == ExecutionStatus.WAITING
    wait_until(lambda: runner.fire_due_timers() == [parked.id], timeout=10, what="the timer")
    done = env.execution(parked.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.output == {"after": "awake"}
    assert done.ended_at is not None
    assert done.ended_at >= timer.due_at
    assert states_in(machine.history(parked.id)) == ["Before", "Nap", "After"]
    assert runner.fire_due_timers() == []  # fired once only


def test_a_retry_back_off_longer_than_the_park_threshold_parks_and_the_timer_retries(
    env: Env,
) -> None:
    # Given a Task that fails once and is retried after 1 s
    flaky = FailsOnce()
    env.handlers.register("flaky", flaky)
    machine = env.machine("retrier", retrying_machine())

    # When it fails
    parked = machine.start({})

    # Then the execution parks on a RETRY timer instead of sleeping
    assert parked.status == ExecutionStatus.WAITING
    assert [t.kind for t in env.repo.execution_timers(parked.id)] == [TimerKind.RETRY]
    assert flaky.attempts == [0]

    # ... and the due timer runs the retry
    runner = env.runner()
    wait_until(lambda: runner.fire_due_timers() == [parked.id], timeout=10, what="the timer")
    done = env.execution(parked.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.output == {"attempt": 1}
    assert flaky.attempts == [0, 1]
    history = machine.history(parked.id)
    assert [(e.event_type, e.attempt) for e in history] == [
        ("StateRetrying", 0),
        ("StateSucceeded", 1),
    ]
    assert history[0].error == "ConnectionError"


@SQLITE_IN_SLOW_TIER
def test_short_waits_and_back_offs_sleep_in_the_worker_without_parking(env: Env) -> None:
    # Given the same 1 s Wait and 1 s back-off under a 1.5 s park threshold
    flaky = FailsOnce()
    env.handlers.register("flaky", flaky)
    threshold = {"park_threshold_seconds": LONG_THRESHOLD_SECONDS}
    napper = env.machine("napper", napping_machine(), **threshold)
    retrier = env.machine("retrier", retrying_machine(), **threshold)

    # When executions of both start
    started = time.monotonic()
    napped = napper.start({})
    retried = retrier.start({})

    # Then each ran to its end in the starting call, sleeping, with no timer row
    assert time.monotonic() - started >= 2
    assert (napped.status, retried.status) == (ExecutionStatus.SUCCEEDED,) * 2
    assert retried.output == {"attempt": 1}
    assert env.repo.execution_timers(napped.id) == []
    assert env.repo.execution_timers(retried.id) == []
    assert states_in(napper.history(napped.id)) == ["Before", "Nap", "After"]
