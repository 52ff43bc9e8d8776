"""Hostile and odd input to the pure engine (issue 11): every case ends cleanly.

Each test here failed (hung, raised or accepted the value) before the fix it covers.
"""

from __future__ import annotations

import copy
import datetime
import json
import random
from typing import Any

import pytest

from orchestrator import asl
from orchestrator.asl import interpreter, intrinsics, limits, retry
from orchestrator.asl.model import Retrier
from orchestrator.runtime.local import ExecutionResult, run

NOW = 1_700_000_000.0
HUGE = 10**400


def only(problems: list[asl.Problem]) -> asl.Problem:
    assert len(problems) == 1, problems
    return problems[0]


# --- runaway executions -----------------------------------------------------------


def test_a_choice_that_loops_to_itself_fails_at_the_event_limit() -> None:
    machine = {
        "StartAt": "Loop",
        "States": {
            "Loop": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.stop", "BooleanEquals": True, "Next": "Done"}],
                "Default": "Loop",
            },
            "Done": {"Type": "Succeed"},
        },
    }
    result = run(machine, {"stop": False})
    assert result.status == "FAILED"
    assert result.error == "States.Runtime"
    assert "25,000 history events" in result.cause
    assert len(result.history) == limits.MAX_EVENTS_PER_EXECUTION + 1


def test_the_event_limit_is_a_step_parameter_no_driver_can_skip() -> None:
    defn = asl.load(
        {
            "StartAt": "A",
            "States": {
                "A": {"Type": "Pass", "Next": "B"},
                "B": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.n", "IsPresent": True, "Next": "A"}],
                    "Default": "End",
                },
                "End": {"Type": "Succeed"},
            },
        }
    )
    cursor = asl.start(defn, {"n": 1}, now=NOW)
    commands = []
    for _ in range(20):
        result = asl.step(defn, cursor, now=NOW, max_events=5)
        cursor = result.cursor
        commands.append(result.command)
        if isinstance(result.command, asl.Failed):
            break
    assert commands[-1] == asl.Failed(
        error="States.Runtime", cause="The execution reached the limit of 5 history events"
    )
    assert len(commands) == 6
    assert asl.result_of(cursor) == commands[-1]


def test_an_execution_that_ends_on_the_last_allowed_event_succeeds() -> None:
    defn = asl.load(
        {
            "StartAt": "A",
            "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "End": True}},
        }
    )
    cursor = asl.start(defn, 1, now=NOW)

    def outcome(limit: int) -> asl.Command:
        state = cursor
        for _ in range(5):
            result = asl.step(defn, state, now=NOW, max_events=limit)
            state = result.cursor
            if isinstance(result.command, asl.Succeeded | asl.Failed):
                return result.command
        raise AssertionError("no end")

    assert outcome(1) == asl.Failed(
        error="States.Runtime", cause="The execution reached the limit of 1 history events"
    )
    assert outcome(2) == asl.Succeeded(output=1)


# --- step is pure -----------------------------------------------------------------


def test_step_and_reissue_leave_the_cursor_they_are_given_untouched() -> None:
    defn = asl.load(
        {
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "MaxConcurrency": 1,
                    "ItemProcessor": {
                        "StartAt": "T",
                        "States": {"T": {"Type": "Task", "Resource": "r", "End": True}},
                    },
                    "Retry": [{"ErrorEquals": ["E"], "IntervalSeconds": 1}],
                    "End": True,
                }
            },
        }
    )
    cursor = asl.start(defn, [1, 2, 3], now=NOW)
    seen = 0
    for _ in range(50):
        before = copy.deepcopy(cursor)
        asl.reissue(defn, cursor, now=NOW)
        assert cursor == before
        result = asl.step(defn, cursor, now=NOW)
        assert cursor == before
        command = result.command
        if isinstance(command, asl.RunTask):
            seen += 1
            event: Any = asl.TaskSucceeded(path=command.path, token=command.token, output=seen)
            result = asl.step(defn, result.cursor, event, now=NOW)
        cursor = result.cursor
        if isinstance(result.command, asl.Succeeded):
            break
    assert asl.result_of(cursor) == asl.Succeeded(output=[1, 2, 3])


