"""AWS JSON 1.0 over ``POST /``: ``X-Amz-Target: AWSStepFunctions.<Action>``.

One Starlette endpoint reads the target and the JSON body, checks who asks
(SigV4 with configured access keys, else the API's bearer token), runs the
action in a worker thread and answers ``application/x-amz-json-1.0``; errors
are AWS's ``{"__type", "message"}`` with status 400.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from orchestrator.aws.actions import ACTIONS, Aws
from orchestrator.aws.errors import AwsError, translate, validation
from orchestrator.aws.sigv4 import verify
from orchestrator.client import Orchestrator

log = logging.getLogger("orchestrator.aws")

CONTENT_TYPE = "application/x-amz-json-1.0"
TARGET_PREFIX = "AWSStepFunctions."


def respond(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON 1.0 response."""
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=status,
        media_type=CONTENT_TYPE,
        headers=headers,
    )


def error(exc: AwsError, headers: dict[str, str] | None = None) -> Response:
    """AWS's error response (``x-amzn-ErrorType`` too, which some SDKs read first)."""
    return respond(exc.body(), exc.status, {"x-amzn-ErrorType": exc.code, **(headers or {})})


def endpoint(client_of: Callable[[Request], Orchestrator]) -> Callable[[Request], Any]:
    """The ``POST /`` endpoint over the client ``client_of(request)`` returns."""

    async def aws_json(request: Request) -> Response:
        client = client_of(request)
        body = await request.body()
        try:
            _authorize(request, client, body)
            action = _action(request)
            payload = _payload(body)
            aws = Aws(client)
            result = await run_in_threadpool(action, aws, payload)
        except Exception as exc:  # every failure is answered in AWS's shape
            return _failure(exc)
        return respond(result)

    return aws_json


def _failure(exc: Exception) -> Response:
    known = translate(exc)
    if known is not None:
        headers = {"WWW-Authenticate": "Bearer"} if known.status == 401 else None
        return error(known, headers)
    log.exception("AWS API action failed")
    return error(AwsError("InternalFailure", f"{type(exc).__name__}: {exc}"[:500], 500))


def _action(request: Request) -> Callable[[Aws, dict[str, Any]], dict[str, Any]]:
    target = request.headers.get("x-amz-target", "")
    if not target.startswith(TARGET_PREFIX):
        raise AwsError(
            "UnknownOperationException",
            f"X-Amz-Target must be AWSStepFunctions.<Action>, not {target!r}",
        )
    name = target[len(TARGET_PREFIX) :]
    found = ACTIONS.get(name)
    if found is None:
        raise AwsError("UnknownOperationException", f"{name} is not an operation this server has")
    return found


def _payload(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AwsError("SerializationException", f"the request body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise validation("the request body must be a JSON object")
    return data


def _authorize(request: Request, client: Orchestrator, body: bytes) -> None:
    settings = client.settings
    if settings.aws_access_key_id and settings.aws_secret_access_key is not None:
        headers = {name.lower(): value for name, value in request.headers.items()}
        verify(
            method=request.method,
            url=str(request.url),
            headers=headers,
            body=body,
            access_key=settings.aws_access_key_id,
            secret_key=settings.aws_secret_access_key.get_secret_value(),
            region=settings.aws_region,
        )
        return
    expected = settings.api_token.get_secret_value() if settings.api_token else ""
    if not expected:
        return
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        raise AwsError(
            "UnrecognizedClientException",
            "a valid bearer token is required (Authorization: Bearer <token>); "
            "or configure ORCHESTRATOR_AWS_ACCESS_KEY_ID/SECRET_ACCESS_KEY for SigV4",
            401,
        )


__all__ = ["CONTENT_TYPE", "endpoint", "respond"]
