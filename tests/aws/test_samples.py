"""Workflows from AWS's published samples run unchanged; their histories have AWS's events.

The definitions are copied from the AWS Step Functions Developer Guide:

- Parallel: "Parallel workflow state", the ``LookupCustomerInfo`` example
  (https://docs.aws.amazon.com/step-functions/latest/dg/amazon-states-language-parallel-state.html);
- Map: "ItemsPath (Map, JSONPath only)", the ``PiratesSay`` example
  (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemspath.html);
- Catch: "Handling errors in Step Functions workflows", the ``HelloWorld`` Task with
  three catchers (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html).

The event sequences expected below follow what AWS documents: the GetExecutionHistory
example of the API Reference (``ExecutionStarted``, ``PassStateEntered``,
``PassStateExited``, ``ExecutionSucceeded`` for a one-Pass machine;
https://docs.aws.amazon.com/step-functions/latest/apireference/API_GetExecutionHistory.html),
and the HistoryEvent reference for the rest: a Parallel state is entered, started,
runs its branches, succeeds and is exited; a Map state is entered and started with
the ``length`` of its items, each iteration is started and succeeds with its ``index``
(``MapIterationEventDetails``), then the Map state succeeds and is exited; a Lambda
function ARN resource is scheduled, started and succeeds or fails as
``LambdaFunction*`` events; a caught failure is followed by the Task's exit and the
catcher's next state (https://docs.aws.amazon.com/step-functions/latest/apireference/API_HistoryEvent.html).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.client import ExecutionFilter, Orchestrator
from orchestrator.settings import Settings
from tests.aws.conftest import Stack
from tests.aws.test_boto3 import all_events, create, wait_for

pytestmark = pytest.mark.slow

PARALLEL: dict[str, Any] = {
    "Comment": "Parallel Example.",
    "StartAt": "LookupCustomerInfo",
    "States": {
        "LookupCustomerInfo": {
            "Type": "Parallel",
            "End": True,
            "Branches": [
                {
                    "StartAt": "LookupAddress",
                    "States": {
                        "LookupAddress": {
                            "Type": "Task",
                            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:AddressFinder",  # noqa: E501
                            "End": True,
                        }
                    },
                },
                {
                    "StartAt": "LookupPhone",
                    "States": {
                        "LookupPhone": {
                            "Type": "Task",
                            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:PhoneFinder",  # noqa: E501
                            "End": True,
                        }
                    },
                },
            ],
        }
    },
}

MAP: dict[str, Any] = {
    "StartAt": "PiratesSay",
    "States": {
        "PiratesSay": {
            "Type": "Map",
            "ItemsPath": "$.ThingsPiratesSay",
            "ItemProcessor": {
                "StartAt": "SayWord",
                "States": {"SayWord": {"Type": "Pass", "End": True}},
            },
            "End": True,
        }
    },
}
MAP_INPUT = {
    "ThingsPiratesSay": [{"say": "Avast!"}, {"say": "Yar!"}, {"say": "Walk the Plank!"}],
    "ThingsGiantsSay": [{"say": "Fee!"}, {"say": "Fi!"}, {"say": "Fo!"}, {"say": "Fum!"}],
}

CATCH: dict[str, Any] = {
    "Comment": "A Hello World example of the Amazon States Language using an AWS Lambda function",
    "StartAt": "HelloWorld",
    "States": {
        "HelloWorld": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:region:123456789012:function:FailFunction",
            "Catch": [
                {"ErrorEquals": ["CustomError"], "Next": "CustomErrorFallback"},
                {"ErrorEquals": ["States.TaskFailed"], "Next": "ReservedTypeFallback"},
                {"ErrorEquals": ["States.ALL"], "Next": "CatchAllFallback"},
            ],
            "End": True,
        },
        "CustomErrorFallback": {
            "Type": "Pass",
            "Result": "This is a fallback from a custom Lambda function exception",
            "End": True,
        },
        "ReservedTypeFallback": {
            "Type": "Pass",
            "Result": "This is a fallback from a reserved error code",
            "End": True,
        },
        "CatchAllFallback": {
            "Type": "Pass",
            "Result": "This is a fallback from any error code",
            "End": True,
        },
    },
}

LAMBDA_TASK = [
    "TaskStateEntered",
    "LambdaFunctionScheduled",
    "LambdaFunctionStarted",
    "LambdaFunctionSucceeded",
    "TaskStateExited",
]


def run(sfn: Any, name: str, definition: dict[str, Any], data: Any) -> tuple[Any, list[Any]]:
    """Create, start and finish one execution; its description and history."""
    arn = create(sfn, name, definition)
    started = sfn.start_execution(stateMachineArn=arn, input=json.dumps(data))
    done = wait_for(sfn, started["executionArn"])
    return done, all_events(sfn, started["executionArn"])


def _name(event: dict[str, Any]) -> str | None:
    for key in ("stateEnteredEventDetails", "stateExitedEventDetails"):
        if key in event:
            return str(event[key]["name"])
    return None


def test_the_parallel_sample(sfn: Any) -> None:
    done, events = run(sfn, "parallel-sample", PARALLEL, {})
    assert json.loads(done["output"]) == [{"address": "1 Main St"}, {"phone": "555-0100"}]
    types = [e["type"] for e in events]
    # The Parallel state frames its branches
    assert types[:3] == ["ExecutionStarted", "ParallelStateEntered", "ParallelStateStarted"]
    assert types[-3:] == ["ParallelStateSucceeded", "ParallelStateExited", "ExecutionSucceeded"]
    # and each branch's Lambda Task has its own complete sequence inside (branches interleave)
    inner = events[3:-3]
    assert sorted(e["type"] for e in inner) == sorted(LAMBDA_TASK * 2)
    for branch in ("LookupAddress", "LookupPhone"):
        entered = next(i for i, e in enumerate(inner) if _name(e) == branch)
        exited = max(i for i, e in enumerate(inner) if _name(e) == branch)
        assert inner[entered]["type"] == "TaskStateEntered"
        assert inner[exited]["type"] == "TaskStateExited"


def test_the_map_sample(sfn: Any, stack: Stack) -> None:
    done, events = run(sfn, "map-sample", MAP, MAP_INPUT)
    # (each stored row says which iteration it ran in)
    client = Orchestrator(Settings(database_url=stack.database_url))
    (execution,) = client.executions(ExecutionFilter(state_machine="map-sample")).items
    paths = [(r.state_name, r.path) for r in client.execution(execution.id).history()]
    assert paths == [("SayWord", [0]), ("SayWord", [1]), ("SayWord", [2]), ("PiratesSay", [])]
    assert json.loads(done["output"]) == MAP_INPUT["ThingsPiratesSay"]
    iteration = [
        "MapIterationStarted",
        "PassStateEntered",
        "PassStateExited",
        "MapIterationSucceeded",
    ]
    assert [e["type"] for e in events] == [
        "ExecutionStarted",
        "MapStateEntered",
        "MapStateStarted",
        *iteration * 3,
        "MapStateSucceeded",
        "MapStateExited",
        "ExecutionSucceeded",
    ]
    assert events[2]["mapStateStartedEventDetails"] == {"length": 3}
    started = [
        e["mapIterationStartedEventDetails"]
        for e in events
        if "mapIterationStartedEventDetails" in e
    ]
    assert started == [{"name": "PiratesSay", "index": i} for i in range(3)]


def test_the_catch_sample(sfn: Any) -> None:
    done, events = run(sfn, "catch-sample", CATCH, {})
    assert (
        json.loads(done["output"]) == "This is a fallback from a custom Lambda function exception"
    )
    assert [e["type"] for e in events] == [
        "ExecutionStarted",
        "TaskStateEntered",
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionFailed",
        "TaskStateExited",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ]
    assert events[4]["lambdaFunctionFailedEventDetails"]["error"] == "CustomError"
    assert _name(events[6]) == "CustomErrorFallback"
