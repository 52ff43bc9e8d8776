"""Choice Rules: validation with exact pointers, AWS runtime semantics, and properties.

Sources named in comments:

* [spec]   states-language.net, "Choice Rules".
* [guide]  AWS Step Functions developer guide, "Choice" (awsdocs/aws-step-functions-developer-guide,
           doc_source/amazon-states-language-choice-state.md).
* [snap]   LocalStack tests/aws/services/stepfunctions/v2/choice_operators/
           test_is_operators.snapshot.json, recorded against AWS on 2023-06-22.
* [floe]   ManageIQ/floe spec/fixtures/test-choice-failures.asl: the outcome of each case is
           written in its state's Comment by maintainers who compared with AWS ("compilation fail
           floe and aws").
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.asl import errors
from orchestrator.asl.choice import ChoiceRule, compile_choice, parse_timestamp
from orchestrator.asl.errors import Problem, StatesError

WHERE = "/States/Route/Choices/0"


def compile_ok(raw: Any) -> ChoiceRule:
    problems: list[Problem] = []
    rule = compile_choice(raw, WHERE, problems)
    assert problems == []
    assert rule is not None
    return rule


def problems_of(raw: Any) -> list[tuple[str, str]]:
    problems: list[Problem] = []
    rule = compile_choice(raw, WHERE, problems)
    assert rule is None
    assert problems, "an invalid rule must report at least one problem"
    return [(p.path, p.message) for p in problems]


def paths_of(raw: Any) -> list[str]:
    return [path for path, _ in problems_of(raw)]


def comparison(operator: str, operand: Any, variable: str = "$.x") -> dict[str, Any]:
    return {"Variable": variable, operator: operand, "Next": "Match"}


def evaluate(raw: dict[str, Any], data: Any, context: Any = None) -> bool:
    return compile_ok(raw).matches(data, context)


def runtime_error(raw: dict[str, Any], data: Any, context: Any = None) -> StatesError:
    rule = compile_ok(raw)
    with pytest.raises(StatesError) as caught:
        rule.matches(data, context)
    return caught.value


def seconds_text(moment: dt.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` (strftime does not pad years before 1000 everywhere)."""
    date = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
    return f"{date}T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"


def invalid_path_cause(path: str) -> str:
    return f"Invalid path '{path}': The choice state's condition path references an invalid value."


# =============================================================================== golden cases


def first_match(choices: list[dict[str, Any]], data: Any, default: str) -> str:
    rules = [compile_ok(raw) for raw in choices]
    return next((rule.next for rule in rules if rule.matches(data, None)), default)


CHOICE_STATE_X: list[dict[str, Any]] = [
    {"Not": {"Variable": "$.type", "StringEquals": "Private"}, "Next": "Public"},
    {"Variable": "$.value", "NumericEquals": 0, "Next": "ValueIsZero"},
    {
        "And": [
            {"Variable": "$.value", "NumericGreaterThanEquals": 20},
            {"Variable": "$.value", "NumericLessThan": 30},
        ],
        "Next": "ValueInTwenties",
    },
]


def test_the_guide_example_input_goes_to_value_in_twenties() -> None:
    # [guide] "Choice State Example": input {"type": "Private", "value": 22} -> ValueInTwenties.
    assert first_match(CHOICE_STATE_X, {"type": "Private", "value": 22}, "DefaultState") == (
        "ValueInTwenties"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"type": "Public", "value": 22}, "Public"),
        ({"type": "Private", "value": 0}, "ValueIsZero"),
        ({"type": "Private", "value": 30}, "DefaultState"),
        ({"type": "Private", "value": 19.5}, "DefaultState"),
    ],
)
def test_the_guide_example_routes_other_inputs_in_rule_order(data: Any, expected: str) -> None:
    # [guide] rules are examined "in the order listed in the Choices field"; no match -> Default.
    assert first_match(CHOICE_STATE_X, data, "DefaultState") == expected


def test_the_guide_example_fails_when_the_type_field_is_missing() -> None:
    # [guide] "If the state input doesn't contain the $.type field, the execution fails".
    error = runtime_error(CHOICE_STATE_X[0], {"value": 22})
    assert error.name == errors.RUNTIME
    assert error.cause == invalid_path_cause("$.type")


