"""Errors as HTTP responses: one body shape (:class:`~.schemas.ErrorOut`) for all of them.

=====================================================  ======
error                                                  status
=====================================================  ======
request body, query or path invalid                     422
definition invalid (every problem with its pointer)     422
payload not storable JSON (NaN, NUL, ...)               422
execution, state machine or batch unknown               404
message nobody waits for                                404
message whose wait timed out or ended                   409
execution name taken with another input                 409
execution not redrivable                                409
request body or payload too large                       413
missing or wrong bearer token                           401
database or broker unreachable                          503
=====================================================  ======
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.api.schemas import ErrorOut, ProblemOut
from orchestrator.errors import (
    BatchNotFound,
    DefinitionInvalid,
    ExecutionAlreadyExists,
    ExecutionNotFound,
    InvalidName,
    InvalidToken,
    MapRunNotFound,
    MessageRefused,
    OrchestratorError,
    PayloadInvalid,
    PayloadTooLarge,
    StateMachineNotFound,
    StateMachineTypeNotSupported,
    TaskDoesNotExist,
    TaskTimedOut,
)

#: The reason ``send_message`` gives when no execution ever waited for the message.
NEVER_WAITED: Final = "no execution waits for this correlation"

_STATUS: Final[Mapping[type[OrchestratorError], int]] = {
    ExecutionNotFound: 404,
    StateMachineNotFound: 404,
    BatchNotFound: 404,
    MapRunNotFound: 404,
    ExecutionAlreadyExists: 409,
    StateMachineTypeNotSupported: 409,
    PayloadTooLarge: 413,
    PayloadInvalid: 422,
    InvalidName: 422,
    TaskDoesNotExist: 404,
    TaskTimedOut: 409,
    InvalidToken: 400,
}

#: Infrastructure errors that mean "try again later", not "your request is wrong".
UNAVAILABLE: Final[tuple[type[Exception], ...]] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)


class ApiError(Exception):
    """An error response a route chooses: status, code, sentence, problems."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        problems: Sequence[ProblemOut] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail
        self.problems = list(problems)
        self.headers = dict(headers or {})


def error_response(
    status: int,
    error: str,
    detail: str,
    problems: Sequence[ProblemOut] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The JSON response of an error."""
    body = ErrorOut(error=error, detail=detail, problems=list(problems))
    return SafeJSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


class SafeJSONResponse(JSONResponse):
    """A JSON response that renders even text holding a lone surrogate.

    An error may quote what the client sent (a name, a key), and a lone
    surrogate (U+D800) cannot be encoded as UTF-8: the plain response would raise
    while rendering and uvicorn would drop the connection. Such text is sent
    escaped (JSON's backslash-u form).
    """

    def render(self, content: Any) -> bytes:
        """UTF-8 JSON; ASCII with escapes when the text is not valid Unicode."""
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, separators=(",", ":")).encode("ascii")


def pointer(loc: Sequence[int | str]) -> str:
    """A pydantic error location as a JSON pointer (``("body", "input")`` -> ``/body/input``)."""
    parts = (str(part).replace("~", "~0").replace("/", "~1") for part in loc)
    return "/" + "/".join(parts)


def _validation_problems(errors: Sequence[Any]) -> list[ProblemOut]:
    return [
        ProblemOut(pointer=pointer(e.get("loc", ())), message=str(e.get("msg"))) for e in errors
    ]


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = _validation_problems(exc.errors())
    summary = "; ".join(f"{p.pointer}: {p.message}" for p in problems[:5])
    return error_response(422, "RequestInvalid", f"invalid request: {summary}", problems)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    error = "PayloadTooLarge" if status == 413 else HTTPStatus(status).phrase.replace(" ", "")
    return error_response(status, error, str(exc.detail), headers=exc.headers)


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.error, exc.detail, exc.problems, exc.headers)


async def _on_definition(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DefinitionInvalid)
    problems = [ProblemOut(pointer=p.path, message=p.message) for p in exc.problems]
    detail = f"invalid state machine definition ({len(problems)} problems)"
    return error_response(422, "DefinitionInvalid", detail, problems)


async def _on_refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MessageRefused)
    status = 404 if exc.reason == NEVER_WAITED else 409
    return error_response(status, "MessageRefused", str(exc))


async def _on_orchestrator(request: Request, exc: Exception) -> JSONResponse:
    status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 400)
    return error_response(status, type(exc).__name__, str(exc).strip("'\""))


async def _on_unavailable(request: Request, exc: Exception) -> JSONResponse:
    what = "database" if isinstance(exc, sqlalchemy.exc.SQLAlchemyError) else "broker"
    return error_response(503, "ServiceUnavailable", f"the {what} is unreachable; try again")


async def _on_recursion(request: Request, exc: Exception) -> JSONResponse:
    return error_response(422, "RequestInvalid", "the JSON is nested too deeply")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn our errors into :class:`ErrorOut` responses."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(DefinitionInvalid, _on_definition)
    app.add_exception_handler(MessageRefused, _on_refused)
    app.add_exception_handler(OrchestratorError, _on_orchestrator)
    app.add_exception_handler(RecursionError, _on_recursion)
    for cls in UNAVAILABLE:
        app.add_exception_handler(cls, _on_unavailable)


__all__ = ["NEVER_WAITED", "UNAVAILABLE", "ApiError", "error_response", "install_error_handlers"]
