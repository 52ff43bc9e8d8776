"""JSONata states in the interpreter (``"QueryLanguage": "JSONata"``, issue 13)."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from orchestrator import asl
from orchestrator.runtime.local import ExecutionResult
from orchestrator.runtime.local import run as run_local
from tests.support import FakeClock


def machine(*, language: str | None = "JSONata", **states: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"StartAt": next(iter(states)), "States": states}
    if language is not None:
        out["QueryLanguage"] = language
    return out


def paths(problems: list[asl.Problem]) -> list[str]:
    return [p.path for p in problems]


def run(definition: dict[str, Any], data: Any = None, **handlers: Any) -> ExecutionResult:
    return run_local(
        definition, data, handlers=handlers, clock=FakeClock(), rng=random.Random(0), name="t"
    )


# --- fields -----------------------------------------------------------------------


def test_pass_output_and_assign_then_choice_condition() -> None:
    definition = machine(
        A={
            "Type": "Pass",
            "Output": {"n": "{% $states.input.n + 1 %}", "literal": "text"},
            "Assign": {"x": "{% $states.input.n %}"},
            "Next": "C",
        },
        C={
            "Type": "Choice",
            "Choices": [{"Condition": "{% $x > 0 %}", "Next": "Yes", "Output": "{% $x * 10 %}"}],
            "Default": "No",
        },
        Yes={"Type": "Succeed"},
        No={"Type": "Succeed", "Output": {"was": "{% $states.input %}"}},
    )
    assert asl.validate(definition) == []
    assert run(definition, {"n": 2}).output == 20
    assert run(definition, {"n": -2}).output == {"was": {"n": -1, "literal": "text"}}


def test_task_arguments_result_output_and_assign() -> None:
    seen: list[Any] = []

    def work(data: Any, ctx: Any) -> Any:
        seen.append(data)
        return {"value": data["id"] * 2}

    definition = machine(
        T={
            "Type": "Task",
            "Resource": "work",
            "Arguments": {
                "id": "{% $states.input.id %}",
                "state": "{% $states.context.State.Name %}",
            },
            "Output": {"doubled": "{% $states.result.value %}", "input": "{% $states.input %}"},
            "Assign": {"last": "{% $states.result.value %}"},
            "TimeoutSeconds": "{% 10 %}",
            "Next": "S",
        },
        S={"Type": "Pass", "Output": "{% $last %}", "End": True},
    )
    result = run(definition, {"id": 4}, work=work)
    assert result.status == "SUCCEEDED", result.cause
    assert seen == [{"id": 4, "state": "T"}]
    assert result.history[0].output == {"doubled": 8, "input": {"id": 4}}
    assert result.output == 8


def test_a_timeout_seconds_expression_reaches_the_task_command() -> None:
    defn = asl.load(
        machine(T={"Type": "Task", "Resource": "r", "TimeoutSeconds": "{% 3 * 4 %}", "End": True})
    )
    command = asl.step(defn, asl.start(defn, {}, now=0.0), now=0.0).command
    assert isinstance(command, asl.RunTask)
    assert command.timeout_seconds == 12.0


def test_a_catcher_reads_states_error_output() -> None:
    def boom(data: Any, ctx: Any) -> Any:
        raise asl.StatesError("Custom", "bad thing")

    definition = machine(
        T={
            "Type": "Task",
            "Resource": "boom",
            "Catch": [
                {
                    "ErrorEquals": ["States.ALL"],
                    "Output": {"e": "{% $states.errorOutput.Error %}"},
                    "Assign": {"why": "{% $states.errorOutput.Cause %}"},
                    "Next": "S",
                }
            ],
            "End": True,
        },
        S={
            "Type": "Pass",
            "Output": {"e": "{% $states.input.e %}", "why": "{% $why %}"},
            "End": True,
        },
    )
    assert run(definition, {}, boom=boom).output == {"e": "Custom", "why": "bad thing"}


def test_map_items_and_item_selector() -> None:
    definition = machine(
        M={
            "Type": "Map",
            "Items": "{% $states.input.list %}",
            "ItemSelector": {
                "value": "{% $states.context.Map.Item.Value %}",
                "index": "{% $states.context.Map.Item.Index %}",
            },
            "MaxConcurrency": "{% 1 %}",
            "ItemProcessor": {
                "StartAt": "I",
                "States": {
                    "I": {
                        "Type": "Pass",
                        "Output": "{% $states.input.value * 10 + $states.input.index %}",
                        "End": True,
                    }
                },
            },
            "Output": "{% $sum($states.result) %}",
            "End": True,
        }
    )
    assert run(definition, {"list": [1, 2, 3]}).output == 63


def test_parallel_arguments_and_result() -> None:
    branch = {
        "StartAt": "B",
        "States": {"B": {"Type": "Pass", "Output": "{% $states.input.v %}", "End": True}},
    }
    definition = machine(
        P={
            "Type": "Parallel",
            "Arguments": {"v": "{% $states.input.a %}"},
            "Branches": [branch, branch],
            "Output": "{% $states.result %}",
            "End": True,
        }
    )
    assert run(definition, {"a": 5}).output == [5, 5]


def test_wait_seconds_expression_and_fail_error_and_cause() -> None:
    definition = machine(
        W={"Type": "Wait", "Seconds": "{% $states.input.s %}", "Next": "F"},
        F={"Type": "Fail", "Error": "{% 'Err' & $states.input.s %}", "Cause": "{% 'waited' %}"},
    )
    clock = FakeClock()
    start = clock.now()
    result = run_local(definition, {"s": 7}, clock=clock)
    assert (result.status, result.error, result.cause) == ("FAILED", "Err7", "waited")
    assert clock.now() - start == 7


def test_mixed_languages_in_both_directions() -> None:
    jsonpath_machine = machine(
        language=None,
        A={"Type": "Pass", "Parameters": {"a.$": "$.x"}, "Assign": {"v.$": "$.a"}, "Next": "B"},
        B={
            "Type": "Pass",
            "QueryLanguage": "JSONata",
            "Output": "{% $v + $states.input.a %}",
            "End": True,
        },
    )
    assert run(jsonpath_machine, {"x": 2}).output == 4
    jsonata_machine = machine(
        A={"Type": "Pass", "Assign": {"v": 3}, "Next": "B"},
        B={"Type": "Pass", "QueryLanguage": "JSONPath", "Parameters": {"v.$": "$v"}, "End": True},
    )
    assert run(jsonata_machine, {}).output == {"v": 3}


def test_branches_inherit_the_machines_language() -> None:
    definition = machine(
        P={
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "B",
                    "States": {"B": {"Type": "Pass", "Output": "{% 1 %}", "End": True}},
                }
            ],
            "End": True,
        }
    )
    assert run(definition).output == [1]


# --- refusals at create time -------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "pointer"),
    [
        ({"Type": "Pass", "InputPath": "$.a", "End": True}, "/States/A/InputPath"),
        ({"Type": "Pass", "Parameters": {}, "End": True}, "/States/A/Parameters"),
        ({"Type": "Pass", "Result": 1, "End": True}, "/States/A/Result"),
        (
            {"Type": "Task", "Resource": "r", "ResultPath": "$.r", "End": True},
            "/States/A/ResultPath",
        ),
        ({"Type": "Wait", "SecondsPath": "$.s", "End": True}, "/States/A/SecondsPath"),
        (
            {"Type": "Choice", "Choices": [{"Variable": "$.a", "IsPresent": True, "Next": "A"}]},
            "/States/A/Choices/0/Variable",
        ),
        (
            {
                "Type": "Task",
                "Resource": "r",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.e", "Next": "A"}],
                "End": True,
            },
            "/States/A/Catch/0/ResultPath",
        ),
    ],
)
def test_jsonpath_fields_are_refused_in_jsonata_states(state: dict[str, Any], pointer: str) -> None:
    problems = asl.validate(machine(A=state))
    assert pointer in paths(problems), problems
    assert any("JSONPath" in p.message for p in problems if p.path == pointer)


@pytest.mark.parametrize(
    ("state", "pointer"),
    [
        ({"Type": "Pass", "Output": {}, "End": True}, "/States/A/Output"),
        ({"Type": "Task", "Resource": "r", "Arguments": {}, "End": True}, "/States/A/Arguments"),
        (
            {
                "Type": "Choice",
                "Choices": [{"Condition": "{% true %}", "Next": "A"}],
                "Default": "A",
            },
            "/States/A/Choices/0/Condition",
        ),
    ],
)
def test_jsonata_fields_are_refused_in_jsonpath_states(state: dict[str, Any], pointer: str) -> None:
    problems = asl.validate(machine(language=None, A=state))
    assert pointer in paths(problems), problems


def test_expression_syntax_and_unassigned_variables_are_checked_with_pointers() -> None:
    definition = machine(
        A={
            "Type": "Pass",
            "Output": {"a": ["{% $states.input.( %}"], "b": "{% $nowhere %}"},
            "End": True,
        }
    )
    problems = asl.validate(definition)
    assert sorted(paths(problems)) == ["/States/A/Output/a/0", "/States/A/Output/b"]
    assert "INVALID_JSONATA_EXPRESSION" in problems[0].message


def test_an_unknown_query_language_is_refused() -> None:
    problems = asl.validate(machine(language="XPath", A={"Type": "Succeed"}))
    assert paths(problems) == ["/QueryLanguage"]


# --- evaluation --------------------------------------------------------------------


def test_an_evaluation_error_is_a_catchable_query_evaluation_error() -> None:
    definition = machine(
        A={
            "Type": "Pass",
            "Output": {"x": "{% $states.input.missing %}"},
            "End": True,
        }
    )
    result = run(definition, {})
    assert result.error == "States.QueryEvaluationError"
    assert (result.cause or "").startswith("An error occurred while executing the state 'A'")
    assert "returned nothing (undefined)" in (result.cause or "")
    caught = machine(
        T={
            "Type": "Task",
            "Resource": "r",
            "Output": "{% $states.result.nothing %}",
            "Catch": [{"ErrorEquals": ["States.QueryEvaluationError"], "Next": "S"}],
            "End": True,
        },
        S={"Type": "Succeed"},
    )
    out = run(caught, {}, r=lambda data, ctx: {})
    assert out.status == "SUCCEEDED"
    assert out.output["Error"] == "States.QueryEvaluationError"


def test_a_condition_that_is_not_boolean_fails() -> None:
    definition = machine(
        C={"Type": "Choice", "Choices": [{"Condition": "{% 1 %}", "Next": "S"}], "Default": "S"},
        S={"Type": "Succeed"},
    )
    assert run(definition).error == "States.QueryEvaluationError"


def test_random_and_uuid_come_from_the_injected_rng_and_step_is_pure() -> None:
    defn = asl.load(
        machine(
            A={
                "Type": "Pass",
                "Output": {"r": "{% $random() %}", "u": "{% $uuid() %}"},
                "End": True,
            }
        )
    )
    cursor = asl.start(defn, {}, now=0.0)
    before = copy.deepcopy(cursor)
    one = asl.step(defn, cursor, now=0.0, rng=random.Random(5))
    two = asl.step(defn, cursor, now=0.0, rng=random.Random(5))
    assert cursor == before
    assert one.cursor == two.cursor
    three = asl.step(defn, cursor, now=0.0)  # seeded from the cursor: replayable
    assert asl.step(defn, cursor, now=0.0).cursor == three.cursor