@pytest.mark.parametrize(
    ("raw", "data", "expected"),
    [
        # [guide] "checks whether the numerical value is equal to 1".
        (comparison("NumericEquals", 1, "$.foo"), {"foo": 1}, True),
        # [guide] "checks whether the string is equal to MyString".
        (comparison("StringEquals", "MyString", "$.foo"), {"foo": "MyString"}, True),
        (comparison("StringEquals", "MyString", "$.foo"), {"foo": "mystring"}, False),
        # [guide] "checks whether the string is greater than MyStringABC".
        (comparison("StringGreaterThan", "MyStringABC", "$.foo"), {"foo": "MyStringABD"}, True),
        (comparison("StringGreaterThan", "MyStringABC", "$.foo"), {"foo": "MyStringABC"}, False),
        # [guide] "checks whether the timestamp is equal to 2001-01-01T12:00:00Z".
        (
            comparison("TimestampEquals", "2001-01-01T12:00:00Z", "$.foo"),
            {"foo": "2001-01-01T12:00:00Z"},
            True,
        ),
        # [guide] timestamps are logically strings, so StringEquals may match one.
        (
            comparison("StringEquals", "2001-01-01T12:00:00Z", "$.foo"),
            {"foo": "2001-01-01T12:00:00Z"},
            True,
        ),
        # [guide] "Step Functions doesn't attempt to match a numeric field to a string value".
        (comparison("NumericEquals", 1, "$.foo"), {"foo": "1"}, False),
        (comparison("StringEquals", "1", "$.foo"), {"foo": 1}, False),
    ],
)
def test_the_guide_comparison_examples(raw: dict[str, Any], data: Any, expected: bool) -> None:
    assert evaluate(raw, data) is expected


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        # [spec] "foo*.log matches foo23.log, *.log matches zebra.log, and foo*.* matches
        # foobar.zebra".
        ("foo*.log", "foo23.log", True),
        ("*.log", "zebra.log", True),
        ("foo*.*", "foobar.zebra", True),
        ("foo*.*", "foobar", False),
        # [spec] no character other than "*" is special.
        ("a?c", "abc", False),
        ("a?c", "a?c", True),
        ("[ab]", "a", False),
        ("a.c", "abc", False),
        # [spec] a literal "*" is escaped with a backslash (JSON "\\*"), a literal backslash
        # with another one (JSON "\\\\").
        ("foo\\*bar", "foo*bar", True),
        ("foo\\*bar", "fooXbar", False),
        ("a\\\\b", "a\\b", True),
        ("*\\\\", "dir\\", True),
        ("\\**", "*anything", True),
        ("\\**", "anything", False),
    ],
)
def test_string_matches_follows_the_spec_wildcard_rules(
    pattern: str, value: str, expected: bool
) -> None:
    assert evaluate(comparison("StringMatches", pattern), {"x": value}) is expected


IS_VALUES: list[Any] = [
    None,
    0,
    0.0,
    1,
    1.1,
    "",
    " ",
    "HelloWorld",
    "2012-10-09T19:00:55",
    "2023-02-24",
    [],
    [""],
    {},
    {"A": 0},
    True,
    False,
]

IS_KIND: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda v: v is None,
    "IsBoolean": lambda v: isinstance(v, bool),
    "IsNumeric": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "IsString": lambda v: isinstance(v, str),
    "IsPresent": lambda v: True,
}


@pytest.mark.parametrize("operator", sorted(IS_KIND))
@pytest.mark.parametrize("value", IS_VALUES, ids=repr)
@pytest.mark.parametrize("expected", [True, False])
def test_type_tests_match_the_recorded_aws_truth_table(
    operator: str, value: Any, expected: bool
) -> None:
    # [snap] test_is_null / test_is_boolean / test_is_numeric / test_is_string / test_is_present:
    # each operand value (true/false) against each input; booleans are not numeric.
    rule = comparison(operator, expected, "$.Variable")
    assert evaluate(rule, {"Variable": value}) is (IS_KIND[operator](value) is expected)


def test_a_missing_variable_fails_with_states_runtime() -> None:
    # [floe] Test1: "Variable missing -> Invalid path ... The choice state's condition path
    # references an invalid value."
    error = runtime_error(comparison("NumericEquals", 1, "$.missing"), {"test": 1})
    assert error.name == errors.RUNTIME
    assert error.cause == invalid_path_cause("$.missing")


def test_a_variable_of_the_wrong_type_is_simply_no_match() -> None:
    # [floe] Test2: "Variable wrong type -> nothing matched".
    assert evaluate(comparison("NumericEquals", 1, "$.str1"), {"str1": "1"}) is False


def test_a_missing_path_operand_fails_with_states_runtime() -> None:
    # [floe] Test3: "Target missing -> Invalid path '$.missing': The choice state's condition path
    # references an invalid value."
    error = runtime_error(comparison("NumericEqualsPath", "$.missing", "$.num1"), {"num1": 1})
    assert error.name == errors.RUNTIME
    assert error.cause == invalid_path_cause("$.missing")


def test_a_literal_operand_of_the_wrong_type_fails_validation() -> None:
    # [floe] Test4: "Target constant wrong type -> compilation fail floe and aws".
    assert paths_of(comparison("NumericEquals", "abc", "$.num1")) == [f"{WHERE}/NumericEquals"]


@pytest.mark.parametrize(
    ("operator", "variable", "target"),
    [
        ("NumericEqualsPath", "$.num1", "$.str2"),  # [floe] Test5: target wrong type
        ("NumericEqualsPath", "$.str1", "$.str2"),  # [floe] Test6: both wrong type
        ("StringEqualsPath", "$.num1", "$.num2"),  # [floe] Test7: equals, both wrong type
        ("StringGreaterThanPath", "$.num1", "$.str2"),  # [floe] Test8: source wrong type
    ],
)
def test_path_comparisons_with_wrong_types_are_no_match(
    operator: str, variable: str, target: str
) -> None:
    data = {"num1": 1, "str1": "1", "num2": 1, "str2": "1"}
    assert evaluate(comparison(operator, target, variable), data) is False


