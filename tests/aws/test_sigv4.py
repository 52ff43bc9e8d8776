"""The SigV4 check on requests botocore's own signer signed (pure: no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from orchestrator.aws.errors import AwsError
from orchestrator.aws.sigv4 import verify

KEY, SECRET, REGION = "AKIDUNIT", "unit-secret", "us-east-1"
OTHER = "another-secret"  # a wrong test secret
URL = "http://127.0.0.1:8000/"
BODY = b'{"maxResults": 2}'


def signed(
    body: bytes = BODY, secret: str = SECRET, region: str = REGION
) -> tuple[dict[str, str], datetime]:
    """Headers of a request botocore signed, and when it signed it."""
    request = AWSRequest(
        method="POST",
        url=URL,
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "AWSStepFunctions.ListStateMachines",
        },
    )
    SigV4Auth(Credentials(KEY, secret), "states", region).add_auth(request)
    headers = {name.lower(): value for name, value in request.headers.items()}
    headers["host"] = "127.0.0.1:8000"
    when = datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return headers, when


def check(headers: dict[str, str], body: bytes = BODY, now: datetime | None = None) -> None:
    verify(
        method="POST",
        url=URL,
        headers=headers,
        body=body,
        access_key=KEY,
        secret_key=SECRET,
        region=REGION,
        now=now,
    )


def code(headers: dict[str, str], body: bytes = BODY, now: datetime | None = None) -> str:
    with pytest.raises(AwsError) as refused:
        check(headers, body, now)
    return refused.value.code


def test_a_request_signed_with_the_keys_passes() -> None:
    headers, when = signed()
    check(headers, now=when)


def test_a_changed_body_a_wrong_secret_or_region_is_refused() -> None:
    headers, when = signed()
    assert code(headers, body=b'{"maxResults": 3}', now=when) == "InvalidSignatureException"
    other, when = signed(secret=OTHER)
    assert code(other, now=when) == "InvalidSignatureException"
    elsewhere, when = signed(region="eu-west-1")
    assert code(elsewhere, now=when) == "InvalidSignatureException"


def test_a_changed_signed_header_is_refused() -> None:
    headers, when = signed()
    headers["x-amz-target"] = "AWSStepFunctions.DeleteStateMachine"
    assert code(headers, now=when) == "InvalidSignatureException"


def test_a_stale_signature_is_refused() -> None:
    headers, when = signed()
    assert code(headers, now=when + timedelta(minutes=16)) == "InvalidSignatureException"


def test_another_key_and_no_signature_have_their_own_errors() -> None:
    headers, when = signed()
    headers["authorization"] = headers["authorization"].replace(KEY, "AKIDOTHER")
    assert code(headers, now=when) == "UnrecognizedClientException"
    del headers["authorization"]
    assert code(headers, now=when) == "MissingAuthenticationTokenException"
    headers["authorization"] = "Bearer something"
    assert code(headers, now=when) == "IncompleteSignatureException"
