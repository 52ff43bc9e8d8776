"""``.waitForTaskToken`` Tasks and heartbeats on stored executions (issue 13).

Golden cases follow the AWS Step Functions developer guide, "Wait for a Callback
with the Task Token" (connect-to-resource, sections "Task Token Example" and
"Configure a Heartbeat Timeout for a Waiting Task").
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from orchestrator.errors import InvalidToken, StatesError, TaskDoesNotExist, TaskTimedOut
from orchestrator.handlers import HandlerContext
from orchestrator.statemachine import send_task_failure, send_task_heartbeat, send_task_success
from orchestrator.store import Repository
from orchestrator.types import ExecutionStatus, TaskTokenStatus
from tests.support import wait_until

from .conftest import Env, states_in

#: The developer guide's "Task Token Example" state, with its NEXT_STATE made a Pass.
SQS_CALLBACK: dict[str, Any] = {
    "StartAt": "Send message to SQS",
    "States": {
        "Send message to SQS": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {
                "QueueUrl": "https://sqs.us-east-2.amazonaws.com/123456789012/myQueue",
                "MessageBody": {
                    "Message": "Hello from Step Functions!",
                    "TaskToken.$": "$$.Task.Token",
                },
            },
            "Next": "NEXT_STATE",
        },
        "NEXT_STATE": {"Type": "Pass", "End": True},
    },
}

#: The guide's heartbeat example ("Push to SQS", HeartbeatSeconds 600, ResultPath
#: $.SQS). Its StartAt reads "Push based to SQS", a state the example does not have
#: (AWS would refuse it), so StartAt names the state.
SQS_HEARTBEAT: dict[str, Any] = {
    "StartAt": "Push to SQS",
    "States": {
        "Push to SQS": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "HeartbeatSeconds": 600,
            "Parameters": {
                "MessageBody": {"myTaskToken.$": "$$.Task.Token"},
                "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/push-based-queue",
            },
            "ResultPath": "$.SQS",
            "End": True,
        }
    },
}


class Queue:
    """A stand-in for SQS: the callback handler puts each message here."""

    def __init__(self) -> None:
        self.messages: list[tuple[Any, HandlerContext]] = []

    def __call__(self, data: Any, ctx: HandlerContext) -> Any:
        self.messages.append((data, ctx))
        return {"MessageId": f"m-{len(self.messages)}"}  # ignored: the token decides

    @property
    def tokens(self) -> list[str]:
        return [ctx.task_token or "" for _, ctx in self.messages]


def callback_machine(**task: Any) -> dict[str, Any]:
    """One callback Task ``Approve`` (extra fields given) then ``Done``; ``Rejected`` on catch."""
    task.setdefault("Catch", [{"ErrorEquals": ["NeverRaised"], "Next": "Rejected"}])
    return {
        "StartAt": "Approve",
        "States": {
            "Approve": {
                "Type": "Task",
                "Resource": "approve.waitForTaskToken",
                "Parameters": {"order.$": "$.order", "token.$": "$$.Task.Token"},
                "Next": "Done",
                **task,
            },
            "Done": {"Type": "Pass", "End": True},
            "Rejected": {"Type": "Pass", "End": True},
        },
    }


def answer(env: Env, fn: Any, *args: Any) -> str:
    """``send_task_*`` on the test's store; the resumed execution runs here."""
    return str(fn(*args, repository=env.repo, settings=env.settings, runner=env.runner()))


@pytest.fixture
def queue(env: Env) -> Queue:
    found = Queue()
    env.handlers.register("sqs:sendMessage", found)
    env.handlers.register("approve.waitForTaskToken", found)
    return found