# --- randomness is passed in ------------------------------------------------------


def test_no_module_level_random_generator_in_the_engine() -> None:
    for module in (interpreter, intrinsics, retry):
        # interpreter._NO_RANDOM is no generator: every draw from it raises.
        shared = [
            n
            for n, v in vars(module).items()
            if isinstance(v, random.Random) and not isinstance(v, interpreter._NoRandom)
        ]
        assert shared == [], module.__name__


def test_the_default_randomness_is_seeded_from_the_cursor() -> None:
    defn = asl.load(
        {
            "StartAt": "P",
            "States": {
                "P": {
                    "Type": "Pass",
                    "Parameters": {"n.$": "States.MathRandom(0, 1000000)", "u.$": "States.UUID()"},
                    "End": True,
                }
            },
        }
    )
    one = asl.start(defn, {}, now=NOW, seed=1)
    two = asl.start(defn, {}, now=NOW, seed=2)
    first = asl.step(defn, one, now=NOW).cursor["root"]
    again = asl.step(defn, one, now=NOW).cursor["root"]
    other = asl.step(defn, two, now=NOW).cursor["root"]
    assert first == again
    assert first != other


# --- numbers too large ------------------------------------------------------------


def _wait_with(field: str, value: Any) -> ExecutionResult:
    machine = {"StartAt": "W", "States": {"W": {"Type": "Wait", field: "$.v", "End": True}}}
    return run(machine, {"v": value})


@pytest.mark.parametrize("value", [HUGE, -1, 1.5, "10", limits.MAX_SECONDS + 1])
def test_a_seconds_path_out_of_range_fails_the_execution_with_states_runtime(value: Any) -> None:
    result = _wait_with("SecondsPath", value)
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "SecondsPath '$.v' must name an integer" in (result.cause or "")


def test_a_400_digit_timeout_seconds_path_fails_the_execution() -> None:
    machine = {
        "StartAt": "T",
        "States": {
            "T": {"Type": "Task", "Resource": "r", "TimeoutSecondsPath": "$.t", "End": True}
        },
    }
    result = run(machine, {"t": HUGE}, handlers={"r": lambda data: data})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "an integer of 401 digits" in (result.cause or "")


def _map(**fields: Any) -> dict[str, Any]:
    return {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "F",
                    "States": {"F": {"Type": "Fail", "Error": "Bad"}},
                },
                "ItemsPath": "$.items",
                "End": True,
                **fields,
            }
        },
    }


def test_a_400_digit_tolerated_failure_count_tolerates_every_failure() -> None:
    result = run(_map(ToleratedFailureCountPath="$.n"), {"items": [1, 2], "n": HUGE})
    assert result.status == "SUCCEEDED"


def test_a_tolerated_failure_percentage_above_100_fails_with_states_runtime() -> None:
    result = run(_map(ToleratedFailurePercentagePath="$.p"), {"items": [1], "p": 101})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "from 0 to 100" in (result.cause or "")


def test_max_concurrency_path_zero_means_no_limit() -> None:
    machine = _map(MaxConcurrencyPath="$.c")
    machine["States"]["M"]["ItemProcessor"]["States"] = {"F": {"Type": "Pass", "End": True}}
    result = run(machine, {"items": [1, 2, 3], "c": 0})
    assert (result.status, result.output) == ("SUCCEEDED", [1, 2, 3])


def test_retry_backoff_does_not_overflow_after_thousands_of_attempts() -> None:
    retrier = Retrier(error_equals=("E",), interval_seconds=1.0, backoff_rate=2.0)
    assert retry.backoff(retrier, 5000, random.Random(0)) == retry.MAX_BACKOFF_SECONDS
    capped = Retrier(error_equals=("E",), backoff_rate=10.0, max_delay_seconds=30)
    assert retry.backoff(capped, 2000, random.Random(0)) == 30
    assert retry.backoff(capped, 1, random.Random(0)) == 10


