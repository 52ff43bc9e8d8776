# Over 600 lines on purpose: the States.* argument grammar and the 18 functions, one short
# function each; to split next into grammar and functions.
"""ASL intrinsic functions: ``States.Format(...)`` and the seventeen others.

An intrinsic is a string such as ``"States.Format('{} items', States.ArrayLength($.a))"``
in a ``"key.$"`` field of a payload template (JSONPath query language only). It is
parsed once, when the definition loads, by a small recursive-descent parser (never
``eval``) into a tree of closures; evaluating it walks that tree and re-parses nothing.

Argument grammar (AWS developer guide, "Intrinsic functions for JSONPath states", and the
ASL spec; LocalStack's ANTLR grammar, whose tests are recorded against AWS, has the same
shape):

* ``'text'``: a string literal in single quotes. ``\\'``, ``\\{``, ``\\}`` and ``\\\\``
  are the only escapes; AWS: "If an open escape backslash \\ is found in the intrinsic
  invocation string, the interpreter will throw a runtime error", which we report when
  the definition loads.
* numbers (``2``, ``-1``, ``1.5``, ``2e3``), ``true``, ``false`` and ``null``;
* a Path (``$.x``, ``$$.Execution.Id``, ``$.a[*].b``, ``$.a[?(@.n > 1)]``);
* another intrinsic call; AWS nests "up to 10 intrinsic functions within a field".

Errors:

* :class:`IntrinsicSyntaxError` when compiling: bad syntax, an unknown function, a wrong
  argument count, or a literal ``States.Format`` template whose ``{}`` count differs
  from its argument count;
* ``States.IntrinsicFailure`` when evaluating: an argument of the wrong type or value;
* ``States.Runtime`` when evaluating: a definite path argument that matches nothing (AWS
  fails the execution with ``States.Runtime`` there, as for any payload-template path).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import random
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn

from orchestrator.asl import errors
from orchestrator.asl.paths import Path, PathNotFound, compact, compile_path, where_not_found

__all__ = ["Intrinsic", "IntrinsicSyntaxError", "compile_intrinsic", "is_intrinsic"]

#: AWS: "You can nest up to 10 intrinsic functions within a field".
MAX_NESTING = 10
#: AWS: States.Base64Encode/Base64Decode take "up to 10,000 characters"; States.Hash
#: data must be "10,000 characters or less".
MAX_STRING_LENGTH = 10_000
#: AWS: States.ArrayRange: "The newly generated array can't contain more than 1000 items."
MAX_RANGE_ITEMS = 1000
#: AWS docs (States.MathAdd input validation): integers in the range of a Java ``int``.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
#: AWS: States.Hash algorithms, spelled exactly so; mapped to :mod:`hashlib` names.
HASH_ALGORITHMS = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}

_Rng = random.Random | None
_Evaluator = Callable[[Any, Any, _Rng], Any]
_Impl = Callable[[list[Any], _Rng], Any]

_LOOKS_LIKE_CALL = re.compile(r"\s*States\.[A-Za-z0-9_]*\s*\(")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WHITESPACE = " \t\n\r"
_ESCAPABLE = "'{}\\"


class IntrinsicSyntaxError(ValueError):
    """An intrinsic function string that cannot be compiled.

    Attributes:
        text: the intrinsic as written.
        column: 1-based column where the problem is.
        reason: what is wrong, without the position.
    """

    def __init__(self, reason: str, text: str, column: int) -> None:
        super().__init__(f"{reason} (column {column} of {text!r})")
        self.text = text
        self.column = column
        self.reason = reason


def is_intrinsic(text: str) -> bool:
    """Tell whether a string looks like an intrinsic call, ``States.Xxx(...)``.

    Used to route a ``"key.$"`` value: True means "compile it with
    :func:`compile_intrinsic`", which then reports what exactly is wrong with it.
    """
    return isinstance(text, str) and _LOOKS_LIKE_CALL.match(text) is not None


@dataclass(frozen=True, slots=True)
class Intrinsic:
    """A compiled intrinsic function call, ready to evaluate many times.

    Attributes:
        text: the intrinsic as written in the definition.
    """

    text: str
    _root: _Evaluator = field(repr=False, compare=False)

    def evaluate(self, data: Any, context: Any, *, rng: random.Random | None = None) -> Any:
        """Evaluate against the state data and the context object (for ``$$`` paths).

        Args:
            data: the JSON value that ``$`` paths read.
            context: the context object that ``$$`` paths read.
            rng: source of randomness for an unseeded States.MathRandom and for
                States.UUID. Default None: a fresh generator and ``uuid.uuid4``.
                Pass one to make a run repeatable (replay, tests).

        Returns:
            The JSON value the call produces; values read by paths are not copied.

        Raises:
            StatesError: ``States.IntrinsicFailure`` for a bad argument type or value,
                ``States.Runtime`` for a definite path argument that matches nothing.
        """
        try:
            return self._root(data, context, rng)
        except RecursionError:
            raise errors.StatesError(
                errors.INTRINSIC_FAILURE, f"{self.text}: a value is nested too deeply"
            ) from None


def compile_intrinsic(text: str) -> Intrinsic:
    """Parse an intrinsic call once, at definition load time.

    Raises:
        IntrinsicSyntaxError: bad syntax, an unknown function name, a wrong argument
            count, nesting deeper than 10 calls, or a literal ``States.Format`` template
            whose ``{}`` count differs from its number of value arguments.
    """
    call = _Parser(text).parse()
    return Intrinsic(text=text, _root=_build_call(call))


# --------------------------------------------------------------------------- syntax tree


@dataclass(frozen=True, slots=True)
class _Literal:
    value: Any
    column: int
    raw: str | None = None  # a string literal's text between the quotes, escapes kept


@dataclass(frozen=True, slots=True)
class _PathArg:
    path: Path
    column: int


@dataclass(frozen=True, slots=True)
class _Call:
    name: str
    args: tuple[_Literal | _PathArg | _Call, ...]
    column: int


_Node = _Literal | _PathArg | _Call


class _Parser:
    """Recursive descent over the text; positions are 0-based, columns 1-based."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise IntrinsicSyntaxError(f"an intrinsic must be a string, not {text!r}", "", 1)
        self.text = text
        self.pos = 0

    def error(self, reason: str, pos: int | None = None) -> IntrinsicSyntaxError:
        where = self.pos if pos is None else pos
        return IntrinsicSyntaxError(reason, self.text, where + 1)

    def parse(self) -> _Call:
        self.skip_space()
        if not self.text.startswith("States.", self.pos):
            raise self.error("an intrinsic function call must start with 'States.'")
        call = self.call(depth=1)
        self.skip_space()
        if self.pos < len(self.text):
            raise self.error(f"unexpected {self.text[self.pos]!r} after the closing ')'")
        return call

    def skip_space(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        self.pos = pos

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str, what: str) -> None:
        if self.peek() != char:
            found = repr(self.peek()) if self.peek() else "the end of the text"
            raise self.error(f"expected {what}, found {found}")
        self.pos += 1

    def call(self, depth: int) -> _Call:
        start = self.pos
        if depth > MAX_NESTING:
            raise self.error(f"intrinsic functions nest at most {MAX_NESTING} deep", start)
        self.pos += len("States.")
        word = _WORD.match(self.text, self.pos)
        name = "States." + (word.group(0) if word else "")
        if name not in _FUNCTIONS:
            raise self.error(f"unknown intrinsic function {name!r}", start)
        self.pos += len(name) - len("States.")
        self.skip_space()
        self.expect("(", f"'(' after {name}")
        args = self.arguments(depth)
        call = _Call(name=name, args=tuple(args), column=start + 1)
        _FUNCTIONS[name].check(call, self)
        return call

    def arguments(self, depth: int) -> list[_Node]:
        args: list[_Node] = []
        self.skip_space()
        if self.peek() == ")":
            self.pos += 1
            return args
        while True:
            self.skip_space()
            args.append(self.argument(depth))
            self.skip_space()
            if self.peek() == ")":
                self.pos += 1
                return args
            self.expect(",", "',' or ')' after an argument")

    def argument(self, depth: int) -> _Node:
        char = self.peek()
        if char == "'":
            return self.string()
        if char == "$":
            return self.path()
        if char == "-" or char.isdigit():
            return self.number()
        return self.word(depth)

    def string(self) -> _Literal:
        start = self.pos
        text, pos = self.text, self.pos + 1
        chars: list[str] = []
        while pos < len(text) and text[pos] != "'":
            if text[pos] == "\\":
                escaped = text[pos + 1] if pos + 1 < len(text) else ""
                if not escaped or escaped not in _ESCAPABLE:
                    raise self.error(
                        "a backslash must escape one of ' { } \\ (found an open escape)", pos
                    )
                pos += 1
            chars.append(text[pos])
            pos += 1
        if pos >= len(text):
            raise self.error("unterminated string literal", start)
        self.pos = pos + 1
        return _Literal(value="".join(chars), column=start + 1, raw=text[start + 1 : pos])

    def number(self) -> _Literal:
        match = _NUMBER.match(self.text, self.pos)
        if match is None:
            raise self.error("expected a number")
        self.pos = match.end()
        literal = match.group(0)
        is_float = any(c in literal for c in ".eE")
        try:
            value = float(literal) if is_float else int(literal)
        except ValueError:  # more digits than Python converts
            raise self.error(f"number {literal[:20]}... is too long", match.start()) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(f"number {literal} is out of range", match.start())
        return _Literal(value=value, column=match.start() + 1)

    def word(self, depth: int) -> _Node:
        start = self.pos
        match = _WORD.match(self.text, self.pos)
        if match is None:
            found = repr(self.peek()) if self.peek() else "the end of the text"
            raise self.error(f"expected an argument, found {found}")
        word = match.group(0)
        constants = {"true": True, "false": False, "null": None}
        if word in constants:
            self.pos = match.end()
            return _Literal(value=constants[word], column=start + 1)
        if word == "States" and self.text.startswith("States.", start):
            return self.call(depth + 1)
        raise self.error(
            f"unexpected {word!r}: an argument is a 'string', a number, true, false, null, "
            "a $ path or a States.* call"
        )

    def path(self) -> _PathArg:
        start = self.pos
        end = _path_end(self.text, start)
        if end < 0:
            raise self.error("unterminated '[' in a path argument", start)
        text = self.text[start:end]
        try:
            path = compile_path(text)
        except ValueError as exc:  # PathSyntaxError, or an index with too many digits
            raise self.error(f"invalid path argument: {exc}", start) from None
        self.pos = end
        return _PathArg(path=path, column=start + 1)


