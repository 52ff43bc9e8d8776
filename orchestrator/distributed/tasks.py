"""The Celery tasks: thin wrappers that hand one execution to the runtime.

- ``orchestrator.run_execution(execution_id, event=None)`` advances one stored
  execution as far as it goes (``orchestrator.worker.advance_from_task``).
- ``orchestrator.run_executions(execution_ids)`` advances several, one after
  another: what bulk publishing sends (``executions_per_message``), because
  Celery's cost is per message, not per execution. They are claimed in one
  statement and their final checkpoints committed in one transaction
  (``Runner.advance_many``). Each execution keeps its own lease, checkpoints
  and recovery; a transient error retries only the ids not yet done, and a
  failure of one does not stop the others.
- ``orchestrator.sweep()`` fires due timers and re-publishes stalled executions
  (``orchestrator.worker.sweep``); beat runs it every few seconds.

The runtime is imported inside the task bodies, so this module (and the app
that ``celery -A orchestrator`` loads) imports without a database.

Retries: only transient infrastructure errors are retried, with exponential,
jittered back-off capped at a minute (far below the broker visibility timeout,
since a retry is a new ETA message). Anything else fails the task once: the
execution's own errors are the runtime's business, recorded in the database.
Malformed arguments are rejected without requeue, with a logged reason.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from celery import shared_task
from celery.exceptions import Reject
from celery.utils.time import get_exponential_backoff_interval

from orchestrator.distributed import labels  # noqa: F401  # labels published runs
from orchestrator.distributed.config import (
    PURGE_TASK,
    RUN_EXECUTION_TASK,
    RUN_EXECUTIONS_TASK,
    SWEEP_TASK,
)
from orchestrator.distributed.publish import MAX_EXECUTIONS_PER_MESSAGE, START_ROW_MAX_CHARS
from orchestrator.runtime.tracing import TRACE_HEADER, message_context
from orchestrator.types import is_start_ticket

logger = logging.getLogger(__name__)

# Celery is untyped; this cast keeps the task functions' own signatures checked.
_task = cast("Callable[..., Callable[[Callable[..., Any]], Any]]", shared_task)

#: The module of the entry points the tasks run (over the worker's one client).
WORKER_MODULE: Final = "orchestrator.worker"

#: Retries of one task message before it fails (the sweeper still recovers the
#: execution: its row stays PENDING/RUNNING and its lease expires).
MAX_RETRIES: Final = 10

#: Cap of the exponential retry back-off, in seconds.
RETRY_BACKOFF_MAX: Final = 60

#: Longest execution id accepted, in characters.
MAX_EXECUTION_ID_LENGTH: Final = 256

#: Longest execution row a start message may carry, in characters.
MAX_START_ROW_CHARS: Final = START_ROW_MAX_CHARS + 8192


class TransientDatabaseError(Exception):
    """A database error on a connection the driver marked as invalidated.

    SQLAlchemy raises ``DBAPIError`` subclasses for both "the server went away"
    and "the row violates a constraint"; only the first is worth a retry, and
    ``connection_invalidated`` is how SQLAlchemy tells them apart.
    """


#: Errors retried with back-off: the database or the broker is unreachable.
TRANSIENT_ERRORS: Final[tuple[type[Exception], ...]] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    TransientDatabaseError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """True if ``exc`` says the infrastructure, not the work, failed."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    return isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated


class InvalidTaskArguments(ValueError):
    """A task message whose arguments cannot name an execution."""


