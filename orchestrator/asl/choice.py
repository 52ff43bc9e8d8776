# Over 600 lines on purpose: every comparison operator of the spec with its Path form, one small
# function each, behind one dispatch table.
"""Choice Rules (JSONPath query language): compile once, evaluate fast.

A Choice state holds a non-empty array of *Choice Rules*; the first whose
Boolean expression is true names the next state (states-language.net, "Choice
Rules"). A rule is either a *comparison* (``Variable`` plus exactly one
operator), or ``And``/``Or`` (non-empty arrays of rules) or ``Not`` (one rule),
nested to any depth; only top-level rules carry ``Next``.

:func:`compile_choice` validates one element of ``Choices`` (every problem, each
with its JSON pointer) and turns it into closures, so that evaluation does no
parsing and no regex compiling: paths are tuple walks through
:meth:`orchestrator.asl.paths.Path.find`, literal operands (timestamps
included) are converted once, and ``StringMatches`` patterns are split into
literal segments once.

Runtime semantics, as AWS Step Functions runs them:

* A comparison whose value has the wrong type is false, not an error: "Step
  Functions doesn't attempt to match a numeric field to a string value" (AWS
  developer guide, Choice state). Booleans are not numbers.
* A ``Variable`` (or ``...Path`` operand) that names nothing fails the state with
  ``States.Runtime`` and the cause ``Invalid path '$.x': The choice state's
  condition path references an invalid value.``; only ``IsPresent`` tests
  presence instead (ManageIQ/floe ``spec/fixtures/test-choice-failures.asl``,
  recorded against AWS; AWS guide: "If the state input doesn't contain the
  ``$.type`` field, the execution fails").
* An ordering ``...Path`` comparison (``LessThan``, ``GreaterThan``, ...) whose
  *operand* path reads a value of the wrong type fails with ``States.Runtime``
  (``Invalid value provided at path '$.x'``), while the ``Equals`` forms are just
  false (same floe fixture, tests 5, 7, 8 and 9).
* Strings order as Java's ``String.compareTo`` (UTF-16 code units), which the
  AWS guide names as the reference.
* Timestamps are RFC 3339 with an uppercase ``T`` and ``Z`` (or a numeric
  offset), compared as instants with nanosecond precision.
* ``And``/``Or`` stop at the first rule that decides them.
"""

from __future__ import annotations

import difflib
import functools
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from orchestrator.asl import errors
from orchestrator.asl.errors import Problem, StatesError, pointer
from orchestrator.asl.paths import Path, PathNotFound, PathSyntaxError, compile_path

__all__ = ["ChoiceRule", "Rule", "compile_choice", "parse_timestamp"]

#: A compiled test: ``(state data, context object) -> bool``.
Test = Callable[[Any, Any], bool]

#: Marks a value of the wrong type for a comparison (``None`` is a JSON value).
_WRONG: Final = object()

_NUMBER_TYPES: Final = frozenset({int, float})  # bool is excluded: type(True) is bool


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """A compiled Boolean expression: one comparison, or And/Or/Not over rules.

    Attributes:
        operator: the operator's ASL name, e.g. ``NumericEquals``, ``IsPresent``, ``And``.
        variable: the ``Variable`` path as written; None for And/Or/Not.
        operand: the operator's value as written (a literal, or the path of a
            ``...Path`` operator); None for And/Or/Not.
        rules: the nested rules of And/Or (in order) or Not (one); empty otherwise.
        uses_context: True when some path in the rule reads the context object (``$$``),
            so the caller must build it before evaluating.
        test: the compiled evaluation; use :meth:`matches`.
    """

    operator: str
    variable: str | None = None
    operand: Any = None
    rules: tuple[Rule, ...] = ()
    uses_context: bool = False
    test: Test = field(repr=False, compare=False)

    def matches(self, data: Any, context: Any) -> bool:
        """Evaluate the rule against the state data and the context object (``$$``).

        Raises:
            StatesError: ``States.Runtime`` when a path names nothing (except under
                ``IsPresent``) or an ordering ``...Path`` operand has the wrong type.
        """
        return self.test(data, context)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChoiceRule:
    """A top-level Choice Rule: a Boolean expression and the state it leads to.

    Attributes:
        next: the state to go to when the rule matches.
        rule: the Boolean expression.
        assign: the rule's ``Assign`` object as written (workflow variables), or None.
    """

    next: str
    rule: Rule
    assign: Mapping[str, Any] | None = None

    @property
    def uses_context(self) -> bool:
        """True when the rule reads the context object (``$$``); see :attr:`Rule.uses_context`."""
        return self.rule.uses_context

    def matches(self, data: Any, context: Any) -> bool:
        """Evaluate the rule; see :meth:`Rule.matches`."""
        return self.rule.test(data, context)


