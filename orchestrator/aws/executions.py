"""Execution actions: Start, Describe, List, Stop, Redrive, the machine of an execution,
and the task-token answers (SendTaskSuccess/Failure/Heartbeat)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from orchestrator.aws.context import (
    Aws,
    action,
    compact,
    dump,
    epoch,
    json_text,
    page_size,
    text,
)
from orchestrator.aws.errors import AwsError, validation
from orchestrator.client import Execution, ExecutionFilter
from orchestrator.types import TERMINAL_STATUSES, ExecutionStatus

#: Our statuses as AWS names them (PENDING and WAITING executions are RUNNING to AWS).
AWS_STATUS = {
    ExecutionStatus.PENDING: "RUNNING",
    ExecutionStatus.RUNNING: "RUNNING",
    ExecutionStatus.WAITING: "RUNNING",
    ExecutionStatus.SUCCEEDED: "SUCCEEDED",
    ExecutionStatus.FAILED: "FAILED",
    ExecutionStatus.TIMED_OUT: "TIMED_OUT",
    ExecutionStatus.ABORTED: "ABORTED",
}
_FILTER = {
    "RUNNING": (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.WAITING),
    "SUCCEEDED": (ExecutionStatus.SUCCEEDED,),
    "FAILED": (ExecutionStatus.FAILED,),
    "TIMED_OUT": (ExecutionStatus.TIMED_OUT,),
    "ABORTED": (ExecutionStatus.ABORTED,),
    "PENDING_REDRIVE": (ExecutionStatus.PENDING,),
}
_REDRIVABLE = (ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.ABORTED)


def aws_status(execution: Execution) -> str:
    """AWS's status of an execution (a redriven one not picked up yet is PENDING_REDRIVE)."""
    if execution.status == ExecutionStatus.PENDING and execution.redrive_count:
        return "PENDING_REDRIVE"
    return AWS_STATUS[execution.status]


def find(aws: Aws, arn: object, field: str = "executionArn") -> Execution:
    """The execution an ARN names.

    Raises:
        AwsError: InvalidArn, ExecutionDoesNotExist.
    """
    machine, name = aws.arns.parse_execution(arn, field)
    found = by_name(aws, machine, name)
    if found is None:
        raise AwsError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{arn}'")
    return found


def by_name(aws: Aws, machine: str, name: str) -> Execution | None:
    """The execution of ``machine`` named ``name`` (names are unique per machine)."""
    cursor: str | None = None
    while True:
        page = aws.client.executions(
            ExecutionFilter(state_machine=machine, name_prefix=name, limit=500, cursor=cursor)
        )
        for execution in page.items:
            if execution.name == name:
                return execution
        if page.next_cursor is None:
            return None
        cursor = page.next_cursor


def machine_name(aws: Aws, execution: Execution) -> str:
    """The name of the machine an execution belongs to."""
    return aws.client.version(execution.version_id).state_machine_name


def arn_of(aws: Aws, execution: Execution, machine: str | None = None) -> str:
    """An execution's ARN."""
    return aws.arns.execution(machine or machine_name(aws, execution), execution.name)


def _version_arn(aws: Aws, execution: Execution) -> str | None:
    version = aws.client.version(execution.version_id)
    number = aws.published_number(version)
    return None if number is None else aws.arns.machine(version.state_machine_name, number)


