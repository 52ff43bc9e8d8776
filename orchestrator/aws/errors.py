"""AWS's error shape: ``{"__type": "<Code>", "message": "..."}``, status 400 (botocore then
raises ``client.exceptions.<Code>``), and the map from our exceptions onto AWS's codes."""

from __future__ import annotations

from typing import Any

from orchestrator import errors


class AwsError(Exception):
    """An error answered in AWS's shape.

    Attributes:
        code: AWS's error code (``StateMachineDoesNotExist``, ``ValidationException``, ...).
        message: a sentence saying what is wrong and where.
        status: the HTTP status. Default 400, as AWS answers a client's error.
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status

    def body(self) -> dict[str, Any]:
        """The JSON body AWS sends."""
        return {"__type": self.code, "message": self.message}


def validation(message: str) -> AwsError:
    """A ``ValidationException``: a field is missing or has a wrong value."""
    return AwsError("ValidationException", message)


#: Our exceptions and the AWS error code each becomes.
_CODES: tuple[tuple[type[Exception], str], ...] = (
    (errors.StateMachineNotFound, "StateMachineDoesNotExist"),
    (errors.ExecutionNotFound, "ExecutionDoesNotExist"),
    (errors.ExecutionAlreadyExists, "ExecutionAlreadyExists"),
    (errors.DefinitionInvalid, "InvalidDefinition"),
    (errors.InvalidName, "InvalidName"),
    (errors.StateMachineTypeNotSupported, "StateMachineTypeNotSupported"),
    (errors.InvalidToken, "InvalidToken"),
    (errors.TaskDoesNotExist, "TaskDoesNotExist"),
    (errors.TaskTimedOut, "TaskTimedOut"),
    (errors.PayloadTooLarge, "ValidationException"),
    (errors.PayloadInvalid, "ValidationException"),
)


def translate(exc: Exception) -> AwsError | None:
    """The AWS error of one of our exceptions, or None if it is not a client's error."""
    if isinstance(exc, AwsError):
        return exc
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return AwsError(code, str(exc))
    return None


__all__ = ["AwsError", "translate", "validation"]
