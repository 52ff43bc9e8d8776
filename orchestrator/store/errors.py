"""Errors the store raises (part of the tree drawn in :mod:`orchestrator.errors`).

OrchestratorError
├── LeaseLost            (the caller no longer holds the execution's lease)
├── BatchNotFound        (no batch with that id)
├── PayloadRejected      (nothing was stored)
│   ├── PayloadTooLarge  (above payload_max_bytes: States.DataLimitExceeded)
│   └── PayloadInvalid   (not storable JSON: NaN, non-string keys, NUL, ...)
└── TaskTokenRefused     (SendTask*: the token cannot be used; ``reason`` says why)
    ├── InvalidToken     (not a token of ours, or already used)
    ├── TaskDoesNotExist (unknown, or its execution ended or moved on)
    └── TaskTimedOut     (its TimeoutSeconds or HeartbeatSeconds passed)
"""

from __future__ import annotations

from orchestrator.asl.errors import DATA_LIMIT_EXCEEDED, RUNTIME, OrchestratorError


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


class TaskTokenRefused(OrchestratorError):
    """``send_task_success``/``failure``/``heartbeat`` refused the token; nothing changed.

    Attributes:
        reason: why, in words (also the message).
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
    "InvalidToken",
    "LeaseLost",
    "PayloadInvalid",
    "PayloadRejected",
    "PayloadTooLarge",
    "TaskDoesNotExist",
    "TaskTimedOut",
    "TaskTokenRefused",
]
