"""What every action works with: the client, the ARNs, field readers, the action table."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from orchestrator.aws.arns import Arns
from orchestrator.aws.errors import AwsError, validation
from orchestrator.client import AwsMachine, Orchestrator, Version
from orchestrator.errors import StateMachineNotFound

Action = Callable[["Aws", dict[str, Any]], dict[str, Any]]

#: Action name (``StartExecution``) to its function, filled by :func:`action`.
ACTIONS: dict[str, Action] = {}


def action(name: str) -> Callable[[Action], Action]:
    """Register an action under its AWS name."""

    def register(fn: Action) -> Action:
        ACTIONS[name] = fn
        return fn

    return register


class Aws:
    """One request's view: the client and its ARNs."""

    def __init__(self, client: Orchestrator) -> None:
        self.client = client
        self.arns = Arns.of(client.settings)

    # -- state machines ---------------------------------------------------------------

    def machine(self, arn: object, field: str = "stateMachineArn") -> tuple[Version, int | None]:
        """The stored version an ARN names (a published one, or the newest), and its number.

        Raises:
            AwsError: InvalidArn, StateMachineDoesNotExist.
        """
        name, number = self.arns.parse_machine(arn, field)
        try:
            newest = self.client.find_version(name)
        except StateMachineNotFound:
            raise AwsError(
                "StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'"
            ) from None
        facts = self.facts(newest.state_machine_id)
        if facts is not None and facts.deleted_at is not None:
            raise AwsError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
        if number is None:
            return newest, None
        for entry in facts.published if facts else ():
            if entry["number"] == number:
                return self.client.version(entry["version_id"]), number
        raise AwsError("StateMachineDoesNotExist", f"State Machine Version Does Not Exist: '{arn}'")

    def facts(self, state_machine_id: int) -> AwsMachine | None:
        """What the AWS API stored about a machine (None: nothing yet)."""
        return self.client.aws_machine(state_machine_id)

    def published_number(self, version: Version) -> int | None:
        """The newest published AWS version number that holds ``version``, if any."""
        facts = self.facts(version.state_machine_id)
        numbers = [
            e["number"] for e in (facts.published if facts else ()) if e["version_id"] == version.id
        ]
        return max(numbers) if numbers else None


# -- field readers ---------------------------------------------------------------------


def text(
    body: dict[str, Any], field: str, *, required: bool = True, default: str | None = None
) -> Any:
    """A string field (None when optional and absent)."""
    value = body.get(field)
    if value is None:
        if required:
            raise validation(f"1 validation error detected: '{field}' must not be null")
        return default
    if not isinstance(value, str):
        raise validation(f"'{field}' must be a string")
    return value


def json_text(body: dict[str, Any], field: str, code: str, default: str = "{}") -> Any:
    """A field holding JSON text, parsed (``code`` names AWS's error for bad JSON)."""
    raw = text(body, field, required=False, default=default)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise AwsError(code, f"Invalid {field}: {raw[:80]!r} is not JSON ({exc})") from None


def page_size(body: dict[str, Any], *, default: int = 100, most: int = 1000) -> int:
    """``maxResults`` (0 or absent: the default)."""
    value = body.get("maxResults") or default
    if not isinstance(value, int) or not 0 < value <= most:
        raise validation(f"'maxResults' must be an integer from 0 to {most}")
    return value


def offset(body: dict[str, Any]) -> int:
    """The position a ``nextToken`` of an offset-paged listing holds."""
    token = body.get("nextToken")
    if token is None:
        return 0
    if not isinstance(token, str) or not token.startswith("o") or not token[1:].isdigit():
        raise AwsError("InvalidToken", f"Invalid Token: '{token}'")
    return int(token[1:])


def offset_page(items: list[Any], body: dict[str, Any], key: str) -> dict[str, Any]:
    """One page of ``items`` under ``key``, with ``nextToken`` when more follow."""
    start, size = offset(body), page_size(body)
    page: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        page["nextToken"] = f"o{start + size}"
    return page


def epoch(when: datetime | None) -> float | None:
    """A timestamp as AWS JSON sends it: epoch seconds."""
    return None if when is None else when.timestamp()


def dump(value: Any) -> str:
    """A JSON value as AWS's JSON text fields carry it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def compact(fields: dict[str, Any]) -> dict[str, Any]:
    """Drop the fields that are None (AWS leaves absent fields out)."""
    return {k: v for k, v in fields.items() if v is not None}


__all__ = [
    "ACTIONS",
    "Action",
    "Aws",
    "action",
    "compact",
    "dump",
    "epoch",
    "json_text",
    "offset",
    "offset_page",
    "page_size",
    "text",
]
