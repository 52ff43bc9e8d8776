"""boto3's Step Functions client, unchanged, against ``orchestrator api`` and a real worker."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.client import ExecutionFilter, Orchestrator
from orchestrator.settings import Settings
from orchestrator.types import ExecutionStatus
from tests.aws.conftest import ACCOUNT, REGION, ROLE, Stack, machine_arn

pytestmark = pytest.mark.slow

LAMBDA_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:double"

DOUBLE_THEN_PASS: dict[str, Any] = {
    "Comment": "A Lambda function ARN resolves to the handler registered under its name",
    "StartAt": "Double",
    "States": {
        "Double": {"Type": "Task", "Resource": LAMBDA_ARN, "Next": "Invoke"},
        "Invoke": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "double", "Payload.$": "$"},
            "OutputPath": "$.Payload",
            "Next": "Done",
        },
        "Done": {"Type": "Pass", "End": True},
    },
}

CALLBACK: dict[str, Any] = {
    "StartAt": "Ask",
    "States": {
        "Ask": {
            "Type": "Task",
            "Resource": "aws-tests.callback.waitForTaskToken",
            "Parameters": {"outbox.$": "$.outbox", "token.$": "$$.Task.Token"},
            "ResultPath": "$.answer",
            "TimeoutSeconds": 300,
            "End": True,
        }
    },
}


def wait_for(sfn: Any, arn: str, status: str = "SUCCEEDED", timeout: float = 60) -> dict[str, Any]:
    """DescribeExecution until the execution is ``status`` (fails on another end)."""
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if found["status"] == status:
            return found
        assert found["status"] == "RUNNING", found
        assert time.monotonic() < deadline, f"{arn} still {found['status']}"
        time.sleep(0.2)


def create(sfn: Any, name: str, definition: dict[str, Any], **fields: Any) -> str:
    """CreateStateMachine; its ARN."""
    arn: str = sfn.create_state_machine(
        name=name, definition=json.dumps(definition), roleArn=ROLE, **fields
    )["stateMachineArn"]
    return arn


def all_events(sfn: Any, arn: str, **options: Any) -> list[dict[str, Any]]:
    """Every history event through boto3's paginator."""
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=arn, **options)
    return [event for page in pages for event in page["events"]]