# --------------------------------------------------------------------------- timestamps

_TIMESTAMP: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(?:Z|([+-])([0-9]{2}):([0-9]{2}))"
)
_DAYS_IN_MONTH: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_NANOS: Final = 1_000_000_000


def _days_in_month(year: int, month: int) -> int:
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return 29 if month == 2 and leap else _DAYS_IN_MONTH[month - 1]


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _offset_seconds(sign: str | None, hours: str | None, minutes: str | None) -> int | None:
    if sign is None or hours is None or minutes is None:
        return 0  # "Z"
    hh, mm = int(hours), int(minutes)
    # java.time's ZoneOffset bound (+-18:00), which AWS's runtime parses with.
    if mm > 59 or hh > 18 or (hh == 18 and mm != 0):
        return None
    seconds = hh * 3600 + mm * 60
    return -seconds if sign == "-" else seconds


@functools.lru_cache(maxsize=4096)
def parse_timestamp(text: str) -> int | None:
    """Parse an ASL timestamp into nanoseconds since the Unix epoch, or None if invalid.

    Spec: timestamps "MUST conform to the RFC3339 profile of ISO 8601, with the
    further restrictions that an uppercase 'T' character MUST be used to separate
    date and time, and an uppercase 'Z' character MUST be present in the absence
    of a numeric time zone offset", e.g. ``2016-03-14T01:59:00Z``. Seconds are
    required; a fraction has 1 to 9 digits; leap seconds (``:60``) are rejected, as
    ``java.time`` does.
    """
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    if not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    offset = _offset_seconds(match.group(8), match.group(9), match.group(10))
    if offset is None:
        return None
    fraction = match.group(7)
    nanos = int(fraction.ljust(9, "0")) if fraction else 0
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return (seconds - offset) * _NANOS + nanos


# --------------------------------------------------------------------------- value kinds


def _as_string(value: Any) -> Any:
    return value if type(value) is str else _WRONG


def _as_number(value: Any) -> Any:
    return value if type(value) in _NUMBER_TYPES else _WRONG


def _as_boolean(value: Any) -> Any:
    return value if type(value) is bool else _WRONG


def _as_timestamp(value: Any) -> Any:
    if type(value) is not str:
        return _WRONG
    instant = parse_timestamp(value)
    return _WRONG if instant is None else instant


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-be", "surrogatepass")


def _java_order(compare: Callable[[Any, Any], bool]) -> Callable[[str, str], bool]:
    """Order strings as Java's ``compareTo`` does: by UTF-16 code unit.

    Python orders by code point; the two disagree only when U+E000..U+FFFF meets a
    supplementary character at the first difference, which cannot happen when
    either string is ASCII (the common case, compared directly).
    """

    def ordered(left: str, right: str) -> bool:
        if left.isascii() or right.isascii():
            return compare(left, right)
        return compare(_utf16(left), _utf16(right))

    return ordered


@dataclass(frozen=True, slots=True)
class _Kind:
    noun: str
    convert: Callable[[Any], Any]