def test_an_ordering_path_comparison_fails_when_its_operand_has_the_wrong_type() -> None:
    # [floe] Test9: "GT with both wrong type -> Invalid value provided at path '$.num2'".
    data = {"num1": 1, "num2": 1}
    error = runtime_error(comparison("StringGreaterThanPath", "$.num2", "$.num1"), data)
    assert error.name == errors.RUNTIME
    assert error.cause == "Invalid value provided at path '$.num2'"


# =============================================================================== operators

NUMERIC_CASES = [
    ("NumericEquals", 5, 5, True),
    ("NumericEquals", 5, 5.0, True),
    ("NumericEquals", 5.5, 5, False),
    ("NumericLessThan", 5, 4, True),
    ("NumericLessThan", 5, 5, False),
    ("NumericGreaterThan", 5, 6.5, True),
    ("NumericGreaterThan", 5, 5, False),
    ("NumericLessThanEquals", 5, 5, True),
    ("NumericLessThanEquals", 5, 5.0001, False),
    ("NumericGreaterThanEquals", 5, 5.0, True),
    ("NumericGreaterThanEquals", 5, 4.9999, False),
    ("NumericLessThan", 0, -1e300, True),
]


@pytest.mark.parametrize(("operator", "operand", "value", "expected"), NUMERIC_CASES)
def test_numeric_operators_compare_ints_and_floats_by_value(
    operator: str, operand: Any, value: Any, expected: bool
) -> None:
    assert evaluate(comparison(operator, operand), {"x": value}) is expected
    # The *Path form reads the operand from the input and gives the same answer.
    path_rule = comparison(operator + "Path", "$.y")
    assert evaluate(path_rule, {"x": value, "y": operand}) is expected


@pytest.mark.parametrize("value", [True, False, "1", None, [1], {"v": 1}])
def test_numeric_operators_never_treat_booleans_or_strings_as_numbers(value: Any) -> None:
    assert evaluate(comparison("NumericEquals", 1), {"x": value}) is False
    assert evaluate(comparison("NumericGreaterThanEquals", 0), {"x": value}) is False


def test_boolean_equals_compares_only_booleans() -> None:
    assert evaluate(comparison("BooleanEquals", True), {"x": True}) is True
    assert evaluate(comparison("BooleanEquals", True), {"x": False}) is False
    assert evaluate(comparison("BooleanEquals", True), {"x": 1}) is False
    assert evaluate(comparison("BooleanEquals", False), {"x": 0}) is False
    assert evaluate(comparison("BooleanEqualsPath", "$.y"), {"x": False, "y": False}) is True
    assert evaluate(comparison("BooleanEqualsPath", "$.y"), {"x": 0, "y": False}) is False


STRING_CASES = [
    ("StringEquals", "abc", "abc", True),
    ("StringEquals", "abc", "abd", False),
    ("StringLessThan", "b", "a", True),
    ("StringLessThan", "b", "b", False),
    ("StringLessThan", "b", "B", True),  # uppercase sorts first, as in Java
    ("StringGreaterThan", "a", "ab", True),
    ("StringGreaterThan", "a", "", False),
    ("StringLessThanEquals", "b", "b", True),
    ("StringLessThanEquals", "b", "ba", False),
    ("StringGreaterThanEquals", "b", "b", True),
    ("StringGreaterThanEquals", "b", "a", False),
]


@pytest.mark.parametrize(("operator", "operand", "value", "expected"), STRING_CASES)
def test_string_operators_compare_lexicographically(
    operator: str, operand: str, value: str, expected: bool
) -> None:
    assert evaluate(comparison(operator, operand), {"x": value}) is expected
    assert evaluate(comparison(operator + "Path", "$.y"), {"x": value, "y": operand}) is expected


def test_strings_order_by_utf16_code_units_as_java_compare_to_does() -> None:
    # [guide] "To understand the behavior of string comparisons, see the Java compareTo
    # documentation": U+10000 is the surrogate pair D800 DC00, which sorts before U+FFFF.
    supplementary, last_bmp = "\U00010000", "\uffff"
    assert evaluate(comparison("StringLessThan", last_bmp), {"x": supplementary}) is True
    assert evaluate(comparison("StringGreaterThan", supplementary), {"x": last_bmp}) is True
    path_rule = comparison("StringLessThanPath", "$.y")
    assert evaluate(path_rule, {"x": "a" + supplementary, "y": "a" + last_bmp}) is True


@given(st.text(), st.text())
def test_string_ordering_agrees_with_utf16_code_unit_order(left: str, right: str) -> None:
    def units(text: str) -> bytes:
        return text.encode("utf-16-be", "surrogatepass")

    rule = comparison("StringLessThanPath", "$.y")
    assert evaluate(rule, {"x": left, "y": right}) is (units(left) < units(right))