def validate_run_arguments(
    execution_id: object, event: object, ticket: object = None, start: object = None
) -> None:
    """Check the arguments of ``run_execution``.

    Raises:
        InvalidTaskArguments: ``execution_id`` is not a non-empty string of at most
            :data:`MAX_EXECUTION_ID_LENGTH` characters, ``event`` is neither
            ``None`` nor a JSON object (a mapping with string keys), ``ticket`` is
            neither ``None`` nor a start ticket (``@start:`` and at most
            :data:`MAX_EXECUTION_ID_LENGTH` characters), or ``start`` is neither
            ``None`` nor a string of at most :data:`MAX_START_ROW_CHARS`
            characters that comes with a ticket.
    """
    if ticket is not None and (
        not isinstance(ticket, str)
        or not is_start_ticket(ticket)
        or len(ticket) > MAX_EXECUTION_ID_LENGTH
    ):
        raise InvalidTaskArguments(f"ticket must be a start ticket, got {ticket!r:.80}")
    if start is not None and (
        not isinstance(start, str) or len(start) > MAX_START_ROW_CHARS or ticket is None
    ):
        raise InvalidTaskArguments(
            f"start must be an execution row of at most {MAX_START_ROW_CHARS} characters "
            f"with a ticket, got {type(start).__name__} of "
            f"{len(start) if isinstance(start, str) else '?'} characters"
        )
    if not isinstance(execution_id, str) or not execution_id.strip():
        raise InvalidTaskArguments(
            f"execution_id must be a non-empty string, got {type(execution_id).__name__} "
            f"{execution_id!r:.80}"
        )
    if len(execution_id) > MAX_EXECUTION_ID_LENGTH:
        raise InvalidTaskArguments(
            f"execution_id is {len(execution_id)} characters, longer than {MAX_EXECUTION_ID_LENGTH}"
        )
    if event is not None and not _is_json_object(event):
        raise InvalidTaskArguments(
            f"event must be null or a JSON object, got {type(event).__name__} {event!r:.80}"
        )


def validate_run_list(execution_ids: object) -> list[str]:
    """Check the argument of ``run_executions``; return it as a list.

    Raises:
        InvalidTaskArguments: not a list of 1 to :data:`MAX_EXECUTIONS_PER_MESSAGE`
            execution ids, each valid for ``run_execution``.
    """
    if not isinstance(execution_ids, list) or not execution_ids:
        raise InvalidTaskArguments(
            f"execution_ids must be a non-empty list, got {type(execution_ids).__name__} "
            f"{execution_ids!r:.80}"
        )
    if len(execution_ids) > MAX_EXECUTIONS_PER_MESSAGE:
        raise InvalidTaskArguments(
            f"execution_ids holds {len(execution_ids)} ids, more than {MAX_EXECUTIONS_PER_MESSAGE}"
        )
    for index, execution_id in enumerate(execution_ids):
        try:
            validate_run_arguments(execution_id, None)
        except InvalidTaskArguments as exc:
            raise InvalidTaskArguments(f"execution_ids[{index}]: {exc}") from None
    return list(execution_ids)


def _is_json_object(value: object) -> bool:
    return isinstance(value, Mapping) and all(isinstance(key, str) for key in value)


@_task(
    name=RUN_EXECUTION_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    retry_backoff_max=RETRY_BACKOFF_MAX,
    retry_jitter=True,
    max_retries=MAX_RETRIES,
)
def run_execution(
    self: Any,
    execution_id: str,
    event: dict[str, Any] | None = None,
    state_machine: str | None = None,
    batch_id: str | None = None,
    ticket: str | None = None,
    start: str | None = None,
) -> Any:
    """Advance execution ``execution_id`` as far as it goes without waiting.

    Args:
        self: the bound task (Celery passes it).
        execution_id: the execution to advance (positional, so Flower shows it).
        event: what woke it (a timer, a message), or ``None`` for a start/resume.
        state_machine: its machine, for Flower (``distributed/labels.py``); ignored.
        batch_id: its batch, for Flower; ignored.
        ticket: the start ticket of an EXPRESS execution started for a worker.
        start: that execution's row as stored (JSON), run as it is unless the
            message was redelivered (``Runner.advance_started``).

    Returns:
        Whatever the runtime reports (a small JSON summary, shown in Flower).

    Raises:
        Reject: malformed arguments; the message is dropped, not retried.
    """
    _reject_if_malformed(execution_id, event, self.request.id, ticket, start)
    advance_from_task = _entry_point("advance_from_task")
    logger.debug(
        "advancing execution %s",
        execution_id,
        extra={"action": "run_execution", "execution_id": execution_id},
    )
    with message_context(_trace_header(self.request)):
        if ticket is None:
            return _call_classifying_errors(advance_from_task, execution_id, event)
        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        return _call_classifying_errors(
            lambda: advance_from_task(
                execution_id, event, ticket=ticket, start=start, redelivered=redelivered
            )
        )