_STRING: Final = _Kind("a string", _as_string)
_NUMBER: Final = _Kind("a number", _as_number)
_BOOLEAN: Final = _Kind("a boolean (true or false)", _as_boolean)
_TIMESTAMP_KIND: Final = _Kind("an RFC 3339 timestamp such as 2016-03-14T01:59:00Z", _as_timestamp)

_ORDERINGS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "LessThan": operator.lt,
    "GreaterThan": operator.gt,
    "LessThanEquals": operator.le,
    "GreaterThanEquals": operator.ge,
}


@dataclass(frozen=True, slots=True)
class _Binary:
    """One binary comparison operator: its value kind, its test, and its form."""

    kind: _Kind
    compare: Callable[[Any, Any], bool]
    ordering: bool
    path: bool


def _binary_operators() -> dict[str, _Binary]:
    table: dict[str, _Binary] = {}
    families = {"String": _STRING, "Numeric": _NUMBER, "Timestamp": _TIMESTAMP_KIND}
    for family, kind in families.items():
        for name, compare in {"Equals": operator.eq, **_ORDERINGS}.items():
            ordering = name != "Equals"
            if ordering and kind is _STRING:
                compare = _java_order(compare)
            table[family + name] = _Binary(kind, compare, ordering, path=False)
            table[family + name + "Path"] = _Binary(kind, compare, ordering, path=True)
    table["BooleanEquals"] = _Binary(_BOOLEAN, operator.eq, ordering=False, path=False)
    table["BooleanEqualsPath"] = _Binary(_BOOLEAN, operator.eq, ordering=False, path=True)
    return table


_BINARY: Final = _binary_operators()

_TYPE_TESTS: Final[dict[str, Callable[[Any], bool]]] = {
    "IsNull": lambda value: value is None,
    "IsNumeric": lambda value: type(value) in _NUMBER_TYPES,
    "IsString": lambda value: type(value) is str,
    "IsBoolean": lambda value: type(value) is bool,
    "IsTimestamp": lambda value: type(value) is str and parse_timestamp(value) is not None,
}

_COMPARISONS: Final = frozenset({*_BINARY, *_TYPE_TESTS, "IsPresent", "StringMatches"})
_COMBINATORS: Final = frozenset({"And", "Or", "Not"})
_OPERATORS: Final = _COMPARISONS | _COMBINATORS
_FIELDS: Final = frozenset({"Variable", "Next", "Comment", "Assign"})


# --------------------------------------------------------------------------- runtime


def _invalid_path(text: str) -> StatesError:
    return StatesError(
        errors.RUNTIME,
        f"Invalid path '{text}': The choice state's condition path references an invalid value.",
    )


def _resolve(path: Path, data: Any, context: Any) -> Any:
    try:
        return path.find(data, context)
    except PathNotFound:
        raise _invalid_path(path.text) from None


def _literal_test(variable: Path, check: Callable[[Any], bool]) -> Test:
    find, text = variable.find, variable.text

    def test(data: Any, context: Any) -> bool:
        try:
            value = find(data, context)
        except PathNotFound:
            raise _invalid_path(text) from None
        return check(value)

    return test


def _literal_check(spec: _Binary, operand: Any) -> Callable[[Any], bool]:
    convert, compare = spec.kind.convert, spec.compare

    def check(value: Any) -> bool:
        key = convert(value)
        return key is not _WRONG and compare(key, operand)

    return check


def _path_test(spec: _Binary, variable: Path, other: Path) -> Test:
    convert, compare, ordering = spec.kind.convert, spec.compare, spec.ordering

    def test(data: Any, context: Any) -> bool:
        key = convert(_resolve(variable, data, context))
        other_key = convert(_resolve(other, data, context))
        if other_key is _WRONG:
            if ordering:
                raise StatesError(errors.RUNTIME, f"Invalid value provided at path '{other.text}'")
            return False
        return key is not _WRONG and compare(key, other_key)

    return test


def _presence_test(variable: Path, expected: bool) -> Test:
    find = variable.find

    def test(data: Any, context: Any) -> bool:
        try:
            find(data, context)
        except PathNotFound:
            return not expected
        return expected

    return test