def test_the_guides_sqs_callback_parks_and_send_task_success_resumes_it(
    env: Env, queue: Queue
) -> None:
    # Given the guide's example, whose Parameters read $$.Task.Token (issue 13, item 2:
    # it failed with States.Runtime and the handler's return value was the result)
    machine = env.machine("sqs-callback", SQS_CALLBACK)

    # When it runs, the handler gets the token in its input and context and returns
    parked = machine.start({"order": 7})

    # Then the execution parks, holding no worker, until the token comes back
    assert parked.status == ExecutionStatus.WAITING
    assert parked.lease_owner is None
    ((message, ctx),) = queue.messages
    token = ctx.task_token
    assert token is not None
    assert len(token) >= 22  # at least 128 random bits, URL-safe
    assert message["MessageBody"] == {"Message": "Hello from Step Functions!", "TaskToken": token}
    assert ctx.context["Task"] == {"Token": token}

    resumed = answer(env, send_task_success, token, {"credit": "approved"})

    done = env.execution(parked.id)
    assert resumed == parked.id
    assert (done.status, done.output) == (ExecutionStatus.SUCCEEDED, {"credit": "approved"})
    assert states_in(machine.history(parked.id)) == ["Send message to SQS", "NEXT_STATE"]


def test_a_token_is_single_use(env: Env, queue: Queue) -> None:
    machine = env.machine("once", callback_machine())
    parked = machine.start({"order": 1})
    (token,) = queue.tokens
    answer(env, send_task_success, token, "yes")

    with pytest.raises(InvalidToken, match="already used"):
        answer(env, send_task_success, token, "again")
    with pytest.raises(InvalidToken, match="already used"):
        answer(env, send_task_failure, token, "Late", "too late")
    assert env.execution(parked.id).output == "yes"


def test_tokens_are_unguessable_and_distinct(env: Env, queue: Queue) -> None:
    machine = env.machine("many", callback_machine())
    for i in range(5):
        machine.start({"order": i}, name=f"o-{i}")
    tokens = queue.tokens
    assert len(set(tokens)) == 5
    assert all(len(t) == 64 for t in tokens)  # 32 bytes from secrets, hex
    assert not any(t.startswith("-") for t in tokens)  # never read as a CLI option


