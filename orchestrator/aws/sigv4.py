"""Check the SigV4 signature botocore puts on every request, with botocore's own signer.

The request is rebuilt from what the client says it signed (the ``SignedHeaders``
of its ``Authorization`` header, the method, path, query and body), the
signature is computed again with the configured secret for the date and scope
the client named, and the two are compared in constant time. Nothing here
implements the algorithm: ``botocore.auth.SigV4Auth`` does.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.aws.errors import AwsError

#: How far a request's ``X-Amz-Date`` may be from our clock (AWS's rule: 15 minutes).
MAX_SKEW = timedelta(minutes=15)

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidSignatureException", message)


def verify(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    access_key: str,
    secret_key: str,
    region: str,
    now: datetime | None = None,
) -> None:
    """Refuse the request unless it is signed with ``access_key``/``secret_key`` for ``region``.

    Args:
        headers: the request's headers, names in lower case.

    Raises:
        AwsError: ``MissingAuthenticationTokenException`` (no signature),
            ``UnrecognizedClientException`` (another access key) or
            ``InvalidSignatureException`` (a wrong, stale or mis-scoped signature).
    """
    header = headers.get("authorization")
    if not header:
        raise AwsError(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token: this endpoint needs a SigV4-signed request",
            403,
        )
    match = _AUTH.match(header.strip())
    if match is None:
        raise AwsError(
            "IncompleteSignatureException", "Authorization header is not AWS4-HMAC-SHA256"
        )
    scope = match["credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise AwsError(
            "IncompleteSignatureException",
            "Credential must be key/date/region/service/aws4_request",
        )
    key, day, signed_region, service, _ = scope
    if not hmac.compare_digest(key.encode(), access_key.encode()):
        raise AwsError(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    if signed_region != region:
        raise _invalid(f"Credential should be scoped to a valid region, not '{signed_region}'")
    stamp = headers.get("x-amz-date", "")
    _check_time(stamp, day, now or datetime.now(UTC))
    signed = match["signed"].split(";")
    if "host" not in signed:
        raise _invalid("SignedHeaders must include host")
    expected = _signature(
        method, url, headers, body, signed, stamp, key, secret_key, region, service
    )
    if not hmac.compare_digest(expected, match["signature"]):
        raise _invalid(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )


def _check_time(stamp: str, day: str, now: datetime) -> None:
    try:
        when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise _invalid("X-Amz-Date must be a signed time like 20261206T154500Z") from None
    if not stamp.startswith(day):
        raise _invalid("the Credential date differs from the X-Amz-Date")
    if abs(now - when) > MAX_SKEW:
        raise _invalid(f"Signature expired: {stamp} is more than 15 minutes from now")


def _signature(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    signed: list[str],
    stamp: str,
    key: str,
    secret: str,
    region: str,
    service: str,
) -> str:
    try:
        from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
        from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
        from botocore.credentials import Credentials  # type: ignore[import-untyped]
    except ImportError:
        raise AwsError(
            "InternalFailure",
            "access keys are set but botocore is not installed: pip install 'orchestrator[aws]'",
            500,
        ) from None

    request: Any = AWSRequest(
        method=method, url=url, data=body, headers={name: headers.get(name, "") for name in signed}
    )
    request.context["timestamp"] = stamp
    auth: Any = SigV4Auth(Credentials(key, secret), service, region)
    canonical = auth.canonical_request(request)
    result: str = auth.signature(auth.string_to_sign(request, canonical), request)
    return result


__all__ = ["MAX_SKEW", "verify"]
