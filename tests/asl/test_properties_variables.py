"""Properties of workflow variables and JSONata states (issue 13).

* A value assigned to a variable (by a JSONPath or a JSONata state) is what a later
  state reads back, for any JSON value.
* ``$states.input`` through a JSONata Output is the input itself, for any JSON input.
* Every step leaves its input cursor untouched, and the cursor, variables included,
  survives ``json.dumps``/``json.loads``: resuming from the JSON copy ends the same.

Examples are derandomized and bounded, so the file runs in seconds.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import asl

BOUNDED = settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet="abcxyz", min_size=1, max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)


def run_to_end(defn: asl.Definition, data: Any) -> asl.Succeeded | asl.Failed:
    """Step to the end, checking purity and a JSON round trip of the cursor each step."""
    cursor = asl.start(defn, data, now=0.0)
    for _ in range(100):
        before = copy.deepcopy(cursor)
        result = asl.step(defn, cursor, now=0.0, rng=random.Random(1))
        assert cursor == before
        cursor = json.loads(json.dumps(result.cursor))
        if isinstance(result.command, asl.Succeeded | asl.Failed):
            return result.command
    raise AssertionError("did not end")


JSONPATH_ROUND_TRIP = asl.load(
    {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Assign": {"v.$": "$.value"}, "Next": "B"},
            "B": {"Type": "Pass", "Result": 0, "Next": "C"},
            "C": {"Type": "Pass", "Parameters": {"v.$": "$v"}, "End": True},
        },
    }
)
JSONATA_ROUND_TRIP = asl.load(
    {
        "QueryLanguage": "JSONata",
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Assign": {"v": "{% $states.input.value %}"}, "Next": "B"},
            "B": {"Type": "Pass", "Output": 0, "Next": "C"},
            "C": {"Type": "Pass", "Output": {"v": "{% $v %}"}, "End": True},
        },
    }
)
JSONATA_IDENTITY = asl.load(
    {
        "QueryLanguage": "JSONata",
        "StartAt": "A",
        "States": {"A": {"Type": "Pass", "Output": "{% $states.input %}", "End": True}},
    }
)


@BOUNDED
@given(value=JSON)
def test_a_jsonpath_variable_reads_back_what_was_assigned(value: Any) -> None:
    assert run_to_end(JSONPATH_ROUND_TRIP, {"value": value}) == asl.Succeeded(output={"v": value})


@BOUNDED
@given(value=JSON)
def test_a_jsonata_variable_reads_back_what_was_assigned(value: Any) -> None:
    # null included: JSONata tells null (a value) from undefined (which fails a field).
    assert run_to_end(JSONATA_ROUND_TRIP, {"value": value}) == asl.Succeeded(output={"v": value})


@BOUNDED
@given(value=st.dictionaries(st.text(alphabet="abcxyz", min_size=1, max_size=3), JSON))
def test_jsonata_states_input_is_the_input(value: Any) -> None:
    assert run_to_end(JSONATA_IDENTITY, value) == asl.Succeeded(output=value)
