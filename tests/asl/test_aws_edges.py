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


def test_a_distributed_map_runs_its_items_as_children_in_memory() -> None:
    processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
        "StartAt": "I",
        "States": {"I": {"Type": "Pass", "End": True}},
    }
    definition = machine(M={"Type": "Map", "ItemProcessor": processor, "End": True})
    assert asl.validate(definition) == []
    result = run(definition, [1, 2])
    assert (result.status, result.output) == ("SUCCEEDED", [1, 2])


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
        "/States/M/Label",
        "/States/M/ResultWriter",
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


# --- item 1: Assign in a Choice rule: see tests/asl/test_variables.py -----------


def test_a_distributed_map_is_handed_to_the_runtime_never_run_inline() -> None:
    defn = asl.load(machine(M=DISTRIBUTED))
    cursor = asl.start(defn, {}, now=0.0)
    result = asl.step(defn, cursor, now=1.0)
    assert isinstance(result.command, asl.RunMap)
    assert result.command.reader is not None
    assert result.command.reader["ReaderConfig"]["InputType"] == "CSV"
    assert (result.command.label, result.command.max_concurrency) == ("files", 100)
    # And a failed Map Run is a catchable failure of the state; a redrive dispatches anew
    failed = asl.step(
        defn,
        result.cursor,
        asl.TaskFailed(path=(), token=result.command.token, error="States.ItemReaderFailed"),
        now=2.0,
    )
    assert isinstance(failed.command, asl.Continue)
    assert isinstance(asl.result_of(failed.cursor), asl.Failed)
    asl.redrive(defn, failed.cursor, now=3.0)
    again = asl.step(defn, failed.cursor, now=3.0)
    assert isinstance(again.command, asl.RunMap)
    assert again.command.token != result.command.token
