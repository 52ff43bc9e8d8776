"""Issue 13, "accepted but wrong": what AWS accepts validates, what it refuses does not.

Each test failed before its fix: a definition was refused that AWS accepts, accepted
that AWS refuses, or ran differently from AWS without saying so.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import asl
from orchestrator.runtime.local import run


def machine(**states: Any) -> dict[str, Any]:
    return {"StartAt": next(iter(states)), "States": states}


def paths(problems: list[asl.Problem]) -> list[str]:
    return [p.path for p in problems]


# --- item 4: no terminal state ----------------------------------------------------


def test_a_machine_with_no_terminal_state_is_missing_end_state() -> None:
    problems = asl.validate(
        machine(A={"Type": "Pass", "Next": "B"}, B={"Type": "Pass", "Next": "A"})
    )
    assert [(p.path, p.message) for p in problems] == [
        ("/States", "MISSING_END_STATE: Workflow has no terminal state")
    ]


def test_a_branch_with_no_terminal_state_is_missing_end_state() -> None:
    loop = {"StartAt": "X", "States": {"X": {"Type": "Wait", "Seconds": 1, "Next": "X"}}}
    problems = asl.validate(machine(P={"Type": "Parallel", "Branches": [loop], "End": True}))
    assert paths(problems) == ["/States/P/Branches/0/States"]


def test_a_loop_with_a_reachable_exit_is_valid() -> None:
    assert (
        asl.validate(
            machine(
                A={"Type": "Pass", "Next": "B"},
                B={
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.more", "BooleanEquals": True, "Next": "A"}],
                    "Default": "C",
                },
                C={"Type": "Fail", "Error": "Stop"},
            )
        )
        == []
    )


# --- item 5: path edges -----------------------------------------------------------


def test_jsonpath_keys_with_escaped_quotes() -> None:
    definition = machine(P={"Type": "Pass", "Parameters": {"v.$": "$['a\\\"b']"}, "End": True})
    assert asl.validate(definition) == []
    assert run(definition, {'a"b': 5}).output == {"v": 5}


# --- item 6: what AWS accepts validates -------------------------------------------


@pytest.mark.parametrize("value", [[1, {"a.$": "$.x"}], "text", 3, None, True])
def test_parameters_result_selector_and_item_selector_take_any_json_value(value: Any) -> None:
    definition = machine(
        P={"Type": "Pass", "Parameters": value, "Next": "T"},
        T={"Type": "Task", "Resource": "r", "ResultSelector": value, "Next": "M"},
        M={
            "Type": "Map",
            "ItemSelector": value,
            "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}},
            "End": True,
        },
    )
    assert asl.validate(definition) == []


def test_a_parameters_array_is_rendered() -> None:
    definition = machine(P={"Type": "Pass", "Parameters": [1, {"a.$": "$.x"}], "End": True})
    assert run(definition, {"x": 2}).output == [1, {"a": 2}]


def test_jsonpath_script_expression_for_the_last_item_validates_and_selects_it() -> None:
    definition = machine(
        P={"Type": "Pass", "Parameters": {"last.$": "$.a[(@.length-1)]"}, "End": True}
    )
    assert asl.validate(definition) == []
    assert run(definition, {"a": [1, 2, 3]}).output == {"last": [3]}


DISTRIBUTED = {
    "Type": "Map",
    "ItemReader": {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
        "Parameters": {"Bucket": "b", "Key": "k.csv"},
    },
    "ItemBatcher": {"MaxItemsPerBatch": 10},
    "ResultWriter": {
        "Resource": "arn:aws:states:::s3:putObject",
        "Parameters": {"Bucket": "b", "Prefix": "out"},
    },
    "ItemProcessor": {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "I",
        "States": {"I": {"Type": "Pass", "End": True}},
    },
    "Label": "files",
    "MaxConcurrency": 100,
    "End": True,
}


def test_a_distributed_map_validates_as_aws_accepts_it() -> None:
    assert asl.validate(machine(M=DISTRIBUTED)) == []


def test_running_a_distributed_map_fails_at_start_never_quietly_inline() -> None:
    calls: list[Any] = []
    definition = machine(
        T={"Type": "Task", "Resource": "r", "Next": "M"},
        M={**DISTRIBUTED, "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2"}},
    )
    result = run(definition, {}, handlers={"r": calls.append})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "State 'M'" in (result.cause or "")
    assert "Distributed Map" in (result.cause or "")
    assert calls == []  # nothing ran before the refusal


def test_a_distributed_processor_mode_alone_is_refused_at_start() -> None:
    processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
        "StartAt": "I",
        "States": {"I": {"Type": "Pass", "End": True}},
    }
    definition = machine(M={"Type": "Map", "ItemProcessor": processor, "End": True})
    assert asl.validate(definition) == []
    result = run(definition, [1])
    assert (result.status, result.error) == ("FAILED", "States.Runtime")


def test_distributed_map_fields_are_checked() -> None:
    bad = {
        **DISTRIBUTED,
        "ItemReader": {"ReaderConfig": {}},
        "ItemBatcher": 5,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "SIDEWAYS"},
            "StartAt": "I",
            "States": {"I": {"Type": "Pass", "End": True}},
        },
    }
    assert sorted(paths(asl.validate(machine(M=bad)))) == [
        "/States/M/ItemBatcher",
        "/States/M/ItemProcessor/ProcessorConfig/Mode",
        "/States/M/ItemReader",
    ]


# --- item 7: what AWS refuses does not validate -----------------------------------


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "arn:aws:states:::states:startExecution.sync",
        "arn:aws:states:::states:startExecution.sync:2",
    ],
)
def test_an_express_machine_cannot_use_sync_or_callback_resources(resource: str) -> None:
    definition = machine(
        P={
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "T",
                    "States": {"T": {"Type": "Task", "Resource": resource, "End": True}},
                }
            ],
            "End": True,
        }
    )
    assert asl.validate(definition) == []
    problems = asl.validate(definition, machine_type="EXPRESS")
    assert paths(problems) == ["/States/P/Branches/0/States/T/Resource"]
    assert "EXPRESS" in problems[0].message
    with pytest.raises(asl.DefinitionInvalid):
        asl.load(definition, machine_type="EXPRESS")


def test_an_unknown_machine_type_is_a_problem() -> None:
    assert asl.validate(machine(A={"Type": "Succeed"}), machine_type="FAST") != []


# --- item 1: Assign in a Choice rule ----------------------------------------------


def test_assign_in_a_choice_rule_is_refused_not_ignored() -> None:
    definition = machine(
        C={
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.a", "IsPresent": True, "Next": "S", "Assign": {"seen": True}}
            ],
            "Default": "S",
        },
        S={"Type": "Succeed"},
    )
    problems = asl.validate(definition)
    assert paths(problems) == ["/States/C/Choices/0/Assign"]
    assert "not supported yet" in problems[0].message


def test_a_redriven_execution_does_not_run_a_distributed_map_inline() -> None:
    defn = asl.load(machine(M=DISTRIBUTED))
    cursor = asl.start(defn, [1], now=0.0)
    assert isinstance(asl.result_of(cursor), asl.Failed)
    asl.redrive(defn, cursor, now=1.0)
    result = asl.step(defn, cursor, now=1.0)
    for _ in range(5):
        if isinstance(result.command, asl.Failed):
            break
        result = asl.step(defn, result.cursor, now=1.0)
    assert result.command == asl.Failed(
        error="States.Runtime",
        cause="State 'M': The Map state uses ProcessorConfig Mode DISTRIBUTED, ItemBatcher, "
        "ItemReader, ResultWriter: a Distributed Map, which this engine does not run yet",
    )