def test_string_to_json_of_1e400_is_an_intrinsic_failure_not_inf() -> None:
    machine = {
        "StartAt": "P",
        "States": {
            "P": {"Type": "Pass", "Parameters": {"v.$": "States.StringToJson($.t)"}, "End": True}
        },
    }
    result = run(machine, {"t": "1e400"})
    assert (result.status, result.error) == ("FAILED", "States.IntrinsicFailure")
    assert "too large" in (result.cause or "")


# --- non-JSON input ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (float("nan"), "nan is not a JSON number"),
        ({"a": [float("inf")]}, "at /a/0: inf is not a JSON number"),
        ({"d": {1, 2}}, "at /d: a set is not a JSON value"),
        ({"s": "\ud800"}, "at /s: text with a lone surrogate"),
        ({1: 2}, "object key 1 is not a string"),
    ],
)
def test_an_input_that_is_not_json_fails_the_execution_at_start(value: Any, reason: str) -> None:
    result = run({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}, value)
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert reason in (result.cause or "")


# --- validate returns problems, never raises --------------------------------------


def test_json_nested_100000_deep_is_a_problem() -> None:
    text = "[" * 100_000 + "]" * 100_000
    problem = only(asl.validate(text))
    assert "nested" in problem.message


def test_a_dict_nested_too_deep_is_a_problem() -> None:
    deep: Any = 1
    for _ in range(limits.MAX_DEPTH + 5):
        deep = {"a": deep}
    machine = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": deep, "End": True}}}
    problem = only(asl.validate(machine))
    assert problem.path.startswith("/States/P/Result/a/a")
    assert "nested deeper than 512 levels" in problem.message


def test_yaml_nested_too_deep_is_a_problem() -> None:
    text = "StartAt: A\nStates: " + "[" * 50_000 + "]" * 50_000
    assert asl.validate(text) != []


def test_integer_state_names_and_start_at_in_yaml_are_problems() -> None:
    text = "StartAt: 1\nStates:\n  1:\n    Type: Succeed\n"
    problem = only(asl.validate(text))
    assert problem.path == "/States"
    assert "object key 1 is not a string" in problem.message
    problems = asl.validate("StartAt: 1\nStates:\n  A:\n    Type: Succeed\n")
    assert any(p.path == "/StartAt" for p in problems)


def test_a_definition_over_1_mb_is_a_problem() -> None:
    machine = {
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "Result": "x" * limits.MAX_DEFINITION_BYTES, "End": True}},
    }
    for source in (machine, json.dumps(machine)):
        problem = only(asl.validate(source))
        assert "at most 1,048,576 are allowed" in problem.message


BILLION_LAUGHS = """
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
StartAt: A
States: {A: {Type: Pass, Result: *i, End: true}}
"""


def test_yaml_aliases_are_refused_so_billion_laughs_cannot_expand() -> None:
    problem = only(asl.validate(BILLION_LAUGHS))
    assert "aliases (*name) are not allowed" in problem.message


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2024-01-01", "a date is not a JSON value"),
        ("!!binary aGVsbG8=", "a bytes is not a JSON value"),
        ("!!set {a, b}", "a set is not a JSON value"),
        (".inf", "inf is not a JSON number"),
        (".nan", "nan is not a JSON number"),
        ("!!timestamp 2024-01-01T00:00:00Z", "a datetime is not a JSON value"),
    ],
)
def test_yaml_values_that_json_has_not_are_problems_with_a_pointer(value: str, reason: str) -> None:
    text = f"StartAt: A\nStates:\n  A:\n    Type: Pass\n    Result: {value}\n    End: true\n"
    problem = only(asl.validate(text))
    assert problem.path == "/States/A/Result"
    assert reason in problem.message


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', '{"a": 1e400}'])
def test_json_text_with_non_finite_numbers_is_a_problem(text: str) -> None:
    assert "malformed JSON" in only(asl.validate(text)).message


