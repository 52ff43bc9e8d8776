"""EXPRESS executions: run in memory from the start, store only the final row.

AWS's Express workflows record no per-state history and run at least once. Here an
EXPRESS execution (``executions.execution_type``, copied from its machine at start or
chosen by a Distributed Map for its children) is claimed like any other (with the
rest of its message, in one statement), run to its end in this process by the same
driver as ``orchestrator.run``, and its end (status, output or error and cause) is
stored with the ends of the rest of its message in one statement
(``Repository.end_many``). Nothing is committed in between: no cursor, no history,
no timers. Waits sleep in the worker under the kept lease.

At-least-once: a worker that dies mid-run leaves the execution RUNNING with a lease
that runs out; the sweeper publishes it again and it runs again *from the start*
(its Task handlers are called again, with the same idempotency keys). After
``ORCHESTRATOR_MAX_STEP_ATTEMPTS`` such deaths it ends FAILED (``States.Runtime``),
as a STANDARD execution does. A ``Message`` state with no timeout cannot wait in
memory for ever: the execution fails with ``States.Runtime``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from orchestrator import asl
from orchestrator.asl import errors as asl_errors
from orchestrator.asl.interpreter import Event, RunTask, TaskFailed, TaskSucceeded
from orchestrator.logs import log_context
from orchestrator.runtime import metrics, notices, tracing
from orchestrator.runtime.callbacks import run_with_heartbeat
from orchestrator.runtime.local import ExecutionResult, _Driver, run_task
from orchestrator.store import Execution, ExecutionEnd, PayloadRejected, PayloadTooLarge
from orchestrator.store.payloads import encode
from orchestrator.types import ExecutionStatus, is_start_ticket

if TYPE_CHECKING:
    from orchestrator.runtime.runner import Runner

log = logging.getLogger("orchestrator.runtime")

#: The execution type whose executions take this path.
EXPRESS = "EXPRESS"

#: Longest cause stored for an unexpected error (the traceback goes to the log).
_CAUSE_CHARS = 2000

#: The runner's step cap, as a multiple of the event limit the engine enforces.
_BACKSTOP = 2


def is_express(execution: Execution) -> bool:
    """Whether an execution takes the EXPRESS path."""
    return execution.execution_type == EXPRESS


def run_express(
    runner: Runner, executions: Sequence[Execution], *, owner: str | None = None
) -> list[Execution | None]:
    """Run claimed EXPRESS executions to their ends; store the ends in one statement.

    Their leases are kept (renewed in the background) until the ends are stored.
    Errors of the infrastructure (the database is away) propagate; the caller hands
    the executions back, and they run again from the start.

    ``owner`` is the lease they are held under: the runner's (the default), or the
    start ticket of a started execution (:meth:`Runner.advance_started`).

    Returns:
        For each execution in order: the row as stored, or None if its lease was lost
        meanwhile (it was stopped, or taken over after this worker's lease ran out).
    """
    keeper, owner = runner.lease_keeper(), owner or runner.owner
    for execution in executions:
        keeper.hold(execution.id, owner)
    try:
        ends = [_end_of(runner, execution) for execution in executions]
        checked = [_checked(runner, end) for end in ends]
        texts = [text for _, text in checked]
        stored = runner.repo.end_many(
            [end for end, _ in checked],
            owner,
            claimed=executions,
            encoded=texts,
            now=runner.lease_now(),
        )
        # Wakes waiters, and hands them the row as committed (no read of it after).
        details = {
            row.id: detail
            for row, text in zip(stored, texts, strict=True)
            if row is not None and (detail := notices.express_end(row, text)) is not None
        }
        # A started execution's end is kept a while too: its starter may subscribe late.
        keep = list(details) if is_start_ticket(owner) else ()
        notices.publish_ends(runner.settings, runner.repo, stored, details=details, keep=keep)
        return stored
    finally:
        for execution in executions:
            keeper.drop(execution.id)


def _end_of(runner: Runner, execution: Execution) -> ExecutionEnd:
    """Run one execution from its start (or fail it, if its workers keep dying)."""
    limit = runner.settings.max_step_attempts
    if execution.claim_count > limit:
        cause = (
            f"the EXPRESS execution was started {limit} time{'s' if limit > 1 else ''} and "
            "each time the worker running it died before it ended (killed, out of memory "
            f"or past a hard time limit); ORCHESTRATOR_MAX_STEP_ATTEMPTS is {limit}"
        )
        return _failed(execution, asl_errors.RUNTIME, cause)
    machine = metrics.machine_name(runner.repo, execution.version_id)
    with (
        log_context(execution_id=execution.id, state_machine=machine, batch_id=execution.batch_id),
        tracing.execution_span(
            execution_id=execution.id, machine=machine, batch_id=execution.batch_id
        ),
    ):
        try:
            return _end(execution, _drive(runner, execution))
        except Exception as exc:
            from orchestrator.runtime.runner import is_transient

            if is_transient(exc):
                raise
            log.error(
                "EXPRESS execution %s failed on an unexpected error",
                execution.id,
                exc_info=exc,
                extra={"action": "poisoned", "execution_id": execution.id},
            )
            cause = f"unexpected error while running: {type(exc).__name__}: {exc}"
            return _failed(execution, asl_errors.RUNTIME, cause[:_CAUSE_CHARS])


def _drive(runner: Runner, execution: Execution) -> ExecutionResult:
    defn = runner.definition(execution.version_id)
    settings = runner.settings
    limit = runner.repo.payload_max_bytes

    def call(command: RunTask) -> Event:
        with log_context(execution_id=execution.id, state=command.state):
            if command.heartbeat_seconds is not None:
                event = run_with_heartbeat(
                    command, runner.handlers, execution.id, command.heartbeat_seconds
                )
            else:
                event = run_task(command, runner.handlers, execution.id)
        if isinstance(event, TaskSucceeded):
            try:
                encode(event.output, field="task output", limit=limit)
            except PayloadRejected as exc:
                too_large = isinstance(exc, PayloadTooLarge)
                return TaskFailed(
                    path=command.path,
                    token=command.token,
                    error=asl_errors.DATA_LIMIT_EXCEEDED if too_large else asl_errors.TASK_FAILED,
                    cause=str(exc),
                )
        return event

    driver = _Driver(
        defn,
        runner.handlers,
        runner.clock,
        None,
        runner.max_workers,
        keep_history=False,
        step_options={
            "max_events": settings.max_events_per_execution,
            "expression_timeout_ms": settings.expression_timeout_ms,
            "max_map_items": settings.max_map_items,
        },
        call=call,
        max_steps=_BACKSTOP * settings.max_events_per_execution,
    )
    context = asl.execution_context(
        execution_id=execution.id,
        name=execution.name,
        input=execution.input,
        start_time=execution.started_at.timestamp(),
        state_machine_id=str(execution.state_machine_id),
        redrive_count=execution.redrive_count,
    )
    return driver.run(execution.input, execution.name, execution_id=execution.id, context=context)


def _end(execution: Execution, result: ExecutionResult) -> ExecutionEnd:
    if result.status == "WAITING":
        states = ", ".join(sorted({w.state for w in result.waiting_for}))
        cause = (
            f"an EXPRESS execution cannot wait for a message without a timeout "
            f"(state {states}): it runs in memory and keeps nothing to resume from"
        )
        return _failed(execution, asl_errors.RUNTIME, cause)
    return ExecutionEnd(
        execution_id=execution.id,
        status=ExecutionStatus(result.status),
        output=result.output,
        error=result.error,
        cause=result.cause,
    )


def _checked(runner: Runner, end: ExecutionEnd) -> tuple[ExecutionEnd, str]:
    """The end and its output as JSON; an output that cannot be stored fails it."""
    try:
        return end, runner.repo.check_end(end)
    except PayloadRejected as exc:
        error = (
            asl_errors.DATA_LIMIT_EXCEEDED
            if isinstance(exc, PayloadTooLarge)
            else asl_errors.RUNTIME
        )
        failed = ExecutionEnd(
            execution_id=end.execution_id,
            status=ExecutionStatus.FAILED,
            error=error,
            cause=str(exc)[:_CAUSE_CHARS],
        )
        return failed, "null"


def _failed(execution: Execution, error: str, cause: str) -> ExecutionEnd:
    return ExecutionEnd(
        execution_id=execution.id, status=ExecutionStatus.FAILED, error=error, cause=cause
    )


__all__ = ["EXPRESS", "is_express", "run_express"]