@pytest.mark.parametrize(
    ("operator", "operand", "value", "expected"),
    [
        ("TimestampEquals", "2016-03-14T01:59:00Z", "2016-03-14T01:59:00Z", True),
        ("TimestampEquals", "2016-03-14T01:59:00Z", "2016-03-14T02:59:00+01:00", True),
        ("TimestampEquals", "2016-03-14T01:59:00Z", "2016-03-14T01:59:00.000Z", True),
        ("TimestampEquals", "2016-03-14T01:59:00Z", "2016-03-14T01:59:00.000000001Z", False),
        ("TimestampLessThan", "2016-03-14T01:59:00Z", "2016-03-14T01:58:59.999Z", True),
        ("TimestampLessThan", "2016-03-14T01:59:00Z", "2016-03-13T20:59:00-05:00", False),
        ("TimestampGreaterThan", "2016-03-14T01:59:00Z", "2016-03-14T01:59:01Z", True),
        ("TimestampGreaterThan", "2016-03-14T01:59:00+00:00", "2016-03-14T01:59:00Z", False),
        ("TimestampLessThanEquals", "2016-03-14T01:59:00Z", "2016-03-14T01:59:00-00:00", True),
        ("TimestampGreaterThanEquals", "2016-03-14T01:59:00Z", "2016-03-14T01:58:00Z", False),
    ],
)
def test_timestamp_operators_compare_instants(
    operator: str, operand: str, value: str, expected: bool
) -> None:
    assert evaluate(comparison(operator, operand), {"x": value}) is expected
    assert evaluate(comparison(operator + "Path", "$.y"), {"x": value, "y": operand}) is expected


@pytest.mark.parametrize(
    "value",
    [
        "2016-03-14T01:59:00",  # [snap] no zone: IsTimestamp false on AWS
        "2023-02-24",  # [snap] a date alone is not a timestamp
        "2016-03-14t01:59:00Z",  # [spec] the "T" must be uppercase
        "2016-03-14T01:59:00z",  # [spec] the "Z" must be uppercase
        "2016-03-14 01:59:00Z",
        "2016-03-14T01:59Z",
        "2016-02-30T00:00:00Z",
        "2015-02-29T00:00:00Z",
        "2016-03-14T24:00:00Z",
        "2016-03-14T23:59:60Z",
        "2016-03-14T01:59:00.Z",
        "2016-03-14T01:59:00.1234567890Z",
        "2016-03-14T01:59:00+1:00",
        "2016-03-14T01:59:00+19:00",
        "2016-03-14T01:59:00Z\n",
        "٢٠١٦-03-14T01:59:00Z",
        "",
    ],
)
def test_strings_that_are_not_rfc3339_timestamps_never_compare(value: str) -> None:
    assert parse_timestamp(value) is None
    assert evaluate(comparison("IsTimestamp", True), {"x": value}) is False
    assert evaluate(
        comparison("TimestampLessThanEquals", "9999-12-31T23:59:59Z"), {"x": value}
    ) is (False)


@pytest.mark.parametrize(
    "value",
    [
        "2016-03-14T01:59:00Z",
        "2016-02-29T23:59:59.123456789+18:00",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-18:00",
    ],
)
def test_rfc3339_timestamps_are_timestamps(value: str) -> None:
    assert evaluate(comparison("IsTimestamp", True), {"x": value}) is True
    assert evaluate(comparison("IsTimestamp", False), {"x": value}) is False


@given(st.datetimes(timezones=st.timezones()), st.integers(min_value=0, max_value=999))
def test_parse_timestamp_agrees_with_datetime_on_the_instant(
    moment: dt.datetime, nanos: int
) -> None:
    offset = moment.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    if abs(minutes) > 18 * 60 or offset.total_seconds() % 60:
        return  # outside what RFC 3339 offsets (whole minutes, +-18:00) can say
    sign = "-" if minutes < 0 else "+"
    zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    text = f"{seconds_text(moment)}.{moment.microsecond:06d}{nanos:03d}{zone}"
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    delta = moment - epoch
    expected = (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000 + nanos
    assert parse_timestamp(text) == expected


def test_a_timestamp_path_operand_that_is_no_timestamp_fails_an_ordering() -> None:
    data = {"x": "2016-03-14T01:59:00Z", "y": "yesterday"}
    error = runtime_error(comparison("TimestampLessThanPath", "$.y"), data)
    assert (error.name, error.cause) == (errors.RUNTIME, "Invalid value provided at path '$.y'")
    assert evaluate(comparison("TimestampEqualsPath", "$.y"), data) is False


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("", "", True),
        ("", "a", False),
        ("*", "", True),
        ("*", "anything\nat all", True),
        ("**", "x", True),
        ("a*a", "a", False),
        ("a*a", "aa", True),
        ("ab*ba", "aba", False),
        ("*abc*abc*", "xxabcxabcxx", True),
        ("*abc*abc*", "xxabcxx", False),
    ],
)
def test_string_matches_handles_edges_of_the_wildcard(
    pattern: str, value: str, expected: bool
) -> None:
    assert evaluate(comparison("StringMatches", pattern), {"x": value}) is expected


