"""Callback Tasks (``.waitForTaskToken``) in both query languages, driven step by step.

Source of both definitions: AWS docs, Step Functions developer guide, "Discover service
integration patterns in Step Functions", section "Wait for a Callback with Task Token":
the "Send message to SQS" Task passes the token in its message body, as
``"TaskToken.$": "$$.Task.Token"`` (JSONPath) or
``"TaskToken": "{% $states.context.Task.Token %}"`` (JSONata), and the execution
waits until SendTaskSuccess returns the token with an output, which becomes the
Task's result.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import asl

QUEUE = "https://sqs.us-east-2.amazonaws.com/123456789012/myQueue"
RESOURCE = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"

JSONPATH = {
    "StartAt": "Send message to SQS",
    "States": {
        "Send message to SQS": {
            "Type": "Task",
            "Resource": RESOURCE,
            "Parameters": {
                "QueueUrl": QUEUE,
                "MessageBody": {
                    "Message": "Hello from Step Functions!",
                    "TaskToken.$": "$$.Task.Token",
                },
            },
            "Next": "NEXT_STATE",
        },
        "NEXT_STATE": {"Type": "Succeed"},
    },
}

JSONATA = {
    "QueryLanguage": "JSONata",
    "StartAt": "Send message to SQS",
    "States": {
        "Send message to SQS": {
            "Type": "Task",
            "Resource": RESOURCE,
            "Arguments": {
                "QueueUrl": QUEUE,
                "MessageBody": {
                    "Message": "Hello from Step Functions!",
                    "TaskToken": "{% $states.context.Task.Token %}",
                },
            },
            "Next": "NEXT_STATE",
        },
        "NEXT_STATE": {"Type": "Succeed"},
    },
}


def _tokens() -> Any:
    issued = iter(["0f" * 16, "1e" * 16])
    return lambda: next(issued)


@pytest.mark.parametrize("definition", [JSONPATH, JSONATA], ids=["jsonpath", "jsonata"])
def test_the_callback_task_sends_its_token_and_waits_for_it(definition: dict[str, Any]) -> None:
    # Given the developer guide's callback Task
    assert asl.validate(definition) == []
    defn = asl.load(definition)
    cursor = asl.start(defn, {"order": 7}, now=0.0)
    # When it runs
    result = asl.step(defn, cursor, now=1.0, task_tokens=_tokens())
    # Then the handler is called with the token in the message body, and in the context
    command = result.command
    assert isinstance(command, asl.RunTask)
    token = "0f" * 16
    assert command.task_token == token
    assert command.input == {
        "QueueUrl": QUEUE,
        "MessageBody": {"Message": "Hello from Step Functions!", "TaskToken": token},
    }
    assert command.context["Task"] == {"Token": token}
    # And the output sent with the token is the Task's result
    answered = asl.TaskSucceeded(path=command.path, token=command.token, output={"ok": True})
    result = asl.step(defn, result.cursor, answered, now=2.0, task_tokens=_tokens())
    while isinstance(result.command, asl.Continue):
        result = asl.step(defn, result.cursor, now=2.0, task_tokens=_tokens())
    assert result.command == asl.Succeeded(output={"ok": True})


@pytest.mark.parametrize("definition", [JSONPATH, JSONATA], ids=["jsonpath", "jsonata"])
def test_a_reissued_callback_task_keeps_its_token(definition: dict[str, Any]) -> None:
    defn = asl.load(definition)
    cursor = asl.start(defn, {}, now=0.0)
    first = asl.step(defn, cursor, now=1.0, task_tokens=_tokens()).cursor
    # A worker that crashed while the Task waited: the command comes again, same token
    (again,) = asl.reissue(defn, first, now=5.0)
    assert isinstance(again, asl.RunTask)
    assert again.task_token == "0f" * 16
    assert again.input["MessageBody"]["TaskToken"] == "0f" * 16
