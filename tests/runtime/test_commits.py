"""How often an execution commits, and what a crash between its commits loses.

A finished Task's result is held (not committed) until the next handler call,
sleep, park or the end of the advance, so the deterministic states after the last
Task share its commit. These tests pin the count and the safety rules around it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from orchestrator.handlers import HandlerContext
from orchestrator.store import Repository
from orchestrator.types import ExecutionStatus

from .conftest import Env, states_in

#: Pass, Task, Choice, Pass, Succeed: the machine of bench/store.py.
FIVE_STATES: dict[str, Any] = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Result": 1, "ResultPath": "$.prepared", "Next": "Work"},
        "Work": {"Type": "Task", "Resource": "work", "ResultPath": "$.work", "Next": "Route"},
        "Route": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.prepared", "NumericEquals": 1, "Next": "Finish"}],
            "Default": "Finish",
        },
        "Finish": {"Type": "Pass", "Result": "done", "ResultPath": "$.status", "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}


def three_tasks() -> dict[str, Any]:
    """A -> B -> C, each a Task on resource ``work``, with a Pass between B and C."""
    return {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Task", "Resource": "work", "ResultPath": "$.a", "Next": "B"},
            "B": {"Type": "Task", "Resource": "work", "ResultPath": "$.b", "Next": "Between"},
            "Between": {"Type": "Pass", "Next": "C"},
            "C": {"Type": "Task", "Resource": "work", "ResultPath": "$.c", "End": True},
        },
    }


def is_checkpoint(statement: str) -> bool:
    """Whether a SQL statement writes executions' cursors: a checkpoint, one or a group's."""
    return "UPDATE executions" in statement and re.search(r"\bcursor\s*=", statement) is not None


class Crash(BaseException):
    """Stands in for the process dying (not an Exception: nothing may catch it)."""


@contextmanager
def counting_commits(repo: Repository) -> Iterator[list[str]]:
    """Collect one entry per commit on the repository's engine while inside."""
    commits: list[str] = []

    def on_commit(conn: Any) -> None:
        commits.append("commit")

    event.listen(repo.engine, "commit", on_commit)
    try:
        yield commits
    finally:
        event.remove(repo.engine, "commit", on_commit)


def test_a_short_execution_commits_twice_its_start_and_everything_after_its_task(
    env: Env,
) -> None:
    env.handlers.register("work", lambda data: {"ok": True})
    machine = env.machine("five", FIVE_STATES)

    with counting_commits(env.repo) as commits:
        done = machine.start({"n": 1})

    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.output == {"n": 1, "prepared": 1, "work": {"ok": True}, "status": "done"}
    assert len(commits) == 2  # the claimed row, then all five states in one checkpoint
    assert states_in(machine.history(done.id)) == ["Prepare", "Work", "Route", "Finish", "Done"]
    assert [e.seq for e in machine.history(done.id)] == [1, 2, 3, 4, 5]


def test_the_execution_start_returns_is_the_one_stored(env: Env) -> None:
    env.handlers.register("work", lambda data: {"ok": True})
    machine = env.machine("five", FIVE_STATES)

    done = machine.start({"n": 1})

    assert done == machine.get_execution(done.id)


def test_each_task_result_is_committed_before_the_next_handler_is_called(env: Env) -> None:
    # Given three Tasks whose handler records what the store holds when it is called
    seen: dict[str, list[str]] = {}

    def work(data: Any, ctx: HandlerContext) -> Any:
        seen[ctx.state] = states_in(env.repo.history(ctx.execution_id))
        return ctx.state

    env.handlers.register("work", work)
    machine = env.machine("three", three_tasks())

    # When it runs
    with counting_commits(env.repo) as commits:
        done = machine.start({})

    # Then every handler found the Tasks before it committed (with the Pass after B)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert seen == {"A": [], "B": ["A"], "C": ["A", "B", "Between"]}
    assert len(commits) == 4  # start, A, B (with Between), C
    assert states_in(machine.history(done.id)) == ["A", "B", "Between", "C"]


def crash_at_checkpoint(repo: Repository, number: int) -> Callable[[], None]:
    """Make the ``number``-th checkpoint from now raise Crash before its SQL is sent.

    A checkpoint is the statement that writes an execution's cursor (on
    PostgreSQL it also appends the history; on SQLite the INSERT follows in the
    same transaction, which the Crash rolls back).
    """
    count = [0]

    def before_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if is_checkpoint(statement):
            count[0] += 1
            if count[0] == number:
                raise Crash

    event.listen(repo.engine, "before_cursor_execute", before_execute)
    return lambda: event.remove(repo.engine, "before_cursor_execute", before_execute)


def test_a_crash_before_the_shared_commit_runs_only_the_uncommitted_task_again(env: Env) -> None:
    # Given the five-state machine, whose worker dies at the checkpoint after its Task
    calls: list[str] = []

    def work(data: Any, ctx: HandlerContext) -> Any:
        calls.append(ctx.idempotency_key)
        return {"ok": True}

    env.handlers.register("work", work)
    machine = env.machine("five", FIVE_STATES)
    undo = crash_at_checkpoint(env.repo, 1)  # the one checkpoint after the start
    try:
        machine.start({"n": 1}, name="doomed")
    except Crash:
        pass
    finally:
        undo()

    # Then nothing after the start is stored: the Task's result was never committed
    (crashed,) = machine.list_executions().items
    assert crashed.status == ExecutionStatus.RUNNING
    assert crashed.cursor is None
    assert machine.history(crashed.id) == []

    # When recovery takes it over, Then it finishes with every state once, and the
    # Task ran twice (the uncommitted call again) with the same idempotency key
    assert env.runner(owner="rescuer").recover(grace_seconds=0) == [crashed.id]
    done = machine.get_execution(crashed.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert states_in(machine.history(done.id)) == ["Prepare", "Work", "Route", "Finish", "Done"]
    assert len(calls) == 2
    assert len(set(calls)) == 1


def test_a_crash_after_a_task_commit_does_not_run_that_task_again(env: Env) -> None:
    # Given three Tasks; the worker dies at the checkpoint that follows B (A is committed)
    calls: list[str] = []

    def work(data: Any, ctx: HandlerContext) -> Any:
        calls.append(ctx.state)
        return ctx.state

    env.handlers.register("work", work)
    machine = env.machine("three", three_tasks())
    undo = crash_at_checkpoint(env.repo, 2)  # 1: A, 2: B with Between
    try:
        machine.start({}, name="doomed")
    except Crash:
        pass
    finally:
        undo()
    (crashed,) = machine.list_executions().items
    assert states_in(machine.history(crashed.id)) == ["A"]

    # When recovery takes it over
    assert env.runner(owner="rescuer").recover(grace_seconds=0) == [crashed.id]

    # Then A did not run again; B did (its result was lost), C once
    assert machine.get_execution(crashed.id).status == ExecutionStatus.SUCCEEDED
    assert calls == ["A", "B", "B", "C"]
    assert states_in(machine.history(crashed.id)) == ["A", "B", "Between", "C"]