@action("StartExecution")
def start_execution(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """Start an execution on the workers; the same name and input again is the same start."""
    version, _ = aws.machine(text(body, "stateMachineArn"))
    data = json_text(body, "input", "InvalidExecutionInput")
    name = text(body, "name", required=False) or str(uuid.uuid4())
    machine = version.state_machine_name
    existing = by_name(aws, machine, name)
    if existing is not None and (
        existing.status in TERMINAL_STATUSES or dump(existing.input) != dump(data)
    ):
        raise AwsError(
            "ExecutionAlreadyExists",
            f"Execution Already Exists: '{aws.arns.execution(machine, name)}'",
        )
    execution = aws.client.bind(version).start_async(data, name=name)
    return {
        "executionArn": arn_of(aws, execution, machine),
        "startDate": epoch(execution.started_at),
    }


@action("StartSyncExecution")
def start_sync_execution(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """Run an EXPRESS execution to its end in this process and answer its outcome."""
    version, _ = aws.machine(text(body, "stateMachineArn"))
    data = json_text(body, "input", "InvalidExecutionInput")
    name = text(body, "name", required=False) or str(uuid.uuid4())
    machine = version.state_machine_name
    done = aws.client.bind(version).start_sync(data, name=name)
    succeeded = done.status == ExecutionStatus.SUCCEEDED
    return compact(
        {
            "executionArn": f"{aws.arns.prefix}express:{machine}:{done.name}:{done.id}",
            "stateMachineArn": aws.arns.machine(machine),
            "name": done.name,
            "startDate": epoch(done.started_at),
            "stopDate": epoch(done.ended_at or done.updated_at),
            "status": AWS_STATUS[done.status],
            "error": None if succeeded else done.error,
            "cause": None if succeeded else done.cause,
            "input": dump(done.input),
            "inputDetails": {"included": True},
            "output": dump(done.output) if succeeded else None,
            "outputDetails": {"included": True} if succeeded else None,
        }
    )


def _redrive_status(execution: Execution) -> tuple[str, str | None]:
    if execution.status in _REDRIVABLE:
        return "REDRIVABLE", None
    return "NOT_REDRIVABLE", f"Execution is {AWS_STATUS[execution.status]}"


@action("DescribeExecution")
def describe_execution(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """One execution: status, input, output, error, dates, redrive facts."""
    execution = find(aws, text(body, "executionArn"))
    ended = execution.status in TERMINAL_STATUSES
    status, reason = _redrive_status(execution)
    succeeded = execution.status == ExecutionStatus.SUCCEEDED
    return compact(
        {
            **list_item(aws, execution, machine_name(aws, execution)),
            "input": dump(execution.input),
            "inputDetails": {"included": True},
            "output": dump(execution.output) if succeeded else None,
            "outputDetails": {"included": True} if succeeded else None,
            "error": execution.error if ended else None,
            "cause": execution.cause if ended else None,
            "redriveStatus": status,
            "redriveStatusReason": reason,
        }
    )


def list_item(aws: Aws, execution: Execution, machine: str) -> dict[str, Any]:
    """An execution as ``ListExecutions`` shows it."""
    ended = execution.status in TERMINAL_STATUSES
    return compact(
        {
            "executionArn": arn_of(aws, execution, machine),
            "stateMachineArn": aws.arns.machine(machine),
            "stateMachineVersionArn": _version_arn(aws, execution),
            "name": execution.name,
            "status": aws_status(execution),
            "startDate": epoch(execution.started_at),
            "stopDate": epoch(execution.ended_at) if ended else None,
            "redriveCount": execution.redrive_count,
        }
    )


@action("ListExecutions")
def list_executions(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """A machine's executions, newest first (``statusFilter``, ``redriveFilter``, paging)."""
    if body.get("mapRunArn") is not None:
        from orchestrator.aws.mapruns import list_children

        return list_children(aws, body)
    version, number = aws.machine(text(body, "stateMachineArn"))
    flt = ExecutionFilter(
        state_machine=version.state_machine_name,
        version=version.version if number is not None else None,
        status=_status_filter(body),
        limit=page_size(body),
        cursor=text(body, "nextToken", required=False),
        descending=True,
    )
    page = aws.client.executions(flt)
    redrive = text(body, "redriveFilter", required=False)
    if redrive not in (None, "REDRIVEN", "NOT_REDRIVEN"):
        raise validation("'redriveFilter' must be REDRIVEN or NOT_REDRIVEN")
    pending_redrive = body.get("statusFilter") == "PENDING_REDRIVE"
    items = [
        list_item(aws, e, version.state_machine_name)
        for e in page.items
        if (redrive is None or (e.redrive_count > 0) == (redrive == "REDRIVEN"))
        and (not pending_redrive or e.redrive_count > 0)
    ]
    return compact({"executions": items, "nextToken": page.next_cursor})


def _status_filter(body: dict[str, Any]) -> tuple[ExecutionStatus, ...] | None:
    wanted = text(body, "statusFilter", required=False)
    if wanted is None:
        return None
    if wanted not in _FILTER:
        raise validation(f"'statusFilter' must be one of {', '.join(_FILTER)}, not {wanted!r}")
    return _FILTER[wanted]


@action("StopExecution")
def stop_execution(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """Abort a running execution (ABORTED, with ``error`` and ``cause``)."""
    execution = find(aws, text(body, "executionArn"))
    aws.client.execution(execution.id).stop(
        error=text(body, "error", required=False), cause=text(body, "cause", required=False)
    )
    stopped = aws.client.execution(execution.id).describe()
    return {"stopDate": epoch(stopped.ended_at or datetime.now(UTC))}


@action("RedriveExecution")
def redrive_execution(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """Continue a FAILED, TIMED_OUT or ABORTED execution from where it stopped."""
    execution = find(aws, text(body, "executionArn"))
    if execution.status not in _REDRIVABLE:
        raise AwsError(
            "ExecutionNotRedrivable",
            f"Execution is {AWS_STATUS[execution.status]}: only FAILED, TIMED_OUT or ABORTED "
            "executions can be redriven",
        )
    try:
        aws.client.execution(execution.id).redrive()
    except ValueError as exc:
        raise AwsError("ExecutionNotRedrivable", str(exc)) from None
    return {"redriveDate": epoch(datetime.now(UTC))}


@action("DescribeStateMachineForExecution")
def describe_state_machine_for_execution(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """The definition an execution runs on."""
    execution = find(aws, text(body, "executionArn"))
    version = aws.client.version(execution.version_id)
    facts = aws.facts(version.state_machine_id)
    return compact(
        {
            "stateMachineArn": aws.arns.machine(version.state_machine_name),
            "name": version.state_machine_name,
            "definition": dump(version.definition),
            "roleArn": facts.role_arn if facts else None,
            "updateDate": epoch(version.created_at),
            "loggingConfiguration": {"level": "OFF", "includeExecutionData": False},
            "tracingConfiguration": {"enabled": False},
            "revisionId": version.definition_hash,
            "stateMachineVersionArn": _version_arn(aws, execution),
        }
    )


# -- task tokens ----------------------------------------------------------------------


@action("SendTaskSuccess")
def send_task_success(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """Answer a ``.waitForTaskToken`` Task with its output."""
    token = text(body, "taskToken")
    output = json_text(body, "output", "InvalidOutput", default="")
    aws.client.send_task_success(token, output)
    return {}


@action("SendTaskFailure")
def send_task_failure(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """Fail a ``.waitForTaskToken`` Task with ``error`` and ``cause``."""
    token = text(body, "taskToken")
    aws.client.send_task_failure(
        token, text(body, "error", required=False), text(body, "cause", required=False)
    )
    return {}


@action("SendTaskHeartbeat")
def send_task_heartbeat(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """Restart a waiting Task's HeartbeatSeconds."""
    aws.client.send_task_heartbeat(text(body, "taskToken"))
    return {}


__all__ = ["AWS_STATUS", "arn_of", "by_name", "find", "list_item", "machine_name"]
