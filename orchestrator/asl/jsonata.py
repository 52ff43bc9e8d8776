# Over 600 lines on purpose: the JSONata bridge: detection, compile cache, $states conversion,
# AWS's six functions and their guardrails share one Scope type.
"""JSONata as AWS Step Functions uses it in ``"QueryLanguage": "JSONata"`` states.

A JSONata state writes expressions as strings of the form ``"{% <expression> %}"``
anywhere in ``Arguments``, ``Output``, ``Assign``, ``Condition``, ``Items`` and the
other fields that take a value. This module is the whole JSONata layer; the
interpreter decides *where* expressions are, this module decides what they mean:

* :func:`is_expression` tells an expression string from a literal one;
* :func:`check_template` / :func:`check_expression` check every expression in a
  field at create time as AWS does (syntax; no reads of the context item, which
  JSONata states do not have) and report :class:`~orchestrator.asl.errors.Problem`
  values at the caller's JSON pointer; :func:`variable_references` lists the
  workflow variables a field reads, for the check that some state assigns them;
* :func:`evaluate`, :func:`evaluate_template` and :func:`evaluate_condition` run
  them against a :class:`Scope`: the reserved ``$states`` (``input``, ``result``,
  ``errorOutput``, ``context``), the workflow variables, and the impure sources
  (random numbers, UUIDs) that the caller passes in, since ``asl`` draws on no clock
  and no global randomness.

Engine: ``jsonatapy`` (a Rust engine), chosen by measurement; the figures are in
docs/design-notes.md, "JSONata". It is imported on first use, so a process that runs
only JSONPath definitions never loads it.

What AWS does that the engine alone does not, and that this module adds:

* the six functions AWS adds (developer guide, "Transforming data with JSONata",
  "Functions provided by Step Functions"): ``$partition``, ``$range``, ``$hash``,
  ``$random`` (with an optional seed), ``$uuid`` and ``$parse``; ``$eval`` is
  disabled, as on AWS;
* errors: every failure is ``States.QueryEvaluationError`` with AWS's cause,
  ``The JSONata expression '<expr>' specified for the field '<field>' returned nothing
  (undefined).`` or ``... threw an error during evaluation. <engine message>``;
* results are JSON: a non-finite number becomes the string JavaScript names it by
  (``"Infinity"``, ``"-Infinity"``, ``"NaN"``), as AWS writes it; a field whose
  expression returns nothing fails the state rather than being dropped (AWS fails
  ``Arguments/Input/pushLocation`` that way), while inside one expression JSONata's
  own rule holds: ``{"a": $missing}`` builds ``{}``;
* guardrails, so no expression can hang a worker or exhaust its memory: a time limit,
  a depth limit and a sequence-length limit, all enforced inside the engine's
  evaluation loop (it stops there and raises), plus a bound on ``$pad``, the one
  built-in that allocates in proportion to an argument rather than to its input.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from orchestrator.asl import errors, jsonata_scan

#: The error every JSONata failure is raised as (developer guide, "Error names").
QUERY_EVALUATION_ERROR = errors.QUERY_EVALUATION_ERROR

#: Marks "not given" for ``$states.result`` and ``$states.errorOutput``, which exist
#: only where AWS provides them (after a Task's result; inside a Catcher).
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()

_OPEN, _CLOSE = "{%", "%}"
_HASHES = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Guardrails of one evaluation; the engine stops the evaluation when one is hit.

    Attributes:
        timeout_ms: wall time of one expression, in milliseconds. Default 1,000: a
            JSONata field runs on a worker between two checkpoints, and the slowest
            evaluation AWS accepts takes about 0.1 s (measured by the Floci emulator).
        max_depth: evaluation nesting (recursion) depth. Default 100, AWS's own
            ceiling (``1+1+...+1`` of 100 terms passes, 101 fails).
        max_sequence_length: items in one sequence (a range, a map, a filter).
            Default 1,000,000; AWS refuses ``[1..873783]`` by its memory limit.
        max_range: items in one ``$range`` result. Default 360,145, the most AWS accepts.
        max_string_length: characters one ``$pad`` may produce. Default 4,194,304
            (2**22), the longest string AWS builds under its memory limit.
    """

    timeout_ms: int = 1000
    max_depth: int = 100
    max_sequence_length: int = 1_000_000
    max_range: int = 360_145
    max_string_length: int = 4_194_304