def test_create_start_describe_and_history_with_paging(sfn: Any, stack: Stack) -> None:
    # Given a machine created with boto3 (tags, published as version 1)
    created = sfn.create_state_machine(
        name="doubler",
        definition=json.dumps(DOUBLE_THEN_PASS),
        roleArn=ROLE,
        tags=[{"key": "team", "value": "payments"}],
        publish=True,
        versionDescription="first",
    )
    arn = created["stateMachineArn"]
    assert arn == machine_arn("doubler")
    assert created["stateMachineVersionArn"] == machine_arn("doubler", 1)
    described = sfn.describe_state_machine(stateMachineArn=arn)
    assert json.loads(described["definition"]) == DOUBLE_THEN_PASS
    assert (described["roleArn"], described["type"], described["status"]) == (
        ROLE,
        "STANDARD",
        "ACTIVE",
    )
    # When an execution is started on the workers and runs to its end
    started = sfn.start_execution(stateMachineArn=arn, name="run-1", input='{"n": 3}')
    assert started["executionArn"] == f"arn:aws:states:{REGION}:{ACCOUNT}:execution:doubler:run-1"
    done = wait_for(sfn, started["executionArn"])
    # Then DescribeExecution has AWS's fields
    assert json.loads(done["output"]) == {"n": 12}
    assert json.loads(done["input"]) == {"n": 3}
    assert done["stateMachineArn"] == arn
    assert done["name"] == "run-1"
    assert done["stopDate"] >= done["startDate"]
    # and the history has AWS's event types, in order
    events = all_events(sfn, started["executionArn"])
    assert [e["type"] for e in events] == [
        "ExecutionStarted",
        "TaskStateEntered",
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionSucceeded",
        "TaskStateExited",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert [e["previousEventId"] for e in events] == list(range(len(events)))
    assert json.loads(events[0]["executionStartedEventDetails"]["input"]) == {"n": 3}
    assert events[0]["executionStartedEventDetails"]["roleArn"] == ROLE
    assert events[7]["taskScheduledEventDetails"]["resourceType"] == "lambda"
    assert events[7]["taskScheduledEventDetails"]["resource"] == "invoke"
    assert json.loads(events[-1]["executionSucceededEventDetails"]["output"]) == {"n": 12}
    # (the worker recorded when it called each Task's handler: that is TaskStarted's time)
    client = Orchestrator(Settings(database_url=stack.database_url))
    (stored,) = client.executions(ExecutionFilter(state_machine="doubler")).items
    rows = client.execution(stored.id).history()
    assert [r.started_at is not None for r in rows] == [True, True, False]
    assert events[8]["timestamp"] == rows[1].started_at
    # and paging by 3, reverse order and leaving the data out all agree with it
    paged = sfn.get_execution_history(executionArn=started["executionArn"], maxResults=3)
    assert [e["id"] for e in paged["events"]] == [1, 2, 3]
    assert "nextToken" in paged
    assert all_events(sfn, started["executionArn"], PaginationConfig={"PageSize": 3}) == events
    backwards = all_events(sfn, started["executionArn"], reverseOrder=True)
    assert backwards == list(reversed(events))
    bare = all_events(sfn, started["executionArn"], includeExecutionData=False)
    assert "input" not in bare[0]["executionStartedEventDetails"]
    # and ListExecutions filters by status and pages, newest first
    for name in ("run-2", "run-3"):
        sfn.start_execution(stateMachineArn=arn, name=name, input='{"n": 1}')
    first = sfn.list_executions(stateMachineArn=arn, maxResults=2)
    assert len(first["executions"]) == 2
    assert "nextToken" in first
    pages = sfn.get_paginator("list_executions").paginate(
        stateMachineArn=arn, PaginationConfig={"PageSize": 2}
    )
    names = [e["name"] for page in pages for e in page["executions"]]
    assert sorted(names) == ["run-1", "run-2", "run-3"]
    assert names[-1] == "run-1"
    assert sfn.list_executions(stateMachineArn=arn, statusFilter="FAILED")["executions"] == []
    succeeded = sfn.list_executions(stateMachineArn=arn, statusFilter="SUCCEEDED")["executions"]
    assert "run-1" in [e["name"] for e in succeeded]


def test_state_machines_list_in_pages_update_publish_tags_and_delete(sfn: Any) -> None:
    # Given four machines
    for name in ("a", "b", "c", "d"):
        create(sfn, name, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    # Then ListStateMachines pages through them, two at a time
    pages = sfn.get_paginator("list_state_machines").paginate(PaginationConfig={"PageSize": 2})
    assert [m["name"] for page in pages for m in page["stateMachines"]] == ["a", "b", "c", "d"]
    first = sfn.list_state_machines(maxResults=2)
    assert len(first["stateMachines"]) == 2
    assert "nextToken" in first
    # When one is updated and published twice
    arn = machine_arn("a")
    changed = {"StartAt": "Q", "States": {"Q": {"Type": "Pass", "Result": 1, "End": True}}}
    update = sfn.update_state_machine(
        stateMachineArn=arn, definition=json.dumps(changed), publish=True, versionDescription="v1"
    )
    assert update["stateMachineVersionArn"] == machine_arn("a", 1)
    again = sfn.publish_state_machine_version(stateMachineArn=arn, description="same again")
    assert again["stateMachineVersionArn"] == machine_arn("a", 1)  # unchanged revision
    versions = sfn.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
    assert [v["stateMachineVersionArn"] for v in versions] == [machine_arn("a", 1)]
    version = sfn.describe_state_machine(stateMachineArn=machine_arn("a", 1))
    assert json.loads(version["definition"]) == changed
    assert version["description"] == "v1"
    # and a start on the version ARN runs that version, after the machine changed again
    newer = {"StartAt": "Q", "States": {"Q": {"Type": "Pass", "Result": 2, "End": True}}}
    sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(newer))
    pinned = sfn.start_execution(stateMachineArn=machine_arn("a", 1), name="pinned")
    latest = sfn.start_execution(stateMachineArn=arn, name="latest")
    assert json.loads(wait_for(sfn, pinned["executionArn"])["output"]) == 1
    assert json.loads(wait_for(sfn, latest["executionArn"])["output"]) == 2
    described = sfn.describe_execution(executionArn=pinned["executionArn"])
    assert described["stateMachineVersionArn"] == machine_arn("a", 1)
    listed = sfn.list_executions(stateMachineArn=machine_arn("a", 1))["executions"]
    assert [e["name"] for e in listed] == ["pinned"]
    # and tagged and untagged
    sfn.tag_resource(
        resourceArn=arn, tags=[{"key": "k1", "value": "v1"}, {"key": "k2", "value": "v2"}]
    )
    sfn.untag_resource(resourceArn=arn, tagKeys=["k1"])
    assert sfn.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "k2", "value": "v2"}]
    # and deleted: it is gone from the AWS API
    sfn.delete_state_machine(stateMachineArn=arn)
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.describe_state_machine(stateMachineArn=arn)
    assert "a" not in [m["name"] for m in sfn.list_state_machines()["stateMachines"]]