@pytest.mark.parametrize("value", [1, None, True, ["foo.log"], {"a": "foo.log"}])
def test_string_matches_is_false_for_non_strings(value: Any) -> None:
    assert evaluate(comparison("StringMatches", "*"), {"x": value}) is False


def test_string_matches_does_not_backtrack_exponentially() -> None:
    rule = compile_ok(comparison("StringMatches", "*a*a*a*a*a*a*a*a*b"))
    started = time.perf_counter()
    assert rule.matches({"x": "a" * 20_000}, None) is False
    assert time.perf_counter() - started < 1.0


@given(st.text(alphabet="ab*", max_size=8), st.text(alphabet="ab*", max_size=12))
def test_string_matches_agrees_with_a_regular_expression_oracle(pattern: str, value: str) -> None:
    oracle = ".*".join(re.escape(part) for part in pattern.split("*"))
    expected = re.fullmatch(oracle, value, flags=re.DOTALL) is not None
    assert evaluate(comparison("StringMatches", pattern), {"x": value}) is expected


# =============================================================================== paths


def test_the_variable_may_read_the_context_object() -> None:
    # [guide] JSONPath states can reference the context ($$.) from Variable in Choice states.
    rule = compile_ok(comparison("NumericGreaterThan", 2, "$$.State.RetryCount"))
    assert rule.uses_context is True
    assert rule.matches({}, {"State": {"RetryCount": 3}}) is True
    assert rule.matches({}, {"State": {"RetryCount": 1}}) is False


def test_a_path_operand_may_read_the_context_object() -> None:
    rule = compile_ok(comparison("StringEqualsPath", "$$.Execution.Name"))
    assert rule.uses_context is True
    assert rule.matches({"x": "run-1"}, {"Execution": {"Name": "run-1"}}) is True


def test_rules_that_read_only_the_input_do_not_need_the_context() -> None:
    raw = {"Or": [{"Variable": "$.x", "IsNull": True}], "Next": "Match"}
    assert compile_ok(raw).uses_context is False
    deep = {"And": [{"Not": {"Variable": "$$.Map.Item.Index", "NumericEquals": 0}}], "Next": "M"}
    assert compile_ok(deep).uses_context is True


@pytest.mark.parametrize(
    ("variable", "data", "expected"),
    [
        ("$", "abc", True),
        ("$.a.b", {"a": {"b": "abc"}}, True),
        ("$.a[1]", {"a": ["x", "abc"]}, True),
        ("$.a[-1]", {"a": ["x", "abc"]}, True),
        ("$['a b']", {"a b": "abc"}, True),
        ("$.a[0].b", {"a": [{"b": "zzz"}]}, False),
    ],
)
def test_the_variable_is_any_reference_path(variable: str, data: Any, expected: bool) -> None:
    assert evaluate(comparison("StringEquals", "abc", variable), data) is expected


@pytest.mark.parametrize(
    ("variable", "data"),
    [
        ("$.a.b", {"a": "not an object"}),
        ("$.a[2]", {"a": [1, 2]}),
        ("$.a[0]", {"a": {"0": 1}}),
        ("$.a", []),
        ("$$.Execution.Name", {"Execution": {"Name": "n"}}),  # no context object given
    ],
)
def test_a_variable_that_names_nothing_fails_with_states_runtime(variable: str, data: Any) -> None:
    error = runtime_error(comparison("StringEquals", "n", variable), data)
    assert (error.name, error.cause) == (errors.RUNTIME, invalid_path_cause(variable))


def test_is_present_tests_presence_instead_of_failing() -> None:
    present, absent = comparison("IsPresent", True), comparison("IsPresent", False)
    assert evaluate(present, {"x": None}) is True
    assert evaluate(present, {"y": 1}) is False
    assert evaluate(absent, {"y": 1}) is True
    assert evaluate(absent, {"x": False}) is False
    assert evaluate(comparison("IsPresent", True, "$.x[3]"), {"x": [1]}) is False


@pytest.mark.parametrize(
    "operator", ["IsNull", "IsString", "IsNumeric", "IsBoolean", "IsTimestamp"]
)
def test_the_other_type_tests_fail_on_a_missing_variable(operator: str) -> None:
    error = runtime_error(comparison(operator, False), {})
    assert (error.name, error.cause) == (errors.RUNTIME, invalid_path_cause("$.x"))


def test_the_variable_is_read_before_the_operand_path() -> None:
    error = runtime_error(comparison("NumericEqualsPath", "$.also_missing", "$.missing"), {})
    assert error.cause == invalid_path_cause("$.missing")


# =============================================================================== And / Or / Not


def test_and_short_circuits_before_a_path_that_would_fail() -> None:
    raw = {
        "And": [
            {"Variable": "$.maybe", "IsPresent": True},
            {"Variable": "$.maybe", "NumericEquals": 1},
        ],
        "Next": "Match",
    }
    assert evaluate(raw, {}) is False
    assert evaluate(raw, {"maybe": 1}) is True