DEFAULT_LIMITS = Limits()


@dataclass(kw_only=True, slots=True)
class Scope:
    """What an expression sees, and where its impure values come from.

    One per state and phase; not to be changed once made (its engine data is cached).

    Attributes:
        input: ``$states.input``, the state's input.
        context: ``$states.context``, the context object (Execution, State, Task, ...).
        result: ``$states.result``, a Task/Parallel/Map result; MISSING elsewhere.
        error_output: ``$states.errorOutput``, the error a Catcher caught; MISSING elsewhere.
        variables: workflow variables by name (without ``$``), read as ``$name``.
        rng: draws ``$random()``; pass a generator seeded per execution for replays.
        new_uuid: returns the string ``$uuid()`` yields (a v4 UUID).
        limits: guardrails of each evaluation.
    """

    input: Any
    context: Any
    result: Any = MISSING
    error_output: Any = MISSING
    variables: Mapping[str, Any] = field(default_factory=dict)
    rng: random.Random
    new_uuid: Callable[[], str]
    limits: Limits = DEFAULT_LIMITS
    # Made on first use (most states evaluate nothing, or only plain paths):
    _data: Any = field(default=None, init=False, repr=False, compare=False)
    _bindings: Any = field(default=MISSING, init=False, repr=False, compare=False)

    def states(self) -> dict[str, Any]:
        """The value bound to ``$states``."""
        states: dict[str, Any] = {"input": self.input, "context": self.context}
        if self.result is not MISSING:
            states["result"] = self.result
        if self.error_output is not MISSING:
            states["errorOutput"] = self.error_output
        return states

    def engine_states(self) -> Any:
        """``$states`` converted for the engine once per scope, not once per expression.

        Conversion is the cost of a large input (1.4 ms per 100 kB, measured): an
        Output template of ten expressions would pay it ten times.
        """
        data = self._data
        if data is None:
            import jsonatapy

            data = self._data = jsonatapy.JsonataData(self.states())
        return data

    def engine_variables(self) -> dict[str, Any] | None:
        """The variables as the engine's bindings (None: there are none)."""
        bindings = self._bindings
        if bindings is MISSING:
            bindings = self._bindings = dict(self.variables) or None
        return bindings  # type: ignore[no-any-return]


class JsonataSyntaxError(ValueError):
    """An expression the engine cannot parse; the message is the engine's."""


class _FunctionError(Exception):
    """Raised by an AWS function; carried through the engine to the caller."""


@dataclass(kw_only=True)
class _Call:
    """The state of one evaluation that the AWS functions read."""

    scope: Scope
    #: What an AWS function failed with (its message: holding the exception would tie
    #: the scope into a reference cycle through its traceback).
    failure: str | None = None


_CURRENT: ContextVar[_Call | None] = ContextVar("orchestrator_jsonata_call", default=None)


def is_expression(value: object) -> bool:
    """Whether ``value`` is a JSONata expression string: ``{%`` ... ``%}``.

    AWS reads a string as an expression only when it starts with ``{%`` and ends with
    ``%}`` exactly, with no space outside them; any other string is a literal.
    """
    return (
        isinstance(value, str)
        and len(value) >= 4
        and value.startswith(_OPEN)
        and value.endswith(_CLOSE)
    )


def expression_text(value: str) -> str:
    """The expression inside ``{% ... %}``, stripped, as AWS quotes it in errors."""
    return value[2:-2].strip()


# --- compiling ---------------------------------------------------------------------

