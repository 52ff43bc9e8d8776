"""The exceptions of orchestrator, in one tree.

    OrchestratorError
    ├── DefinitionInvalid        (asl: a definition with problems, each with a JSON pointer)
    ├── HandlerNotFound          (no handler registered for a Task resource)
    ├── ExecutionNotFound        (store: no execution with that id)
    ├── StateMachineNotFound     (store: no state machine with that name/version)
    ├── ExecutionAlreadyExists   (store: same name, different input)
    ├── LeaseLost                (store: another worker holds the execution now)
    ├── BatchNotFound            (store: no batch with that id)
    ├── BulkInputError           (an input of execute_bulk that is not storable JSON)
    ├── LeadLost                 (another process leads the batch now)
    ├── PayloadRejected          (store: a payload that cannot be stored)
    │   ├── PayloadTooLarge      (over payload_max_bytes: States.DataLimitExceeded)
    │   └── PayloadInvalid       (not storable JSON: NaN, NUL, non-string keys, ...)
    ├── MessageRefused           (a message no execution waits for)
    ├── TaskTokenRefused         (a task token that cannot be used, with the reason)
    │   ├── InvalidToken         (malformed, or already used)
    │   ├── TaskDoesNotExist     (unknown, or its execution ended)
    │   └── TaskTimedOut         (its TimeoutSeconds/HeartbeatSeconds passed)
    ├── InvalidName              (a name AWS would refuse: length, whitespace, specials)
    └── ConfigurationError       (settings that cannot work)
    StatesError                  (an ASL runtime error: name + cause, matched as strings)

``StatesError`` and ``DefinitionInvalid`` are defined in :mod:`orchestrator.asl.errors`
(the interpreter is the bottom layer) and re-exported here.
"""

from __future__ import annotations

from typing import Any

from orchestrator.asl.errors import (
    DATA_LIMIT_EXCEEDED,
    RUNTIME,
    DefinitionInvalid,
    OrchestratorError,
    Problem,
    StatesError,
)


class HandlerNotFound(OrchestratorError):
    """No handler is registered for a Task state's resource."""

    def __init__(self, resource: str) -> None:
        super().__init__(f"no handler registered for resource {resource!r}")
        self.resource = resource


