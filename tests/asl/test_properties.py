"""Properties: whatever the input or the (valid) definition, an execution ends in a result.

* Random JSON inputs through fixed definitions (paths that may name nothing, intrinsics
  over input fields, Choice on input fields, Map over input arrays) end SUCCEEDED or
  FAILED with an ASL error name: no Python exception escapes.
* Random *valid* definitions (forward chains of Pass, Choice, Wait, Succeed, Fail, Task,
  Parallel and Map with random paths, ResultPath and Parameters over the input's keys)
  validate with no problem and run to a result.
* The step cursor is JSON: after every step it survives ``json.dumps``/``json.loads``
  unchanged, and resuming from the JSON copy at any step ends exactly as the run that
  never left memory.

Examples are derandomized (the same every run) and bounded, so the file runs in seconds.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import asl
from orchestrator.asl.errors import KNOWN_STATES_ERRORS
from orchestrator.runtime.local import ExecutionResult
from orchestrator.runtime.local import run as run_here
from tests.support import FakeClock

START = 1_704_067_200.0  # 2024-01-01T00:00:00Z
KEYS = ("a", "b", "n", "name", "items")
CUSTOM_ERRORS = frozenset({"Custom.Failure", "Bad", "Flaky"})
BOUNDED = settings(
    max_examples=100,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def echo(data: Any) -> Any:
    return data


def flaky_handler() -> Callable[[Any], Any]:
    calls = {"n": 0}

    def flaky(data: Any) -> Any:
        calls["n"] += 1
        if calls["n"] % 2:
            raise asl.StatesError("Flaky", "every other call fails")
        return data

    return flaky


def handlers() -> dict[str, Callable[[Any], Any]]:
    return {"echo": echo, "flaky": flaky_handler()}


# --------------------------------------------------------------------------- inputs

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False, width=64)
    | st.text(max_size=8)
    | st.sampled_from(["", "a,b", "2024-01-01T00:00:00Z", "{}", "[1,2]", "x"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)
# Objects whose keys are mostly the ones the definitions read, so paths often hit.
inputs = json_values | st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5)


def assert_ended_with_a_result(result: ExecutionResult, custom: frozenset[str]) -> None:
    assert result.status in ("SUCCEEDED", "FAILED"), result
    if result.status == "SUCCEEDED":
        json.dumps(result.output)
    else:
        # None: a Fail state without Error (AWS reports no error name then).
        assert result.error is None or result.error in KNOWN_STATES_ERRORS | custom, result.error
        assert isinstance(result.cause, str)


def run(definition: Any, data: Any) -> ExecutionResult:
    return run_here(
        definition,
        data,
        handlers=handlers(),
        clock=FakeClock(START),
        rng=random.Random(0),
        max_workers=1,
    )


# --------------------------------------------------------------------------- (a) fixed definitions

PATHS = {
    "StartAt": "Select",
    "States": {
        "Select": {
            "Type": "Pass",
            "InputPath": "$.a",
            "Parameters": {"x.$": "$.b", "first.$": "$.items[0]", "all.$": "$..n"},
            "ResultPath": "$.r.s",
            "OutputPath": "$.r",
            "Next": "Work",
        },
        "Work": {
            "Type": "Task",
            "Resource": "flaky",
            "InputPath": "$.s",
            "ResultSelector": {"got.$": "$.x"},
            "ResultPath": "$.s.result",
            "Retry": [{"ErrorEquals": ["Flaky"], "MaxAttempts": 1}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Done"}],
            "Next": "Done",
        },
        "Done": {"Type": "Succeed", "OutputPath": "$.s"},
    },
}

CHOICE = {
    "StartAt": "Route",
    "States": {
        "Route": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.n", "NumericGreaterThanPath": "$.a", "Next": "Big"},
                {
                    "And": [
                        {"Variable": "$.name", "IsPresent": True},
                        {"Variable": "$.name", "StringMatches": "a*"},
                    ],
                    "Next": "Named",
                },
                {
                    "Not": {"Variable": "$.b", "TimestampLessThan": "2020-01-01T00:00:00Z"},
                    "Next": "Late",
                },
                {
                    "Or": [
                        {"Variable": "$.items", "IsNull": True},
                        {"Variable": "$.a", "BooleanEqualsPath": "$.b"},
                    ],
                    "Next": "Late",
                },
            ],
            "Default": "Reject",
        },
        "Big": {"Type": "Pass", "Result": "big", "End": True},
        "Named": {"Type": "Pass", "Result": "named", "End": True},
        "Late": {"Type": "Wait", "SecondsPath": "$.n", "Next": "Until"},
        "Until": {"Type": "Wait", "TimestampPath": "$.b", "End": True},
        "Reject": {"Type": "Fail", "Error": "Rejected", "CausePath": "$.b"},
    },
}

MAP = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index", "a.$": "$.a"},
            "ToleratedFailurePercentage": 50,
            "ItemProcessor": {
                "StartAt": "Check",
                "States": {
                    "Check": {
                        "Type": "Choice",
                        "Choices": [{"Variable": "$.v", "IsNumeric": True, "Next": "Bad"}],
                        "Default": "Keep",
                    },
                    "Bad": {"Type": "Fail", "Error": "Bad"},
                    "Keep": {"Type": "Task", "Resource": "echo", "OutputPath": "$.v", "End": True},
                },
            },
            "ResultSelector": {"count.$": "States.ArrayLength($)"},
            "ResultPath": "$.mapped",
            "End": True,
        }
    },
}

PARALLEL = {
    "StartAt": "Both",
    "States": {
        "Both": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "L",
                    "States": {"L": {"Type": "Pass", "InputPath": "$.a", "End": True}},
                },
                {
                    "StartAt": "R",
                    "States": {"R": {"Type": "Task", "Resource": "echo", "End": True}},
                },
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
            "End": True,
        },
        "Caught": {"Type": "Pass", "End": True},
    },
}

INTRINSICS = [
    "States.Format('{} and {}', $.a, $.name)",
    "States.StringToJson($.name)",
    "States.JsonToString($)",
    "States.Array($.a, $.b, 1, 'x', null)",
    "States.ArrayPartition($.items, $.n)",
    "States.ArrayContains($.items, $.a)",
    "States.ArrayRange($.n, 10, 3)",
    "States.ArrayGetItem($.items, $.n)",
    "States.ArrayLength($.items)",
    "States.ArrayUnique($.items)",
    "States.Base64Encode($.name)",
    "States.Base64Decode($.name)",
    "States.Hash($.name, 'SHA-256')",
    "States.JsonMerge($.a, $.b, false)",
    "States.MathRandom($.n, 100)",
    "States.MathAdd($.n, $.a)",
    "States.StringSplit($.name, ',')",
    "States.UUID()",
]


@pytest.mark.parametrize(
    ("definition", "custom"),
    [
        pytest.param(PATHS, CUSTOM_ERRORS, id="paths that may name nothing"),
        pytest.param(CHOICE, frozenset({"Rejected"}), id="Choice on input fields"),
        pytest.param(MAP, CUSTOM_ERRORS, id="Map over an input array"),
        pytest.param(PARALLEL, CUSTOM_ERRORS, id="Parallel with a Catch"),
    ],
)
@BOUNDED
@given(data=inputs)
def test_random_inputs_end_in_a_result_or_an_asl_error(
    definition: dict[str, Any], custom: frozenset[str], data: Any
) -> None:
    assert_ended_with_a_result(run(definition, data), custom)


@pytest.mark.parametrize("call", INTRINSICS)
@settings(BOUNDED, max_examples=30)
@given(data=inputs)
def test_intrinsics_over_random_input_fields_end_in_a_result_or_an_asl_error(
    call: str, data: Any
) -> None:
    definition = {
        "StartAt": "Call",
        "States": {"Call": {"Type": "Pass", "Parameters": {"value.$": call}, "End": True}},
    }
    # A Fail state's ErrorPath/CausePath may name any string, so any string is fine there;
    # here only the predefined names may come out.
    assert_ended_with_a_result(run(definition, data), frozenset())


# --------------------------------------------------------------------------- (b) random definitions

# Paths that name something in rich objects most of the time (the fixed definitions above
# cover paths that name nothing).
paths = st.sampled_from(["$", "$", "$.a", "$.items"])
reference_paths = st.sampled_from(["$", "$.a", "$.r", "$.r.s", "$.items[0]"])
literals = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(KEYS), scalars, max_size=3),
)


@st.composite
def templates(draw: st.DrawFn) -> dict[str, Any]:
    """A payload template over the input's keys (paths, intrinsics, context, literals).

    Its fields are named after the same keys, so later states' paths still find data.
    """
    template: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True)):
        kind = draw(st.sampled_from(["path", "intrinsic", "context", "literal"]))
        key = draw(st.sampled_from(KEYS))
        if kind == "path":
            template[f"{name}.$"] = f"$.{key}"
        elif kind == "intrinsic":
            template[f"{name}.$"] = draw(
                st.sampled_from(
                    [
                        f"States.Format('<{{}}>', $.{key})",
                        f"States.JsonToString($.{key})",
                        f"States.Array($.{key})",
                        f"States.ArrayLength($.{key})",
                    ]
                )
            )
        elif kind == "context":
            template[f"{name}.$"] = draw(
                st.sampled_from(["$$.State.Name", "$$.Execution.Input", "$$.State.RetryCount"])
            )
        else:
            template[name] = draw(literals)
    return template


def sometimes(draw: st.DrawFn) -> bool:
    """True one time in four: most states keep the default data flow."""
    return draw(st.integers(min_value=0, max_value=3)) == 0


@st.composite
def data_flow(draw: st.DrawFn, *, parameters: bool = True, result: bool = True) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if sometimes(draw):
        fields["InputPath"] = draw(paths | st.none())
    if sometimes(draw):
        fields["OutputPath"] = draw(paths | st.none())
    if parameters and sometimes(draw):
        fields["Parameters"] = draw(templates())
    if result:
        # Results go beside the input unless drawn otherwise, so the input's keys survive.
        fields["ResultPath"] = draw(reference_paths | st.none()) if sometimes(draw) else "$.r"
    return fields


@st.composite
def comparisons(draw: st.DrawFn) -> dict[str, Any]:
    variable = "$." + draw(st.sampled_from(KEYS))
    operator, operand = draw(
        st.sampled_from(
            [
                ("IsPresent", True),
                ("IsPresent", False),
                ("IsString", True),
                ("IsNumeric", True),
                ("IsNull", False),
                ("NumericGreaterThan", 0),
                ("NumericLessThanEquals", 10.5),
                ("StringEquals", "x"),
                ("StringMatches", "a*"),
                ("BooleanEquals", True),
                ("TimestampGreaterThan", "2020-01-01T00:00:00Z"),
                ("NumericEqualsPath", "$.n"),
                ("StringLessThanPath", "$.name"),
            ]
        )
    )
    rule = {"Variable": variable, operator: operand}
    if operator == "IsPresent" or sometimes(draw):
        return rule
    # Mostly guarded: a comparison on a missing variable is States.Runtime, which would
    # end most runs at their first Choice.
    return {"And": [{"Variable": variable, "IsPresent": True}, rule]}


def rules(depth: int = 2) -> st.SearchStrategy[dict[str, Any]]:
    if depth == 0:
        return comparisons()
    inner = rules(depth - 1)
    return st.one_of(
        comparisons(),
        st.builds(lambda items: {"And": items}, st.lists(inner, min_size=1, max_size=2)),
        st.builds(lambda items: {"Or": items}, st.lists(inner, min_size=1, max_size=2)),
        st.builds(lambda rule: {"Not": rule}, inner),
    )


@st.composite
def machines(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    """A valid state machine: a forward chain, so every state is reachable and it ends."""
    count = draw(st.integers(min_value=1, max_value=5 if depth == 0 else 3))
    names = [f"S{index}" for index in range(count)]
    states = {name: draw(state(names, index, depth)) for index, name in enumerate(names)}
    return {"StartAt": names[0], "States": states}


@st.composite
def state(draw: st.DrawFn, names: list[str], index: int, depth: int) -> dict[str, Any]:
    last = index == len(names) - 1
    kinds = ["Pass", "Wait", "Task"] + (["Parallel", "Map"] if depth < 2 else [])
    kinds += ["Succeed", "Fail"] if last else ["Choice"]
    kind = draw(st.sampled_from(kinds))
    flow: dict[str, Any] = {"End": True} if last else {"Next": names[index + 1]}
    if kind == "Choice":
        later = st.sampled_from(names[index + 1 :])
        choices = draw(
            st.lists(
                st.builds(lambda rule, target: {**rule, "Next": target}, rules(), later),
                min_size=1,
                max_size=3,
            )
        )
        # The Default keeps the chain, so every later state stays reachable.
        return {"Type": "Choice", "Choices": choices, "Default": names[index + 1]}
    if kind == "Succeed":
        return {"Type": "Succeed", **draw(data_flow(parameters=False, result=False))}
    if kind == "Fail":
        return draw(
            st.sampled_from(
                [
                    {"Type": "Fail", "Error": "Custom.Failure", "Cause": "generated"},
                    {"Type": "Fail", "Error": "Custom.Failure", "CausePath": "$.name"},
                    {"Type": "Fail"},
                ]
            )
        )
    if kind == "Wait":
        return {
            "Type": "Wait",
            "Seconds": 0,
            **flow,
            **draw(data_flow(parameters=False, result=False)),
        }
    if kind == "Pass":
        extra = {"Result": draw(literals)} if draw(st.booleans()) else {}
        return {"Type": "Pass", **extra, **flow, **draw(data_flow())}
    if kind == "Task":
        fields = {
            "Type": "Task",
            "Resource": draw(st.sampled_from(["echo", "flaky"])),
            "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": 1}],
            **flow,
            **draw(data_flow()),
        }
        if not last and draw(st.booleans()):
            fields["Catch"] = [{"ErrorEquals": ["States.ALL"], "Next": names[index + 1]}]
        return fields
    if kind == "Parallel":
        branches = draw(st.lists(machines(depth + 1), min_size=1, max_size=2))
        return {
            "Type": "Parallel",
            "Branches": branches,
            **flow,
            **draw(data_flow(parameters=False)),
        }
    items = draw(st.sampled_from(["$", "$.items", "$.items", "$.items"]))
    selector = {"ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"}}
    # No MaxConcurrency: a limit below the item count stops the run (see test_golden's
    # map_max_concurrency_one_runs_items_one_at_a_time).
    return {
        "Type": "Map",
        "ItemsPath": items,
        **(selector if draw(st.booleans()) else {}),
        "ItemProcessor": draw(machines(depth + 1)),
        **flow,
        **draw(data_flow(parameters=False)),
    }


def rich_objects(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    """Objects holding every key the generated paths read, nested ``depth`` times."""
    child = rich_objects(depth - 1) if depth else json_values
    return st.fixed_dictionaries(
        {
            "a": child,
            "b": json_values,
            "n": st.integers(min_value=0, max_value=5),
            "name": st.text(max_size=6),
            "items": st.lists(child, max_size=3),
        }
    )


map_friendly_inputs = rich_objects(2) | inputs


@pytest.mark.slow  # fuzzing
@BOUNDED
@given(definition=machines(), data=map_friendly_inputs)
def test_random_valid_definitions_validate_and_run_to_a_result(
    definition: dict[str, Any], data: Any
) -> None:
    assert asl.validate(definition) == []
    assert_ended_with_a_result(run(definition, data), CUSTOM_ERRORS)


# --------------------------------------------------------------------------- (c) the cursor is JSON


class Driver:
    """Carries out the step API's commands as the runtime will, on fake time."""

    def __init__(self, definition: asl.Definition, data: Any) -> None:
        self.definition = definition
        self.now = START
        self.cursor = asl.start(definition, data, now=START)
        self.context = asl.execution_context(
            execution_id="e-1", name="golden", input=data, start_time=START
        )
        self.tools = handlers()
        self.events: list[asl.Event] = []
        self.tasks: list[asl.RunTask] = []
        self.timers: list[tuple[float, int, asl.TimerFired]] = []

    def run(self, *, copy_at: int | None) -> tuple[Any, ...]:
        """Step to the end; before step ``copy_at`` continue from a JSON copy of the cursor."""
        for count in range(10_000):
            text = json.dumps(self.cursor)
            assert json.loads(text) == self.cursor
            if count == copy_at:
                self.cursor = json.loads(text)
            event = self.events.pop(0) if self.events else None
            result = asl.step(
                self.definition,
                self.cursor,
                event,
                now=self.now,
                context=self.context,
                rng=random.Random(count),
            )
            self.cursor = result.cursor
            end = self.obey(result.command)
            if end is not None:
                return end
        raise AssertionError("the execution did not end in 10,000 steps")

    def obey(self, command: asl.Command) -> tuple[Any, ...] | None:
        if isinstance(command, asl.Succeeded):
            return ("SUCCEEDED", command.output)
        if isinstance(command, asl.Failed):
            return ("FAILED", command.error, command.cause)
        if isinstance(command, asl.RunTask):
            self.tasks.append(command)
        elif isinstance(command, asl.WaitUntil):
            fired = asl.TimerFired(path=command.path, token=command.token)
            heapq.heappush(self.timers, (command.until, command.token, fired))
        elif isinstance(command, asl.Idle):
            return self.idle()
        return None

    def idle(self) -> tuple[Any, ...] | None:
        if self.tasks:
            self.events.extend(carry_out(task, self.tools) for task in self.tasks)
            self.tasks.clear()
        elif self.timers:
            until, _, fired = heapq.heappop(self.timers)
            self.now = max(self.now, until)
            self.events.append(fired)
        else:
            return ("WAITING",)
        return None