def _glob_check(segments: tuple[str, ...]) -> Callable[[Any], bool]:
    """Match ``*`` wildcards by literal segments: no regex, no backtracking blow-up."""
    if len(segments) == 1:
        (literal,) = segments
        return lambda value: type(value) is str and value == literal
    head, tail = segments[0], segments[-1]
    middle = tuple(segment for segment in segments[1:-1] if segment)
    shortest = len(head) + len(tail)

    def check(value: Any) -> bool:
        if type(value) is not str or len(value) < shortest:
            return False
        if not (value.startswith(head) and value.endswith(tail)):
            return False
        position, end = len(head), len(value) - len(tail)
        for segment in middle:  # leftmost-first is optimal when '*' is the only wildcard
            found = value.find(segment, position, end)
            if found < 0:
                return False
            position = found + len(segment)
        return True

    return check


def _all_test(tests: tuple[Test, ...]) -> Test:
    def test(data: Any, context: Any) -> bool:
        for each in tests:  # noqa: SIM110 - a plain loop beats all(<genexpr>) on the hot path
            if not each(data, context):
                return False
        return True

    return test


def _any_test(tests: tuple[Test, ...]) -> Test:
    def test(data: Any, context: Any) -> bool:
        for each in tests:  # noqa: SIM110 - a plain loop beats any(<genexpr>) on the hot path
            if each(data, context):
                return True
        return False

    return test


def _not_test(inner: Test) -> Test:
    return lambda data, context: not inner(data, context)


# --------------------------------------------------------------------------- compiling


def _at(where: str, *parts: str | int) -> str:
    return where + pointer(*parts)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _compile_reference(text: Any, where: str, problems: list[Problem], name: str) -> Path | None:
    # AWS: "The values of the Variable and Path fields in a comparison must be valid
    # reference paths"; $$ reads the context object.
    if not isinstance(text, str):
        problems.append(Problem(path=where, message=f"{name} must be a reference path string"))
        return None
    try:
        path = compile_path(text)
    except PathSyntaxError as exc:
        problems.append(Problem(path=where, message=f"{name}: {_first_line(exc)}"))
        return None
    if not path.definite:
        detail = "is not a reference path (only $, .name, ['name'] and [index] steps)"
        message = f"{name}: {text!r} {detail}"
        problems.append(Problem(path=where, message=message))
        return None
    return path


def _glob_segments(pattern: str) -> tuple[str, ...] | str:
    """Split a StringMatches pattern at unescaped ``*``; a str result is an error message.

    Spec: "*" matches zero or more characters and nothing else is special; a literal
    "*" is written ``\\*`` and a literal backslash ``\\\\``.
    """
    segments: list[str] = []
    current: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "*":
            segments.append("".join(current))
            current = []
        elif char == "\\":
            escaped = next(chars, None)
            if escaped not in ("*", "\\"):
                shown = "at the end" if escaped is None else f"before {escaped!r}"
                return f"invalid escape {shown}: only \\* and \\\\ may follow a backslash"
            current.append(escaped)
        else:
            current.append(char)
    segments.append("".join(current))
    return tuple(segments)


def _is_number(value: Any) -> bool:
    return type(value) in _NUMBER_TYPES and math.isfinite(value)


def _literal_operand(spec: _Binary, name: str, raw: Any) -> tuple[Any, str | None]:
    """Convert a literal operand once; return (key, error message or None)."""
    if spec.kind is _NUMBER:
        ok = _is_number(raw)
        return raw, None if ok else f"{name} needs {_NUMBER.noun}, got {_describe(raw)}"
    key = spec.kind.convert(raw)
    if key is _WRONG:
        return None, f"{name} needs {spec.kind.noun}, got {_describe(raw)}"
    return key, None


def _describe(value: Any) -> str:
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    kinds |= {list: "an array", dict: "an object", type(None): "null"}
    noun = kinds.get(type(value), type(value).__name__)
    if noun in ("an array", "an object") and not value:
        return f"an empty {noun[3:]}"
    return f"{noun} {value!r}" if type(value) in (str, int, float, bool) else noun


