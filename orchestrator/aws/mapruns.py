"""Map Runs of a Distributed Map: DescribeMapRun, ListMapRuns, ListExecutions by mapRunArn.

A Map Run's ARN is ``arn:aws:states:<region>:<account>:mapRun:<machine>/<state>:<id>``.
"""

from __future__ import annotations

from typing import Any

from orchestrator.aws.context import Aws, action, compact, epoch, offset_page, page_size, text
from orchestrator.aws.errors import AwsError
from orchestrator.aws.executions import AWS_STATUS, arn_of, find, machine_name
from orchestrator.client import MapRun
from orchestrator.errors import MapRunNotFound


def map_run_arn(aws: Aws, run: MapRun, machine: str) -> str:
    """A Map Run's ARN."""
    return f"{aws.arns.prefix}mapRun:{machine}/{run.label or run.state_name}:{run.id}"


def find_map_run(aws: Aws, arn: object, field: str = "mapRunArn") -> MapRun:
    """The Map Run an ARN names.

    Raises:
        AwsError: InvalidArn, ResourceNotFound.
    """
    head = f"{aws.arns.prefix}mapRun:"
    if not isinstance(arn, str) or not arn.startswith(head) or ":" not in arn[len(head) :]:
        raise AwsError("InvalidArn", f"Invalid Arn: '{arn}' ({field} must start with '{head}')")
    run_id = arn.rsplit(":", 1)[1]
    try:
        return aws.client.map_run(run_id).describe()
    except MapRunNotFound:
        raise AwsError("ResourceNotFound", f"Map Run Does Not Exist: '{arn}'") from None


def _counts(run: MapRun) -> dict[str, int]:
    counts = run.counts()
    return {**counts, "resultsWritten": run.ended, "failuresNotRedrivable": 0, "pendingRedrive": 0}


@action("DescribeMapRun")
def describe_map_run(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """A Map Run: status, dates, concurrency, failure tolerance, item and execution counts."""
    run = find_map_run(aws, text(body, "mapRunArn"))
    parent = aws.client.execution(run.parent_execution_id).describe()
    machine = machine_name(aws, parent)
    return compact(
        {
            "mapRunArn": map_run_arn(aws, run, machine),
            "executionArn": arn_of(aws, parent, machine),
            "status": str(run.status),
            "startDate": epoch(run.started_at),
            "stopDate": epoch(run.stopped_at),
            "maxConcurrency": run.max_concurrency,
            "toleratedFailurePercentage": run.tolerated_failure_percentage or 0.0,
            "toleratedFailureCount": run.tolerated_failure_count or 0,
            "itemCounts": _counts(run),
            "executionCounts": _counts(run),
            "redriveCount": run.parent_redrive_count,
        }
    )


@action("ListMapRuns")
def list_map_runs(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """The Map Runs an execution opened, newest first, paged."""
    parent = find(aws, text(body, "executionArn"))
    machine = machine_name(aws, parent)
    runs = aws.client.map_runs(execution_id=parent.id, limit=10_000)
    items = [
        compact(
            {
                "executionArn": arn_of(aws, parent, machine),
                "mapRunArn": map_run_arn(aws, run, machine),
                "stateMachineArn": aws.arns.machine(machine),
                "startDate": epoch(run.started_at),
                "stopDate": epoch(run.stopped_at),
            }
        )
        for run in runs
    ]
    return offset_page(items, body, "mapRuns")


def list_children(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """``ListExecutions`` with ``mapRunArn``: the run's child executions in item order."""
    run = find_map_run(aws, body["mapRunArn"])
    token = body.get("nextToken")
    if token is not None and (not isinstance(token, str) or not token.lstrip("-").isdigit()):
        raise AwsError("InvalidToken", f"Invalid Token: '{token}'")
    after = int(token) if token is not None else -1
    size = page_size(body)
    children = aws.client.map_run(run.id).children(after=after, limit=size)
    parent = aws.client.execution(run.parent_execution_id).describe()
    machine = machine_name(aws, parent)
    items = [
        compact(
            {
                "executionArn": aws.arns.execution(machine, child.name),
                "stateMachineArn": aws.arns.machine(machine),
                "mapRunArn": map_run_arn(aws, run, machine),
                "name": child.name,
                "status": AWS_STATUS[child.status],
                "startDate": epoch(child.started_at),
                "stopDate": epoch(child.ended_at),
                "redriveCount": child.redrive_count,
                "itemCount": 1,
            }
        )
        for child in children
    ]
    page: dict[str, Any] = {"executions": items}
    if len(children) == size:
        page["nextToken"] = str(children[-1].item_index)
    return page


__all__ = ["describe_map_run", "find_map_run", "list_map_runs", "map_run_arn"]
