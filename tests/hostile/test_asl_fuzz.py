"""Fuzzing the pure engine (issue 11): garbled definitions and inputs end cleanly.

The only allowed outcomes are the documented ones: ``asl.validate`` returns a list of
problems, and a definition it accepts runs to a Succeeded or Failed end whose output
is JSON, with a cursor that is JSON at every step. Anything else (an exception, a
hang) is a defect. Each example is bounded: a deadline per example, and an event
limit far below AWS's so a loop ends within milliseconds.

The ``slow`` test searches widely; the quick one replays a fixed, derandomized
sample so the quick tier still catches a regression.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import asl
from orchestrator.asl import limits

NOW = 1_700_000_000.0
MAX_EVENTS = 200
MAX_STEPS = 2_000

FIELDS = [
    "Type", "Next", "End", "Comment", "InputPath", "OutputPath", "Parameters", "ResultPath",
    "ResultSelector", "Result", "Retry", "Catch", "Resource", "TimeoutSeconds",
    "TimeoutSecondsPath", "HeartbeatSeconds", "Choices", "Default", "Variable",
    "StringEquals", "NumericGreaterThan", "BooleanEquals", "IsPresent", "And", "Not",
    "Seconds", "SecondsPath", "Timestamp", "TimestampPath", "Error", "Cause", "ErrorPath",
    "Branches", "ItemsPath", "ItemSelector", "ItemProcessor", "MaxConcurrency",
    "MaxConcurrencyPath", "ToleratedFailureCountPath", "ToleratedFailurePercentagePath",
    "ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds",
    "JitterStrategy", "StartAt", "States", "v.$", "x.$", "ItemReader", "Assign",
]  # fmt: skip
TYPES = ["Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map", "Bogus"]
NAMES = ["A", "B", "C"]
TEXT = [
    "$", "$.a", "$.a[0]", "$..b", "$$.Execution.Id", "$.a[?(@.x > 1)]", "$[(@.length-1)]",
    "States.ALL", "States.Runtime", "States.TaskFailed", "E", "r",
    "States.MathRandom(0, 10)", "States.UUID()", "States.StringToJson($.s)",
    "States.ArrayRange(0, 99999, 1)", "States.Format('{}', $.a)", "States.JsonMerge($, $, false)",
    "2024-01-01T00:00:00Z", "\ud800", "", *NAMES, *TYPES,
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.builds(lambda: 10**5000),  # more digits than Python will print
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(TEXT),
    st.text(max_size=8),
)
json_values: st.SearchStrategy[Any] = st.deferred(
    lambda: (
        scalars
        | st.lists(json_values, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=4), json_values, max_size=4)
    )
)


@st.composite
def states(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    """A state object: mostly the right fields, with garbled values now and then."""
    state: dict[str, Any] = {"Type": draw(st.sampled_from(TYPES))}
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=5)):
        state[field] = draw(field_values(field, depth))
    if draw(st.booleans()):
        state["Next"] = draw(st.sampled_from(NAMES))
    else:
        state["End"] = True
    return state


def field_values(field: str, depth: int) -> st.SearchStrategy[Any]:
    if field in ("Branches",) and depth < 2:
        return st.lists(machines(depth + 1), min_size=1, max_size=2)
    if field in ("ItemProcessor",) and depth < 2:
        return machines(depth + 1)
    if field == "Choices":
        rule = st.fixed_dictionaries(
            {"Variable": st.sampled_from(TEXT), "Next": st.sampled_from(NAMES)},
            optional={"StringEquals": scalars, "NumericGreaterThan": scalars, "IsPresent": scalars},
        )
        return st.lists(rule, max_size=3)
    if field in ("Retry", "Catch"):
        item = st.fixed_dictionaries(
            {"ErrorEquals": st.lists(st.sampled_from(TEXT), max_size=2)},
            optional={
                "Next": st.sampled_from(NAMES),
                "MaxAttempts": scalars,
                "BackoffRate": scalars,
                "IntervalSeconds": scalars,
                "JitterStrategy": st.sampled_from(["FULL", "NONE", "X"]),
            },
        )
        return st.lists(item, max_size=2)
    return json_values


@st.composite
def machines(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    return {
        "StartAt": draw(st.sampled_from(NAMES)),
        "States": {name: draw(states(depth)) for name in names},
    }


def drive(defn: asl.Definition, data: Any) -> asl.Command:
    """Run a definition with made-up task results, checking every step's cursor."""
    cursor = asl.start(defn, data, now=NOW, seed=1)
    pending: list[asl.Event] = []
    now, attempts = NOW, 0
    for _ in range(MAX_STEPS):
        event = pending.pop(0) if pending else None
        result = asl.step(defn, cursor, event, now=now, max_events=MAX_EVENTS)
        cursor = result.cursor
        json.dumps(cursor, allow_nan=False)  # the checkpoint stays JSON
        command = result.command
        if isinstance(command, asl.Succeeded | asl.Failed):
            return command
        if isinstance(command, asl.RunTask):
            attempts += 1
            if attempts % 3:
                pending.append(
                    asl.TaskSucceeded(path=command.path, token=command.token, output=command.input)
                )
            else:
                pending.append(asl.TaskFailed(path=command.path, token=command.token, error="E"))
        elif isinstance(command, asl.WaitUntil):
            now = max(now, min(command.until, now + 10**6))
            pending.append(asl.TimerFired(path=command.path, token=command.token))
        elif isinstance(command, asl.WaitForMessage):
            pending.append(asl.MessageReceived(path=command.path, token=command.token, data=1))
    raise AssertionError(f"no end after {MAX_STEPS} steps")