def _path_end(text: str, pos: int) -> int:
    """Index just past the path starting at ``pos``; -1 if a bracket is left open.

    A path ends at whitespace, ``,`` or ``)`` outside brackets; inside brackets anything
    goes (filters, quoted names, unions), quotes taken into account.
    """
    depth, quote = 0, ""
    while pos < len(text):
        char = text[pos]
        if quote:
            if char == "\\":
                pos += 1
            elif char == quote:
                quote = ""
        elif depth and char in "'\"":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        elif not depth and (char in ",)" or char in _WHITESPACE):
            break
        pos += 1
    return -1 if depth else pos


# --------------------------------------------------------------------------- evaluators


def _build(node: _Node, function: str) -> _Evaluator:
    if isinstance(node, _Literal):
        value = node.value  # literals are scalars: sharing them is safe

        def literal(data: Any, context: Any, rng: _Rng) -> Any:
            return value

        return literal
    if isinstance(node, _PathArg):
        return _build_path(node.path, function)
    return _build_call(node)


def _build_path(path: Path, function: str) -> _Evaluator:
    find = path.find

    def read(data: Any, context: Any, rng: _Rng) -> Any:
        try:
            return find(data, context)
        except PathNotFound:
            where, shown = where_not_found(path, data, context)
            raise errors.StatesError(
                errors.RUNTIME,
                f"The JSONPath '{path.text}' specified as an argument of {function} "
                f"could not be found in {where} '{shown}'",
            ) from None

    return read