def test_a_lone_surrogate_in_a_result_is_a_problem() -> None:
    machine = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "\ud800", "End": True}}}
    problem = only(asl.validate(machine))
    assert problem.path == "/States/P/Result"
    assert "lone surrogate" in problem.message
    assert only(asl.validate(json.dumps(machine))).path == "/States/P/Result"


@pytest.mark.parametrize("output", [float("nan"), {"when": datetime.date(2024, 1, 1)}])
def test_a_task_result_that_is_not_json_fails_the_state_with_states_runtime(output: Any) -> None:
    machine = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": "r",
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Succeed"},
        },
    }
    result = run(machine, {}, handlers={"r": lambda data: output})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "The result of the Task is not JSON" in (result.cause or "")


def test_an_integer_too_long_to_print_is_a_problem_not_a_value_error() -> None:
    huge = 10**5000
    machine = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": huge, "End": True}}}
    problem = only(asl.validate(machine))
    assert (problem.path, "too large" in problem.message) == ("/States/P/Result", True)
    result = run({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}, {"a": huge})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")


# --- expression time and Map items are step parameters (settings in the runtime) ----

#: A JSONata expression that takes well over a millisecond (a map over 100,000 items).
EXPENSIVE = "{% $sum($map([1..100000], function($v) { $v * 2 })) %}"


def drive(defn: asl.Definition, data: Any, **limits_given: Any) -> asl.Command:
    """Step an execution with no tasks to its end, with the given step limits."""
    cursor = asl.start(defn, data, now=NOW)
    for _ in range(100):
        result = asl.step(defn, cursor, now=NOW, **limits_given)
        cursor = result.cursor
        if isinstance(result.command, asl.Succeeded | asl.Failed):
            return result.command
    raise AssertionError("no end")


def test_the_expression_time_limit_is_a_step_parameter() -> None:
    defn = asl.load(
        {
            "QueryLanguage": "JSONata",
            "StartAt": "A",
            "States": {"A": {"Type": "Pass", "Output": EXPENSIVE, "End": True}},
        }
    )
    failed = drive(defn, {}, expression_timeout_ms=1)
    assert isinstance(failed, asl.Failed)
    assert failed.error == "States.QueryEvaluationError"
    assert "D1012" in failed.cause  # the engine's timeout
    # ... and a generous limit lets the same expression finish
    assert drive(defn, {}, expression_timeout_ms=60_000) == asl.Succeeded(output=10000100000)


def map_over_items(query_language: str) -> asl.Definition:
    items = "{% $states.input %}" if query_language == "JSONata" else None
    state: dict[str, Any] = {
        "Type": "Map",
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
        "End": True,
    }
    if items is not None:
        state["Items"] = items
    return asl.load({"QueryLanguage": query_language, "StartAt": "M", "States": {"M": state}})


@pytest.mark.parametrize("query_language", ["JSONPath", "JSONata"])
def test_a_map_over_more_items_than_the_limit_fails_with_states_runtime(
    query_language: str,
) -> None:
    defn = map_over_items(query_language)
    assert drive(defn, [1, 2, 3], max_map_items=3) == asl.Succeeded(output=[1, 2, 3])
    failed = drive(defn, [1, 2, 3, 4], max_map_items=3)
    assert failed == asl.Failed(
        error="States.Runtime",
        cause="Map state 'M' has 4 items, more than the limit of 3 (ORCHESTRATOR_MAX_MAP_ITEMS)",
    )


def test_the_default_map_item_limit_is_above_any_array_a_full_payload_holds() -> None:
    # The most items 256 KiB of JSON can carry are one-digit numbers: `[0,0,...,0]`.
    payload = 256 * 1024
    most = (payload - 1) // 2
    assert len(json.dumps([0] * most, separators=(",", ":"))) <= payload
    assert len(json.dumps([0] * (most + 1), separators=(",", ":"))) > payload
    assert most < limits.MAX_MAP_ITEMS
