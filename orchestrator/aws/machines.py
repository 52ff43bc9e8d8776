"""State machine actions: Create, Describe, Update, Delete, List, versions, tags."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from orchestrator.aws.context import (
    Aws,
    action,
    compact,
    dump,
    epoch,
    offset_page,
    text,
)
from orchestrator.aws.errors import AwsError, validation
from orchestrator.client import Version
from orchestrator.errors import StateMachineNotFound, StateMachineTypeNotSupported

TYPES = ("STANDARD", "EXPRESS")
_LOGGING = {"level": "OFF", "includeExecutionData": False}


def _type(body: dict[str, Any]) -> str:
    kind = text(body, "type", required=False, default="STANDARD")
    if kind not in TYPES:
        raise validation(f"'type' must be STANDARD or EXPRESS, not {kind!r}")
    return str(kind)


def tags_of(body: dict[str, Any]) -> dict[str, str]:
    """``tags`` ([{key, value}]) as a dict."""
    raw = body.get("tags") or []
    if not isinstance(raw, list):
        raise validation("'tags' must be a list of {key, value}")
    found: dict[str, str] = {}
    for index, tag in enumerate(raw):
        if not isinstance(tag, dict) or not isinstance(tag.get("key"), str):
            raise validation(f"'tags[{index}]' must be {{key, value}} with a string key")
        found[tag["key"]] = str(tag.get("value", ""))
    return found


def _definition(aws: Aws, name: str, body: dict[str, Any], kind: str) -> Version:
    definition = text(body, "definition")
    return aws.client.create_state_machine(name, definition, machine_type=kind).version_record


def _same(version: Version, definition: str) -> bool:
    try:
        return bool(json.loads(definition) == version.definition)
    except ValueError:
        return False


def _publish(aws: Aws, version: Version, body: dict[str, Any]) -> str | None:
    if not body.get("publish"):
        if body.get("versionDescription") is not None:
            raise validation("'versionDescription' needs 'publish': true")
        return None
    entry = aws.client.publish_aws_version(
        version.state_machine_id, version.id, text(body, "versionDescription", required=False)
    )
    return aws.arns.machine(version.state_machine_name, entry["number"])


@action("CreateStateMachine")
def create_state_machine(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """Store a definition under a name, with its type, role and tags."""
    name, kind = text(body, "name"), _type(body)
    role, tags = text(body, "roleArn", required=False), tags_of(body)
    try:
        existing: Version | None = aws.client.find_version(name)
    except StateMachineNotFound:
        existing = None
    facts = aws.facts(existing.state_machine_id) if existing else None
    alive = existing is not None and (facts is None or facts.deleted_at is None)
    if alive and existing is not None and not _same(existing, text(body, "definition")):
        raise AwsError(
            "StateMachineAlreadyExists",
            f"State Machine Already Exists: '{aws.arns.machine(name)}' (with another definition)",
        )
    try:
        version = _definition(aws, name, body, kind)
    except StateMachineTypeNotSupported:
        raise AwsError(
            "StateMachineAlreadyExists",
            f"State Machine Already Exists: '{aws.arns.machine(name)}' (of another type)",
        ) from None
    facts = aws.client.put_aws_machine(version.state_machine_id, role_arn=role, tags=tags)
    return compact(
        {
            "stateMachineArn": aws.arns.machine(name),
            "creationDate": epoch(facts.created_at),
            "stateMachineVersionArn": _publish(aws, version, body),
        }
    )


@action("DescribeStateMachine")
def describe_state_machine(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """A machine (or a published version): definition, role, type, dates."""
    arn = text(body, "stateMachineArn")
    version, number = aws.machine(arn)
    facts = aws.facts(version.state_machine_id)
    description = None
    if number is not None and facts is not None:
        description = next(e["description"] for e in facts.published if e["number"] == number)
    return compact(
        {
            "stateMachineArn": arn,
            "name": version.state_machine_name,
            "status": "ACTIVE",
            "definition": dump(version.definition),
            "roleArn": facts.role_arn if facts else None,
            "type": version.machine_type,
            "creationDate": epoch(version.created_at if number else _created(aws, version)),
            "loggingConfiguration": _LOGGING,
            "tracingConfiguration": {"enabled": False},
            "revisionId": version.definition_hash,
            "description": description,
        }
    )


def _created(aws: Aws, version: Version) -> datetime:
    facts = aws.facts(version.state_machine_id)
    if facts is not None:
        return facts.created_at
    return aws.client.find_version(version.state_machine_name, 1).created_at


@action("UpdateStateMachine")
def update_state_machine(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """A new definition and/or role; optionally published as a version."""
    arn = text(body, "stateMachineArn")
    version, number = aws.machine(arn)
    if number is not None:
        raise validation("'stateMachineArn' must name the state machine, not one of its versions")
    if body.get("definition") is None and body.get("roleArn") is None:
        raise AwsError("MissingRequiredParameter", "give 'definition' or 'roleArn' (or both)")
    if body.get("definition") is not None:
        version = _definition(aws, version.state_machine_name, body, version.machine_type)
    role = text(body, "roleArn", required=False)
    aws.client.update_aws_machine(version.state_machine_id, role_arn=role)
    return compact(
        {
            "updateDate": epoch(datetime.now(UTC)),
            "revisionId": version.definition_hash,
            "stateMachineVersionArn": _publish(aws, version, body),
        }
    )


@action("DeleteStateMachine")
def delete_state_machine(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """Hide a machine from the AWS API (its executions and history are kept)."""
    version, number = aws.machine(text(body, "stateMachineArn"))
    if number is not None:
        raise validation("'stateMachineArn' must name the state machine, not one of its versions")
    aws.client.update_aws_machine(version.state_machine_id, deleted_at=datetime.now(UTC))
    return {}


@action("ListStateMachines")
def list_state_machines(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """Every machine not deleted, by name, paged."""
    items = []
    for info in sorted(aws.client.state_machines(), key=lambda i: i.name):
        facts = aws.facts(info.id)
        if facts is not None and facts.deleted_at is not None:
            continue
        items.append(
            {
                "stateMachineArn": aws.arns.machine(info.name),
                "name": info.name,
                "type": aws.client.find_version(info.name).machine_type,
                "creationDate": epoch(facts.created_at if facts else info.created_at),
            }
        )
    return offset_page(items, body, "stateMachines")


@action("PublishStateMachineVersion")
def publish_state_machine_version(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """Publish the current definition as the next version number."""
    arn = text(body, "stateMachineArn")
    version, number = aws.machine(arn)
    if number is not None:
        raise validation("'stateMachineArn' must name the state machine, not one of its versions")
    revision = text(body, "revisionId", required=False)
    if revision is not None and revision != version.definition_hash:
        raise AwsError("ConflictException", f"revisionId {revision} is not the current revision")
    entry = aws.client.publish_aws_version(
        version.state_machine_id, version.id, text(body, "description", required=False)
    )
    return {
        "creationDate": datetime.fromisoformat(entry["created_at"]).timestamp(),
        "stateMachineVersionArn": aws.arns.machine(version.state_machine_name, entry["number"]),
    }


@action("ListStateMachineVersions")
def list_state_machine_versions(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """The published versions, newest first, paged."""
    version, _ = aws.machine(text(body, "stateMachineArn"))
    facts = aws.facts(version.state_machine_id)
    items = [
        {
            "stateMachineVersionArn": aws.arns.machine(version.state_machine_name, e["number"]),
            "creationDate": datetime.fromisoformat(e["created_at"]).timestamp(),
        }
        for e in reversed(facts.published if facts else ())
    ]
    return offset_page(items, body, "stateMachineVersions")


def _tag_target(aws: Aws, body: dict[str, Any]) -> int:
    version, number = aws.machine(text(body, "resourceArn"), "resourceArn")
    if number is not None:
        raise validation("'resourceArn' must name a state machine (versions have no tags)")
    return version.state_machine_id


@action("TagResource")
def tag_resource(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """Add or replace tags of a state machine."""
    aws.client.update_aws_machine(_tag_target(aws, body), tags=tags_of(body))
    return {}


@action("UntagResource")
def untag_resource(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """Remove tags of a state machine by key."""
    keys = body.get("tagKeys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise validation("'tagKeys' must be a list of strings")
    aws.client.update_aws_machine(_tag_target(aws, body), untag=keys)
    return {}


@action("ListTagsForResource")
def list_tags_for_resource(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """The tags of a state machine."""
    facts = aws.facts(_tag_target(aws, body))
    tags = facts.tags if facts else {}
    return {"tags": [{"key": k, "value": v} for k, v in sorted(tags.items())]}


__all__ = ["TYPES", "tags_of"]
