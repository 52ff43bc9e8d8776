"""The in-process driver (``orchestrator.runtime.local``): handlers, ARNs, the registry, CLI."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator import asl
from orchestrator.cli import app
from orchestrator.handlers import HandlerContext, HandlerRegistry, resource_name
from orchestrator.runtime.local import run
from tests.support import FakeClock

ROOT = Path(__file__).resolve().parents[2]


def one_task(resource: str = "work", **task: Any) -> dict[str, Any]:
    return {
        "StartAt": "T",
        "States": {"T": {"Type": "Task", "Resource": resource, "End": True, **task}},
    }


def test_a_sync_handler_receives_input_and_context_with_an_idempotency_key() -> None:
    seen: list[HandlerContext] = []

    def work(data: Any, ctx: HandlerContext) -> Any:
        seen.append(ctx)
        return {"got": data}

    result = run(one_task(), {"a": 1}, handlers={"work": work})
    assert result.status == "SUCCEEDED"
    assert result.output == {"got": {"a": 1}}
    (ctx,) = seen
    assert (ctx.state, ctx.attempt) == ("T", 0)
    assert ctx.execution_id in ctx.idempotency_key


def test_an_async_handler_is_awaited() -> None:
    async def work(data: Any) -> Any:
        await asyncio.sleep(0)
        return data["n"] * 2

    assert run(one_task(), {"n": 21}, handlers={"work": work}).output == 42


def test_an_exception_becomes_an_error_named_after_its_class() -> None:
    def work(data: Any) -> Any:
        raise KeyError("missing")

    result = run(one_task(), {}, handlers={"work": work})
    assert (result.status, result.error, result.cause) == ("FAILED", "KeyError", "'missing'")


def test_a_states_error_sets_error_and_cause() -> None:
    def work(data: Any) -> Any:
        raise asl.StatesError("Payment.Declined", "card expired")

    result = run(one_task(), {}, handlers={"work": work})
    assert (result.error, result.cause) == ("Payment.Declined", "card expired")


def test_a_handler_running_past_timeout_seconds_fails_with_states_timeout() -> None:
    def work(data: Any) -> Any:
        time.sleep(1.5)
        return 1

    started = time.monotonic()
    result = run(one_task(TimeoutSeconds=1), {}, handlers={"work": work})
    assert (result.status, result.error) == ("FAILED", "States.Timeout")
    assert time.monotonic() - started < 1.4


def test_an_async_handler_past_its_timeout_is_cancelled_with_states_timeout() -> None:
    async def work(data: Any) -> Any:
        await asyncio.sleep(5)

    result = run(one_task(TimeoutSeconds=1), {}, handlers={"work": work})
    assert result.error == "States.Timeout"


def test_an_unknown_resource_fails_the_task_naming_the_resource() -> None:
    result = run(one_task("nowhere"), {})
    assert result.error == "States.TaskFailed"
    assert "nowhere" in (result.cause or "")


@pytest.mark.parametrize(
    ("arn", "name"),
    [
        ("arn:aws:lambda:us-east-1:123456789012:function:charge", "charge"),
        ("arn:aws:lambda:us-east-1:123456789012:function:charge:prod", "charge"),
        ("arn:aws:states:us-east-1:123456789012:activity:review", "review"),
        ("arn:aws:states:::lambda:invoke.sync", "lambda:invoke"),
        ("plain-name", "plain-name"),
    ],
)
def test_resource_arns_resolve_to_their_plain_names(arn: str, name: str) -> None:
    assert resource_name(arn) == name


def test_the_registry_resolves_arns_and_refuses_double_registration() -> None:
    registry = HandlerRegistry()

    @registry("charge")
    def charge(data: Any) -> Any:
        return "charged"

    arn = "arn:aws:lambda:eu-west-1:1:function:charge"
    assert run(one_task(arn), {}, handlers=registry).output == "charged"
    with pytest.raises(ValueError, match="already registered"):
        registry.register("charge", lambda d: d)


def test_retries_sleep_the_backoff_on_the_injected_clock() -> None:
    clock = FakeClock()
    calls = {"n": 0}

    def work(data: Any) -> Any:
        calls["n"] += 1
        if calls["n"] < 3:
            raise RuntimeError("again")
        return calls["n"]

    retry = [{"ErrorEquals": ["RuntimeError"], "IntervalSeconds": 3, "BackoffRate": 2}]
    result = run(one_task(Retry=retry), {}, handlers={"work": work}, clock=clock)
    assert result.output == 3
    assert clock.sleeps == [3.0, 6.0]


def test_map_iterations_run_their_tasks_concurrently() -> None:
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "T",
                    "States": {"T": {"Type": "Task", "Resource": "slow", "End": True}},
                },
                "End": True,
            }
        },
    }

    lock = threading.Lock()
    running = {"now": 0, "most": 0}

    def slow(data: Any) -> Any:
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        time.sleep(0.2)
        with lock:
            running["now"] -= 1
        return data

    result = run(definition, list(range(8)), handlers={"slow": slow})
    assert result.output == list(range(8))
    # Several handlers ran at the same time (measured, not timed: the machine may be busy)
    assert running["most"] > 1


def test_an_invalid_definition_raises_with_every_problem() -> None:
    with pytest.raises(asl.DefinitionInvalid) as info:
        run({"StartAt": "X", "States": {"A": {"Type": "Pass"}}}, {})
    paths = {p.path for p in info.value.problems}
    assert {"/StartAt", "/States/A"} <= paths


def test_cli_run_prints_the_result_as_json_and_exits_zero() -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "run",
            str(ROOT / "orchestrator/examples/order.asl.json"),
            "--input",
            f"@{ROOT / 'orchestrator/examples/order-input.json'}",
            "--handlers",
            "orchestrator.examples.order_handlers",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["status"] == "SUCCEEDED"
    assert out["output"]["payment"] == {"payment_id": "pay-A-1001"}


def test_cli_run_rejects_malformed_input_json_with_one_line(tmp_path: Path) -> None:
    machine = tmp_path / "m.json"
    machine.write_text(json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}))
    result = CliRunner().invoke(app, ["run", str(machine), "--input", "{nope"])
    assert result.exit_code == 2
    assert "--input is not valid JSON" in result.output


def test_cli_run_exits_one_when_the_execution_fails(tmp_path: Path) -> None:
    machine = tmp_path / "m.yaml"
    machine.write_text("StartAt: F\nStates:\n  F:\n    Type: Fail\n    Error: Nope\n")
    result = CliRunner().invoke(app, ["run", str(machine)])
    assert result.exit_code == 1
    assert json.loads(result.output)["error"] == "Nope"