def test_a_start_is_idempotent_by_name_as_aws_defines_it(sfn: Any, tmp_path: Path) -> None:
    # Given a machine whose execution parks on a task token (so it stays RUNNING)
    arn = create(sfn, "callbacks", CALLBACK)
    payload = json.dumps({"outbox": str(tmp_path / "token")})
    first = sfn.start_execution(stateMachineArn=arn, name="order-1", input=payload)
    # When the same name and input is started again while it runs: the same execution
    again = sfn.start_execution(stateMachineArn=arn, name="order-1", input=payload)
    assert again["executionArn"] == first["executionArn"]
    assert again["startDate"] == first["startDate"]
    # and the same name with another input is refused
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(stateMachineArn=arn, name="order-1", input='{"other": 1}')
    # When its token is answered by boto3's SendTaskSuccess
    token_file = tmp_path / "token"
    deadline = time.monotonic() + 60
    while not token_file.exists():
        assert time.monotonic() < deadline, "the handler never wrote its token"
        time.sleep(0.1)
    token = token_file.read_text()
    # the parked Task shows in the history as AWS shows it while it waits
    waiting = [e["type"] for e in all_events(sfn, first["executionArn"])]
    assert waiting == ["ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted"]
    sfn.send_task_heartbeat(taskToken=token)
    sfn.send_task_success(taskToken=token, output='{"approved": true}')
    done = wait_for(sfn, first["executionArn"])
    assert json.loads(done["output"])["answer"] == {"approved": True}
    # Then the token is spent, and a closed execution's name cannot start again
    with pytest.raises(sfn.exceptions.InvalidToken):
        sfn.send_task_success(taskToken=token, output="{}")
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(stateMachineArn=arn, name="order-1", input=payload)


def test_errors_are_the_classes_botocore_models(sfn: Any) -> None:
    missing = machine_arn("missing")
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.describe_state_machine(stateMachineArn=missing)
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.start_execution(stateMachineArn=missing)
    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
        sfn.describe_execution(
            executionArn=f"arn:aws:states:{REGION}:{ACCOUNT}:execution:missing:nope"
        )
    with pytest.raises(sfn.exceptions.InvalidArn):
        sfn.describe_state_machine(stateMachineArn="arn:aws:states:eu-west-9:1:stateMachine:x")
    with pytest.raises(sfn.exceptions.InvalidDefinition) as bad:
        create(sfn, "broken", {"StartAt": "Nowhere", "States": {"P": {"Type": "Pass"}}})
    assert "/StartAt" in bad.value.response["Error"]["Message"]
    with pytest.raises(sfn.exceptions.InvalidName):
        create(sfn, "has space", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    create(sfn, "ok", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    with pytest.raises(sfn.exceptions.StateMachineAlreadyExists):
        create(sfn, "ok", {"StartAt": "Q", "States": {"Q": {"Type": "Pass", "End": True}}})
    with pytest.raises(sfn.exceptions.InvalidExecutionInput):
        sfn.start_execution(stateMachineArn=machine_arn("ok"), input="{not json")
    with pytest.raises(sfn.exceptions.TaskDoesNotExist):
        sfn.send_task_failure(taskToken="ab" * 32, error="E")
    with pytest.raises(sfn.exceptions.ValidationException):
        sfn.list_executions(stateMachineArn=machine_arn("ok"), redriveFilter="SOMETIMES")
    # An action not built answers UnknownOperationException, as AWS does
    with pytest.raises(sfn.exceptions.ClientError) as unknown:
        sfn.describe_activity(activityArn=f"arn:aws:states:{REGION}:{ACCOUNT}:activity:x")
    assert unknown.value.response["Error"]["Code"] == "UnknownOperationException"
    assert unknown.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_validate_and_test_state(sfn: Any) -> None:
    good = sfn.validate_state_machine_definition(definition=json.dumps(DOUBLE_THEN_PASS))
    assert (good["result"], good["diagnostics"]) == ("OK", [])
    bad = sfn.validate_state_machine_definition(
        definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}})
    )
    assert bad["result"] == "FAIL"
    assert {d["severity"] for d in bad["diagnostics"]} == {"ERROR"}
    assert any(d["location"] == "/States/A/Next" for d in bad["diagnostics"]), bad
    # TestState runs one state on an input (its handler runs in the API process)
    tested = sfn.test_state(
        definition=json.dumps({"Type": "Task", "Resource": LAMBDA_ARN, "Next": "After"}),
        roleArn=ROLE,
        input='{"n": 5}',
    )
    assert (tested["status"], json.loads(tested["output"]), tested["nextState"]) == (
        "SUCCEEDED",
        {"n": 10},
        "After",
    )
    caught = sfn.test_state(
        definition=json.dumps(
            {
                "Type": "Task",
                "Resource": "explode",
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Recover"}],
                "End": True,
            }
        ),
        roleArn=ROLE,
        input="{}",
    )
    assert (caught["status"], caught["nextState"]) == ("CAUGHT_ERROR", "Recover")
    failed = sfn.test_state(
        definition=json.dumps({"Type": "Task", "Resource": "explode", "End": True}),
        roleArn=ROLE,
        input="{}",
    )
    assert failed["status"] == "FAILED"
    assert failed["error"]