def drive(definition: asl.Definition, data: Any, *, copy_at: int | None) -> tuple[Any, ...]:
    return Driver(definition, data).run(copy_at=copy_at)


def carry_out(task: asl.RunTask, tools: dict[str, Callable[[Any], Any]]) -> asl.Event:
    try:
        output = tools[task.resource](task.input)
    except asl.StatesError as exc:
        return asl.TaskFailed(path=task.path, token=task.token, error=exc.name, cause=exc.cause)
    return asl.TaskSucceeded(path=task.path, token=task.token, output=output)


ROUND_TRIP = asl.load(
    {
        "StartAt": "Prepare",
        "States": {
            "Prepare": {
                "Type": "Pass",
                "Parameters": {"items.$": "States.Array($, 1, 'two')"},
                "Next": "Pause",
            },
            "Pause": {"Type": "Wait", "Seconds": 5, "Next": "Both"},
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": "Each",
                        "States": {
                            "Each": {
                                "Type": "Map",
                                "ItemsPath": "$.items",
                                "ItemProcessor": {
                                    "StartAt": "Work",
                                    "States": {
                                        "Work": {
                                            "Type": "Task",
                                            "Resource": "flaky",
                                            "Retry": [
                                                {"ErrorEquals": ["Flaky"], "IntervalSeconds": 2}
                                            ],
                                            "End": True,
                                        }
                                    },
                                },
                                "End": True,
                            }
                        },
                    },
                    {
                        "StartAt": "Echo",
                        "States": {"Echo": {"Type": "Task", "Resource": "echo", "End": True}},
                    },
                ],
                "ResultSelector": {"mapped.$": "$[0]", "echoed.$": "$[1]"},
                "Next": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    }
)


@BOUNDED
@given(data=json_values, copy_at=st.integers(min_value=0, max_value=40))
def test_resuming_from_a_json_copy_of_the_cursor_ends_the_same(data: Any, copy_at: int) -> None:
    assert drive(ROUND_TRIP, data, copy_at=copy_at) == drive(ROUND_TRIP, data, copy_at=None)


@pytest.mark.slow  # fuzzing
@settings(BOUNDED, max_examples=60)
@given(
    definition=machines(), data=map_friendly_inputs, copy_at=st.integers(min_value=0, max_value=30)
)
def test_random_definitions_resume_from_a_json_copy_of_the_cursor(
    definition: dict[str, Any], data: Any, copy_at: int
) -> None:
    loaded = asl.load(definition)
    assert drive(loaded, data, copy_at=copy_at) == drive(loaded, data, copy_at=None)