def test_send_task_failure_raises_the_error_in_the_state_and_catch_applies(
    env: Env, queue: Queue
) -> None:
    catch = [{"ErrorEquals": ["CreditRejected"], "ResultPath": "$.why", "Next": "Rejected"}]
    machine = env.machine("caught", callback_machine(Catch=catch))
    parked = machine.start({"order": 2})
    (token,) = queue.tokens

    answer(env, send_task_failure, token, "CreditRejected", "score too low")

    done = env.execution(parked.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.output == {"order": 2, "why": {"Error": "CreditRejected", "Cause": "score too low"}}
    assert states_in(machine.history(parked.id)) == ["Rejected"]


def test_a_failure_is_retried_with_a_new_token(env: Env, queue: Queue) -> None:
    retry = [{"ErrorEquals": ["Busy"], "IntervalSeconds": 1, "MaxAttempts": 1}]
    machine = env.machine("retried", callback_machine(Retry=retry))
    parked = machine.start({"order": 3})
    (first,) = queue.tokens

    answer(env, send_task_failure, first, "Busy", "try again")
    runner = env.runner()
    wait_until(lambda: runner.fire_due_timers() == [parked.id], timeout=10, what="the back-off")

    assert env.execution(parked.id).status == ExecutionStatus.WAITING
    _, second = queue.tokens
    assert second != first
    assert [ctx.attempt for _, ctx in queue.messages] == [0, 1]
    answer(env, send_task_success, second, "ok")
    assert env.execution(parked.id).output == "ok"


def test_an_uncaught_failure_fails_the_execution(env: Env, queue: Queue) -> None:
    machine = env.machine("failing", callback_machine())
    parked = machine.start({"order": 4})
    answer(env, send_task_failure, queue.tokens[0], None, None)
    done = env.execution(parked.id)
    assert (done.status, done.error) == (ExecutionStatus.FAILED, "States.TaskFailed")


def test_a_handler_that_raises_fails_the_task_at_once(env: Env) -> None:
    handed_out: list[str] = []

    def broken(data: Any, ctx: HandlerContext) -> Any:
        handed_out.append(data["token"])
        raise ConnectionError("queue unreachable")

    env.handlers.register("approve.waitForTaskToken", broken)
    machine = env.machine("broken", callback_machine())
    done = machine.start({"order": 5})
    assert (done.status, done.error) == (ExecutionStatus.FAILED, "ConnectionError")
    with pytest.raises(TaskDoesNotExist):
        answer(env, send_task_success, handed_out[0], "nobody waits")


def test_a_handler_that_raises_under_catch_leaves_no_usable_token(env: Env) -> None:
    handed_out: list[str] = []

    def broken(data: Any, ctx: HandlerContext) -> Any:
        handed_out.append(data["token"])
        raise StatesError("Rejected", "at once")

    env.handlers.register("approve.waitForTaskToken", broken)
    catch = [{"ErrorEquals": ["Rejected"], "Next": "Rejected"}]
    done = env.machine("caught-at-once", callback_machine(Catch=catch)).start({"order": 5})
    assert done.status == ExecutionStatus.SUCCEEDED
    stored = env.repo.find_task_token(handed_out[0])
    assert stored is not None
    assert stored.status == TaskTokenStatus.CANCELLED
    with pytest.raises(TaskDoesNotExist):
        answer(env, send_task_success, handed_out[0], "late")


def test_an_answer_sent_before_the_park_commits_is_not_lost(env: Env) -> None:
    # Given a handler that answers at once, before the execution has parked
    def eager(data: Any, ctx: HandlerContext) -> Any:
        assert ctx.task_token is not None
        send_task_success(ctx.task_token, {"fast": True}, repository=env.repo)
        return None

    env.handlers.register("approve.waitForTaskToken", eager)
    machine = env.machine("eager", callback_machine())

    # Then the execution does not wait for a sweep: it goes on in the same call
    done = machine.start({"order": 6})
    assert (done.status, done.output) == (ExecutionStatus.SUCCEEDED, {"fast": True})


def test_parallel_callbacks_wait_for_every_token(env: Env, queue: Queue) -> None:
    branch = callback_machine()
    definition = {
        "StartAt": "Both",
        "States": {"Both": {"Type": "Parallel", "Branches": [branch, branch], "End": True}},
    }
    machine = env.machine("both", definition)
    parked = machine.start({"order": 8})
    # By branch: the idempotency key names the frame path (branch 0, branch 1)
    by_branch = sorted(queue.messages, key=lambda message: message[1].idempotency_key)
    first, second = (ctx.task_token for _, ctx in by_branch)

    answer(env, send_task_success, second, "b")
    assert env.execution(parked.id).status == ExecutionStatus.WAITING
    answer(env, send_task_success, first, "a")

    assert env.execution(parked.id).output == ["a", "b"]


def test_timeout_seconds_fails_a_waiting_token_with_states_timeout(env: Env, queue: Queue) -> None:
    machine = env.machine("slow", callback_machine(TimeoutSeconds=1))
    parked = machine.start({"order": 9})
    (token,) = queue.tokens
    runner = env.runner()

    wait_until(lambda: runner.fire_due_timers() == [parked.id], timeout=10, what="the timeout")

    done = env.execution(parked.id)
    assert (done.status, done.error) == (ExecutionStatus.FAILED, "States.Timeout")
    with pytest.raises(TaskTimedOut):
        answer(env, send_task_success, token, "late")


def test_heartbeat_seconds_fails_a_silent_token_with_states_heartbeat_timeout(
    env: Env, queue: Queue
) -> None:
    catch = [{"ErrorEquals": ["States.HeartbeatTimeout"], "Next": "Rejected"}]
    machine = env.machine("silent", callback_machine(HeartbeatSeconds=1, Catch=catch))
    parked = machine.start({"order": 10})
    runner = env.runner()

    wait_until(lambda: runner.fire_due_timers() == [parked.id], timeout=10, what="the deadline")

    done = env.execution(parked.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.output["Error"] == "States.HeartbeatTimeout"


@pytest.mark.slow
def test_heartbeats_keep_a_waiting_token_alive(env: Env, queue: Queue) -> None:
    machine = env.machine("beating", callback_machine(HeartbeatSeconds=1, TimeoutSeconds=30))
    parked = machine.start({"order": 11})
    (token,) = queue.tokens
    runner = env.runner()

    for _ in range(4):  # 2 s in all, twice the heartbeat interval
        time.sleep(0.5)
        assert send_task_heartbeat(token, repository=env.repo) == parked.id
        assert runner.fire_due_timers() == []

    answer(env, send_task_success, token, "alive")
    assert env.execution(parked.id).output == "alive"


def test_the_token_of_a_stopped_execution_is_refused(env: Env, queue: Queue) -> None:
    machine = env.machine("stopped", callback_machine())
    parked = machine.start({"order": 12})
    (token,) = queue.tokens
    machine.stop(parked.id)

    with pytest.raises(TaskDoesNotExist, match="ABORTED"):
        answer(env, send_task_success, token, "too late")
    with pytest.raises(TaskDoesNotExist, match="ABORTED"):
        send_task_heartbeat(token, repository=env.repo)


def test_an_unknown_token_is_refused(env: Env) -> None:
    with pytest.raises(TaskDoesNotExist, match="unknown"):
        answer(env, send_task_success, "A" * 43, {})


def test_a_token_survives_a_restart_of_every_process(env: Env, queue: Queue) -> None:
    # Given a token handed out by one store and runner, which are then closed
    machine = env.machine("restart", SQS_CALLBACK)
    parked = machine.start({"order": 13})
    (token,) = queue.tokens
    env.repo.close()

    # When a new store and runner (another process, after a restart) get the answer
    fresh = Repository.from_settings(env.settings)
    try:
        env.repo = fresh
        answer(env, send_task_success, token, {"after": "restart"})
        assert fresh.get_execution(parked.id).output == {"after": "restart"}
    finally:
        fresh.close()


def test_the_guides_heartbeat_example_waits_with_a_deadline(env: Env, queue: Queue) -> None:
    machine = env.machine("sqs-heartbeat", SQS_HEARTBEAT)
    parked = machine.start({"order": 14})
    (token,) = queue.tokens

    stored = env.repo.find_task_token(token)
    assert stored is not None
    assert stored.heartbeat_seconds == 600
    assert stored.status == TaskTokenStatus.WAITING
    answer(env, send_task_success, token, {"MessageId": "m"})
    assert env.execution(parked.id).output == {"order": 14, "SQS": {"MessageId": "m"}}


# -- HeartbeatSeconds on ordinary handlers (issue 13, item 3) ------------------


def heartbeat_machine(seconds: int = 1) -> dict[str, Any]:
    return {
        "StartAt": "Work",
        "States": {
            "Work": {
                "Type": "Task",
                "Resource": "work",
                "HeartbeatSeconds": seconds,
                "TimeoutSeconds": 60,
                "End": True,
            }
        },
    }


def test_a_handler_that_does_not_heartbeat_fails_with_states_heartbeat_timeout(
    env: Env,
) -> None:
    # Given a handler that runs for 3 s without a heartbeat, HeartbeatSeconds 1
    release = threading.Event()
    later: list[BaseException] = []

    def silent(data: Any, ctx: HandlerContext) -> Any:
        release.wait(3)
        try:
            ctx.heartbeat()  # given up on by now: this stops the handler
        except BaseException as exc:
            later.append(exc)
            raise
        return "too late"

    env.handlers.register("work", silent)
    machine = env.machine("silent-work", heartbeat_machine())

    # When it runs, the state fails once the heartbeat is late; the worker goes on
    started = time.monotonic()
    done = machine.start({})
    elapsed = time.monotonic() - started

    assert (done.status, done.error) == (ExecutionStatus.FAILED, "States.HeartbeatTimeout")
    assert elapsed < 3
    release.set()
    wait_until(lambda: bool(later), timeout=5, what="the abandoned handler's heartbeat")
    assert "HeartbeatTimeout" in repr(later[0])


def test_a_handler_that_heartbeats_runs_past_heartbeat_seconds(env: Env) -> None:
    def beating(data: Any, ctx: HandlerContext) -> Any:
        for _ in range(8):  # 1.6 s, beyond the 1 s HeartbeatSeconds
            time.sleep(0.2)
            ctx.heartbeat()
        return "done"

    env.handlers.register("work", beating)
    machine = env.machine("beating-work", heartbeat_machine())

    done = machine.start({})
    assert (done.status, done.output) == (ExecutionStatus.SUCCEEDED, "done")