class ExecutionNotFound(OrchestratorError):
    """No execution has this id."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(f"execution {execution_id!r} does not exist")
        self.execution_id = execution_id


class StateMachineNotFound(OrchestratorError):
    """No state machine (or version) has this name."""

    def __init__(self, name: str, version: int | None = None) -> None:
        what = f"{name!r} version {version}" if version is not None else repr(name)
        super().__init__(f"state machine {what} does not exist")
        self.name = name
        self.version = version


class ExecutionAlreadyExists(OrchestratorError):
    """An execution with this name exists with a different input (AWS's rule)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"execution {name!r} already exists with a different input")
        self.name = name


class StateMachineTypeNotSupported(OrchestratorError, ValueError):
    """An operation the state machine's type does not allow (AWS's name for it).

    ``start_sync`` on a STANDARD machine, or creating a machine again under another type.
    """


class ConfigurationError(OrchestratorError):
    """Settings that cannot work."""


class InvalidName(OrchestratorError, ValueError):
    """A state machine or execution name AWS would refuse (``InvalidName``)."""


class BulkInputError(OrchestratorError, ValueError):
    """An input of ``execute_bulk`` is not a storable JSON value.

    Attributes:
        source: the file, or ``inputs`` for an iterable.
        location: where, e.g. ``line 7`` or ``element 3 (line 12)``.
        reason: what is wrong there.
        created: executions the batch had created before (they stay); None
            when the error was found before anything was created.
    """

    def __init__(self, source: str, location: str, reason: str, *, created: int | None = None):
        if created is None:
            after = "nothing was created"
        else:
            after = (
                f"{created} executions were created before it and stay; run the same "
                "batch again (same name_prefix) once it is fixed: they are skipped by name"
            )
        super().__init__(f"{source}, {location}: {reason} ({after})")
        self.source, self.location, self.reason, self.created = source, location, reason, created


class LeadLost(OrchestratorError):
    """Another process took over the lead of the batch (this leader was thought dead)."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(f"another process leads batch {batch_id} now")
        self.batch_id = batch_id


class LeaseLost(OrchestratorError):
    """The execution's lease is not (or no longer) held by this owner.

    Another worker claimed it after the lease expired, or it was stopped. The
    caller must stop advancing the execution; nothing was written.
    """

    def __init__(self, execution_id: str, owner: str) -> None:
        super().__init__(f"lease on execution {execution_id!r} is not held by {owner!r}")
        self.execution_id = execution_id
        self.owner = owner


class BatchNotFound(OrchestratorError):
    """No batch has this id."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(f"batch {batch_id!r} does not exist")
        self.batch_id = batch_id


class MapRunNotFound(OrchestratorError):
    """No Map Run has this id."""

    def __init__(self, map_run_id: str) -> None:
        super().__init__(f"map run {map_run_id!r} does not exist")
        self.map_run_id = map_run_id


class PayloadRejected(OrchestratorError):
    """A JSON payload was refused before anything was stored.

    Attributes:
        field: which payload, e.g. ``input``, ``history[2].output``.
        states_error: the ASL error name the runtime reports for it.
    """

    states_error = RUNTIME

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class PayloadTooLarge(PayloadRejected):
    """A payload is larger than ``payload_max_bytes`` (AWS: States.DataLimitExceeded)."""

    states_error = DATA_LIMIT_EXCEEDED

    def __init__(self, field: str, size: int, limit: int) -> None:
        super().__init__(field, f"payload of {size} bytes exceeds the maximum of {limit} bytes")
        self.size = size
        self.limit = limit


class PayloadInvalid(PayloadRejected):
    """A payload is not JSON that every backend stores faithfully."""


class MessageRefused(OrchestratorError):
    """A message matched no waiting execution (none waits, or its wait timed out)."""

    def __init__(self, key: str, value: Any, reason: str) -> None:
        super().__init__(f"message {key}={value!r} refused: {reason}")
        self.key, self.value, self.reason = key, value, reason


class TaskTokenRefused(OrchestratorError):
    """``send_task_success``/``failure``/``heartbeat`` refused the token; nothing changed.

    Attributes:
        reason: why, in words (the message is the AWS name and the reason).
        aws_name: the name AWS Step Functions gives this refusal.
    """

    aws_name = "TaskTokenRefused"

    def __init__(self, reason: str) -> None:
        super().__init__(f"{self.aws_name}: {reason}")
        self.reason = reason


class InvalidToken(TaskTokenRefused):
    """Not a task token this engine issued (malformed), or one already used (AWS: InvalidToken)."""

    aws_name = "InvalidToken"


class TaskDoesNotExist(TaskTokenRefused):
    """No task waits for this token: unknown, or its execution ended (AWS: TaskDoesNotExist)."""

    aws_name = "TaskDoesNotExist"


class TaskTimedOut(TaskTokenRefused):
    """The task's TimeoutSeconds or HeartbeatSeconds passed first (AWS: TaskTimedOut)."""

    aws_name = "TaskTimedOut"


__all__ = [
    "BatchNotFound",
    "BulkInputError",
    "ConfigurationError",
    "DefinitionInvalid",
    "ExecutionAlreadyExists",
    "ExecutionNotFound",
    "HandlerNotFound",
    "InvalidName",
    "InvalidToken",
    "LeadLost",
    "LeaseLost",
    "MessageRefused",
    "OrchestratorError",
    "MapRunNotFound",
    "PayloadInvalid",
    "PayloadRejected",
    "PayloadTooLarge",
    "Problem",
    "StateMachineNotFound",
    "StateMachineTypeNotSupported",
    "StatesError",
    "TaskDoesNotExist",
    "TaskTimedOut",
    "TaskTokenRefused",
]