@dataclass(frozen=True, slots=True)
class _Site:
    """Where an operator sits, and the list its problems go to."""

    where: str
    problems: list[Problem]

    def report(self, message: str) -> None:
        self.problems.append(Problem(path=self.where, message=message))


def _compile_binary(name: str, operand: Any, variable: Path | None, site: _Site) -> Test | None:
    spec = _BINARY[name]
    if spec.path:
        other = _compile_reference(operand, site.where, site.problems, name)
        if other is None or variable is None:
            return None
        return _path_test(spec, variable, other)
    key, message = _literal_operand(spec, name, operand)
    if message is not None:
        site.report(message)
        return None
    if variable is None:
        return None
    return _literal_test(variable, _literal_check(spec, key))


def _compile_unary(name: str, operand: Any, variable: Path | None, site: _Site) -> Test | None:
    if type(operand) is not bool:
        site.report(f"{name} needs a boolean (true or false), got {_describe(operand)}")
        return None
    if variable is None:
        return None
    if name == "IsPresent":
        return _presence_test(variable, operand)
    is_kind, expected = _TYPE_TESTS[name], operand
    return _literal_test(variable, lambda value: is_kind(value) is expected)


def _compile_matches(operand: Any, variable: Path | None, site: _Site) -> Test | None:
    if type(operand) is not str:
        site.report(f"StringMatches needs a string pattern, got {_describe(operand)}")
        return None
    segments = _glob_segments(operand)
    if isinstance(segments, str):
        site.report(f"StringMatches pattern {operand!r}: {segments}")
        return None
    if variable is None:
        return None
    return _literal_test(variable, _glob_check(segments))


def _compile_comparison(
    name: str, raw: dict[Any, Any], variable: Path | None, site: _Site
) -> Rule | None:
    operand = raw[name]
    if name in _BINARY:
        test = _compile_binary(name, operand, variable, site)
    elif name == "StringMatches":
        test = _compile_matches(operand, variable, site)
    else:
        test = _compile_unary(name, operand, variable, site)
    if test is None or variable is None:
        return None
    path_operand = name in _BINARY and _BINARY[name].path
    context = variable.reads_context or (path_operand and operand.startswith("$"))
    return Rule(
        operator=name, variable=variable.text, operand=operand, uses_context=context, test=test
    )


def _compile_combinator(name: str, operand: Any, site: _Site) -> Rule | None:
    if name == "Not":
        if not isinstance(operand, dict):
            site.report(f"Not needs a single Choice Rule object, got {_describe(operand)}")
            return None
        inner = _compile_rule(operand, site.where, site.problems, top=False)
        if inner is None:
            return None
        test = _not_test(inner.test)
        return Rule(operator=name, rules=(inner,), uses_context=inner.uses_context, test=test)
    if not isinstance(operand, list) or not operand:
        site.report(f"{name} needs a non-empty array of Choice Rules, got {_describe(operand)}")
        return None
    rules = [
        _compile_rule(item, _at(site.where, i), site.problems, top=False)
        for i, item in enumerate(operand)
    ]
    compiled = tuple(rule for rule in rules if rule is not None)
    if len(compiled) != len(rules):
        return None
    tests = tuple(rule.test for rule in compiled)
    test = _all_test(tests) if name == "And" else _any_test(tests)
    context = any(rule.uses_context for rule in compiled)
    return Rule(operator=name, rules=compiled, uses_context=context, test=test)


