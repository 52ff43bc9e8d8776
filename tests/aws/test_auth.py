"""Who may call the AWS API: SigV4 with configured keys, else the API's bearer token."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.aws.conftest import Stack

TOKEN = "bearer-for-tests"  # noqa: S105  # a test token, not a secret
WRONG = "not-the-secret"  # a wrong test secret

pytestmark = pytest.mark.slow


def _code(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as refused:
        call()
    response = refused.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_sigv4_lets_the_right_keys_in_and_refuses_the_rest(make_stack: Any) -> None:
    stack: Stack = make_stack(worker=False)
    # A request signed with the configured key pair is served
    assert stack.client().list_state_machines()["stateMachines"] == []
    # A wrong secret, another key, another region or no signature at all are refused
    assert _code(stack.client(aws_secret_access_key=WRONG).list_state_machines) == (
        "InvalidSignatureException",
        400,
    )
    assert _code(stack.client(aws_access_key_id="AKIDOTHER").list_state_machines) == (
        "UnrecognizedClientException",
        400,
    )
    assert _code(stack.client(region_name="eu-west-1").list_state_machines)[0] == (
        "InvalidSignatureException"
    )
    unsigned = stack.client(config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))
    assert _code(unsigned.list_state_machines) == ("MissingAuthenticationTokenException", 403)


def test_a_body_changed_after_signing_is_refused(make_stack: Any) -> None:
    stack: Stack = make_stack(worker=False)
    sfn = stack.client()

    def tamper(request: Any, **_: Any) -> None:
        request.body = json.dumps({"maxResults": 1}).encode()
        request.headers["Content-Length"] = str(len(request.body))

    sfn.meta.events.register_last("before-send.states.ListStateMachines", tamper)
    assert _code(sfn.list_state_machines)[0] == "InvalidSignatureException"


def test_without_keys_the_bearer_token_rule_applies(make_stack: Any) -> None:
    # Given an API without access keys but with a bearer token
    stack: Stack = make_stack(keys=False, worker=False, token=TOKEN)
    unsigned = Config(signature_version=UNSIGNED, retries={"max_attempts": 1})
    # Then a request without the token is refused in AWS's shape (401)
    assert _code(stack.client(config=unsigned).list_state_machines) == (
        "UnrecognizedClientException",
        401,
    )
    # and one that carries it is served
    sfn = stack.client(config=unsigned)

    def bearer(request: Any, **_: Any) -> None:
        request.headers["Authorization"] = f"Bearer {TOKEN}"

    sfn.meta.events.register_last("before-send.states", bearer)
    assert sfn.list_state_machines()["stateMachines"] == []


def test_without_keys_or_token_any_client_is_served(make_stack: Any) -> None:
    stack: Stack = make_stack(keys=False, worker=False)
    assert stack.client(aws_secret_access_key=WRONG).list_state_machines()["stateMachines"] == []


def test_the_aws_cli_drives_the_api(stack: Stack) -> None:
    aws = Path(sys.executable).parent / "aws"
    definition = {
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "Result": {"ok": 1}, "End": True}},
    }

    def cli(*args: str) -> dict[str, Any]:
        done = subprocess.run(  # noqa: S603  # the awscli entry point of this venv
            [str(aws), "stepfunctions", *args, "--endpoint-url", stack.url, "--output", "json"],
            env=stack.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    created = cli(
        "create-state-machine",
        "--name",
        "from-cli",
        "--definition",
        json.dumps(definition),
        "--role-arn",
        "arn:aws:iam::123456789012:role/cli",
    )
    arn = created["stateMachineArn"]
    listed = cli("list-state-machines")
    assert [m["name"] for m in listed["stateMachines"]] == ["from-cli"]
    started = cli("start-execution", "--state-machine-arn", arn, "--name", "cli-1", "--input", "{}")
    deadline = time.monotonic() + 60
    while (found := cli("describe-execution", "--execution-arn", started["executionArn"]))[
        "status"
    ] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert found["status"] == "SUCCEEDED"
    assert json.loads(found["output"]) == {"ok": 1}
    history = cli("get-execution-history", "--execution-arn", started["executionArn"])
    assert [e["type"] for e in history["events"]] == [
        "ExecutionStarted",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ]
    # StartSyncExecution from the CLI (AWS_DISABLE_HOST_PREFIX_INJECTION: no "sync-" host)
    express = cli(
        "create-state-machine",
        "--name",
        "cli-express",
        "--type",
        "EXPRESS",
        "--definition",
        json.dumps(definition),
        "--role-arn",
        "arn:aws:iam::123456789012:role/cli",
    )
    synced = cli("start-sync-execution", "--state-machine-arn", express["stateMachineArn"])
    assert synced["status"] == "SUCCEEDED"
    assert json.loads(synced["output"]) == {"ok": 1}
    # A missing machine is the CLI's error too (exit status 254, the code on stderr)
    missing = subprocess.run(  # noqa: S603
        [str(aws), "stepfunctions", "describe-state-machine", "--state-machine-arn", arn + "x",
         "--endpoint-url", stack.url],
        env=stack.env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert missing.returncode != 0
    assert "StateMachineDoesNotExist" in missing.stderr