def test_or_short_circuits_at_the_first_true_rule() -> None:
    raw = {
        "Or": [{"Variable": "$.a", "IsNull": True}, {"Variable": "$.missing", "IsNull": True}],
        "Next": "Match",
    }
    assert evaluate(raw, {"a": None}) is True
    error = runtime_error(raw, {"a": 1})
    assert error.cause == invalid_path_cause("$.missing")


def test_not_inverts_its_rule() -> None:
    raw = {"Not": {"Variable": "$.type", "StringEquals": "Private"}, "Next": "Public"}
    assert evaluate(raw, {"type": "Public"}) is True
    assert evaluate(raw, {"type": "Private"}) is False


def test_rules_nest_to_any_depth() -> None:
    inner: dict[str, Any] = {"Variable": "$.x", "NumericEquals": 1}
    for depth in range(200):
        inner = {"Not": inner} if depth % 2 else {"And": [{"Or": [inner]}]}
    rule = compile_ok({**inner, "Next": "Deep"})
    assert rule.matches({"x": 1}, None) is True
    assert rule.matches({"x": 2}, None) is False


def test_a_compiled_rule_keeps_its_structure_and_compares_equal() -> None:
    first, second = compile_ok(CHOICE_STATE_X[2]), compile_ok(CHOICE_STATE_X[2])
    assert first == second
    assert first.next == "ValueInTwenties"
    assert first.rule.operator == "And"
    assert [r.operator for r in first.rule.rules] == ["NumericGreaterThanEquals", "NumericLessThan"]
    assert first.rule.rules[0].variable == "$.value"
    assert first.rule.rules[0].operand == 20


def test_a_top_level_rule_may_carry_a_comment_and_assign() -> None:
    raw = {**comparison("IsNull", False), "Comment": "x set", "Assign": {"seen.$": "$.x"}}
    rule = compile_ok(raw)
    assert rule.assign == {"seen.$": "$.x"}
    assert compile_ok(comparison("IsNull", False)).assign is None


# =============================================================================== validation


def test_a_rule_that_is_not_an_object_is_one_problem_at_its_pointer() -> None:
    assert problems_of(["Variable"]) == [(WHERE, "a Choice Rule must be an object, got an array")]


def test_a_missing_next_is_reported_at_next() -> None:
    raw = {"Variable": "$.x", "NumericEquals": 1}
    assert paths_of(raw) == [f"{WHERE}/Next"]


@pytest.mark.parametrize("target", ["", 1, None, ["A"]])
def test_a_next_that_is_not_a_state_name_is_reported_at_next(target: Any) -> None:
    assert paths_of({**comparison("IsNull", True), "Next": target}) == [f"{WHERE}/Next"]


def test_next_inside_and_or_not_is_reported_where_it_is() -> None:
    raw = {
        "And": [{"Variable": "$.a", "IsNull": True, "Next": "X"}],
        "Or": [{"Not": {"Variable": "$.b", "IsNull": True, "Next": "Y"}}],
        "Next": "Match",
    }
    found = paths_of(raw)
    assert f"{WHERE}/And/0/Next" in found
    assert f"{WHERE}/Or/0/Not/Next" in found


def test_a_comparison_without_a_variable_is_reported_at_variable() -> None:
    assert problems_of({"NumericEquals": 1, "Next": "A"}) == [
        (f"{WHERE}/Variable", "a comparison needs a Variable (a reference path)")
    ]


@pytest.mark.parametrize(
    "variable",
    [1, None, "", "x", "$.", "$.items[*]", "$..name", "$.a[?(@.b)]", "$['a', 'b']", "$$$"],
)
def test_a_variable_that_is_not_a_reference_path_is_reported_at_variable(variable: Any) -> None:
    assert paths_of(comparison("NumericEquals", 1, variable)) == [f"{WHERE}/Variable"]


def test_a_variable_on_and_or_not_is_reported_at_variable() -> None:
    raw = {"Variable": "$.x", "Not": {"Variable": "$.x", "IsNull": True}, "Next": "A"}
    assert problems_of(raw) == [
        (f"{WHERE}/Variable", "Variable is not allowed on an And, Or or Not rule")
    ]


def test_a_rule_without_an_operator_is_reported_at_the_rule() -> None:
    assert problems_of({"Variable": "$.x", "Next": "A"}) == [
        (
            WHERE,
            "a Choice Rule needs exactly one comparison operator, or And, Or or Not; found none",
        )
    ]


def test_a_rule_with_two_operators_names_both() -> None:
    raw = {"Variable": "$.x", "StringEquals": "a", "NumericEquals": 1, "Next": "A"}
    assert problems_of(raw) == [
        (
            WHERE,
            "a Choice Rule needs exactly one comparison operator, or And, Or or Not; "
            "found StringEquals, NumericEquals",
        )
    ]


def test_a_comparison_beside_and_is_two_operators() -> None:
    raw = {"Variable": "$.x", "IsNull": True, "And": [{"Variable": "$.y", "IsNull": True}]}
    assert paths_of({**raw, "Next": "A"}) == [WHERE]