# The six AWS functions are JSONata lambdas over host functions. A host function
# cannot return JSONata's "undefined" (None arrives as null) and cannot tell an
# undefined argument from null, so each lambda passes $exists() flags and the host
# answers [value] or [] for undefined, which ``[0]`` unwraps. An expression gets only
# the lambdas it names: binding them costs 4x on a small expression, and registering
# any host function takes the engine off its fastest path (both measured).
_PRELUDE: dict[str, str] = {
    "partition": "$partition := function($a, $n){"
    " $__aws_partition($exists($a), $a, $exists($n), $n)[0] };",
    "range": "$range := function($s, $e, $t){"
    " $__aws_range($exists($s), $s, $exists($e), $e, $exists($t), $t)[0] };",
    "hash": "$hash := function($d, $h){ $__aws_hash($exists($d), $d, $exists($h), $h)[0] };",
    "random": "$random := function($seed){ $__aws_random($exists($seed), $seed)[0] };",
    "uuid": "$uuid := function(){ $__aws_uuid()[0] };",
    "parse": "$parse := function($s){ $__aws_parse($exists($s), $s)[0] };",
    "eval": "$eval := function(){ $__aws_eval()[0] };",
    # $pad is the built-in itself, behind a width check: the engine checks no limit
    # inside a built-in, and $pad allocates by its argument, not by its input.
    "pad": "$__pad := $pad; $pad := function($s, $w, $c){ $__aws_pad($w)[0] ?"
    " ($exists($c) ? $__pad($s, $w, $c) : $__pad($s, $w)) };",
}
_NAMED = {name: re.compile(rf"\${name}(?![A-Za-z0-9_])") for name in _PRELUDE}


@lru_cache(maxsize=4096)
def _compile(text: str) -> Any:
    """Compile once per distinct expression text; raise JsonataSyntaxError."""
    import jsonatapy  # heavy native module: load only when JSONata is used

    try:
        jsonatapy.compile(text)  # alone first, so an error points into the user's text
        used = [name for name, pattern in _NAMED.items() if pattern.search(text)]
        prelude = "".join(_PRELUDE[name] for name in used)
        # $states travels as the context item, converted once per Scope (see
        # Scope._engine_states); AWS gives expressions no context item of their own,
        # and check_expression refuses the top-level reads that would see this one.
        compiled = jsonatapy.compile(f"($states := $;{prelude}\n{text}\n)")
    except ValueError as exc:
        raise JsonataSyntaxError(str(exc)) from None
    for name in used:
        compiled.register(f"__aws_{name}", _HOST_FUNCTIONS[name])
    return compiled


def check_expression(
    value: str, pointer: str, *, error_output: bool = False
) -> list[errors.Problem]:
    """Check one ``{% %}`` string as AWS does at create time; return its problems.

    The problems, each at ``pointer`` and worded with AWS's diagnostic codes:

    * ``INVALID_JSONATA_EXPRESSION``: the engine cannot parse it;
    * ``UNSUPPORTED_JSONATA_EXPRESSION``: it reads the context item, which a JSONata
      state does not have (a top-level field name, ``$`` at the top level, ``$$``),
      or ``$states.errorOutput`` where no error exists.

    Args:
        value: the whole string, ``{%`` and ``%}`` included.
        pointer: JSON pointer of the string in the definition.
        error_output: True in a Catcher's ``Output`` and ``Assign``, the only place
            ``$states.errorOutput`` exists.
    """
    text = expression_text(value)
    try:
        _compile(text)
    except JsonataSyntaxError as exc:
        return [_problem(pointer, f"INVALID_JSONATA_EXPRESSION: {exc} (in '{text}')")]
    problems = []
    for name in dict.fromkeys(jsonata_scan.top_level_references(text)):
        where = "" if name == "$$" else " at the top level"
        problems.append(
            _problem(
                pointer,
                f"UNSUPPORTED_JSONATA_EXPRESSION: Reference to '{name}'{where} is not supported.",
            )
        )
    if not error_output and jsonata_scan.reads_states_field(text, "errorOutput"):
        problems.append(
            _problem(
                pointer,
                "UNSUPPORTED_JSONATA_EXPRESSION: Reference to '$states.errorOutput' is only "
                "supported in a Catcher's Output and Assign.",
            )
        )
    return problems


def _problem(pointer: str, message: str) -> errors.Problem:
    return errors.Problem(path=pointer, message=message)


def check_template(
    template: Any, pointer: str, *, error_output: bool = False
) -> list[errors.Problem]:
    """Check every ``{% %}`` string in a JSON value (see :func:`check_expression`).

    Args:
        template: any JSON value (an ``Arguments``/``Output``/``Assign`` field, a
            ``Condition`` string, ...).
        pointer: JSON pointer of ``template`` in the definition; a problem inside it
            gets the pointer of the string itself (``/States/S/Output/a/0``).
        error_output: True in a Catcher's ``Output`` and ``Assign``.
    """
    if is_expression(template):
        return check_expression(template, pointer, error_output=error_output)
    problems: list[errors.Problem] = []
    if isinstance(template, dict):
        for key, value in template.items():
            where = f"{pointer}/{_escape(key)}"
            problems += check_template(value, where, error_output=error_output)
    elif isinstance(template, list):
        for index, value in enumerate(template):
            problems += check_template(value, f"{pointer}/{index}", error_output=error_output)
    return problems


