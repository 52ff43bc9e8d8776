"""Validation: every rule of the spec, each problem at its JSON pointer, all problems at once.

The rules are the ASL specification's MUSTs (states-language.net) and the limits AWS
enforces when a state machine is created; the pointers follow RFC 6901 from the
definition's root.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator import asl
from orchestrator.cli import app
from orchestrator.runtime.local import run

EXAMPLE = Path(__file__).parents[2] / "orchestrator" / "examples" / "order.asl.json"


def machine(**states: Any) -> dict[str, Any]:
    """A definition starting at the first of ``states``."""
    return {"StartAt": next(iter(states)), "States": states}


def task(**fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": "work", "End": True, **fields}


def problems_at(definition: Any) -> dict[str, str]:
    return {problem.path: problem.message for problem in asl.validate(definition)}


VALID_YAML = """\
Comment: a valid definition written in YAML
StartAt: Greet
States:
  Greet:
    Type: Pass
    Parameters:
      greeting.$: States.Format('Hello, {}!', $.who)
    Next: Done
  Done:
    Type: Succeed
"""

# Each case: (definition, the pointer of the problem, a word its message must contain).
RULES = [
    pytest.param({"States": {"A": {"Type": "Succeed"}}}, "", "StartAt", id="missing StartAt"),
    pytest.param(
        {"StartAt": "Nope", "States": {"A": {"Type": "Succeed"}}},
        "/StartAt",
        "Nope",
        id="StartAt naming no state",
    ),
    pytest.param({"StartAt": "A"}, "", "States", id="missing States"),
    pytest.param({"StartAt": "A", "States": {}}, "/States", "non-empty", id="empty States"),
    pytest.param(
        machine(
            Route={
                "Type": "Choice",
                "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "Gone"}],
                "Default": "Done",
            },
            Done={"Type": "Succeed"},
        ),
        "/States/Route/Choices/0/Next",
        "Gone",
        id="Choice rule Next naming no state",
    ),
    pytest.param(
        machine(
            Route={
                "Type": "Choice",
                "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "Done"}],
                "Default": "Elsewhere",
            },
            Done={"Type": "Succeed"},
        ),
        "/States/Route/Default",
        "Elsewhere",
        id="Default naming no state",
    ),
    pytest.param(
        machine(A={"Type": "Pass", "Next": "Missing"}),
        "/States/A/Next",
        "Missing",
        id="Next naming no state",
    ),
    pytest.param(
        machine(A=task(Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Nowhere"}])),
        "/States/A/Catch/0/Next",
        "Nowhere",
        id="Catch Next naming no state",
    ),
    pytest.param(
        machine(A={"Type": "Succeed"}, Orphan={"Type": "Succeed"}),
        "/States/Orphan",
        "reachable",
        id="unreachable state",
    ),
    pytest.param(
        machine(A={"Type": "Pass", "Next": "B", "End": True}, B={"Type": "Succeed"}),
        "/States/A/End",
        "Next",
        id="End and Next together",
    ),
    pytest.param(machine(A={"Type": "Pass"}), "/States/A", "End", id="neither End nor Next"),
    pytest.param(
        machine(A={"Type": "Choice", "Default": "A"}),
        "/States/A",
        "Choices",
        id="Choice without Choices",
    ),
    pytest.param(
        machine(A={"Type": "Choice", "Choices": [], "Default": "A"}),
        "/States/A/Choices",
        "non-empty",
        id="Choice with empty Choices",
    ),
    pytest.param(
        machine(
            A={
                "Type": "Choice",
                "Choices": [{"Variable": "$.x", "NumericEqualz": 1, "Next": "B"}],
                "Default": "B",
            },
            B={"Type": "Succeed"},
        ),
        "/States/A/Choices/0/NumericEqualz",
        "NumericEquals",
        id="unknown Choice operator",
    ),
    pytest.param(
        machine(A=task(Retry=[{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}])),
        "/States/A/Retry/0/ErrorEquals",
        "States.ALL",
        id="States.ALL in a retrier that is not the last",
    ),
    pytest.param(
        machine(
            A=task(Catch=[{"ErrorEquals": ["States.ALL", "X"], "Next": "B"}]),
            B={"Type": "Succeed"},
        ),
        "/States/A/Catch/0/ErrorEquals",
        "States.ALL",
        id="States.ALL not alone in ErrorEquals",
    ),
    pytest.param(
        machine(A=task(Retry=[{"ErrorEquals": ["States.Bogus"]}])),
        "/States/A/Retry/0/ErrorEquals/0",
        "States.Bogus",
        id="unknown States error name",
    ),
    pytest.param(
        machine(A=task(Retry=[{"ErrorEquals": []}])),
        "/States/A/Retry/0/ErrorEquals",
        "non-empty",
        id="empty ErrorEquals",
    ),
    pytest.param(
        machine(A={"Type": "Fail", "Error": "E", "ErrorPath": "$.error"}),
        "/States/A/ErrorPath",
        "Error",
        id="Fail with both Error and ErrorPath",
    ),
    pytest.param(
        machine(A={"Type": "Fail", "Cause": "c", "CausePath": "$.cause"}),
        "/States/A/CausePath",
        "Cause",
        id="Fail with both Cause and CausePath",
    ),
    pytest.param(
        machine(A={"Type": "Pass", "InputPath": "$.[", "End": True}),
        "/States/A/InputPath",
        "JSONPath",
        id="InputPath that is not a JSONPath",
    ),
    pytest.param(
        machine(A={"Type": "Pass", "OutputPath": "result", "End": True}),
        "/States/A/OutputPath",
        "$",
        id="OutputPath not starting with a dollar",
    ),
    pytest.param(
        machine(A={"Type": "Pass", "ResultPath": "$.items[*]", "End": True}),
        "/States/A/ResultPath",
        "reference path",
        id="ResultPath that is not a reference path",
    ),
    pytest.param(
        machine(A=task(Catch=[{"ErrorEquals": ["X"], "ResultPath": "$..x", "Next": "A"}])),
        "/States/A/Catch/0/ResultPath",
        "reference path",
        id="Catch ResultPath that is not a reference path",
    ),
    pytest.param(
        machine(A={"Type": "Pass", "Parameters": {"x.$": "not a path"}, "End": True}),
        "/States/A/Parameters/x.$",
        "JSONPath",
        id="Parameters binding that is neither a path nor an intrinsic",
    ),
    pytest.param(
        machine(A={"Type": "Pass", "Parameters": {"x.$": "States.Nope($.a)"}, "End": True}),
        "/States/A/Parameters/x.$",
        "intrinsic",
        id="unknown intrinsic function",
    ),
    pytest.param(
        machine(A={"Type": "Pass", "Resulte": 1, "End": True}),
        "/States/A/Resulte",
        "unknown field",
        id="unknown field",
    ),
    pytest.param(
        {"StartAt": "A", "States": {"A": {"Type": "Succeed"}}, "Timeout": 3},
        "/Timeout",
        "unknown field",
        id="unknown top-level field",
    ),
    pytest.param(
        machine(A={"Type": "Paas", "End": True}), "/States/A/Type", "Paas", id="unknown Type"
    ),
    pytest.param(machine(A={"End": True}), "/States/A", "Type", id="missing Type"),
    pytest.param(
        machine(A={"Type": "Task", "End": True}), "/States/A", "Resource", id="no Resource"
    ),
    pytest.param(
        machine(A=task(TimeoutSeconds="10")),
        "/States/A/TimeoutSeconds",
        "integer",
        id="TimeoutSeconds as a string",
    ),
    pytest.param(
        machine(A=task(TimeoutSeconds=0)),
        "/States/A/TimeoutSeconds",
        "integer",
        id="TimeoutSeconds zero",
    ),
    pytest.param(
        machine(A=task(TimeoutSeconds=10, HeartbeatSeconds=10)),
        "/States/A/HeartbeatSeconds",
        "smaller",
        id="HeartbeatSeconds not below TimeoutSeconds",
    ),
    pytest.param(
        machine(A=task(TimeoutSeconds=10, TimeoutSecondsPath="$.t")),
        "/States/A/TimeoutSecondsPath",
        "both",
        id="TimeoutSeconds and TimeoutSecondsPath together",
    ),
    pytest.param(
        machine(A=task(Retry=[{"ErrorEquals": ["X"], "MaxAttempts": -1}])),
        "/States/A/Retry/0/MaxAttempts",
        "integer",
        id="negative MaxAttempts",
    ),
    pytest.param(
        machine(A=task(Retry=[{"ErrorEquals": ["X"], "BackoffRate": 0.5}])),
        "/States/A/Retry/0/BackoffRate",
        ">= 1",
        id="BackoffRate below one",
    ),
    pytest.param(
        machine(A=task(Retry=[{"ErrorEquals": ["X"], "IntervalSeconds": 0}])),
        "/States/A/Retry/0/IntervalSeconds",
        ">= 1",
        id="IntervalSeconds zero",
    ),
    pytest.param(
        machine(A=task(Retry=[{"ErrorEquals": ["X"], "JitterStrategy": "HALF"}])),
        "/States/A/Retry/0/JitterStrategy",
        "FULL",
        id="unknown JitterStrategy",
    ),
    pytest.param(
        machine(A={"Type": "Wait", "Seconds": 1, "Timestamp": "2024-01-01T00:00:00Z", "End": True}),
        "/States/A",
        "exactly one",
        id="Wait with Seconds and Timestamp",
    ),
    pytest.param(
        machine(A={"Type": "Wait", "End": True}), "/States/A", "exactly one", id="Wait with nothing"
    ),
    pytest.param(
        machine(A={"Type": "Wait", "Timestamp": "tomorrow", "End": True}),
        "/States/A/Timestamp",
        "RFC 3339",
        id="Wait Timestamp that is not RFC 3339",
    ),
    pytest.param(
        machine(A={"Type": "Map", "End": True}),
        "/States/A",
        "ItemProcessor",
        id="Map without ItemProcessor",
    ),
    pytest.param(
        machine(
            P={
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "B1", "States": {"B1": {"Type": "Pass", "Next": "After"}}}
                ],
                "Next": "After",
            },
            After={"Type": "Succeed"},
        ),
        "/States/P/Branches/0/States/B1/Next",
        "After",
        id="Parallel branch Next pointing outside the branch",
    ),
    pytest.param(
        machine(P={"Type": "Parallel", "Branches": [], "End": True}),
        "/States/P/Branches",
        "non-empty",
        id="Parallel without branches",
    ),
    pytest.param(
        machine(
            M={
                "Type": "Map",
                "ItemProcessor": {"StartAt": "Gone", "States": {"I": {"Type": "Succeed"}}},
                "End": True,
            }
        ),
        "/States/M/ItemProcessor/StartAt",
        "Gone",
        id="Map processor StartAt naming no state",
    ),
    pytest.param(
        machine(A={"Type": "Message", "End": True}),
        "/States/A",
        "CorrelationKey",
        id="Message without CorrelationKey",
    ),
    pytest.param(
        machine(**{"a/b~c": {"Type": "Pass", "Next": "Missing"}}),
        "/States/a~1b~0c/Next",
        "Missing",
        id="state names are escaped in the pointer",
    ),
]


@pytest.mark.parametrize(("definition", "pointer", "word"), RULES)
def test_each_rule_reports_its_problem_at_the_json_pointer(
    definition: Any, pointer: str, word: str
) -> None:
    # Given a definition breaking one rule, when it is validated
    found = problems_at(definition)
    # Then the problem is reported at the pointer of the offending field, in words
    assert pointer in found, found
    assert word in found[pointer]


def test_every_problem_is_reported_at_once() -> None:
    # Given a definition breaking many rules in different states
    definition = {
        "StartAt": "Route",
        "TimeoutSeconds": "soon",
        "States": {
            "Route": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "Gone"}],
                "Default": "Work",
            },
            "Work": {
                "Type": "Task",
                "Resource": "work",
                "InputPath": "$.[",
                "TimeoutSeconds": "10",
                "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}],
                "Next": "Done",
                "End": True,
            },
            "Done": {"Type": "Fail", "Error": "E", "ErrorPath": "$.e"},
            "Orphan": {"Type": "Succeed"},
        },
    }
    # When it is validated
    found = problems_at(definition)
    # Then each broken rule is reported, each at its own pointer
    assert set(found) == {
        "/TimeoutSeconds",
        "/States/Route/Choices/0/Next",
        "/States/Work/InputPath",
        "/States/Work/TimeoutSeconds",
        "/States/Work/Retry/0/ErrorEquals",
        "/States/Work/End",
        "/States/Done/ErrorPath",
        "/States/Orphan",
    }


def test_problems_print_as_pointer_and_message() -> None:
    problem = asl.validate(machine(A={"Type": "Pass", "Next": "Missing"}))[0]
    assert str(problem) == "/States/A/Next: no state named 'Missing' in this state machine"


def test_a_valid_definition_has_no_problems() -> None:
    assert asl.validate(json.loads(EXAMPLE.read_text(encoding="utf-8"))) == []


def test_a_valid_definition_as_json_text_has_no_problems() -> None:
    assert asl.validate(EXAMPLE.read_text(encoding="utf-8")) == []


def test_a_valid_definition_as_yaml_text_has_no_problems_and_runs() -> None:
    assert asl.validate(VALID_YAML) == []
    assert run(VALID_YAML, {"who": "YAML"}).output == {"greeting": "Hello, YAML!"}


def test_malformed_json_text_is_one_problem_at_the_root() -> None:
    found = asl.validate('{"StartAt": "A", "States": {')
    assert [problem.path for problem in found] == [""]
    assert "JSON" in found[0].message


def test_malformed_yaml_text_is_one_problem_at_the_root() -> None:
    found = asl.validate("StartAt: A\nStates:\n  A: [unclosed\n")
    assert [problem.path for problem in found] == [""]
    assert "YAML" in found[0].message


def test_a_definition_that_is_not_an_object_is_a_problem() -> None:
    assert [problem.path for problem in asl.validate("[1, 2]")] == [""]


def test_load_raises_with_every_problem() -> None:
    definition = machine(A={"Type": "Pass", "Next": "Missing"}, B={"Type": "Pass"})
    with pytest.raises(asl.DefinitionInvalid) as raised:
        asl.load(definition)
    assert {problem.path for problem in raised.value.problems} == {
        "/States/A/Next",
        "/States/B",
    }


def test_run_refuses_an_invalid_definition() -> None:
    with pytest.raises(asl.DefinitionInvalid):
        run(machine(A={"Type": "Pass"}))


# --------------------------------------------------------------------------- CLI


def test_cli_validate_prints_pointer_lines_and_exits_1(tmp_path: Path) -> None:
    # Given a file with two problems
    path = tmp_path / "bad.asl.json"
    path.write_text(
        json.dumps(machine(A={"Type": "Pass", "Next": "Missing"}, B={"Type": "Succeed"})),
        encoding="utf-8",
    )
    # When it is validated on the command line
    result = CliRunner().invoke(app, ["validate", str(path)])
    # Then each problem is a "file: /pointer: message" line and the exit code is 1
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{path}: /States/A/Next: no state named 'Missing' in this state machine",
        f"{path}: /States/B: state 'B' is not reachable from StartAt",
    ]


def test_cli_validate_accepts_a_valid_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "good.asl.yaml"
    path.write_text(VALID_YAML, encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(path), str(EXAMPLE)])
    assert result.exit_code == 0
    assert result.output.splitlines() == [f"{path}: valid", f"{EXAMPLE}: valid"]


def test_cli_validate_fails_when_any_of_several_files_is_invalid(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(EXAMPLE), str(bad)])
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == f"{EXAMPLE}: valid"
    assert result.output.splitlines()[1].startswith(f"{bad}: /: malformed JSON")