@_task(
    name=RUN_EXECUTIONS_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
)
def run_executions(
    self: Any,
    execution_ids: list[str],
    state_machine: str | None = None,
    batch_id: str | None = None,
) -> Any:
    """Advance each of ``execution_ids`` in turn, as ``run_execution`` advances one.

    ``state_machine`` and ``batch_id`` label the message for Flower and are ignored.

    A transient infrastructure error retries the message with the ids not yet
    done (exponential, jittered back-off capped at :data:`RETRY_BACKOFF_MAX`);
    any other error is logged for its execution and the rest go on (the
    execution's row is the truth, and the sweeper recovers what is left).

    Returns:
        Executions by the status they were left in (a small summary for Flower).

    Raises:
        Reject: malformed arguments; the message is dropped, not retried.
    """
    try:
        ids = validate_run_list(execution_ids)
    except InvalidTaskArguments as exc:
        reason = f"rejected {RUN_EXECUTIONS_TASK} task {self.request.id}: {exc}"
        logger.error(reason, extra={"action": "run_executions.reject"})
        raise Reject(reason, requeue=False) from exc
    advance_many = _entry_point("advance_many_from_task")
    try:
        with message_context(_trace_header(self.request)):
            summary, retry, cause = _call_classifying_errors(advance_many, ids, is_transient)
    except TRANSIENT_ERRORS as exc:  # the group claim itself failed: nothing was done
        summary, retry, cause = {}, ids, exc
    if retry:
        countdown = get_exponential_backoff_interval(
            factor=1, retries=self.request.retries, maximum=RETRY_BACKOFF_MAX, full_jitter=True
        )
        raise self.retry(
            args=(retry,),
            kwargs={"state_machine": state_machine, "batch_id": batch_id},
            exc=cause,
            countdown=countdown,
        ) from cause
    return summary


def _trace_header(request: Any) -> object:
    """The trace context the publisher put in the message (``runtime/tracing.py``), if any."""
    headers = getattr(request, "headers", None)
    return headers.get(TRACE_HEADER) if isinstance(headers, dict) else None


def _reject_if_malformed(
    execution_id: object, event: object, task_id: str | None, ticket: object, start: object
) -> None:
    try:
        validate_run_arguments(execution_id, event, ticket, start)
    except InvalidTaskArguments as exc:
        reason = f"rejected {RUN_EXECUTION_TASK} task {task_id}: {exc}"
        logger.error(
            reason,
            extra={"action": "run_execution.reject", "execution_id": repr(execution_id)},
        )
        raise Reject(reason, requeue=False) from exc


def _call_classifying_errors(fn: Callable[..., Any], *args: Any) -> Any:
    # autoretry_for matches classes, but a DBAPIError is transient or not by its
    # connection_invalidated flag: re-raise the transient ones as a retried class.
    try:
        return fn(*args)
    except sqlalchemy.exc.DBAPIError as exc:
        if is_transient(exc) and not isinstance(exc, TRANSIENT_ERRORS):
            raise TransientDatabaseError(str(exc)) from exc
        raise


@_task(name=SWEEP_TASK, ignore_result=True)
def sweep() -> Any:
    """Fire due timers and re-publish stalled executions (the recovery sweep)."""
    return _entry_point("sweep")()


@_task(name=PURGE_TASK, ignore_result=True)
def purge(older_than_days: float, statuses: list[str] | None = None) -> Any:
    """Delete executions that ended more than ``older_than_days`` ago (retention)."""
    if isinstance(older_than_days, bool) or not isinstance(older_than_days, int | float):
        raise Reject(f"older_than_days must be a number, not {older_than_days!r}", requeue=False)
    return _entry_point("purge")(older_than_days, statuses)


def _entry_point(name: str) -> Callable[..., Any]:
    """The entry point ``name`` of :data:`WORKER_MODULE`, imported when a task first runs.

    Imported late so that this module, and the app ``celery -A orchestrator``
    loads, import without the runtime's dependencies (database drivers).
    """
    module = importlib.import_module(WORKER_MODULE)
    entry_point: Callable[..., Any] = getattr(module, name)
    return entry_point


__all__ = [
    "MAX_EXECUTIONS_PER_MESSAGE",
    "MAX_RETRIES",
    "MAX_START_ROW_CHARS",
    "RETRY_BACKOFF_MAX",
    "RUN_EXECUTIONS_TASK",
    "RUN_EXECUTION_TASK",
    "TRANSIENT_ERRORS",
    "InvalidTaskArguments",
    "TransientDatabaseError",
    "is_transient",
    "purge",
    "run_execution",
    "run_executions",
    "sweep",
    "validate_run_arguments",
    "validate_run_list",
]
