"""The interpreter's fast paths give what the slow ones give (issue 13, speed work).

* a plain JSONata path (``$states.input.a.b``, ``$name.field``) is read in Python only
  when the engine's answer is certain: for any JSON value, the result equals the
  engine's;
* a template is evaluated through a cached plan: equal to a walk of the template, and
  a template without expressions is returned as it is;
* ``_history_event`` builds the same frozen HistoryEvent as its constructor.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.asl import interpreter, jsonata
from orchestrator.asl.errors import StatesError
from orchestrator.asl.model import PassState

BOUNDED = settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)  # the engine takes 64 bits
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3)
    ),
    max_leaves=8,
)
PATHS = [
    "$states.input.a",
    "$states.input.a.b",
    "$states.input.a.b.c",
    "$states.context.a.b",
    "$v",
    "$v.a",
    "$v.a.b",
]


def scope(data: Any) -> jsonata.Scope:
    return jsonata.Scope(
        input=data,
        context=data,
        variables={"v": data},
        rng=random.Random(0),
        new_uuid=lambda: "u",
    )


def engine_only(text: str, where: jsonata.Scope) -> Any:
    """The answer of the engine alone (the plain-path reader bypassed)."""
    expression = dataclasses.replace(jsonata._expression("{% " + text + " %}"), path=None)
    try:
        return ("value", jsonata._run(expression, where, "Output"))
    except StatesError as exc:
        return ("error", exc.cause)


def answer(text: str, where: jsonata.Scope) -> Any:
    try:
        return ("value", jsonata.evaluate("{% " + text + " %}", where, field="Output"))
    except StatesError as exc:
        return ("error", exc.cause)


def test_plain_paths_are_recognised_and_others_are_not() -> None:
    def steps(text: str) -> Any:
        return jsonata._expression("{% " + text + " %}").path

    assert steps("$states.input.a.b") == ("input", "a", "b")
    assert steps(" $states.context.Task.Token ") == ("context", "Task", "Token")
    assert steps("$count") == ("$", "count")
    assert steps("$order.total") == ("$", "order", "total")
    for other in ("$states.input.a[0]", "$states", "$count + 1", "a.b", "$random", "$uuid.x"):
        assert steps(other) is None, other


def test_a_variable_named_after_a_function_reads_as_the_engine_reads_it() -> None:
    where = jsonata.Scope(
        input={},
        context={},
        variables={"count": 3, "random": 5},
        rng=random.Random(0),
        new_uuid=lambda: "u",
    )
    for text in ("$count", "$random", "$count.x"):
        assert answer(text, where) == engine_only(text, where), text
    assert answer("$count", where) == ("value", 3)


@BOUNDED
@given(data=JSON, text=st.sampled_from(PATHS))
def test_a_plain_path_answers_as_the_engine_does(data: Any, text: str) -> None:
    where = scope({"a": data, "b": data})
    assert answer(text, where) == engine_only(text, where)
    assert answer(text, scope(data)) == engine_only(text, scope(data))


@BOUNDED
@given(data=JSON)
def test_a_planned_template_equals_a_walk_of_it(data: Any) -> None:
    template = {
        "x": "{% $states.input %}",
        "list": [1, "{% $states.input.a %}", {"lit": "text"}],
        "static": {"k": [1, 2]},
    }
    where = scope({"a": data})
    out = jsonata.evaluate_template(template, where, field="Output")
    assert out == {
        "x": {"a": engine_only("$states.input.a", where)[1]}
        if engine_only("$states.input.a", where)[0] == "value"
        else out["x"],
        "list": [1, out["list"][1], {"lit": "text"}],
        "static": {"k": [1, 2]},
    }
    assert out["static"] is template["static"]  # literal parts are not copied


def test_a_template_error_names_the_inner_field() -> None:
    with pytest.raises(StatesError) as caught:
        jsonata.evaluate_template(
            {"a": [0, {"b": "{% $states.input.missing %}"}]}, scope({}), field="Output"
        )
    assert "'Output/a[1]/b'" in caught.value.cause
    assert "returned nothing (undefined)" in caught.value.cause


def test_the_fast_history_event_equals_the_constructor() -> None:
    state = PassState(name="P", type="Pass")
    fast = interpreter._history_event(
        (1, 2), state, "caught", {"in": 1}, 3, 1.5, 2.5, [1], "E", "C", {"v": 1}
    )
    slow = interpreter.HistoryEvent(
        path=(1, 2),
        state="P",
        type="Pass",
        status="caught",
        input={"in": 1},
        output=[1],
        error="E",
        cause="C",
        attempt=3,
        entered_at=1.5,
        exited_at=2.5,
        assigned={"v": 1},
    )
    assert fast == slow
    assert {f.name for f in dataclasses.fields(slow)} == set(interpreter._SET)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.state = "Q"  # type: ignore[misc]