def _build_call(call: _Call) -> _Evaluator:
    spec = _FUNCTIONS[call.name]
    args = tuple(_build(arg, call.name) for arg in call.args)
    if spec.build is not None:
        return spec.build(call, args)
    impl = spec.impl

    def apply(data: Any, context: Any, rng: _Rng) -> Any:
        return impl([arg(data, context, rng) for arg in args], rng)

    return apply


# --------------------------------------------------------------------------- validation


def _failure(function: str, message: str) -> errors.StatesError:
    return errors.StatesError(
        errors.INTRINSIC_FAILURE, f"Invalid arguments in {function}: {message}"
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _wrong_type(function: str, what: str, expected: str, value: Any) -> NoReturn:
    raise _failure(
        function, f"the {what} must be {expected}, not {_json_type(value)} {_shown(value)}"
    )


def _shown(value: Any, limit: int = 100) -> str:
    try:
        text = compact(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _string(function: str, what: str, value: Any) -> str:
    if not isinstance(value, str):
        _wrong_type(function, what, "a string", value)
    return value


def _array(function: str, what: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        _wrong_type(function, what, "an array", value)
    return value


def _object(function: str, what: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        _wrong_type(function, what, "an object", value)
    return value


def _number(function: str, what: str, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _wrong_type(function, what, "a number", value)
    if isinstance(value, float) and not math.isfinite(value):
        raise _failure(function, f"the {what} must be a finite number")
    return value


def _integer(function: str, what: str, value: Any) -> int:
    """An integer argument; 3.0 counts as 3 (JSON does not tell them apart), 3.5 fails."""
    number = _number(function, what, value)
    if isinstance(number, float):
        if not number.is_integer():
            _wrong_type(function, what, "an integer", value)
        return int(number)
    return number


def _rounded(function: str, what: str, value: Any) -> int:
    """An integer argument that AWS rounds when it is not one.

    AWS (MathAdd, MathRandom): "If you specify a non-integer value ..., Step Functions
    will round it off to the nearest integer." Recorded AWS results (LocalStack snapshot
    ``test_math_add``: 1.5 -> 2, -1.5 -> -1, -2.5 -> -2) are Java ``Math.round``: halves
    go up, towards positive infinity.
    """
    number = _number(function, what, value)
    if isinstance(number, int):
        return number
    floor = math.floor(number)
    return floor + 1 if number - floor >= 0.5 else floor


def _utf8(text: str) -> bytes:
    # A lone surrogate (JSON allows "\\ud800") becomes '?', as Java's getBytes(UTF_8) does.
    return text.encode("utf-8", errors="replace")


def _limited(function: str, what: str, text: str) -> str:
    if len(text) > MAX_STRING_LENGTH:
        raise _failure(
            function,
            f"the {what} has {len(text)} characters; at most {MAX_STRING_LENGTH} are allowed",
        )
    return text


# --------------------------------------------------------------------------- JSON helpers


def _key(value: Any) -> Any:
    """A hashable key with JSON equality: 1 == 1.0, but true != 1 and objects ignore order."""
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    if isinstance(value, list):
        return (4, tuple(_key(item) for item in value))
    if isinstance(value, dict):
        return (5, frozenset((name, _key(item)) for name, item in value.items()))
    return (6, repr(value))


def _java_double(number: float) -> str:
    """Render a float as Java's ``Double.toString`` (AWS runs on the JVM): 1.0E20, 0.001."""
    if number == 0:
        return "-0.0" if math.copysign(1.0, number) < 0 else "0.0"
    if 1e-3 <= abs(number) < 1e7:
        return repr(number)
    sign, digits, exponent = Decimal(repr(number)).as_tuple()
    if not isinstance(exponent, int):  # NaN or infinity: not JSON, print as Java would
        return "NaN" if math.isnan(number) else ("-" if number < 0 else "") + "Infinity"
    text = "".join(map(str, digits)).rstrip("0") or "0"
    power = exponent + len(digits) - 1
    mantissa = f"{text[0]}.{text[1:] or '0'}"
    return f"{'-' if sign else ''}{mantissa}E{power}"


def _text(value: Any) -> str:
    """How States.Format prints a value.

    Scalars print as JSON without quotes around strings (spec: "the natural string
    representation"). Objects and arrays print the way Java prints a Map and a List,
    which is what AWS returns (recorded in LocalStack's ``test_format_2`` snapshot:
    ``{Id=arn:..., Name=...}``), although the spec says they MUST NOT be used.
    """
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{name}={_text(item)}" for name, item in value.items()) + "}"
    return str(value)


# --------------------------------------------------------------------------- States.Format

_Template = tuple[str | None, ...]  # literal pieces, None where a {} placeholder is


@functools.lru_cache(maxsize=256)
def _template(text: str) -> _Template:
    """Split a Format template at its ``{}``; ``\\{``, ``\\}``, ``\\\\``, ``\\'`` are literal."""
    pieces: list[str | None] = []
    current: list[str] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char == "\\" and text[pos + 1 : pos + 2] in ("{", "}", "\\", "'"):
            current.append(text[pos + 1])
            pos += 2
            continue
        if text.startswith("{}", pos):
            pieces.extend(("".join(current), None))
            current = []
            pos += 2
            continue
        current.append(char)
        pos += 1
    pieces.append("".join(current))
    return tuple(piece for piece in pieces if piece != "")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _placeholders(template: _Template) -> int:
    return sum(1 for piece in template if piece is None)


def _render(template: _Template, values: Sequence[Any]) -> str:
    out: list[str] = []
    index = 0
    for piece in template:
        if piece is None:
            out.append(_text(values[index]))
            index += 1
        else:
            out.append(piece)
    return "".join(out)


def _check_format(call: _Call, parser: _Parser) -> None:
    first = call.args[0]
    if not isinstance(first, _Literal):
        return
    if not isinstance(first.value, str) or first.raw is None:
        raise parser.error("the first argument of States.Format must be a string", first.column - 1)
    wanted, given = _placeholders(_template(first.raw)), len(call.args) - 1
    if wanted != given:
        raise parser.error(
            f"States.Format template has {_count(wanted, 'placeholder')} '{{}}' but "
            f"{_count(given, 'value')} follow it; they must be as many",
            first.column - 1,
        )


def _build_format(call: _Call, args: tuple[_Evaluator, ...]) -> _Evaluator:
    first, values = call.args[0], args[1:]
    if isinstance(first, _Literal) and first.raw is not None:
        template = _template(first.raw)  # checked against the argument count at parse time

        def fixed(data: Any, context: Any, rng: _Rng) -> Any:
            return _render(template, [value(data, context, rng) for value in values])

        return fixed
    read_template = args[0]

    def dynamic(data: Any, context: Any, rng: _Rng) -> Any:
        text = _string(
            "States.Format", "template (first argument)", read_template(data, context, rng)
        )
        template = _template(text)
        if _placeholders(template) != len(values):
            raise _failure(
                "States.Format",
                f"the template {_shown(text)} has {_count(_placeholders(template), 'placeholder')}"
                f" '{{}}' but {_count(len(values), 'value')} were given",
            )
        return _render(template, [value(data, context, rng) for value in values])

    return dynamic


# --------------------------------------------------------------------------- functions


def _string_to_json(args: list[Any], rng: _Rng) -> Any:
    text = _string("States.StringToJson", "argument", args[0])
    if not text.strip():
        return None  # AWS: blank text parses to null (LocalStack test_string_to_json, on AWS)
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        raise _failure("States.StringToJson", f"{_shown(text)} is not JSON text: {exc}") from None


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    # '1e400' is valid JSON text but no double holds it: Python would give inf, which
    # no JSON document (or the store) can carry.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is too large")
    return value


def _json_to_string(args: list[Any], rng: _Rng) -> Any:
    try:
        return json.dumps(args[0], separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _failure("States.JsonToString", f"the argument is not JSON: {exc}") from None


def _array_of(args: list[Any], rng: _Rng) -> Any:
    return args


def _array_partition(args: list[Any], rng: _Rng) -> Any:
    name = "States.ArrayPartition"
    items = _array(name, "first argument", args[0])
    size = _integer(name, "chunk size", args[1])
    if size <= 0:
        raise _failure(name, f"the chunk size must be a positive integer, not {size}")
    return [items[start : start + size] for start in range(0, len(items), size)]


def _array_contains(args: list[Any], rng: _Rng) -> Any:
    items = _array("States.ArrayContains", "first argument", args[0])
    wanted = _key(args[1])
    return any(_key(item) == wanted for item in items)


def _array_range(args: list[Any], rng: _Rng) -> Any:
    name = "States.ArrayRange"
    first = _integer(name, "first element", args[0])
    last = _integer(name, "last element", args[1])
    step = _integer(name, "step", args[2])
    if step == 0:
        raise _failure(name, "the step (third argument) must not be 0")
    count = (last - first) // step + 1 if (last - first) * step >= 0 else 0
    if count > MAX_RANGE_ITEMS:
        raise _failure(name, f"the range has {count} items; at most {MAX_RANGE_ITEMS} are allowed")
    return [first + step * index for index in range(count)]


def _array_get_item(args: list[Any], rng: _Rng) -> Any:
    name = "States.ArrayGetItem"
    items = _array(name, "first argument", args[0])
    index = _integer(name, "index", args[1])
    if not 0 <= index < len(items):
        raise _failure(
            name, f"the index {index} is out of bounds for an array of {len(items)} items"
        )
    return items[index]


def _array_length(args: list[Any], rng: _Rng) -> Any:
    return len(_array("States.ArrayLength", "argument", args[0]))


def _array_unique(args: list[Any], rng: _Rng) -> Any:
    items = _array("States.ArrayUnique", "argument", args[0])
    seen: set[Any] = set()
    unique = []
    for item in items:  # keeps the first of equal values, in order
        key = _key(item)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def _base64_encode(args: list[Any], rng: _Rng) -> Any:
    name = "States.Base64Encode"
    text = _limited(name, "argument", _string(name, "argument", args[0]))
    return base64.b64encode(_utf8(text)).decode("ascii")


def _base64_decode(args: list[Any], rng: _Rng) -> Any:
    name = "States.Base64Decode"
    text = _limited(name, "argument", _string(name, "argument", args[0]))
    if len(text) % 4 == 1:
        raise _failure(name, f"{_shown(text)} is not Base64: its length is wrong")
    padded = text + "=" * (-len(text) % 4)  # Java's decoder accepts missing padding
    try:
        raw = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise _failure(name, f"{_shown(text)} is not Base64") from None
    return raw.decode("utf-8", errors="replace")  # as Java's new String(bytes, UTF_8)


def _hash(args: list[Any], rng: _Rng) -> Any:
    name = "States.Hash"
    data = _limited(name, "data (first argument)", _string(name, "data (first argument)", args[0]))
    algorithm = _string(name, "algorithm (second argument)", args[1])
    if algorithm not in HASH_ALGORITHMS:
        raise _failure(
            name,
            f"the algorithm {algorithm!r} is not one of {', '.join(HASH_ALGORITHMS)}",
        )
    digest = hashlib.new(HASH_ALGORITHMS[algorithm], usedforsecurity=False)
    digest.update(_utf8(data))
    return digest.hexdigest()


def _json_merge(args: list[Any], rng: _Rng) -> Any:
    name = "States.JsonMerge"
    left = _object(name, "first argument", args[0])
    right = _object(name, "second argument", args[1])
    deep = args[2]
    if not isinstance(deep, bool):
        _wrong_type(name, "third argument", "the boolean false", deep)
    if deep:
        # AWS: "Currently, Step Functions only supports the shallow merging mode;
        # therefore, you must specify the boolean value as false."
        raise _failure(name, "deep merging is not supported; the third argument must be false")
    return {**left, **right}


def _math_random(args: list[Any], rng: _Rng) -> Any:
    name = "States.MathRandom"
    start = _rounded(name, "start", args[0])
    end = _rounded(name, "end", args[1])
    if start >= end:
        raise _failure(name, f"the start ({start}) must be less than the end ({end})")
    if len(args) == 3:
        # AWS: "If you use this function with the same seed value, it returns an identical
        # number." Start inclusive, end exclusive, as AWS documents.
        seeded = random.Random(_rounded(name, "seed", args[2]))  # noqa: S311 - not for security
        return seeded.randrange(start, end)
    # AWS: its numbers are not "cryptographically secure", so neither are ours. The
    # interpreter always passes an rng; a direct call without one gets a fresh generator.
    return (rng or random.Random()).randrange(start, end)  # noqa: S311


def _math_add(args: list[Any], rng: _Rng) -> Any:
    name = "States.MathAdd"
    total = 0
    for what, value in zip(("first argument", "second argument"), args, strict=True):
        number = _rounded(name, what, value)
        if not INT_MIN <= number <= INT_MAX:
            raise _failure(name, f"the {what} {number} is outside the range {INT_MIN}..{INT_MAX}")
        total += number
    return total


def _string_split(args: list[Any], rng: _Rng) -> Any:
    name = "States.StringSplit"
    text = _string(name, "first argument", args[0])
    delimiters = _string(name, "delimiter (second argument)", args[1])
    # Every character of the second argument is a delimiter, and empty pieces are
    # dropped, as Java's StringTokenizer does (AWS: "This.is+a,test=string" split by
    # ".+,=" gives five words, recorded in LocalStack's test_string_split snapshot).
    if not delimiters:
        return [text] if text else []
    pieces = re.split("[" + re.escape(delimiters) + "]", text)
    return [piece for piece in pieces if piece]


def _uuid(args: list[Any], rng: _Rng) -> Any:
    if rng is None:
        return str(uuid.uuid4())
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# --------------------------------------------------------------------------- registry


def _no_check(call: _Call, parser: _Parser) -> None:
    return None


@dataclass(frozen=True, slots=True)
class _Spec:
    impl: _Impl
    min_args: int
    max_args: int | None  # None: any number
    build: Callable[[_Call, tuple[_Evaluator, ...]], _Evaluator] | None = None
    extra_check: Callable[[_Call, _Parser], None] = _no_check

    def check(self, call: _Call, parser: _Parser) -> None:
        given = len(call.args)
        if given < self.min_args or (self.max_args is not None and given > self.max_args):
            raise parser.error(
                f"{call.name} takes {self._arity()} but {given} were given", call.column - 1
            )
        self.extra_check(call, parser)

    def _arity(self) -> str:
        if self.max_args is None:
            return f"at least {self.min_args} argument{'s' if self.min_args != 1 else ''}"
        if self.min_args == self.max_args:
            return f"{self.min_args} argument{'s' if self.min_args != 1 else ''}"
        return f"{self.min_args} to {self.max_args} arguments"


def _format_impl(args: list[Any], rng: _Rng) -> Any:  # pragma: no cover - built by _build_format
    raise AssertionError("States.Format is built by _build_format")


_FUNCTIONS: dict[str, _Spec] = {
    "States.Format": _Spec(_format_impl, 1, None, _build_format, _check_format),
    "States.StringToJson": _Spec(_string_to_json, 1, 1),
    "States.JsonToString": _Spec(_json_to_string, 1, 1),
    "States.Array": _Spec(_array_of, 0, None),
    "States.ArrayPartition": _Spec(_array_partition, 2, 2),
    "States.ArrayContains": _Spec(_array_contains, 2, 2),
    "States.ArrayRange": _Spec(_array_range, 3, 3),
    "States.ArrayGetItem": _Spec(_array_get_item, 2, 2),
    "States.ArrayLength": _Spec(_array_length, 1, 1),
    "States.ArrayUnique": _Spec(_array_unique, 1, 1),
    "States.Base64Encode": _Spec(_base64_encode, 1, 1),
    "States.Base64Decode": _Spec(_base64_decode, 1, 1),
    "States.Hash": _Spec(_hash, 2, 2),
    "States.JsonMerge": _Spec(_json_merge, 3, 3),
    "States.MathRandom": _Spec(_math_random, 2, 3),
    "States.MathAdd": _Spec(_math_add, 2, 2),
    "States.StringSplit": _Spec(_string_split, 2, 2),
    "States.UUID": _Spec(_uuid, 0, 0),
}