def variable_references(template: Any) -> list[str]:
    """The workflow variables the ``{% %}`` strings in a JSON value read, in order.

    Leaves out ``$states``, names the expressions bind themselves (``$x := ...``,
    lambda parameters) and the functions (JSONata's and AWS's), so what remains must
    be assigned by some state. Only expressions that parse are read.
    """
    found: dict[str, None] = {}
    for text in _expressions(template):
        try:
            _compile(text)
        except JsonataSyntaxError:
            continue
        for name in jsonata_scan.variable_references(text):
            if not is_function_name(name):
                found[name] = None
    return list(found)


def _expressions(template: Any) -> Iterator[str]:
    if is_expression(template):
        yield expression_text(template)
    elif isinstance(template, dict):
        for value in template.values():
            yield from _expressions(value)
    elif isinstance(template, list):
        for value in template:
            yield from _expressions(value)


@lru_cache(maxsize=1024)
def is_function_name(name: str) -> bool:
    """Whether ``$name`` is a function JSONata or AWS provides (``sum``, ``partition``)."""
    if name in _PRELUDE:
        return True
    import jsonatapy

    try:  # the engine knows its built-ins: $type() of one is "function"
        return bool(jsonatapy.compile(f"$type(${name}) = 'function'").evaluate(None) is True)
    except ValueError:
        return False


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


# --- evaluating --------------------------------------------------------------------


def evaluate(value: str, scope: Scope, *, field: str) -> Any:
    """Evaluate one ``{% %}`` string and return its JSON value.

    Args:
        value: the whole string, ``{%`` and ``%}`` included.
        scope: ``$states``, the variables and the impure sources.
        field: the field the string sits in, relative to the state, as AWS names it
            in errors: ``Output``, ``Arguments/Input/id``, ``Assign/x``,
            ``Choices[1]/Condition``, ``Output/list[0]``.

    Raises:
        StatesError: ``States.QueryEvaluationError`` when the expression fails, hits
            a guardrail, or returns nothing.
    """
    return _run(_expression(value), scope, field)


def evaluate_template(template: Any, scope: Scope, *, field: str) -> Any:
    """Evaluate every ``{% %}`` string inside a JSON value; other values stay as they are.

    This is the shape of ``Arguments``, ``Output`` and ``Assign`` in JSONata states.
    Object keys are never evaluated; a string that is not an expression is a literal.
    Parts of the template without expressions are returned as they are, not copied
    (as JSONPath payload templates do: data is replaced, never updated in place).

    Args:
        template: any JSON value.
        scope: ``$states``, the variables and the impure sources.
        field: the field name of ``template`` (``Output``, ``Arguments``, ``Assign``);
            the error of an inner string names its path, ``Output/a/b[0]``.

    Raises:
        StatesError: ``States.QueryEvaluationError`` from the first failing expression.
    """
    return _render(_plan(template, field), scope)


def evaluate_condition(value: Any, scope: Scope, *, field: str) -> bool:
    """Evaluate a Choice rule's ``Condition``: an expression that must yield a boolean.

    A literal boolean is accepted as it is.

    Raises:
        StatesError: ``States.QueryEvaluationError`` when the result is not a boolean.
    """
    result = (
        value if value is True or value is False else evaluate_template(value, scope, field=field)
    )
    if result is not True and result is not False:
        shown = expression_text(value) if is_expression(value) else json.dumps(value)
        raise errors.StatesError(
            QUERY_EVALUATION_ERROR,
            f"The JSONata expression '{shown}' specified for the field '{field}' "
            f"returned an unsupported result type ({_type_name(result)}); "
            "a Condition must evaluate to a boolean.",
        )
    return bool(result)


# A template is evaluated through its plan, made once per (template, field): a tree of
# tuples whose leaves are literal values and compiled expressions with their field
# names, so an evaluation neither re-reads nor re-formats the template.
_STATIC, _EXPR, _OBJECT, _ARRAY = range(4)
_Node = tuple[int, Any, str]