def test_unknown_fields_are_named_with_a_suggestion() -> None:
    raw = {"Variable": "$.x", "NumericEqual": 1, "Nxt": "A", "Next": "A", "Colour": "red"}
    assert problems_of(raw) == [
        (f"{WHERE}/NumericEqual", "unknown field 'NumericEqual' (did you mean 'NumericEquals'?)"),
        (f"{WHERE}/Nxt", "unknown field 'Nxt' (did you mean 'Next'?)"),
        (f"{WHERE}/Colour", "unknown field 'Colour'"),
        (
            WHERE,
            "a Choice Rule needs exactly one comparison operator, or And, Or or Not; found none",
        ),
    ]


def test_operators_that_aws_does_not_have_are_unknown_fields() -> None:
    # There is no StringMatchesPath and no BooleanLessThan in ASL.
    for name in ("StringMatchesPath", "BooleanLessThan", "IsArray"):
        assert f"{WHERE}/{name}" in paths_of(comparison(name, "x"))


def test_a_jsonata_condition_is_an_unknown_field_with_a_hint() -> None:
    found = problems_of({"Condition": "{% $x = 1 %}", "Next": "A"})
    assert found[0] == (
        f"{WHERE}/Condition",
        "unknown field 'Condition' (Condition belongs to JSONata Choice Rules)",
    )


def test_field_names_are_escaped_in_pointers() -> None:
    assert f"{WHERE}/a~1b~0c" in paths_of({**comparison("IsNull", True), "a/b~c": 1})


WRONG_OPERANDS = [
    ("StringEquals", 1),
    ("StringLessThan", None),
    ("StringGreaterThan", True),
    ("StringLessThanEquals", ["a"]),
    ("StringGreaterThanEquals", {"a": 1}),
    ("StringMatches", 7),
    ("NumericEquals", "1"),
    ("NumericLessThan", True),
    ("NumericGreaterThan", None),
    ("NumericLessThanEquals", float("nan")),
    ("NumericGreaterThanEquals", float("inf")),
    ("BooleanEquals", "true"),
    ("BooleanEquals", 1),
    ("TimestampEquals", "2016-03-14"),
    ("TimestampLessThan", "2016-03-14T01:59:00"),
    ("TimestampGreaterThan", 1457920740),
    ("TimestampLessThanEquals", "2016-03-14t01:59:00z"),
    ("TimestampGreaterThanEquals", "2016-13-01T00:00:00Z"),
    ("IsNull", "true"),
    ("IsPresent", 1),
    ("IsNumeric", None),
    ("IsString", []),
    ("IsBoolean", 0),
    ("IsTimestamp", "yes"),
    ("StringEqualsPath", "x"),
    ("NumericLessThanPath", 5),
    ("BooleanEqualsPath", "$.a[*]"),
    ("TimestampGreaterThanPath", "$..t"),
    ("NumericEqualsPath", ""),
]


@pytest.mark.parametrize(("operator", "operand"), WRONG_OPERANDS)
def test_a_wrong_operand_is_reported_at_its_operator(operator: str, operand: Any) -> None:
    found = problems_of(comparison(operator, operand))
    assert [path for path, _ in found] == [f"{WHERE}/{operator}"]
    assert found[0][1].startswith(operator)


@pytest.mark.parametrize("pattern", ["a\\", "a\\b", "\\?", "\\\\\\"])
def test_a_string_matches_pattern_with_a_bad_escape_is_reported(pattern: str) -> None:
    found = problems_of(comparison("StringMatches", pattern))
    assert [path for path, _ in found] == [f"{WHERE}/StringMatches"]
    assert "invalid escape" in found[0][1]


@pytest.mark.parametrize(
    ("raw", "pointer", "message"),
    [
        ({"And": [], "Next": "A"}, "/And", "And needs a non-empty array of Choice Rules"),
        ({"Or": {}, "Next": "A"}, "/Or", "Or needs a non-empty array of Choice Rules"),
        ({"And": "x", "Next": "A"}, "/And", "And needs a non-empty array of Choice Rules"),
        ({"Not": [], "Next": "A"}, "/Not", "Not needs a single Choice Rule object"),
        ({"Not": None, "Next": "A"}, "/Not", "Not needs a single Choice Rule object"),
        ({"And": [1], "Next": "A"}, "/And/0", "a Choice Rule must be an object"),
    ],
)
def test_malformed_and_or_not_are_reported_at_the_operator(
    raw: dict[str, Any], pointer: str, message: str
) -> None:
    found = problems_of(raw)
    assert [path for path, _ in found] == [WHERE + pointer]
    assert found[0][1].startswith(message)


def test_comment_must_be_a_string_and_assign_an_object_on_top_level_rules_only() -> None:
    raw = {
        "And": [{"Variable": "$.a", "IsNull": True, "Assign": {"v": 1}, "Comment": 3}],
        "Assign": ["v"],
        "Next": "A",
    }
    assert paths_of(raw) == [
        f"{WHERE}/Assign",
        f"{WHERE}/And/0/Assign",
        f"{WHERE}/And/0/Comment",
    ]


