"""Intrinsic functions: grammar, the 18 functions, and their errors.

Sources of the golden cases:

* "AWS docs" = AWS Step Functions developer guide, "Intrinsic functions for JSONPath
  states in Step Functions" (docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html).
* "ASL spec" = states-language.net, "Intrinsic Functions".
* "AWS recorded" = outputs LocalStack recorded against real AWS (``markers.aws.validated``)
  in tests/aws/services/stepfunctions/v2/intrinsic_functions/*.snapshot.json.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.asl.errors import INTRINSIC_FAILURE, RUNTIME, StatesError
from orchestrator.asl.intrinsics import (
    Intrinsic,
    IntrinsicSyntaxError,
    compile_intrinsic,
    is_intrinsic,
)


def run(text: str, data: Any = None, context: Any = None, *, seed: int | None = None) -> Any:
    rng = random.Random(seed) if seed is not None else None
    return compile_intrinsic(text).evaluate(data, context, rng=rng)


def failure(text: str, data: Any = None, context: Any = None) -> StatesError:
    with pytest.raises(StatesError) as caught:
        run(text, data, context)
    return caught.value


def syntax_error(text: str) -> IntrinsicSyntaxError:
    with pytest.raises(IntrinsicSyntaxError) as caught:
        compile_intrinsic(text)
    return caught.value


# --------------------------------------------------------------------------- golden cases


def test_format_fills_a_literal_template_from_a_path() -> None:
    # AWS docs: States.Format example
    data = {"name": "Arnav", "template": "Hello, my name is {}."}
    assert run("States.Format('Hello, my name is {}.', $.name)", data) == "Hello, my name is Arnav."


def test_format_takes_its_template_from_a_path() -> None:
    # AWS docs: States.Format example (second form)
    data = {"name": "Arnav", "template": "Hello, my name is {}."}
    assert run("States.Format($.template, $.name)", data) == "Hello, my name is Arnav."


def test_format_mixes_path_and_literal_values() -> None:
    # ASL spec: States.Format example
    text = "States.Format('Your name is {}, we are in the year {}', $.name, 2020)"
    result = run(text, {"name": "Foo", "zebra": "stripe"})
    assert result == "Your name is Foo, we are in the year 2020"


def test_string_to_json_parses_an_escaped_json_string() -> None:
    # AWS docs: States.StringToJson example
    data = {"escapedJsonString": '{"foo": "bar"}'}
    assert run("States.StringToJson($.escapedJsonString)", data) == {"foo": "bar"}


def test_json_to_string_prints_compact_json() -> None:
    # ASL spec: States.JsonToString example
    data = {"someJson": {"name": "Foo", "year": 2020}, "zebra": "stripe"}
    assert run("States.JsonToString($.someJson)", data) == '{"name":"Foo","year":2020}'


def test_array_collects_its_arguments_in_order() -> None:
    # ASL spec: States.Array example
    data = {"someJson": {"random": "abcdefg"}, "zebra": "stripe"}
    result = run("States.Array('Foo', 2020, $.someJson, null)", data)
    assert result == ["Foo", 2020, {"random": "abcdefg"}, None]


def test_array_wraps_a_single_path_value() -> None:
    # AWS docs: States.Array example
    assert run("States.Array($.Id)", {"Id": 123456}) == [123456]


def test_array_partition_leaves_the_remainder_in_a_shorter_last_chunk() -> None:
    # AWS docs: States.ArrayPartition example
    data = {"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9]}
    result = run("States.ArrayPartition($.inputArray,4)", data)
    assert result == [[1, 2, 3, 4], [5, 6, 7, 8], [9]]


def test_array_contains_finds_a_value() -> None:
    # AWS docs: States.ArrayContains example
    data = {"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9], "lookingFor": 5}
    assert run("States.ArrayContains($.inputArray, $.lookingFor)", data) is True


def test_array_range_counts_up_to_and_including_the_last_element() -> None:
    # AWS docs: States.ArrayRange example
    assert run("States.ArrayRange(1, 9, 2)") == [1, 3, 5, 7, 9]


def test_array_get_item_returns_the_zero_based_item() -> None:
    # AWS docs: States.ArrayGetItem example
    data = {"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9], "index": 5}
    assert run("States.ArrayGetItem($.inputArray, $.index)", data) == 6


def test_array_length_counts_the_items() -> None:
    # AWS docs: States.ArrayLength example
    assert run("States.ArrayLength($.inputArray)", {"inputArray": list(range(1, 10))}) == 9


def test_array_unique_drops_repeated_values() -> None:
    # AWS docs: States.ArrayUnique example
    data = {"inputArray": [1, 2, 3, 3, 3, 3, 3, 3, 4]}
    assert run("States.ArrayUnique($.inputArray)", data) == [1, 2, 3, 4]


def test_base64_encode_encodes_utf8_text() -> None:
    # AWS docs: States.Base64Encode example
    assert (
        run("States.Base64Encode($.input)", {"input": "Data to encode"}) == "RGF0YSB0byBlbmNvZGU="
    )


def test_base64_decode_decodes_to_text() -> None:
    # AWS docs: States.Base64Decode example. The page prints "Decoded data", but its input
    # is the Base64Encode example's output, which decodes to "Data to encode".
    result = run("States.Base64Decode($.base64)", {"base64": "RGF0YSB0byBlbmNvZGU="})
    assert result == "Data to encode"


def test_hash_returns_the_lowercase_hex_digest() -> None:
    # AWS docs: States.Hash example. The page prints a 39-digit value (one digit lost);
    # this is the real SHA-1 of "input data".
    data = {"Data": "input data", "Algorithm": "SHA-1"}
    assert (
        run("States.Hash($.Data, $.Algorithm)", data) == "aaff4a450a104cd177d28d18d74485e8cae074b7"
    )


@pytest.mark.parametrize(
    ("algorithm", "name"),
    [
        ("MD5", "md5"),
        ("SHA-1", "sha1"),
        ("SHA-256", "sha256"),
        ("SHA-384", "sha384"),
        ("SHA-512", "sha512"),
    ],
)
def test_hash_supports_each_documented_algorithm(algorithm: str, name: str) -> None:
    # AWS docs: States.Hash, the list of algorithms
    expected = hashlib.new(name, b"input data", usedforsecurity=False).hexdigest()
    assert run(f"States.Hash('input data', '{algorithm}')") == expected


def test_json_merge_is_shallow_and_the_second_object_wins() -> None:
    # AWS docs: States.JsonMerge example
    data = {"json1": {"a": {"a1": 1, "a2": 2}, "b": 2}, "json2": {"a": {"a3": 1, "a4": 2}, "c": 3}}
    result = run("States.JsonMerge($.json1, $.json2, false)", data)
    assert result == {"a": {"a3": 1, "a4": 2}, "b": 2, "c": 3}


def test_math_random_returns_an_integer_between_start_and_end() -> None:
    # AWS docs: States.MathRandom example
    result = run("States.MathRandom($.start, $.end)", {"start": 1, "end": 999}, seed=7)
    assert isinstance(result, int)
    assert 1 <= result < 999


def test_math_add_adds_a_negative_step() -> None:
    # AWS docs: States.MathAdd example
    assert run("States.MathAdd($.value1, $.step)", {"value1": 111, "step": -1}) == 110


def test_string_split_splits_at_a_delimiter() -> None:
    # AWS docs: States.StringSplit example
    data = {"inputString": "1,2,3,4,5", "splitter": ","}
    assert run("States.StringSplit($.inputString, $.splitter)", data) == ["1", "2", "3", "4", "5"]


def test_string_split_splits_at_any_of_the_delimiter_characters() -> None:
    # AWS recorded: test_string_split, input "This.is+a,test=string" with ".+,="
    data = {"inputString": "This.is+a,test=string", "splitter": ".+,="}
    result = run("States.StringSplit($.inputString, $.splitter)", data)
    assert result == ["This", "is", "a", "test", "string"]


def test_uuid_returns_a_version_4_uuid() -> None:
    # AWS docs: States.UUID example
    result = run("States.UUID()")
    assert uuid.UUID(result).version == 4
    assert str(uuid.UUID(result)) == result


def test_nested_calls_feed_their_results_to_the_outer_call() -> None:
    # AWS docs: the "myArn" nesting example. The page's template has three {} for two
    # values, which the spec forbids; two placeholders keep the example's shape.
    arn = "States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2)"
    inner = f"States.StringSplit({arn}, '.')"
    items = f"States.ArrayGetItem({inner}, 0), States.ArrayGetItem({inner}, 1)"
    text = f"States.Format('{{}}.{{}}', {items})"
    data = {
        "ImageRecipe": {"Arn": "arn:aws:imagebuilder:us-east-1:123456789012:image-recipe/r/1.0.2"}
    }
    assert run(text, data) == "1.0"


def test_nested_calls_can_read_the_context_object() -> None:
    # AWS recorded: test_nested_calls_2 (last '-' separated part of the state machine name)
    text = (
        "States.ArrayGetItem(States.StringSplit($$.StateMachine.Name, '-'), "
        "States.MathAdd(States.ArrayLength(States.StringSplit($$.StateMachine.Name, '-')), -1))"
    )
    assert run(text, {}, {"StateMachine": {"Name": "statemachine-ab12"}}) == "ab12"


def test_format_prints_null_and_numbers_as_json() -> None:
    # AWS recorded: test_format_1 (null -> "null", 1 -> "1", 1.1 -> "1.1")
    text = "States.Format('Formatting argument {}.', $)"
    assert [run(text, v) for v in (None, 1, 1.1)] == [
        "Formatting argument null.",
        "Formatting argument 1.",
        "Formatting argument 1.1.",
    ]


def test_format_prints_an_object_the_way_java_prints_a_map() -> None:
    # AWS recorded: test_format_context_path ($$.StateMachine printed as {Id=..., Name=...})
    context = {"StateMachine": {"Id": "arn:aws:states:us-east-1:1:stateMachine:m", "Name": "m"}}
    result = run("States.Format('snd={}.', $$.StateMachine)", {}, context)
    assert result == "snd={Id=arn:aws:states:us-east-1:1:stateMachine:m, Name=m}."


def test_string_split_accepts_a_raw_newline_inside_a_literal() -> None:
    # AWS recorded: test_escape_sequence (the JSON text holds a real newline character)
    assert run("States.StringSplit('Hello\nWorld', '\n')") == ["Hello", "World"]


def test_json_merge_accepts_a_parsed_literal_with_double_quotes() -> None:
    # AWS recorded: test_json_merge_escaped_argument
    text = (
        'States.JsonMerge(States.StringToJson(\'{"constant_in_literal": "false"}\'), '
        "$$.Execution.Input.input_field, false)"
    )
    context = {"Execution": {"Input": {"input_field": {"x": 1}}}}
    assert run(text, {}, context) == {"constant_in_literal": "false", "x": 1}


@pytest.mark.parametrize(
    ("first", "second", "total"),
    [
        (1.49, 1.5, 3),
        (1.5, 1.51, 4),
        (-1.49, -1.5, -2),
        (-1.5, -1.51, -3),
        (-1.5, 0, -1),
        (-2.5, 0, -2),
        (-3.5, 0, -3),
    ],
)
def test_math_add_rounds_halves_towards_positive_infinity(
    first: float, second: float, total: int
) -> None:
    # AWS recorded: test_math_add (Java Math.round, not Python's round-half-even)
    assert run("States.MathAdd($.a, $.b)", {"a": first, "b": second}) == total


# --------------------------------------------------------------------------- grammar


def test_string_literals_unescape_quote_braces_and_backslash() -> None:
    # AWS docs: "Reserved characters in intrinsic functions"
    assert run(r"States.Array('it\'s', '\{', '\}', '\\')") == ["it's", "{", "}", "\\"]


def test_format_keeps_escaped_braces_as_text() -> None:
    # ASL spec: "the { and } characters can be escaped respectively as \\{ and \\}"
    assert run(r"States.Format('\{\} is {}', 1)") == "{} is 1"


def test_numbers_may_be_negative_fractional_or_exponential() -> None:
    result = run("States.Array(0, -7, 2.5, -0.25, 1e3, 2E-2)")
    assert result == [0, -7, 2.5, -0.25, 1000.0, 0.02]
    assert [type(v) for v in result[:2]] == [int, int]


def test_true_false_and_null_are_literals() -> None:
    assert run("States.Array(true, false, null)") == [True, False, None]


def test_whitespace_around_arguments_is_ignored() -> None:
    assert run(" States.Array (  1 ,\t'a' ,\n$.x  ) ", {"x": 2}) == [1, "a", 2]


def test_a_path_may_quote_names_and_use_filters_with_commas() -> None:
    data = {"a b": [{"n": 1, "m": "x,y"}, {"n": 5, "m": "z"}]}
    assert run("States.Array($['a b'][0].m)", data) == ["x,y"]
    assert run("States.ArrayLength($['a b'][?(@.n > 2)])", data) == 1


def test_an_indefinite_path_yields_the_list_of_matches() -> None:
    data = {"items": [{"id": 1}, {"id": 2}, {"id": 3}]}
    assert run("States.ArrayLength($.items[*].id)", data) == 3
    assert run("States.ArrayLength($.missing[*])", data) == 0


def test_a_context_path_reads_the_context_object() -> None:
    assert run("States.Array($$.Execution.Id)", {}, {"Execution": {"Id": "e-1"}}) == ["e-1"]


def test_compile_keeps_the_text_and_equal_texts_compare_equal() -> None:
    first, second = compile_intrinsic("States.UUID()"), compile_intrinsic("States.UUID()")
    assert isinstance(first, Intrinsic)
    assert first.text == "States.UUID()"
    assert first == second


def test_a_compiled_intrinsic_evaluates_against_fresh_data_each_time() -> None:
    call = compile_intrinsic("States.MathAdd($.n, 1)")
    assert [call.evaluate({"n": n}, None) for n in range(3)] == [1, 2, 3]


@pytest.mark.parametrize(
    "text",
    ["States.Format('x')", "States.UUID()", "  States.Array(1)", "States.Nope(", "States.x ("],
)
def test_is_intrinsic_accepts_strings_that_start_like_a_call(text: str) -> None:
    assert is_intrinsic(text)


@pytest.mark.parametrize("text", ["$.x", "States.Format", "hello", "States.", "states.Array()", ""])
def test_is_intrinsic_rejects_other_strings(text: str) -> None:
    assert not is_intrinsic(text)


# --------------------------------------------------------------------------- syntax errors


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("States.Foo(1)", 1, "unknown intrinsic function 'States.Foo'"),
        ("States.format('x')", 1, "unknown intrinsic function"),
        ("Format('x')", 1, "must start with 'States.'"),
        ("States.Array(1", 15, "expected ',' or ')'"),
        ("States.Array(1 2)", 16, "expected ',' or ')'"),
        ("States.Array(1,)", 16, "expected an argument"),
        ("States.Array('abc)", 14, "unterminated string literal"),
        ("States.Array(1) x", 17, "after the closing ')'"),
        ("States.Array(01)", 15, "expected ',' or ')'"),
        ("States.Array(-)", 14, "expected a number"),
        ("States.Array(1e999)", 14, "out of range"),
        ("States.Array(foo)", 14, "unexpected 'foo'"),
        ('States.Array("x")', 14, "expected an argument"),
        ("States.Array($.a[0)", 14, "unterminated '['"),
        ("States.Array($.a[?(@.x ==)])", 14, "invalid path argument"),
        (r"States.Array('a\nb')", 16, "open escape"),
        ("States.Array('a\\')", 14, "unterminated string literal"),
        ("States.Array('a\\", 16, "open escape"),
        ("States.Array", 13, "expected '(' after States.Array"),
    ],
)
def test_syntax_errors_say_what_is_wrong_and_where(text: str, column: int, words: str) -> None:
    error = syntax_error(text)
    assert words in error.reason
    assert error.column == column
    assert f"column {column}" in str(error)
    assert error.text == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("States.UUID(1)", "takes 0 arguments but 1 were given"),
        ("States.Format()", "takes at least 1 argument but 0 were given"),
        ("States.StringToJson()", "takes 1 argument but 0"),
        ("States.JsonToString($.a, $.b)", "takes 1 argument but 2"),
        ("States.ArrayPartition($.a)", "takes 2 arguments but 1"),
        ("States.ArrayContains($.a)", "takes 2 arguments"),
        ("States.ArrayRange(1, 2)", "takes 3 arguments"),
        ("States.ArrayGetItem($.a, 1, 2)", "takes 2 arguments"),
        ("States.ArrayLength()", "takes 1 argument"),
        ("States.ArrayUnique($.a, $.b)", "takes 1 argument"),
        ("States.Base64Encode()", "takes 1 argument"),
        ("States.Base64Decode('a', 'b')", "takes 1 argument"),
        ("States.Hash('a')", "takes 2 arguments"),
        ("States.JsonMerge($.a, $.b)", "takes 3 arguments"),
        ("States.MathRandom(1)", "takes 2 to 3 arguments but 1"),
        ("States.MathRandom(1, 2, 3, 4)", "takes 2 to 3 arguments but 4"),
        ("States.MathAdd(1)", "takes 2 arguments"),
        ("States.StringSplit('a')", "takes 2 arguments"),
    ],
)
def test_a_wrong_argument_count_is_a_syntax_error(text: str, expected: str) -> None:
    assert expected in syntax_error(text).reason


def test_a_wrong_count_in_a_nested_call_points_at_that_call() -> None:
    assert syntax_error("States.Array(1, States.MathAdd(1))").column == 17


def test_a_literal_format_template_must_match_its_value_count() -> None:
    error = syntax_error("States.Format('{} and {}', $.a)")
    assert "2 placeholders" in error.reason
    assert "1 value follow" in error.reason
    assert error.column == 15


def test_an_escaped_placeholder_does_not_count() -> None:
    assert "0 placeholders" in syntax_error(r"States.Format('\{}', 1)").reason


def test_a_literal_format_template_must_be_a_string() -> None:
    assert "must be a string" in syntax_error("States.Format(12, 1)").reason


def test_calls_nest_at_most_ten_deep() -> None:
    # AWS docs: "You can nest up to 10 intrinsic functions within a field"
    ten = "States.Array(" * 10 + ")" * 10
    assert run(ten) == [[[[[[[[[[]]]]]]]]]]
    eleven = "States.Array(" * 11 + ")" * 11
    assert "nest at most 10" in syntax_error(eleven).reason


def test_a_non_string_is_a_syntax_error() -> None:
    with pytest.raises(IntrinsicSyntaxError):
        compile_intrinsic(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- runtime errors


def test_a_path_argument_that_matches_nothing_is_a_runtime_error() -> None:
    # AWS fails the execution with States.Runtime when a definite path matches nothing
    error = failure("States.Format('{}', $.nope)", {"other": 1})
    assert error.name == RUNTIME
    assert error.cause == (
        "The JSONPath '$.nope' specified as an argument of States.Format could not be found "
        "in the input '{\"other\":1}'"
    )


def test_a_missing_context_path_names_the_context_object() -> None:
    error = failure("States.Array($$.Execution.Id)", {}, {"Execution": {}})
    assert error.name == RUNTIME
    assert "could not be found in the context object '{\"Execution\":{}}'" in error.cause


@pytest.mark.parametrize(
    ("text", "data", "words"),
    [
        (
            "States.Format($.t, 1)",
            {"t": 5},
            "template (first argument) must be a string, not number 5",
        ),
        ("States.Format($.t, 1)", {"t": "{} {}"}, "has 2 placeholders '{}' but 1 value were given"),
        ("States.StringToJson($.s)", {"s": "{nope"}, "is not JSON text"),
        ("States.StringToJson($.s)", {"s": "NaN"}, "is not JSON text"),
        ("States.StringToJson($.s)", {"s": 5}, "argument must be a string"),
        (
            "States.ArrayPartition($.a, 0)",
            {"a": [1]},
            "chunk size must be a positive integer, not 0",
        ),
        ("States.ArrayPartition($.a, 1.5)", {"a": [1]}, "chunk size must be an integer"),
        (
            "States.ArrayPartition($.a, 1)",
            {"a": "x"},
            "first argument must be an array, not string",
        ),
        ("States.ArrayContains($.a, 1)", {"a": {}}, "must be an array, not object"),
        ("States.ArrayRange(1, 2, 0)", None, "step (third argument) must not be 0"),
        ("States.ArrayRange(1, 1001, 1)", None, "has 1001 items; at most 1000"),
        ("States.ArrayRange(1.5, 2, 1)", None, "first element must be an integer"),
        ("States.ArrayRange(true, 2, 1)", None, "must be a number, not boolean true"),
        (
            "States.ArrayGetItem($.a, 3)",
            {"a": [1, 2, 3]},
            "index 3 is out of bounds for an array of 3",
        ),
        ("States.ArrayGetItem($.a, -1)", {"a": [1, 2, 3]}, "index -1 is out of bounds"),
        ("States.ArrayGetItem($.a, 0.5)", {"a": [1]}, "index must be an integer"),
        ("States.ArrayLength($.a)", {"a": None}, "must be an array, not null"),
        ("States.ArrayUnique($.a)", {"a": 1}, "must be an array"),
        ("States.Base64Encode($.s)", {"s": "a" * 10_001}, "has 10001 characters; at most 10000"),
        ("States.Base64Encode($.s)", {"s": 1}, "must be a string"),
        ("States.Base64Decode($.s)", {"s": "not base64!"}, "is not Base64"),
        ("States.Base64Decode($.s)", {"s": "abcde"}, "is not Base64"),
        ("States.Base64Decode($.s)", {"s": "A" * 10_004}, "at most 10000"),
        ("States.Hash($.s, 'SHA-256')", {"s": "a" * 10_001}, "at most 10000"),
        ("States.Hash('x', 'SHA256')", None, "algorithm 'SHA256' is not one of MD5, SHA-1"),
        ("States.Hash('x', 'sha-256')", None, "is not one of"),
        ("States.Hash($.s, 'MD5')", {"s": {"a": 1}}, "data (first argument) must be a string"),
        ("States.JsonMerge($.a, $.b, true)", {"a": {}, "b": {}}, "deep merging is not supported"),
        (
            "States.JsonMerge($.a, $.b, 'false')",
            {"a": {}, "b": {}},
            "third argument must be the boolean false",
        ),
        (
            "States.JsonMerge($.a, $.b, false)",
            {"a": [], "b": {}},
            "first argument must be an object",
        ),
        ("States.MathRandom(5, 5)", None, "start (5) must be less than the end (5)"),
        ("States.MathRandom('1', 5)", None, "start must be a number, not string"),
        ("States.MathAdd(2147483648, 0)", None, "outside the range -2147483648..2147483647"),
        ("States.MathAdd(-2147483649, 0)", None, "outside the range"),
        ("States.MathAdd($.a, 1)", {"a": "1"}, 'first argument must be a number, not string "1"'),
        ("States.StringSplit($.s, 1)", {"s": "a"}, "delimiter (second argument) must be a string"),
    ],
)
def test_bad_argument_values_fail_with_intrinsic_failure(text: str, data: Any, words: str) -> None:
    error = failure(text, data)
    assert error.name == INTRINSIC_FAILURE
    assert words in error.cause
    assert error.cause.startswith("Invalid arguments in States.")


def test_deeply_nested_data_fails_with_intrinsic_failure() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert failure("States.JsonToString($)", deep).name == INTRINSIC_FAILURE


# --------------------------------------------------------------------------- semantics


def test_array_range_counts_down_with_a_negative_step() -> None:
    # AWS docs: the step must be non-zero (negative steps are allowed)
    assert run("States.ArrayRange(9, 1, -2)") == [9, 7, 5, 3, 1]


def test_array_range_is_empty_when_the_step_points_away_from_the_end() -> None:
    assert run("States.ArrayRange(1, 9, -1)") == []


def test_array_range_stops_before_passing_the_last_element() -> None:
    assert run("States.ArrayRange(0, 10, 3)") == [0, 3, 6, 9]


def test_array_range_allows_exactly_one_thousand_items() -> None:
    assert len(run("States.ArrayRange(1, 1000, 1)")) == 1000


def test_array_range_rejects_a_huge_range_without_building_it() -> None:
    assert failure("States.ArrayRange(0, 1e300, 1)").name == INTRINSIC_FAILURE


def test_integral_floats_count_as_integers() -> None:
    assert run("States.ArrayGetItem($.a, 1.0)", {"a": ["x", "y"]}) == "y"


def test_array_partition_of_an_empty_array_is_empty() -> None:
    assert run("States.ArrayPartition($.a, 3)", {"a": []}) == []


def test_array_contains_compares_json_values_deeply() -> None:
    data = {"a": [{"k": [1, 2]}, "x"], "v": {"k": [1, 2]}}
    assert run("States.ArrayContains($.a, $.v)", data) is True
    assert run("States.ArrayContains($.a, $.w)", {**data, "w": {"k": [2, 1]}}) is False


def test_array_contains_does_not_take_true_for_one() -> None:
    assert run("States.ArrayContains($.a, true)", {"a": [1, 0]}) is False
    assert run("States.ArrayContains($.a, 1)", {"a": [True]}) is False


def test_array_unique_keeps_the_first_of_equal_values_in_order() -> None:
    data = {
        "a": [None, None, True, 1, 1.0, "1", [None], [None], {"a": 1, "b": 2}, {"b": 2, "a": 1}]
    }
    assert run("States.ArrayUnique($.a)", data) == [None, True, 1, "1", [None], {"a": 1, "b": 2}]


def test_base64_decode_accepts_missing_padding() -> None:
    assert run("States.Base64Decode('RGF0YQ')") == "Data"


def test_base64_round_trips_non_ascii_text() -> None:
    assert run("States.Base64Decode(States.Base64Encode('héllo ✓'))") == "héllo ✓"


def test_base64_encode_takes_exactly_ten_thousand_characters() -> None:
    assert len(run("States.Base64Encode($.s)", {"s": "a" * 10_000})) == 13_336


def test_hash_of_a_lone_surrogate_hashes_a_question_mark_as_java_does() -> None:
    assert (
        run("States.Hash($.s, 'MD5')", {"s": "\ud800"})
        == hashlib.new("md5", b"?", usedforsecurity=False).hexdigest()
    )


def test_json_merge_does_not_change_its_arguments() -> None:
    data = {"a": {"x": 1}, "b": {"x": 2, "y": 3}}
    assert run("States.JsonMerge($.a, $.b, false)", data) == {"x": 2, "y": 3}
    assert data == {"a": {"x": 1}, "b": {"x": 2, "y": 3}}


def test_json_to_string_keeps_non_ascii_characters() -> None:
    assert run("States.JsonToString($)", {"s": "é"}) == '{"s":"é"}'


def test_string_to_json_parses_scalars_too() -> None:
    assert run("States.StringToJson('[1, \"a\", null]')") == [1, "a", None]


def test_string_split_drops_empty_pieces() -> None:
    assert run("States.StringSplit(',,a,,b,', ',')") == ["a", "b"]
    assert run("States.StringSplit('...', '.')") == []


def test_string_split_with_no_delimiter_returns_the_whole_string() -> None:
    assert run("States.StringSplit('abc', '')") == ["abc"]
    assert run("States.StringSplit('', '')") == []


def test_string_split_treats_regex_characters_literally() -> None:
    assert run(r"States.StringSplit('a]b^c\\d-e', ']^\\-')") == ["a", "b", "c", "d", "e"]


def test_format_prints_floats_as_java_does() -> None:
    values = [1.0, 0.5, 1e20, 1.5e-5, 12300000.0, -2.5e-4, 0.001]
    result = run(
        "States.Format('{} {} {} {} {} {} {}', $[0], $[1], $[2], $[3], $[4], $[5], $[6])", values
    )
    assert result == "1.0 0.5 1.0E20 1.5E-5 1.23E7 -2.5E-4 0.001"


def test_format_prints_arrays_and_booleans_without_json_quotes() -> None:
    result = run("States.Format('{} {}', $.a, true)", {"a": ["x", 1, None, {"k": False}]})
    assert result == "[x, 1, null, {k=false}] true"


def test_format_does_not_reread_placeholders_inside_values() -> None:
    assert run("States.Format('{}-{}', '{}', 'b')") == "{}-b"


def test_format_honours_escapes_in_a_template_read_from_a_path() -> None:
    assert run("States.Format($.t, 1)", {"t": r"\{}={}"}) == "{}=1"


def test_math_add_rounds_non_integers_before_adding() -> None:
    # AWS docs: "If you specify a non-integer value ..., Step Functions will round it off"
    assert run("States.MathAdd(0.5, 2.5)") == 4


def test_math_add_accepts_the_int_range_bounds() -> None:
    assert run("States.MathAdd(2147483647, -2147483648)") == -1


def test_math_random_never_returns_the_end() -> None:
    # AWS docs: start inclusive, end exclusive
    results = {run("States.MathRandom(0, 2)", seed=seed) for seed in range(50)}
    assert results == {0, 1}


def test_math_random_rounds_non_integer_bounds() -> None:
    results = {run("States.MathRandom(0.6, 2.4)", seed=seed) for seed in range(20)}
    assert results == {1}


def test_math_random_with_a_seed_repeats_its_number() -> None:
    # AWS docs: "If you use this function with the same seed value, it returns an identical number."
    results = {run("States.MathRandom(0, 1000000, 42)", seed=seed) for seed in range(10)}
    results.add(run("States.MathRandom(0, 1000000, 42)"))
    assert len(results) == 1


def test_math_random_without_a_seed_follows_the_injected_rng() -> None:
    call = compile_intrinsic("States.MathRandom(0, 1000000)")
    first = call.evaluate({}, None, rng=random.Random(3))
    assert first == call.evaluate({}, None, rng=random.Random(3))


def test_uuid_follows_the_injected_rng() -> None:
    call = compile_intrinsic("States.UUID()")
    first = call.evaluate({}, None, rng=random.Random(5))
    assert first == call.evaluate({}, None, rng=random.Random(5))
    assert uuid.UUID(first).version == 4
    assert first != call.evaluate({}, None, rng=random.Random(6))


def test_path_results_are_returned_without_copying() -> None:
    data = {"o": {"k": [1]}}
    assert run("States.ArrayGetItem($.a, 0)", {"a": [data["o"]]}) is data["o"]


# --------------------------------------------------------------------------- properties

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "{}", "[1,2]", "RGF0YQ==", "SHA-256", "MD5", "\ud800", ",", "a,b"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)

_CALLS = [
    ("States.Format", 1, 4),
    ("States.StringToJson", 1, 1),
    ("States.JsonToString", 1, 1),
    ("States.Array", 0, 3),
    ("States.ArrayPartition", 2, 2),
    ("States.ArrayContains", 2, 2),
    ("States.ArrayRange", 3, 3),
    ("States.ArrayGetItem", 2, 2),
    ("States.ArrayLength", 1, 1),
    ("States.ArrayUnique", 1, 1),
    ("States.Base64Encode", 1, 1),
    ("States.Base64Decode", 1, 1),
    ("States.Hash", 2, 2),
    ("States.JsonMerge", 3, 3),
    ("States.MathRandom", 2, 3),
    ("States.MathAdd", 2, 2),
    ("States.StringSplit", 2, 2),
    ("States.UUID", 0, 0),
]


@st.composite
def _calls_with_arguments(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name, low, high = draw(st.sampled_from(_CALLS))
    count = draw(st.integers(min_value=low, max_value=high))
    values = draw(st.lists(_json, min_size=count, max_size=count))
    args = ", ".join(f"$.a{i}" for i in range(count))
    return f"{name}({args})", {f"a{i}": value for i, value in enumerate(values)}


@pytest.mark.slow  # fuzzing
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_calls_with_arguments())
def test_random_argument_values_only_ever_raise_states_errors(
    case: tuple[str, dict[str, Any]],
) -> None:
    text, data = case
    try:
        result = compile_intrinsic(text).evaluate(data, None, rng=random.Random(0))
    except StatesError as error:
        outcome = error.name
    else:
        json.dumps(result, allow_nan=False)  # the result is JSON
        outcome = "ok"
    assert outcome in {"ok", INTRINSIC_FAILURE}


_grammar_text = st.text(
    alphabet="States.FormatArray()'{}\\$,.[]*?@ 0123-eE truefalsn\"\n", max_size=40
)


@settings(max_examples=600, deadline=None)
@given(st.one_of(_grammar_text, _grammar_text.map(lambda t: "States." + t), st.text(max_size=30)))
def test_random_text_only_ever_raises_intrinsic_syntax_errors(text: str) -> None:
    try:
        compile_intrinsic(text)
    except IntrinsicSyntaxError as error:
        column = error.column
    else:
        column = 1
    assert 1 <= column <= len(text) + 1