@dataclass(frozen=True, slots=True)
class _Expression:
    """One ``{% %}`` string, compiled.

    Attributes:
        text: the expression as AWS quotes it in errors.
        engine: the engine's compiled expression; None when it does not parse.
        error: why it does not parse.
        hosted: whether it calls one of AWS's functions (which read the evaluation's scope).
        path: for a plain path (``$states.input.a.b``, ``$name.field``): where it
            starts (``input``, ``context``, ``result``, ``errorOutput``, or ``$`` and a
            variable name) and the field names after it; such a path is read
            without the engine when every step is an object (see :func:`_read_path`).
    """

    text: str
    engine: Any
    error: str
    hosted: bool
    path: tuple[str, ...] | None


_EXPRESSIONS: dict[str, _Expression] = {}
_PLANS: dict[tuple[int, str], tuple[Any, _Node]] = {}
#: Entries of each cache before it starts over (definitions are few; this is a bound).
_CACHE_SIZE = 8192
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_PLAIN_PATH = re.compile(
    rf"\$(?:states\.(input|context|result|errorOutput)|({_NAME}))((?:\.{_NAME})*)"
)
_WORDS = frozenset({"and", "or", "in", "true", "false", "null", "function", "states"})


def _expression(value: str) -> _Expression:
    found = _EXPRESSIONS.get(value)
    if found is None:
        if len(_EXPRESSIONS) >= _CACHE_SIZE:
            _EXPRESSIONS.clear()
        found = _EXPRESSIONS[value] = _new_expression(expression_text(value))
    return found


def _new_expression(text: str) -> _Expression:
    try:
        engine, error = _compile(text), ""
    except JsonataSyntaxError as exc:
        engine, error = None, str(exc)
    hosted = any(pattern.search(text) for pattern in _NAMED.values())
    return _Expression(text=text, engine=engine, error=error, hosted=hosted, path=_plain(text))


def _plain(text: str) -> tuple[str, ...] | None:
    """The steps of a plain path expression, or None (see :class:`_Expression`)."""
    match = _PLAIN_PATH.fullmatch(text)
    if match is None:
        return None
    start, variable, rest = match.groups()
    names = tuple(rest.split(".")[1:])
    # A variable shadows a JSONata function of its name ($count), but the lambdas the
    # prelude binds ($random, ...) shadow the variable: those go to the engine.
    if variable is not None and (variable in _WORDS or variable in _PRELUDE):
        return None
    if any(name in _WORDS for name in names):
        return None
    return (start, *names) if start is not None else ("$", variable, *names)


def _plan(template: Any, field: str) -> _Node:
    key = (id(template), field)
    found = _PLANS.get(key)
    if found is not None and found[0] is template:
        return found[1]
    if len(_PLANS) >= _CACHE_SIZE:
        _PLANS.clear()
    node = _build(template, field)
    _PLANS[key] = (template, node)  # holds the template, so its id names no other
    return node


def _build(template: Any, field: str) -> _Node:
    if isinstance(template, str):
        if is_expression(template):
            return (_EXPR, _expression(template), field)
        return (_STATIC, template, field)
    if isinstance(template, dict):
        items = tuple((key, _build(value, f"{field}/{key}")) for key, value in template.items())
        if all(child[0] == _STATIC for _, child in items):
            return (_STATIC, template, field)
        return (_OBJECT, items, field)
    if isinstance(template, list):
        parts = tuple(_build(value, f"{field}[{i}]") for i, value in enumerate(template))
        if all(child[0] == _STATIC for child in parts):
            return (_STATIC, template, field)
        return (_ARRAY, parts, field)
    return (_STATIC, template, field)


def _render(node: _Node, scope: Scope) -> Any:
    kind, value, field = node
    if kind == _EXPR:
        return _run(value, scope, field)
    if kind == _STATIC:
        return value
    if kind == _OBJECT:
        return {key: _render(child, scope) for key, child in value}
    return [_render(child, scope) for child in value]


#: What :func:`_read_path` answers when the engine must decide.
_ENGINE: Any = object()
#: Integers the engine holds exactly (it computes in doubles).
_EXACT = 2**53


