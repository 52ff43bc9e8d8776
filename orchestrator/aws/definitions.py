"""ValidateStateMachineDefinition and TestState: definitions checked and one state run."""

from __future__ import annotations

import json
from typing import Any

from orchestrator import asl
from orchestrator.aws.context import Aws, action, compact, dump, json_text, text
from orchestrator.aws.errors import AwsError, validation
from orchestrator.handlers import registry

#: State types TestState runs (a Wait would sleep, Parallel and Map are not single states).
_TESTABLE = ("Task", "Pass", "Choice", "Succeed", "Fail")
_TEST_NAME = "TestState"


@action("ValidateStateMachineDefinition")
def validate_state_machine_definition(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """Every problem of a definition, as AWS's diagnostics (severity, code, message, location)."""
    definition = text(body, "definition")
    kind = text(body, "type", required=False, default="STANDARD")
    if kind not in ("STANDARD", "EXPRESS"):
        raise validation(f"'type' must be STANDARD or EXPRESS, not {kind!r}")
    _, problems = asl.parse(definition, machine_type=kind)
    most = body.get("maxResults") or 100
    diagnostics = [
        {
            "severity": "ERROR",
            "code": "SCHEMA_VALIDATION_FAILED",
            "message": problem.message,
            "location": problem.path or "/",
        }
        for problem in problems
    ]
    return {
        "result": "FAIL" if diagnostics else "OK",
        "diagnostics": diagnostics[:most],
        "truncated": len(diagnostics) > most,
    }


def _targets(state: dict[str, Any]) -> set[str]:
    found = {state.get("Next"), state.get("Default")}
    for rule in state.get("Choices") or ():
        if isinstance(rule, dict):
            found.add(rule.get("Next"))
    for catcher in state.get("Catch") or ():
        if isinstance(catcher, dict):
            found.add(catcher.get("Next"))
    return {t for t in found if isinstance(t, str)}


def _retriable(state: dict[str, Any], error: str | None) -> bool:
    for retrier in state.get("Retry") or ():
        equals = retrier.get("ErrorEquals") if isinstance(retrier, dict) else None
        if isinstance(equals, list) and (error in equals or "States.ALL" in equals):
            return bool(retrier.get("MaxAttempts", 3) != 0)
    return False


@action("TestState")
def test_state(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """Run one state on an input, as AWS's TestState does (its handlers run here)."""
    from orchestrator import run

    try:
        state = json.loads(text(body, "definition"))
    except ValueError as exc:
        raise AwsError("InvalidDefinition", f"'definition' is not JSON: {exc}") from None
    if not isinstance(state, dict) or state.get("Type") not in _TESTABLE:
        raise validation(f"TestState runs one state of type {', '.join(_TESTABLE)}")
    data = json_text(body, "input", "InvalidExecutionInput")
    retry = state.pop("Retry", None)
    targets = _targets(state) - {_TEST_NAME}
    machine = {
        "StartAt": _TEST_NAME,
        "States": {_TEST_NAME: state, **{t: {"Type": "Succeed"} for t in targets}},
    }
    result = run(machine, data, handlers=registry)
    first = result.history[0] if result.history else None
    following = result.history[1].state if len(result.history) > 1 else None
    if first is not None and first.status == "succeeded":
        status = "SUCCEEDED"
    elif first is not None and first.status == "caught":
        status = "CAUGHT_ERROR"
    elif _retriable({"Retry": retry}, result.error):
        status = "RETRIABLE"
    else:
        status = "FAILED"
    output = first.output if first is not None and status != "FAILED" else None
    return compact(
        {
            "status": status,
            "output": dump(output) if status in ("SUCCEEDED", "CAUGHT_ERROR") else None,
            "error": result.error if status in ("FAILED", "RETRIABLE") else None,
            "cause": result.cause if status in ("FAILED", "RETRIABLE") else None,
            "nextState": following,
        }
    )


__all__ = ["test_state", "validate_state_machine_definition"]