def check(machine: Any, data: Any) -> None:
    problems = asl.validate(machine)
    assert isinstance(problems, list)
    assert all(isinstance(p, asl.Problem) for p in problems)
    if problems:
        return
    end = drive(asl.load(machine), data)
    if isinstance(end, asl.Succeeded):
        assert limits.json_problem(end.output) is None
    else:
        assert isinstance(end.error, str)
        assert isinstance(end.cause, str)


def check_text(text: str) -> None:
    problems = asl.validate(text)
    assert isinstance(problems, list)


def garble(text: str, cut: int, insert: str) -> str:
    at = cut % (len(text) + 1)
    return text[:at] + insert + text[at + len(insert) :]


FUZZ = settings(
    deadline=2_000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.slow
@settings(FUZZ, max_examples=1500)
@given(machines(), json_values)
def test_garbled_definitions_validate_or_run_to_an_end(machine: Any, data: Any) -> None:
    check(machine, data)


@settings(FUZZ, max_examples=20, derandomize=True)
@given(machines(), json_values)
def test_garbled_definitions_quick_deterministic_sample(machine: Any, data: Any) -> None:
    check(machine, data)


@pytest.mark.slow
@settings(FUZZ, max_examples=1000)
@given(
    machines(),
    st.integers(min_value=0),
    st.sampled_from(["[", "{", "*a", "&a", "!!", ":", "\ud800", '"', "1e400", "NaN", "\n  - "]),
)
def test_garbled_definition_text_gives_problems(machine: Any, cut: int, insert: str) -> None:
    for text in _texts(machine):
        check_text(garble(text, cut, insert))


@settings(FUZZ, max_examples=20, derandomize=True)
@given(
    machines(), st.integers(min_value=0), st.sampled_from(["[", "*a", "!!set", "1e400", "\ud800"])
)
def test_garbled_definition_text_quick_deterministic_sample(
    machine: Any, cut: int, insert: str
) -> None:
    for text in _texts(machine):
        check_text(garble(text, cut, insert))


def _texts(machine: Any) -> list[str]:
    try:
        return [json.dumps(machine), _yaml(machine)]
    except ValueError:  # an integer too long to write as text: nothing to garble
        return []


def _yaml(machine: Any) -> str:
    import yaml

    return str(yaml.safe_dump(machine, allow_unicode=True))