def _unknown_field(key: Any) -> str:
    if key == "Condition":
        return "unknown field 'Condition' (Condition belongs to JSONata Choice Rules)"
    if not isinstance(key, str):
        return f"unknown field {key!r}"
    close = difflib.get_close_matches(key, sorted(_OPERATORS | _FIELDS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown field {key!r}{hint}"


def _check_fields(raw: dict[Any, Any], where: str, problems: list[Problem], *, top: bool) -> None:
    for key, value in raw.items():
        here = _at(where, str(key))
        if key in _OPERATORS or key == "Variable":
            continue
        if key == "Next" and not top:
            message = "Next is allowed only on a top-level Choice Rule, not inside And, Or or Not"
            problems.append(Problem(path=here, message=message))
        elif key == "Assign" and not top:
            problems.append(
                Problem(path=here, message="Assign is allowed only on a top-level Choice Rule")
            )
        elif key == "Assign" and not isinstance(value, dict):
            problems.append(
                Problem(path=here, message=f"Assign must be an object, got {_describe(value)}")
            )
        elif key == "Comment" and not isinstance(value, str):
            problems.append(
                Problem(path=here, message=f"Comment must be a string, got {_describe(value)}")
            )
        elif key not in _FIELDS:
            problems.append(Problem(path=here, message=_unknown_field(key)))


def _compile_variable(
    raw: dict[Any, Any], where: str, problems: list[Problem], names: list[str]
) -> Path | None:
    here = _at(where, "Variable")
    comparing = any(name in _COMPARISONS for name in names)
    if "Variable" not in raw:
        if comparing:
            message = "a comparison needs a Variable (a reference path)"
            problems.append(Problem(path=here, message=message))
        return None
    if names and not comparing:
        problems.append(
            Problem(path=here, message="Variable is not allowed on an And, Or or Not rule")
        )
        return None
    return _compile_reference(raw["Variable"], here, problems, "Variable")


def _operator_count_problem(names: list[str], where: str) -> Problem:
    found = ", ".join(names) if names else "none"
    message = (
        f"a Choice Rule needs exactly one comparison operator, or And, Or or Not; found {found}"
    )
    return Problem(path=where, message=message)


def _compile_rule(raw: Any, where: str, problems: list[Problem], *, top: bool) -> Rule | None:
    if not isinstance(raw, dict):
        problems.append(
            Problem(path=where, message=f"a Choice Rule must be an object, got {_describe(raw)}")
        )
        return None
    _check_fields(raw, where, problems, top=top)
    names = [key for key in raw if key in _OPERATORS]
    variable = _compile_variable(raw, where, problems, names)
    rules = []
    for name in names:
        site = _Site(_at(where, name), problems)
        if name in _COMBINATORS:
            rules.append(_compile_combinator(name, raw[name], site))
        else:
            rules.append(_compile_comparison(name, raw, variable, site))
    if len(names) != 1:
        problems.append(_operator_count_problem(names, where))
        return None
    return rules[0]


def _compile_next(raw: Any, where: str, problems: list[Problem]) -> str | None:
    if not isinstance(raw, dict):
        return None
    here = _at(where, "Next")
    if "Next" not in raw:
        problems.append(
            Problem(path=here, message="a top-level Choice Rule needs Next (a state name)")
        )
        return None
    target = raw["Next"]
    if not isinstance(target, str) or not target:
        problems.append(
            Problem(path=here, message=f"Next must be a state name, got {_describe(target)}")
        )
        return None
    return target


def compile_choice(raw: Any, where: str, problems: list[Problem]) -> ChoiceRule | None:
    """Validate and compile one element of a Choice state's ``Choices`` array.

    Every problem found is appended to ``problems`` with its JSON pointer (for
    example ``/States/Route/Choices/0/Next`` or
    ``/States/Route/Choices/0/And/1/NumericEquals``); the compiler does not stop at
    the first one.

    Args:
        raw: the rule as parsed from JSON or YAML (untrusted).
        where: the JSON pointer of ``raw`` in the definition.
        problems: where to append what is wrong.

    Returns:
        The compiled rule, or None when any problem was found.
    """
    before = len(problems)
    rule = _compile_rule(raw, where, problems, top=True)
    target = _compile_next(raw, where, problems)
    if rule is None or target is None or len(problems) > before:
        return None
    assign = raw.get("Assign")
    return ChoiceRule(next=target, rule=rule, assign=assign)
