"""A Distributed Map through boto3: DescribeMapRun, ListMapRuns, ListExecutions by mapRunArn."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.aws.test_boto3 import create, wait_for

pytestmark = pytest.mark.slow

DISTRIBUTED: dict[str, Any] = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Double",
                "States": {
                    "Double": {
                        "Type": "Task",
                        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:double",
                        "End": True,
                    }
                },
            },
            "End": True,
        }
    },
}


def test_a_distributed_map_run_is_described_listed_and_its_children_listed(sfn: Any) -> None:
    arn = create(sfn, "distributed", DISTRIBUTED)
    items = [{"n": i} for i in range(5)]
    started = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": items}))
    done = wait_for(sfn, started["executionArn"], timeout=120)
    assert json.loads(done["output"]) == [{"n": 2 * i} for i in range(5)]
    (run,) = sfn.list_map_runs(executionArn=started["executionArn"])["mapRuns"]
    assert run["mapRunArn"].startswith("arn:aws:states:us-east-1:123456789012:mapRun:distributed/")
    described = sfn.describe_map_run(mapRunArn=run["mapRunArn"])
    assert described["status"] == "SUCCEEDED"
    assert described["executionArn"] == started["executionArn"]
    assert described["itemCounts"]["succeeded"] == described["itemCounts"]["total"] == 5
    pages = sfn.get_paginator("list_executions").paginate(
        mapRunArn=run["mapRunArn"], PaginationConfig={"PageSize": 2}
    )
    children = [e for page in pages for e in page["executions"]]
    assert len(children) == 5
    assert {c["status"] for c in children} == {"SUCCEEDED"}
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.describe_map_run(mapRunArn=run["mapRunArn"].rsplit(":", 1)[0] + ":nope")
