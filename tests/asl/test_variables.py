"""Workflow variables (``Assign``, ``$name``) in JSONPath states (issue 13)."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from orchestrator import asl
from orchestrator.asl import interpreter as engine
from orchestrator.runtime.local import ExecutionResult
from orchestrator.runtime.local import run as run_local
from tests.support import FakeClock


def machine(**states: Any) -> dict[str, Any]:
    return {"StartAt": next(iter(states)), "States": states}


def paths(problems: list[asl.Problem]) -> list[str]:
    return [p.path for p in problems]


def run(definition: dict[str, Any], data: Any = None, **handlers: Any) -> ExecutionResult:
    return run_local(
        definition, data, handlers=handlers, clock=FakeClock(), rng=random.Random(0), name="t"
    )


# --- issue item 1: Assign in a Choice rule ----------------------------------------


def test_assign_in_a_choice_rule_sets_the_variable_read_by_a_template() -> None:
    # Before variables, this Assign was accepted and ignored and "v.$": "$seen" gave [].
    definition = machine(
        C={
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.a", "IsPresent": True, "Next": "S", "Assign": {"seen.$": "$.a"}}
            ],
            "Default": "S",
        },
        S={"Type": "Pass", "Parameters": {"v.$": "$seen"}, "End": True},
    )
    assert asl.validate(definition) == []
    result = run(definition, {"a": {"n": 7}})
    assert result.status == "SUCCEEDED"
    assert result.output == {"v": {"n": 7}}


def test_the_default_of_a_choice_takes_the_states_own_assign() -> None:
    definition = machine(
        C={
            "Type": "Choice",
            "Choices": [{"Variable": "$.a", "IsPresent": True, "Next": "S", "Assign": {"x": 1}}],
            "Default": "S",
            "Assign": {"x": 2},
        },
        S={"Type": "Pass", "Parameters": {"x.$": "$x"}, "End": True},
    )
    assert run(definition, {"a": 0}).output == {"x": 1}
    assert run(definition, {}).output == {"x": 2}


def test_a_reference_to_a_variable_no_state_assigns_is_a_problem_with_its_pointer() -> None:
    definition = machine(
        P={"Type": "Pass", "Parameters": {"v.$": "$seen.field"}, "End": True},
    )
    problems = asl.validate(definition)
    assert paths(problems) == ["/States/P/Parameters/v.$"]
    assert "$seen" in problems[0].message


# --- references in every kind of field --------------------------------------------


def test_variables_in_paths_templates_intrinsics_and_choice() -> None:
    definition = machine(
        A={
            "Type": "Pass",
            "Result": {"items": [1, 2, 3], "name": "n", "limit": 2},
            "Assign": {"data.$": "$", "greeting": "hi"},
            "Next": "C",
        },
        C={
            "Type": "Choice",
            "Choices": [
                {"Variable": "$data.limit", "NumericLessThanPath": "$data.items[2]", "Next": "B"}
            ],
            "Default": "F",
        },
        B={
            "Type": "Pass",
            "Parameters": {
                "first.$": "$data.items[0]",
                "all.$": "$data.items[*]",
                "text.$": "States.Format('{} {}', $greeting, $data.name)",
                "count.$": "States.ArrayLength($data.items)",
            },
            "OutputPath": "$",
            "End": True,
        },
        F={"Type": "Fail", "Error": "Wrong"},
    )
    result = run(definition, {})
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == {"first": 1, "all": [1, 2, 3], "text": "hi n", "count": 3}


def test_an_input_path_can_read_a_variable() -> None:
    definition = machine(
        A={"Type": "Pass", "Assign": {"kept": {"k": 1}}, "Next": "B"},
        B={"Type": "Pass", "InputPath": "$kept", "End": True},
    )
    assert run(definition, {"x": 0}).output == {"k": 1}


# --- order and scope --------------------------------------------------------------


def test_an_assignment_is_visible_to_the_next_state_not_the_current_one() -> None:
    definition = machine(
        A={"Type": "Pass", "Assign": {"x": 1}, "Next": "B"},
        B={
            "Type": "Pass",
            "Assign": {"x": 2, "before.$": "$x"},
            "Parameters": {"seen.$": "$x"},
            "Next": "C",
        },
        C={"Type": "Pass", "Parameters": {"x.$": "$x", "before.$": "$before"}, "End": True},
    )
    result = run(definition)
    assert result.output == {"x": 2, "before": 1}
    assigned = [event.assigned for event in result.history]
    assert assigned == [{"x": 1}, {"x": 2, "before": 1}, None]


def test_a_task_assigns_from_its_result_after_the_result_selector() -> None:
    definition = machine(
        T={
            "Type": "Task",
            "Resource": "work",
            "ResultSelector": {"n.$": "$.value"},
            "Assign": {"n.$": "$.n"},
            "ResultPath": "$.r",
            "Next": "S",
        },
        S={"Type": "Pass", "Parameters": {"n.$": "$n"}, "End": True},
    )
    result = run(definition, {}, work=lambda data, ctx: {"value": 5})
    assert result.output == {"n": 5}


def test_a_catcher_assigns_from_the_error_output() -> None:
    def boom(data: Any, ctx: Any) -> Any:
        raise asl.StatesError("Custom", "went wrong")

    definition = machine(
        T={
            "Type": "Task",
            "Resource": "boom",
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "S", "Assign": {"why.$": "$.Cause"}}],
            "End": True,
        },
        S={"Type": "Pass", "Parameters": {"why.$": "$why"}, "End": True},
    )
    result = run(definition, {}, boom=boom)
    assert result.output == {"why": "went wrong"}
    assert result.history[0].assigned == {"why": "went wrong"}


def test_map_iterations_read_outer_variables_and_their_own_stay_inside() -> None:
    definition = machine(
        A={"Type": "Pass", "Assign": {"base": 10}, "Next": "M"},
        M={
            "Type": "Map",
            "ItemProcessor": {
                "StartAt": "I",
                "States": {
                    "I": {"Type": "Pass", "Assign": {"mine.$": "$"}, "Next": "J"},
                    "J": {
                        "Type": "Pass",
                        "Parameters": {"b.$": "$base", "m.$": "$mine"},
                        "End": True,
                    },
                },
            },
            "Next": "S",
        },
        S={"Type": "Pass", "End": True},
    )
    result = run(definition, [1, 2])
    assert result.output == [{"b": 10, "m": 1}, {"b": 10, "m": 2}]


def test_an_inner_variable_is_not_visible_outside() -> None:
    definition = machine(
        P={
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "I",
                    "States": {"I": {"Type": "Pass", "Assign": {"in": 1}, "End": True}},
                }
            ],
            "Next": "S",
        },
        S={"Type": "Pass", "Parameters": {"v.$": "$in"}, "End": True},
    )
    assert paths(asl.validate(definition)) == ["/States/S/Parameters/v.$"]


def test_a_branch_cannot_assign_a_variable_of_the_enclosing_scope() -> None:
    definition = machine(
        A={"Type": "Pass", "Assign": {"x": 1}, "Next": "P"},
        P={
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "I", "States": {"I": {"Type": "Pass", "Assign": {"x": 2}, "End": True}}}
            ],
            "End": True,
        },
    )
    problems = asl.validate(definition)
    assert paths(problems) == ["/States/P/Branches/0/States/I"]
    assert "enclosing scope" in problems[0].message


@pytest.mark.parametrize(
    ("assign", "pointer"),
    [
        ({"states": 1}, "/States/A/Assign/states"),
        ({"1x": 1}, "/States/A/Assign/1x"),
        ({"a-b.$": "$"}, "/States/A/Assign/a-b.$"),
        ({"x" * 81: 1}, "/States/A/Assign/" + "x" * 81),
    ],
)
def test_reserved_and_invalid_names_are_refused(assign: dict[str, Any], pointer: str) -> None:
    problems = asl.validate(machine(A={"Type": "Pass", "Assign": assign, "End": True}))
    assert pointer in paths(problems)


def test_assign_is_refused_where_aws_does_not_allow_it() -> None:
    problems = asl.validate(machine(A={"Type": "Succeed", "Assign": {"x": 1}}))
    assert paths(problems) == ["/States/A/Assign"]


# --- limits -----------------------------------------------------------------------


def test_a_variable_over_256_kib_fails_the_state() -> None:
    definition = machine(A={"Type": "Pass", "Assign": {"big.$": "$.s"}, "End": True})
    result = run(definition, {"s": "x" * (256 * 1024)})
    assert result.status == "FAILED"
    assert result.error == "States.Runtime"
    assert "'big'" in (result.cause or "")
    assert run(definition, {"s": "x" * (256 * 1024 - 2)}).status == "SUCCEEDED"


def test_all_variables_over_10_mib_fail_the_state() -> None:
    names = [f"v{i}" for i in range(41)]
    states = {
        name: {
            "Type": "Pass",
            "Assign": {f"{name}.$": "$.s"},
            **({"Next": names[i + 1]} if i + 1 < len(names) else {"End": True}),
        }
        for i, name in enumerate(names)
    }
    result = run(machine(**states), {"s": "x" * (250 * 1024)})
    assert result.status == "FAILED"
    assert "10,485,760" in (result.cause or "")
    assert result.history[-1].state == "v40"


# --- the cursor is the checkpoint -------------------------------------------------


def test_variables_live_in_the_json_cursor_and_survive_a_resume() -> None:
    defn = asl.load(
        machine(
            A={"Type": "Pass", "Assign": {"x": {"k": [1]}}, "Next": "W"},
            W={"Type": "Wait", "Seconds": 5, "Next": "B"},
            B={"Type": "Pass", "Parameters": {"x.$": "$x"}, "End": True},
        )
    )
    cursor = asl.start(defn, {}, now=0.0)
    step = asl.step(defn, cursor, now=0.0)
    step = asl.step(defn, step.cursor, now=0.0)
    assert isinstance(step.command, asl.WaitUntil)
    before = copy.deepcopy(step.cursor)
    # A crash here: the stored cursor is JSON text, read back by another worker.
    stored = json.loads(json.dumps(step.cursor))
    fired = asl.TimerFired(path=(), token=step.command.token)
    after = asl.step(defn, stored, fired, now=5.0)
    assert step.cursor == before  # step leaves its input untouched
    final = asl.step(defn, after.cursor, now=5.0)
    assert isinstance(final.command, asl.Succeeded | asl.Continue)
    while not isinstance(final.command, asl.Succeeded):
        final = asl.step(defn, final.cursor, now=5.0)
    assert final.command.output == {"x": {"k": [1]}}


def test_a_redrive_runs_the_failed_state_with_its_variables() -> None:
    defn = asl.load(
        machine(
            A={"Type": "Pass", "Assign": {"x": 3}, "Next": "T"},
            T={"Type": "Task", "Resource": "r", "Parameters": {"x.$": "$x"}, "End": True},
        )
    )
    failed = run_local(defn, {}, handlers={"r": _fail}, clock=FakeClock())
    assert failed.status == "FAILED"
    cursor = copy.deepcopy(failed.cursor)
    asl.redrive(defn, cursor, now=1.0)
    command = asl.step(defn, cursor, now=1.0).command
    assert isinstance(command, asl.RunTask)
    assert command.input == {"x": 3}


def _fail(data: Any, ctx: Any) -> Any:
    raise asl.StatesError("Boom", "")


def test_a_wait_state_assigns_when_it_ends() -> None:
    definition = machine(
        W={"Type": "Wait", "Seconds": 1, "Assign": {"w.$": "$.a"}, "Next": "S"},
        S={"Type": "Pass", "Parameters": {"w.$": "$w"}, "End": True},
    )
    assert run(definition, {"a": "z"}).output == {"w": "z"}


def test_history_event_field_defaults_to_none() -> None:
    assert (
        engine.HistoryEvent(path=(), state="s", type="Pass", status="ok", input=1).assigned is None
    )