def test_every_problem_is_reported_at_once_with_its_exact_pointer() -> None:
    raw = {
        "And": [
            {"Variable": "$.a", "StringEquals": "ok"},
            {"Variable": "$.b", "NumericEquals": "12"},
            {"Or": [{"Variable": "not a path", "IsNull": True}, {"Not": {"IsNull": True}}]},
            {"Variable": "$.c", "TimestampEquals": "2016-03-14T01:59:00Z", "Next": "Nested"},
        ]
    }
    assert paths_of(raw) == [
        f"{WHERE}/And/1/NumericEquals",
        f"{WHERE}/And/2/Or/0/Variable",
        f"{WHERE}/And/2/Or/1/Not/Variable",
        f"{WHERE}/And/3/Next",
        f"{WHERE}/Next",
    ]


def test_problems_are_appended_after_those_already_in_the_list() -> None:
    earlier = Problem(path="/StartAt", message="earlier")
    problems = [earlier]
    assert compile_choice({"Variable": "$.x"}, "/States/S/Choices/3", problems) is None
    assert problems[0] is earlier
    assert [p.path for p in problems[1:]] == ["/States/S/Choices/3", "/States/S/Choices/3/Next"]


# =============================================================================== properties

VARIABLES = ["$", "$.a", "$.b", "$.a.b", "$.a[0]", "$['b']", "$.list[-1]", "$$.c", "$$"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["2016-03-14T01:59:00Z", "2016-03-14T02:59:00.5+01:00", "1970-01-01"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "c", "list", "x"]), children, max_size=4)
    ),
    max_leaves=12,
)

timestamps = st.datetimes(
    min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31), timezones=st.just(dt.UTC)
).map(lambda moment: seconds_text(moment) + "Z")

numbers = st.integers() | st.floats(allow_nan=False, allow_infinity=False)
patterns = st.lists(st.sampled_from(["*", "\\*", "\\\\", "a", "b", "2016", "."]), max_size=6).map(
    "".join
)

LITERALS: dict[str, st.SearchStrategy[Any]] = {
    "String": st.text(max_size=8),
    "Numeric": numbers,
    "Timestamp": timestamps,
}


def comparisons() -> st.SearchStrategy[dict[str, Any]]:
    orders = ["Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals"]
    literal = st.sampled_from(sorted(LITERALS)).flatmap(
        lambda family: st.tuples(
            st.sampled_from([family + order for order in orders]), LITERALS[family]
        )
    )
    options = (
        literal
        | st.tuples(st.just("BooleanEquals"), st.booleans())
        | st.tuples(st.just("StringMatches"), patterns)
        | st.tuples(
            st.sampled_from(["IsNull", "IsPresent", "IsNumeric", "IsString", "IsBoolean"])
            | st.just("IsTimestamp"),
            st.booleans(),
        )
        | st.tuples(
            st.sampled_from(
                [f + o + "Path" for f in LITERALS for o in orders] + ["BooleanEqualsPath"]
            ),
            st.sampled_from(VARIABLES),
        )
    )
    return st.tuples(st.sampled_from(VARIABLES), options).map(
        lambda pair: {"Variable": pair[0], pair[1][0]: pair[1][1]}
    )


rules = st.recursive(
    comparisons(),
    lambda children: (
        st.lists(children, min_size=1, max_size=3).map(lambda rs: {"And": rs})
        | st.lists(children, min_size=1, max_size=3).map(lambda rs: {"Or": rs})
        | children.map(lambda r: {"Not": r})
    ),
    max_leaves=8,
)


@pytest.mark.slow  # fuzzing
@settings(max_examples=300, deadline=None)
@given(rules, json_values, st.none() | json_values)
def test_random_inputs_against_random_valid_rules_raise_only_states_errors(
    raw: dict[str, Any], data: Any, context: Any
) -> None:
    rule = compile_ok({**raw, "Next": "Next"})
    outcome: bool | StatesError
    try:
        outcome = rule.matches(data, context)
    except StatesError as error:
        outcome = error
    if isinstance(outcome, StatesError):
        assert outcome.name == errors.RUNTIME
        assert outcome.cause.startswith(("Invalid path '", "Invalid value provided at path '"))
    else:
        assert type(outcome) is bool


GARBAGE_KEYS = [
    *("Variable", "Next", "And", "Or", "Not", "Comment", "x", "IsPresent", "StringMatches"),
    *("StringEquals", "NumericLessThanPath", "TimestampEquals", "BooleanEquals"),
]

garbage = st.recursive(
    json_values
    | st.sampled_from(["$.a", "$$.x", "$.a[*]", "*", "\\", "2016-03-14T01:59:00Z", "Match"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(GARBAGE_KEYS),
            children,
            max_size=4,
        )
    ),
    max_leaves=16,
)


@settings(max_examples=300, deadline=None)
@given(garbage)
def test_compiling_arbitrary_json_never_raises_and_reports_problems_or_a_rule(raw: Any) -> None:
    problems: list[Problem] = []
    rule = compile_choice(raw, WHERE, problems)
    assert (rule is None) == bool(problems)
    assert all(p.path.startswith(WHERE) for p in problems)