def test_stop_redrive_and_the_machine_of_an_execution(
    sfn: Any, stack: Stack, tmp_path: Path
) -> None:
    arn = create(sfn, "callbacks", CALLBACK)
    payload = json.dumps({"outbox": str(tmp_path / "token")})
    started = sfn.start_execution(stateMachineArn=arn, name="to-stop", input=payload)
    machine = sfn.describe_state_machine_for_execution(executionArn=started["executionArn"])
    assert json.loads(machine["definition"]) == CALLBACK
    assert machine["roleArn"] == ROLE
    # Parked: the handler has written the token out, and the worker has committed the
    # wait (the row is WAITING; AWS shows RUNNING either way). A stop while the worker
    # is still between the handler and that commit cancels a token no cursor holds,
    # and the redrive then runs the Task again under a new token.
    client = Orchestrator(Settings(database_url=stack.database_url))
    (execution,) = [
        e
        for e in client.executions(ExecutionFilter(state_machine="callbacks")).items
        if e.name == "to-stop"
    ]
    deadline = time.monotonic() + 60
    while not (
        (tmp_path / "token").exists()
        and client.execution(execution.id).describe().status == ExecutionStatus.WAITING
    ):
        assert time.monotonic() < deadline, "the execution never parked"
        time.sleep(0.1)
    sfn.stop_execution(executionArn=started["executionArn"], error="Stop", cause="by the test")
    stopped = sfn.describe_execution(executionArn=started["executionArn"])
    assert (stopped["status"], stopped["error"], stopped["cause"]) == (
        "ABORTED",
        "Stop",
        "by the test",
    )
    assert stopped["redriveStatus"] == "REDRIVABLE"
    assert all_events(sfn, started["executionArn"])[-1]["type"] == "ExecutionAborted"
    first_token = (tmp_path / "token").read_text()
    sfn.redrive_execution(executionArn=started["executionArn"])
    redriven = sfn.describe_execution(executionArn=started["executionArn"])
    assert redriven["redriveCount"] == 1
    # The redriven Task waits on its token again (the core keeps it); SendTaskFailure fails it
    sfn.send_task_failure(taskToken=first_token, error="Rejected", cause="no budget")
    failed = wait_for(sfn, started["executionArn"], status="FAILED")
    assert (failed["error"], failed["cause"]) == ("Rejected", "no budget")
    assert all_events(sfn, started["executionArn"])[-2:][0]["type"] == "TaskFailed"
    redriven_list = sfn.list_executions(stateMachineArn=arn, redriveFilter="REDRIVEN")
    assert [e["name"] for e in redriven_list["executions"]] == ["to-stop"]


def test_start_sync_execution_runs_an_express_machine_to_its_end(sfn: Any) -> None:
    # Given an EXPRESS machine
    double = {
        "StartAt": "D",
        "States": {"D": {"Type": "Task", "Resource": LAMBDA_ARN, "End": True}},
    }
    arn = create(sfn, "express-double", double, type="EXPRESS")
    assert sfn.describe_state_machine(stateMachineArn=arn)["type"] == "EXPRESS"
    # When StartSyncExecution runs it: the answer is its outcome
    done = sfn.start_sync_execution(stateMachineArn=arn, input='{"n": 21}')
    assert (done["status"], json.loads(done["output"])) == ("SUCCEEDED", {"n": 42})
    assert done["executionArn"].startswith(f"arn:aws:states:{REGION}:{ACCOUNT}:express:")
    # and a failing one answers FAILED with its error
    failing = {
        "StartAt": "X",
        "States": {"X": {"Type": "Task", "Resource": "explode", "End": True}},
    }
    bad = sfn.start_sync_execution(
        stateMachineArn=create(sfn, "express-fail", failing, type="EXPRESS")
    )
    assert bad["status"] == "FAILED"
    assert bad["error"] == "RuntimeError"
    # A STANDARD machine refuses it, and an EXPRESS machine refuses callbacks at create
    standard = create(sfn, "standard", double)
    with pytest.raises(sfn.exceptions.StateMachineTypeNotSupported):
        sfn.start_sync_execution(stateMachineArn=standard)
    with pytest.raises(sfn.exceptions.InvalidDefinition):
        create(sfn, "express-callback", CALLBACK, type="EXPRESS")
    with pytest.raises(sfn.exceptions.StateMachineAlreadyExists):
        create(sfn, "standard", double, type="EXPRESS")