def _read_path(steps: tuple[str, ...], scope: Scope) -> Any:
    """A plain path's value read in Python, or _ENGINE when JSONata's rules matter.

    Only an object-to-object walk to a string, boolean, null, exact integer or
    non-integral number is read here: arrays (JSONata maps over them and flattens),
    missing fields (undefined), objects (the engine converts the numbers inside) and
    integral or large numbers (the engine turns 2.0 into 2 and rounds past 2**53)
    go to the engine, so the result is the engine's in every case.
    """
    start = steps[0]
    if start == "$":
        current = scope.variables.get(steps[1], _ENGINE)
        names = steps[2:]
    else:
        current = getattr(scope, _STARTS[start])
        names = steps[1:]
    for name in names:
        if type(current) is not dict:
            return _ENGINE
        current = current.get(name, _ENGINE)
    kind = type(current)
    if kind is str or kind is bool or current is None:
        return current
    if kind is int:
        return current if -_EXACT <= current <= _EXACT else _ENGINE
    if kind is float:
        return current if math.isfinite(current) and not current.is_integer() else _ENGINE
    return _ENGINE


_STARTS = {
    "input": "input",
    "context": "context",
    "result": "result",
    "errorOutput": "error_output",
}
_OPTIONS: dict[Limits, dict[str, int]] = {}


def _options(limits: Limits) -> dict[str, int]:
    found = _OPTIONS.get(limits)
    if found is None:
        found = _OPTIONS[limits] = {
            "timeout": limits.timeout_ms,
            "max_stack_depth": limits.max_depth,
            "max_sequence_length": limits.max_sequence_length,
        }
    return found


def _run(expression: _Expression, scope: Scope, field: str) -> Any:
    if expression.path is not None:
        value = _read_path(expression.path, scope)
        if value is not _ENGINE:
            return value
    compiled = expression.engine
    if compiled is None:
        raise _query_error(expression.text, field, f"could not be parsed. {expression.error}")
    variables = scope.engine_variables()
    options = _options(scope.limits)
    call = token = None
    if expression.hosted:
        call = _Call(scope=scope)
        token = _CURRENT.set(call)
    try:
        result = compiled.evaluate_with_data(scope.engine_states(), variables, **options)
        if result is None:
            # The engine answers None for null and for undefined alike; its JSON form
            # tells them apart. Only a None result pays for this second run (which
            # draws again from scope.rng if the expression calls $random()).
            states = json.dumps(scope.states())
            text_result = compiled.evaluate_json_or_none(states, variables, **options)
            if text_result is None:
                raise _query_error(expression.text, field, "returned nothing (undefined).")
            result = json.loads(text_result)
    except ValueError as exc:
        failure = call.failure if call is not None else None
        reason = failure if failure is not None else _engine_message(exc)
        raise _query_error(
            expression.text, field, f"threw an error during evaluation. {reason}"
        ) from None
    finally:
        if token is not None:
            _CURRENT.reset(token)
    kind = type(result)
    if kind is int or kind is str or kind is bool:
        return result
    return _to_json(result) if _has_non_finite(result) else result


def _query_error(text: str, field: str, what: str) -> errors.StatesError:
    return errors.StatesError(
        QUERY_EVALUATION_ERROR,
        f"The JSONata expression '{text}' specified for the field '{field}' {what}",
    )


def _engine_message(exc: ValueError) -> str:
    text = str(exc)
    # The engine wraps a host function's exception; ours are reported via call.failure.
    return text.removeprefix("Evaluation error: ")


def _has_non_finite(value: Any) -> bool:
    """Whether a result holds inf or NaN (checked without copying: the common case)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(item) for item in value)
    return False


def _to_json(value: Any) -> Any:
    """Make a result JSON: non-finite numbers become the strings AWS writes."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else _NON_FINITE[value]
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_json(item) for item in value]
    return value


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


# --- the functions AWS adds ----------------------------------------------------------
# Semantics from the developer guide ("Functions provided by Step Functions") and from
# behaviour measured against AWS: a non-integer argument is truncated towards zero; a
# chunk size of zero, an empty array, a $range without a step or with a step against
# the direction, and a $hash without an algorithm evaluate to undefined.


def _host(function: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
    """Wrap an AWS function: record its failure so the caller reports it as AWS does."""

    def host(*args: Any) -> list[Any]:
        call = _CURRENT.get()
        if call is None:  # pragma: no cover - only reachable by misuse of the engine
            raise RuntimeError("JSONata function called outside an evaluation")
        try:
            return function(call.scope, *args)
        except _FunctionError as exc:
            call.failure = str(exc)
            raise

    return host


def _signature_error(name: str, position: int) -> _FunctionError:
    return _FunctionError(
        f'T0410: Argument {position} of function "{name}" does not match function signature'
    )


def _integer(name: str, position: int, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _signature_error(name, position)
    return math.trunc(value)


def _partition(scope: Scope, has_a: bool, items: Any, has_n: bool, size: Any) -> list[Any]:
    if not has_a or not has_n:
        return []
    if not isinstance(items, list):
        raise _signature_error("partition", 1)
    chunk = _integer("partition", 2, size)
    if chunk < 0:
        raise _FunctionError(f"$partition: the chunk size must be positive, got {size}")
    if chunk == 0 or not items:
        return []
    return [[items[i : i + chunk] for i in range(0, len(items), chunk)]]


def _range(
    scope: Scope, has_s: bool, start: Any, has_e: bool, end: Any, has_t: bool, step: Any
) -> list[Any]:
    given = [(has_s, start), (has_e, end), (has_t, step)]
    for position, (present, value) in enumerate(given, start=1):
        if present and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise _signature_error("range", position)
    if not (has_s and has_e and has_t):
        return []
    first, last, by = (_integer("range", i, v) for i, (_, v) in enumerate(given, start=1))
    if by == 0 or (by > 0 and first > last) or (by < 0 and first < last):
        return []
    count = abs(last - first) // abs(by) + 1
    if count > scope.limits.max_range:
        raise _FunctionError(
            f"$range: {count} items exceed the limit of {scope.limits.max_range} "
            "(Expression evaluation memory limit exceeded)"
        )
    if count == 1:
        return [first]  # JSONata collapses a one-item sequence to the item itself
    return [[first + i * by for i in range(count)]]


def _hash(scope: Scope, has_d: bool, data: Any, has_h: bool, algorithm: Any) -> list[Any]:
    if not has_d or not has_h:
        return []
    if not isinstance(data, str):
        raise _signature_error("hash", 1)
    if not isinstance(algorithm, str):
        raise _signature_error("hash", 2)
    if algorithm not in _HASHES:
        raise _FunctionError(
            f"$hash: unsupported algorithm '{algorithm}'; "
            "expected one of MD5, SHA-1, SHA-256, SHA-384, SHA-512"
        )
    return [hashlib.new(_HASHES[algorithm], data.encode()).hexdigest()]


def _random(scope: Scope, has_seed: bool, seed: Any) -> list[Any]:
    if not has_seed:
        return [scope.rng.random()]
    # Same seed, same number: a generator of its own, never the scope's.
    return [random.Random(_integer("random", 1, seed)).random()]  # noqa: S311 - not crypto


def _uuid(scope: Scope) -> list[Any]:
    return [scope.new_uuid()]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse(scope: Scope, has_s: bool, text: Any) -> list[Any]:
    if not has_s:
        return []
    if not isinstance(text, str):
        raise _signature_error("parse", 1)
    try:
        return [json.loads(text, parse_constant=_reject_constant)]
    except ValueError as exc:
        raise _FunctionError(f"$parse: the argument is not valid JSON ({exc})") from None


def _eval(scope: Scope) -> list[Any]:
    # AWS disables $eval ("Use $parse() instead"); calling it fails as on AWS.
    raise _FunctionError("T1006: Attempted to invoke a non-function ($eval is not supported)")


def _pad_width(scope: Scope, width: Any) -> list[Any]:
    """Refuse a ``$pad`` width past the limit before the built-in allocates it."""
    if isinstance(width, int | float) and not isinstance(width, bool) and math.isfinite(width):
        limit = scope.limits.max_string_length
        if abs(width) > limit:
            raise _FunctionError(f"$pad: width {width} exceeds the limit of {limit} characters")
    return [True]


#: The host function behind each prelude lambda, registered as ``__aws_<name>``.
_HOST_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "partition": _host(_partition),
    "range": _host(_range),
    "hash": _host(_hash),
    "random": _host(_random),
    "uuid": _host(_uuid),
    "parse": _host(_parse),
    "eval": _host(_eval),
    "pad": _host(_pad_width),
}
