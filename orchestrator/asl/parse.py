# Over 600 lines on purpose: one pass checks every field of every state type so that all problems
# come back at once with their pointers; to split next by query language (JSONPath / JSONata field
# rules).
"""Parse a definition (dict, JSON text or YAML text) into the model, collecting problems.

Every problem is reported at once, each with the JSON pointer of the field that is
wrong (``/States/Route/Choices/0/Next``). Graph checks (targets, reachability) are
in :mod:`orchestrator.asl.validate`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import yaml

from orchestrator.asl import distributed, errors, jsonata, limits
from orchestrator.asl.choice import ChoiceRule, compile_choice
from orchestrator.asl.errors import Problem
from orchestrator.asl.model import (
    ROOT,
    Catcher,
    ChoiceState,
    Definition,
    FailState,
    MapState,
    MessageState,
    ParallelState,
    PassState,
    Retrier,
    State,
    SucceedState,
    TaskState,
    WaitState,
)
from orchestrator.asl.paths import (
    VARIABLE,
    Path,
    PathSyntaxError,
    compile_path,
    compile_reference,
)
from orchestrator.asl.templates import Template, compile_template

_COMMON = {"Type", "Comment", "QueryLanguage"}
#: States on which AWS allows ``Assign`` (developer guide, "Passing data between states
#: with variables"): not Succeed nor Fail.
_ASSIGNING = {"Pass", "Task", "Choice", "Wait", "Parallel", "Map"}
_IO = {"InputPath", "OutputPath"}
_FLOW = {"Next", "End"}
_RESULT = {"Parameters", "ResultSelector", "ResultPath", "Retry", "Catch"}
FIELDS: dict[str, set[str]] = {
    "Pass": _COMMON | _IO | _FLOW | {"Parameters", "ResultPath", "Result"},
    "Task": _COMMON
    | _IO
    | _FLOW
    | _RESULT
    | {
        "Resource",
        "TimeoutSeconds",
        "TimeoutSecondsPath",
        "HeartbeatSeconds",
        "HeartbeatSecondsPath",
        "Credentials",
    },
    "Choice": _COMMON | _IO | {"Choices", "Default"},
    "Wait": _COMMON | _IO | _FLOW | {"Seconds", "SecondsPath", "Timestamp", "TimestampPath"},
    "Succeed": _COMMON | _IO,
    "Fail": _COMMON | {"Error", "Cause", "ErrorPath", "CausePath"},
    "Parallel": _COMMON | _IO | _FLOW | _RESULT | {"Branches"},
    "Map": _COMMON
    | _IO
    | _FLOW
    | _RESULT
    | {
        "ItemsPath",
        "ItemSelector",
        "ItemProcessor",
        "Iterator",
        "MaxConcurrency",
        "MaxConcurrencyPath",
        "ToleratedFailurePercentage",
        "ToleratedFailurePercentagePath",
        "ToleratedFailureCount",
        "ToleratedFailureCountPath",
        "Label",
        "ItemReader",
        "ItemBatcher",
        "ResultWriter",
    },
    "Message": _COMMON
    | _IO
    | _FLOW
    | {
        "Parameters",
        "ResultPath",
        "Retry",
        "Catch",
        "CorrelationKey",
        "CorrelationValuePath",
        "TimeoutSeconds",
        "TimeoutPath",
    },
}
for _kind in _ASSIGNING:
    FIELDS[_kind].add("Assign")

JSONPATH, JSONATA = "JSONPath", "JSONata"
#: Fields only JSONPath states have (AWS, "Transforming data with JSONata": JSONata
#: states use Arguments and Output instead, and ``{% %}`` in place of ``...Path``).
_JSONPATH_ONLY = {
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "ItemsPath",
    "Result",
    "SecondsPath",
    "TimestampPath",
    "TimeoutSecondsPath",
    "HeartbeatSecondsPath",
    "MaxConcurrencyPath",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCountPath",
    "ErrorPath",
    "CausePath",
}
#: Fields only JSONata states have.
_JSONATA_ONLY = {"Arguments", "Output", "Items"}
_JSONATA_EXTRA: dict[str, set[str]] = {
    "Pass": {"Output"},
    "Task": {"Arguments", "Output"},
    "Choice": {"Output"},
    "Wait": {"Output"},
    "Succeed": {"Output"},
    "Fail": set(),
    "Parallel": {"Arguments", "Output"},
    "Map": {"Items", "Output"},
}
JSONATA_FIELDS = {
    kind: (FIELDS[kind] - _JSONPATH_ONLY) | extra for kind, extra in _JSONATA_EXTRA.items()
}
#: Fields whose value may be one ``{% %}`` expression in a JSONata state.
_EXPRESSION_FIELDS = (
    "TimeoutSeconds",
    "HeartbeatSeconds",
    "Seconds",
    "Timestamp",
    "MaxConcurrency",
    "ToleratedFailurePercentage",
    "ToleratedFailureCount",
    "Error",
    "Cause",
)
_TOP_FIELDS = {"StartAt", "States", "Comment", "Version", "TimeoutSeconds", "QueryLanguage"}
_DISTRIBUTED = {"ItemReader", "ItemBatcher", "ResultWriter"}
MAX_STATE_NAME = 80  # AWS: "State names ... must be 80 characters or less"
MAX_INTERVAL = 99999999  # AWS's largest IntervalSeconds / TimeoutSeconds


class _JsonYamlLoader(yaml.SafeLoader):
    """YAML as a JSON superset only: aliases (``*name``) are refused.

    An alias makes the composer reuse a node, so a few hundred bytes of nested aliases
    expand into gigabytes ("billion laughs"). Values YAML has and JSON has not (dates,
    ``!!binary``, ``!!set``, ``.inf``, ``.nan``) are constructed and then refused by
    :func:`~orchestrator.asl.limits.json_problem`, which names where they are.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


def load_document(source: Any) -> tuple[Any, list[Problem]]:
    """Turn a dict, JSON text or YAML text into a JSON value, or a problem saying why not.

    Never raises: too large, too deep, malformed or non-JSON input gives one problem.
    """
    if isinstance(source, bytes | bytearray):
        source = bytes(source).decode("utf-8", errors="replace")
    text = source if isinstance(source, str) else None
    if text is not None:
        size = len(text.encode("utf-8", errors="surrogatepass"))
        if size > limits.MAX_DEFINITION_BYTES:
            return None, [_too_large(size)]
        try:
            source, problems = _parse_text(text.strip())
        except RecursionError:
            return None, [Problem(path="", message=_TOO_DEEP)]
        if problems:
            return None, problems
    found = limits.json_problem(source)
    if found is not None:
        return None, [Problem(path=found[0], message=f"not a JSON value: {found[1]}")]
    if text is None:
        size = len(json.dumps(source, ensure_ascii=False).encode("utf-8"))
        if size > limits.MAX_DEFINITION_BYTES:
            return None, [_too_large(size)]
    return source, []


_TOO_DEEP = f"the definition is nested deeper than {limits.MAX_DEPTH} levels"


def _too_large(size: int) -> Problem:
    return Problem(
        path="",
        message=f"the definition is {size:,} bytes; at most "
        f"{limits.MAX_DEFINITION_BYTES:,} are allowed (AWS's limit)",
    )


def _parse_text(text: str) -> tuple[Any, list[Problem]]:
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite), []
    except ValueError as exc:
        json_error = exc
    if text.startswith(("{", "[")):
        return None, [Problem(path="", message=f"malformed JSON: {json_error}")]
    try:
        return yaml.load(text, Loader=_JsonYamlLoader), []  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        return None, [Problem(path="", message=f"neither JSON nor YAML: {exc}")]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a JSON number")
    return value


class _Fields:
    """Typed access to one JSON object of the definition, recording problems."""

    def __init__(
        self,
        raw: dict[str, Any],
        where: str,
        problems: list[Problem],
        *,
        language: str = JSONPATH,
        default_language: str = JSONPATH,
    ) -> None:
        self.raw, self.where, self.problems = raw, where, problems
        #: The state's query language, and the machine's (which its branches inherit).
        self.language, self.default_language = language, default_language
        self.exprs: dict[str, str] = {}

    def child(self, raw: dict[str, Any], where: str) -> _Fields:
        """Fields of an object inside this one (a rule, a catcher), same language."""
        return _Fields(raw, where, self.problems, language=self.language)

    def at(self, name: str | int) -> str:
        return f"{self.where}/{errors.pointer(name)[1:]}"

    def problem(self, name: str | int | None, message: str) -> None:
        self.problems.append(
            Problem(path=self.at(name) if name is not None else self.where, message=message)
        )

    def has(self, name: str) -> bool:
        return name in self.raw

    def string(self, name: str, *, required: bool = False) -> str | None:
        value = self.raw.get(name)
        if value is None and name not in self.raw:
            if required:
                self.problem(None, f"missing required field '{name}'")
            return None
        if not isinstance(value, str) or (required and not value):
            self.problem(name, f"'{name}' must be a non-empty string")
            return None
        return value

    def boolean(self, name: str) -> bool:
        value = self.raw.get(name, False)
        if not isinstance(value, bool):
            self.problem(name, f"'{name}' must be true or false")
            return False
        return value

    def number(
        self,
        name: str,
        *,
        minimum: float,
        integer: bool,
        maximum: float = MAX_INTERVAL,
        exclusive: bool = False,
    ) -> float | None:
        if name not in self.raw:
            return None
        value = self.raw[name]
        kind = "an integer" if integer else "a number"
        bad_type = isinstance(value, bool) or not isinstance(value, int | float)
        if not bad_type and integer and isinstance(value, float) and not value.is_integer():
            bad_type = True
        low_ok = not bad_type and (value > minimum if exclusive else value >= minimum)
        if bad_type or not low_ok or value > maximum:
            bound = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
            self.problem(name, f"'{name}' must be {kind} {bound} and <= {maximum:g}")
            return None
        return float(value)

    def path(self, name: str) -> Path | None:
        text = self.string(name)
        if text is None:
            return None
        try:
            return compile_path(text)
        except PathSyntaxError as exc:
            self.problem(name, str(exc))
            return None

    def io_path(self, name: str) -> Path | str | None:
        """InputPath/OutputPath/ItemsPath: left out -> "$", null -> None."""
        if name not in self.raw:
            return "$"
        if self.raw[name] is None:
            return None
        return self.path(name) or "$"

    def reference(self, name: str) -> tuple[tuple[Any, ...] | None, str]:
        """ResultPath: left out -> ``$`` (ROOT), null -> None (discard the result)."""
        if name not in self.raw:
            return ROOT, "$"
        text = self.raw[name]
        if text is None:
            return None, "null"
        try:
            if isinstance(text, str) and text.startswith("$$"):
                raise PathSyntaxError(f"{text!r}: a ResultPath cannot write the context object")
            return compile_reference(text), text
        except PathSyntaxError as exc:
            self.problem(name, str(exc))
            return ROOT, "$"

    def template(self, name: str) -> Template | None:
        if name not in self.raw:
            return None
        # AWS accepts any JSON value here (an array, a string, a number), not only an
        # object; a template walks whatever it is given.
        return compile_template(self.raw[name], self.at(name), self.problems)

    def array(self, name: str, *, required: bool = False, nonempty: bool = False) -> list[Any]:
        if name not in self.raw:
            if required:
                self.problem(None, f"missing required field '{name}'")
            return []
        value = self.raw[name]
        if not isinstance(value, list) or (nonempty and not value):
            self.problem(name, f"'{name}' must be a{' non-empty' if nonempty else 'n'} array")
            return []
        return value

    def unknown(self, allowed: set[str], what: str) -> None:
        for key in self.raw:
            if key not in allowed:
                hint = " (it belongs to a Map state)" if key in _DISTRIBUTED else ""
                self.problem(key, f"unknown field '{key}' for {what}{hint}")


def parse_definition(
    raw: Any, where: str, problems: list[Problem], language: str = JSONPATH
) -> Definition | None:
    """Parse a (sub-)state machine object: StartAt + States (and top-level fields).

    ``language`` is the query language a branch inherits; the top level reads its own.
    """
    if not isinstance(raw, dict):
        problems.append(Problem(path=where, message="a state machine must be a JSON object"))
        return None
    fields = _Fields(raw, where, problems)
    allowed = _TOP_FIELDS if where == "" else {"StartAt", "States", "Comment", "ProcessorConfig"}
    fields.unknown(allowed, "a state machine" if where == "" else "a branch")
    start_at = fields.string("StartAt", required=True)
    if where == "":
        language = raw.get("QueryLanguage", JSONPATH)
        if language not in (JSONPATH, JSONATA):
            fields.problem("QueryLanguage", "'QueryLanguage' must be JSONPath or JSONata")
            language = JSONPATH
    states_raw = raw.get("States")
    if not isinstance(states_raw, dict) or not states_raw:
        fields.problem(
            "States" if "States" in raw else None,
            "'States' must be a non-empty object"
            if "States" in raw
            else "missing required field 'States'",
        )
        states_raw = {}
    states: dict[str, State] = {}
    for name, state_raw in states_raw.items():
        state = parse_state(
            name,
            state_raw,
            fields.at("States") + "/" + errors.pointer(name)[1:],
            problems,
            language,
        )
        if state is not None:
            states[name] = state
    return Definition(
        start_at=start_at or "",
        states=states,
        comment=raw.get("Comment") if isinstance(raw.get("Comment"), str) else None,
        version=str(raw.get("Version", "1.0")),
        timeout_seconds=fields.number("TimeoutSeconds", minimum=0, integer=True, exclusive=True),
        query_language=language,
        raw=raw,
    )


def parse_state(
    name: str, raw: Any, where: str, problems: list[Problem], language: str = JSONPATH
) -> State | None:
    """Parse one state object; its type picks the parser.

    ``language`` is the machine's query language; the state's own ``QueryLanguage``
    overrides it (AWS lets a JSONPath machine hold JSONata states and the reverse).
    """
    if len(name) > MAX_STATE_NAME or not name:
        problems.append(Problem(path=where, message="state names must be 1 to 80 characters"))
    if not isinstance(raw, dict):
        problems.append(Problem(path=where, message="a state must be a JSON object"))
        return None
    own = raw.get("QueryLanguage", language)
    if own not in (JSONPATH, JSONATA):
        problems.append(
            Problem(
                path=f"{where}/QueryLanguage", message="'QueryLanguage' must be JSONPath or JSONata"
            )
        )
        own = language
    fields = _Fields(raw, where, problems, language=own, default_language=language)
    kind = raw.get("Type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None or not isinstance(kind, str):
        known = ", ".join(sorted(_PARSERS))
        fields.problem(
            "Type" if "Type" in raw else None,
            f"unknown state Type {kind!r} (one of {known})"
            if "Type" in raw
            else "missing required field 'Type'",
        )
        return None
    if own == JSONATA:
        return _parse_jsonata_state(name, kind, fields, parser)
    _language_fields(fields, _JSONATA_ONLY, JSONPATH)
    fields.unknown(FIELDS[kind] | _JSONATA_ONLY, f"a {kind} state")
    common = _common(name, kind, fields)
    state = parser(fields, common)
    reads = tuple(variable_reads(raw, where))
    return replace(
        state,
        uses_context=_uses_context(state) or bool(reads),
        reads=reads,
        assigns=_assigned_names(raw),
    )


def _language_fields(f: _Fields, refused: set[str], language: str) -> None:
    """Refuse the fields of the other query language, saying which language has them."""
    for key in f.raw:
        if key in refused:
            other = JSONATA if language == JSONPATH else JSONPATH
            f.problem(
                key,
                f"'{key}' is a {other} field; this state's QueryLanguage is {language}"
                + (
                    ' (set "QueryLanguage": "JSONata" on the state or the state machine)'
                    if language == JSONPATH
                    else " (use Arguments, Output, Items or {% %} expressions)"
                ),
            )


def _parse_jsonata_state(
    name: str, kind: str, f: _Fields, parser: Callable[[_Fields, dict[str, Any]], State]
) -> State | None:
    """A state in ``"QueryLanguage": "JSONata"``: its ``{% %}`` strings are checked here."""
    if kind == "Message":
        f.problem("QueryLanguage", "the Message state supports only the JSONPath query language")
        return None
    _language_fields(f, _JSONPATH_ONLY, JSONATA)
    f.unknown(JSONATA_FIELDS[kind] | _JSONPATH_ONLY, f"a {kind} state in JSONata")
    raw = f.raw
    f.exprs = {k: raw[k] for k in _EXPRESSION_FIELDS if jsonata.is_expression(raw.get(k))}
    # The usual parsers check the literal fields; expressions are evaluated when run.
    f.raw = {k: v for k, v in raw.items() if k not in f.exprs and k not in _JSONPATH_ONLY}
    state = parser(f, _common(name, kind, f))
    f.raw = raw
    reads: list[tuple[str, str]] = []
    draws = context = False
    for value, pointer, error_output in _jsonata_fields(raw, f.where, kind):
        f.problems.extend(jsonata.check_template(value, pointer, error_output=error_output))
        reads.extend(_jsonata_reads(value, pointer))
        text = json.dumps(value)
        draws = draws or "$random" in text or "$uuid" in text
        # A conservative test: "$states" with "context" anywhere in the same field.
        context = context or ("$states" in text and "context" in text)
    return replace(
        state,
        language=JSONATA,
        uses_context=context,
        reads=tuple(reads),
        assigns=_assigned_names(raw),
        exprs=dict(f.exprs),
        draws=draws,
        arguments=raw.get("ItemSelector" if kind == "Map" else "Arguments"),
        has_arguments=("ItemSelector" if kind == "Map" else "Arguments") in raw,
        output=raw.get("Output"),
        has_output="Output" in raw,
        assign=raw.get("Assign"),
    )


def _jsonata_fields(raw: dict[str, Any], where: str, kind: str) -> Iterator[tuple[Any, str, bool]]:
    """Every field of a JSONata state that may hold ``{% %}``: (value, pointer, in a Catcher)."""
    for key in ("Arguments", "Output", "Assign", "Items", "ItemSelector", *_EXPRESSION_FIELDS):
        if key in raw:
            yield raw[key], f"{where}/{key}", False
    for i, rule in enumerate(raw.get("Choices") or ()):
        if isinstance(rule, dict):
            for key in ("Condition", "Assign", "Output"):
                if key in rule:
                    yield rule[key], f"{where}/Choices/{i}/{key}", False
    for i, catcher in enumerate(raw.get("Catch") or ()):
        if isinstance(catcher, dict):
            for key in ("Assign", "Output"):
                if key in catcher:
                    yield catcher[key], f"{where}/Catch/{i}/{key}", True


def _jsonata_reads(value: Any, pointer: str) -> Iterator[tuple[str, str]]:
    if jsonata.is_expression(value):
        for name in jsonata.variable_references(value):
            yield name, pointer
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from _jsonata_reads(inner, f"{pointer}/{errors.pointer(key)[1:]}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _jsonata_reads(inner, f"{pointer}/{i}")


#: A ``$name`` reference inside a path or an intrinsic call (not ``$$`` nor ``$.``).
_REFERENCE = re.compile(r"(?<![\w$])\$([A-Za-z_][A-Za-z0-9_]*)")
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_PATH_FIELDS = {
    "InputPath",
    "OutputPath",
    "ItemsPath",
    "SecondsPath",
    "TimestampPath",
    "TimeoutSecondsPath",
    "HeartbeatSecondsPath",
    "MaxConcurrencyPath",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCountPath",
    "ErrorPath",
    "CausePath",
    "CorrelationValuePath",
}
_TEMPLATE_FIELDS = ("Parameters", "ResultSelector", "ItemSelector", "Assign")


def variable_reads(raw: dict[str, Any], where: str) -> Iterator[tuple[str, str]]:
    """The workflow variables a JSONPath state reads: (name, pointer of the reference).

    Its own fields only: the states of its branches or processor are parsed as states.
    """
    for key in _PATH_FIELDS:
        if isinstance(raw.get(key), str):
            yield from _references(raw[key], f"{where}/{key}")
    for key in _TEMPLATE_FIELDS:
        if key in raw:
            yield from _template_reads(raw[key], f"{where}/{key}")
    for i, rule in enumerate(raw.get("Choices") or ()):
        yield from _rule_reads(rule, f"{where}/Choices/{i}")
    for i, catcher in enumerate(raw.get("Catch") or ()):
        if isinstance(catcher, dict) and "Assign" in catcher:
            yield from _template_reads(catcher["Assign"], f"{where}/Catch/{i}/Assign")


def _references(text: str, where: str) -> Iterator[tuple[str, str]]:
    for match in _REFERENCE.finditer(_QUOTED.sub("''", text)):
        yield match.group(1), where


def _template_reads(raw: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(raw, dict):
        for key, value in raw.items():
            at = f"{where}/{errors.pointer(key)[1:]}"
            if isinstance(key, str) and key.endswith(".$") and isinstance(value, str):
                yield from _references(value, at)
            else:
                yield from _template_reads(value, at)
    elif isinstance(raw, list):
        for i, value in enumerate(raw):
            yield from _template_reads(value, f"{where}/{i}")


def _rule_reads(rule: Any, where: str) -> Iterator[tuple[str, str]]:
    if not isinstance(rule, dict):
        return
    for key, value in rule.items():
        at = f"{where}/{errors.pointer(key)[1:]}"
        if key == "Assign":
            yield from _template_reads(value, at)
        elif key in ("And", "Or") and isinstance(value, list):
            for i, inner in enumerate(value):
                yield from _rule_reads(inner, f"{at}/{i}")
        elif key == "Not":
            yield from _rule_reads(value, at)
        elif (key == "Variable" or key.endswith("Path")) and isinstance(value, str):
            yield from _references(value, at)


def _assigned_names(raw: dict[str, Any]) -> frozenset[str]:
    """Every variable name a state's Assign fields write (state, rules, catchers)."""
    blocks = [raw.get("Assign")]
    blocks += [r.get("Assign") for r in raw.get("Choices") or () if isinstance(r, dict)]
    blocks += [c.get("Assign") for c in raw.get("Catch") or () if isinstance(c, dict)]
    names = set()
    for block in blocks:
        if isinstance(block, dict):
            for key in block:
                if isinstance(key, str):
                    names.add(key[:-2] if key.endswith(".$") else key)
    return frozenset(names)


def _uses_context(state: State) -> bool:
    """Whether a state's templates or paths read ``$$`` (so stepping builds the object)."""
    templates = [state.parameters, state.result_selector, getattr(state, "item_selector", None)]
    templates += [state.assign, *(c.assign for c in state.catch)]
    templates += list(getattr(state, "rule_assign", ()))
    paths = [state.input_path, state.output_path, getattr(state, "items_path", None)]
    rules = state.choices if isinstance(state, ChoiceState) else ()
    return (
        any(t is not None and t.uses_context for t in templates)
        or any(isinstance(p, Path) and p.reads_context for p in paths)
        or any(rule.uses_context for rule in rules)
    )


def _common(name: str, kind: str, f: _Fields) -> dict[str, Any]:
    common: dict[str, Any] = {"name": name, "type": kind, "comment": f.raw.get("Comment")}
    if kind not in ("Choice", "Succeed", "Fail"):
        common["next"] = f.string("Next")
        common["end"] = f.boolean("End")
        if common["next"] is not None and common["end"]:
            f.problem("End", "a state cannot have both 'Next' and 'End'")
        elif common["next"] is None and not common["end"] and "Next" not in f.raw:
            f.problem(None, "a state needs either 'Next' or 'End': true")
    if kind != "Fail":
        common["input_path"] = f.io_path("InputPath")
        common["output_path"] = f.io_path("OutputPath")
    if "ResultPath" in FIELDS[kind]:
        common["result_path"], common["result_path_text"] = f.reference("ResultPath")
    if "Parameters" in FIELDS[kind] and kind != "Map":
        common["parameters"] = f.template("Parameters")
    if "ResultSelector" in FIELDS[kind]:
        common["result_selector"] = f.template("ResultSelector")
    if "Retry" in FIELDS[kind]:
        common["retry"] = _retriers(f)
        common["catch"] = _catchers(f)
    if "Assign" in FIELDS[kind]:
        common["assign"] = _assign(f)
    return common


#: AWS reserves ``$states`` (JSONata's view of the state); ``$$`` is the context object.
_RESERVED_VARIABLES = {"states"}
MAX_VARIABLE_NAME = 80


def _assign(f: _Fields) -> Any:
    """Compile an ``Assign`` object (JSONPath): each key names a variable (``name.$``
    binds a path or intrinsic, as in Parameters)."""
    if "Assign" not in f.raw:
        return None
    raw = f.raw["Assign"]
    if not isinstance(raw, dict):
        f.problem("Assign", "'Assign' must be a JSON object")
        return None
    _check_names(f, raw)
    if f.language == JSONATA:
        return raw  # kept as written; evaluated by the JSONata layer
    return compile_template(raw, f.at("Assign"), f.problems)


def _check_names(f: _Fields, raw: dict[str, Any]) -> None:
    at = f.at("Assign")
    seen: set[str] = set()
    for key in raw:
        jsonpath_key = f.language == JSONPATH and isinstance(key, str) and key.endswith(".$")
        name = key[:-2] if jsonpath_key else key
        where = f"{at}/{errors.pointer(key)[1:]}"
        if not isinstance(name, str) or not VARIABLE.fullmatch("$" + name):
            message = (
                f"invalid variable name {name!r}: a letter or underscore, then letters, "
                "digits or underscores"
            )
            f.problems.append(Problem(path=where, message=message))
        elif name in _RESERVED_VARIABLES:
            f.problems.append(Problem(path=where, message=f"'${name}' is a reserved name"))
        elif len(name) > MAX_VARIABLE_NAME:
            message = f"variable names must be at most {MAX_VARIABLE_NAME} characters"
            f.problems.append(Problem(path=where, message=message))
        elif name in seen:
            message = f"variable '{name}' is assigned twice in one Assign"
            f.problems.append(Problem(path=where, message=message))
        seen.add(name if isinstance(name, str) else "")


def _error_equals(f: _Fields, where: str, value: Any, *, last: bool) -> tuple[str, ...]:
    names = value if isinstance(value, list) else None
    if not names or not all(isinstance(n, str) and n for n in names):
        f.problems.append(
            Problem(path=where, message="'ErrorEquals' must be a non-empty array of error names")
        )
        return ()
    for i, error in enumerate(names):
        if error.startswith("States.") and error not in errors.KNOWN_STATES_ERRORS:
            f.problems.append(Problem(path=f"{where}/{i}", message=f"unknown error {error!r}"))
    if errors.ALL in names and (len(names) > 1 or not last):
        f.problems.append(
            Problem(path=where, message="'States.ALL' must appear alone, in the last element")
        )
    return tuple(names)


def _retriers(f: _Fields) -> tuple[Retrier, ...]:
    out = []
    items = f.array("Retry")
    for i, item in enumerate(items):
        where = f.at("Retry") + f"/{i}"
        if not isinstance(item, dict):
            f.problems.append(Problem(path=where, message="a retrier must be a JSON object"))
            continue
        r = _Fields(item, where, f.problems)
        r.unknown(
            {
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
                "Comment",
            },
            "a retrier",
        )
        names = _error_equals(
            f, r.at("ErrorEquals"), item.get("ErrorEquals"), last=i == len(items) - 1
        )
        interval = r.number("IntervalSeconds", minimum=1, integer=True)
        attempts = r.number("MaxAttempts", minimum=0, integer=True)
        rate = r.number("BackoffRate", minimum=1.0, integer=False)
        max_delay = r.number("MaxDelaySeconds", minimum=1, integer=True)
        jitter = item.get("JitterStrategy", "NONE")
        if jitter not in ("FULL", "NONE"):
            r.problem("JitterStrategy", "'JitterStrategy' must be FULL or NONE")
        out.append(
            Retrier(
                error_equals=names,
                interval_seconds=1.0 if interval is None else interval,
                max_attempts=3 if attempts is None else int(attempts),
                backoff_rate=2.0 if rate is None else rate,
                max_delay_seconds=max_delay,
                jitter=jitter if jitter in ("FULL", "NONE") else "NONE",
            )
        )
    return tuple(out)


def _catchers(f: _Fields) -> tuple[Catcher, ...]:
    out = []
    items = f.array("Catch")
    for i, item in enumerate(items):
        where = f.at("Catch") + f"/{i}"
        if not isinstance(item, dict):
            f.problems.append(Problem(path=where, message="a catcher must be a JSON object"))
            continue
        c = f.child(item, where)
        allowed = {"ErrorEquals", "Next", "Comment", "Assign"}
        other = {"Output"} if f.language == JSONPATH else {"ResultPath"}
        _language_fields(c, other, f.language)
        own = {"ResultPath"} if f.language == JSONPATH else {"Output"}
        c.unknown(allowed | other | own, "a catcher")
        names = _error_equals(
            f, c.at("ErrorEquals"), item.get("ErrorEquals"), last=i == len(items) - 1
        )
        target = c.string("Next", required=True)
        steps, text = c.reference("ResultPath")
        out.append(
            Catcher(
                error_equals=names,
                next=target or "",
                result_path=steps,
                result_path_text=text,
                assign=_assign(c),
                output=item.get("Output"),
                has_output="Output" in item,
            )
        )
    return tuple(out)


def _pass(f: _Fields, common: dict[str, Any]) -> State:
    return PassState(**common, result=f.raw.get("Result"), has_result="Result" in f.raw)


def _task(f: _Fields, common: dict[str, Any]) -> State:
    resource = f.string("Resource", required=True)
    timeout = f.number("TimeoutSeconds", minimum=0, integer=True, exclusive=True)
    heartbeat = f.number("HeartbeatSeconds", minimum=0, integer=True, exclusive=True)
    for a, b in (
        ("TimeoutSeconds", "TimeoutSecondsPath"),
        ("HeartbeatSeconds", "HeartbeatSecondsPath"),
    ):
        if f.has(a) and f.has(b):
            f.problem(b, f"a Task cannot have both '{a}' and '{b}'")
    if timeout is not None and heartbeat is not None and heartbeat >= timeout:
        f.problem("HeartbeatSeconds", "'HeartbeatSeconds' must be smaller than 'TimeoutSeconds'")
    return TaskState(
        **common,
        resource=resource or "",
        timeout_seconds=timeout,
        timeout_seconds_path=f.path("TimeoutSecondsPath"),
        heartbeat_seconds=heartbeat,
        heartbeat_seconds_path=f.path("HeartbeatSecondsPath"),
        credentials=f.raw.get("Credentials"),
    )


def _jsonata_choice(f: _Fields, common: dict[str, Any]) -> State:
    conditions: list[tuple[Any, str]] = []
    assigns: list[Any] = []
    outputs: list[tuple[bool, Any]] = []
    for i, item in enumerate(f.array("Choices", required=True, nonempty=True)):
        where = f.at("Choices") + f"/{i}"
        if not isinstance(item, dict):
            f.problems.append(Problem(path=where, message="a Choice Rule must be a JSON object"))
            continue
        rule = f.child(item, where)
        for key in item:
            if key not in ("Condition", "Next", "Comment", "Assign", "Output"):
                rule.problem(
                    key,
                    f"unknown field '{key}' for a JSONata Choice Rule (it has Condition, "
                    "Next, Assign, Output and Comment; Variable and the comparison "
                    "operators belong to JSONPath)",
                )
        target = rule.string("Next", required=True)
        if "Condition" not in item:
            rule.problem(None, "missing required field 'Condition'")
        elif not (isinstance(item["Condition"], bool) or jsonata.is_expression(item["Condition"])):
            rule.problem("Condition", "'Condition' must be a {% %} expression or a boolean")
        conditions.append((item.get("Condition", False), target or ""))
        assigns.append(_assign(rule))
        outputs.append(("Output" in item, item.get("Output")))
    return ChoiceState(
        **common,
        default=f.string("Default"),
        conditions=tuple(conditions),
        rule_assign=tuple(assigns),
        rule_output=tuple(outputs),
    )


def _choice(f: _Fields, common: dict[str, Any]) -> State:
    if f.language == JSONATA:
        return _jsonata_choice(f, common)
    rules: list[ChoiceRule] = []
    assigns: list[Template | None] = []
    for i, item in enumerate(f.array("Choices", required=True, nonempty=True)):
        where = f.at("Choices") + f"/{i}"
        rule = compile_choice(item, where, f.problems)
        assign = _assign(f.child(item, where)) if isinstance(item, dict) else None
        if rule is not None:
            rules.append(rule)
            assigns.append(assign)
    return ChoiceState(
        **common, choices=tuple(rules), default=f.string("Default"), rule_assign=tuple(assigns)
    )


def _wait(f: _Fields, common: dict[str, Any]) -> State:
    given = [
        k
        for k in ("Seconds", "SecondsPath", "Timestamp", "TimestampPath")
        if f.has(k) or k in f.exprs
    ]
    if len(given) != 1:
        f.problem(
            None,
            "a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, "
            f"TimestampPath (has {len(given)})",
        )
    timestamp = f.string("Timestamp")
    if timestamp is not None and parse_timestamp(timestamp) is None:
        f.problem("Timestamp", f"{timestamp!r} is not an RFC 3339 timestamp")
    return WaitState(
        **common,
        seconds=f.number("Seconds", minimum=0, integer=True),
        seconds_path=f.path("SecondsPath"),
        timestamp=timestamp,
        timestamp_path=f.path("TimestampPath"),
    )


def _succeed(f: _Fields, common: dict[str, Any]) -> State:
    return SucceedState(**common)


def _fail(f: _Fields, common: dict[str, Any]) -> State:
    for a in ("Error", "Cause"):
        if f.has(a) and f.has(a + "Path"):
            f.problem(a + "Path", f"a Fail state cannot have both '{a}' and '{a}Path'")
    return FailState(
        **common,
        error=f.string("Error"),
        cause=f.string("Cause"),
        error_path=_path_or_intrinsic(f, "ErrorPath"),
        cause_path=_path_or_intrinsic(f, "CausePath"),
    )


def _path_or_intrinsic(f: _Fields, name: str) -> Template | None:
    # AWS allows ErrorPath/CausePath to be a path or an intrinsic function; a
    # one-field template ({"value.$": ...}) evaluates either.
    if f.string(name) is None:
        return None
    return compile_template({"value.$": f.raw[name]}, f.where, f.problems)


def _parallel(f: _Fields, common: dict[str, Any]) -> State:
    branches = []
    for i, item in enumerate(f.array("Branches", required=True, nonempty=True)):
        branch = parse_definition(item, f.at("Branches") + f"/{i}", f.problems, f.default_language)
        if branch is not None:
            branches.append(branch)
    return ParallelState(**common, branches=tuple(branches))


def _map(f: _Fields, common: dict[str, Any]) -> State:
    both = f.has("ItemProcessor") and f.has("Iterator")
    if both or not (f.has("ItemProcessor") or f.has("Iterator")):
        f.problem(None, "a Map state needs exactly one of 'ItemProcessor' or 'Iterator'")
    key = "ItemProcessor" if f.has("ItemProcessor") else "Iterator"
    processor = (
        parse_definition(f.raw.get(key), f.at(key), f.problems, f.default_language)
        if f.has(key)
        else None
    )
    if f.has("ItemSelector") and f.has("Parameters"):
        f.problem("Parameters", "a Map state cannot have both 'ItemSelector' and 'Parameters'")
    selector = f.template("ItemSelector") if f.has("ItemSelector") else f.template("Parameters")
    _check_map_pairs(f)
    concurrency = f.number("MaxConcurrency", minimum=0, integer=True)
    items = f.raw.get("Items")
    if "Items" in f.raw and not (isinstance(items, list) or jsonata.is_expression(items)):
        f.problem("Items", "'Items' must be an array or a {% %} expression")
    if f.language == JSONATA:
        selector = None  # ItemSelector is a JSONata template (the state's ``arguments``)
    return MapState(
        **common,
        items=items,
        has_items="Items" in f.raw,
        distributed=_distributed(f, key),
        processor=processor,
        processor_field=key,
        items_path=f.io_path("ItemsPath") or "$",
        item_selector=selector,
        max_concurrency=int(concurrency or 0),
        max_concurrency_path=f.path("MaxConcurrencyPath"),
        tolerated_failure_percentage=f.number(
            "ToleratedFailurePercentage", minimum=0, integer=False, maximum=100
        ),
        tolerated_failure_percentage_path=f.path("ToleratedFailurePercentagePath"),
        tolerated_failure_count=_int(f.number("ToleratedFailureCount", minimum=0, integer=True)),
        tolerated_failure_count_path=f.path("ToleratedFailureCountPath"),
    )


_PROCESSOR_MODES = {"INLINE", "DISTRIBUTED"}
_EXECUTION_TYPES = {"STANDARD", "EXPRESS"}


def _distributed(f: _Fields, key: str) -> distributed.DistributedMap | None:
    """The Distributed Map fields, checked as AWS checks them (None for an inline Map)."""
    mode = _processor_mode(f, key)
    processor = f.raw.get(key)
    config = processor.get("ProcessorConfig") if isinstance(processor, dict) else None
    kind = config.get("ExecutionType") if isinstance(config, dict) else None
    return distributed.parse(
        f.raw,
        f.where,
        f.problems,
        mode=mode,
        execution_type=kind if isinstance(kind, str) else None,
        jsonata_state=f.language == JSONATA,
    )


def _processor_mode(f: _Fields, key: str) -> str:
    processor = f.raw.get(key)
    config = processor.get("ProcessorConfig") if isinstance(processor, dict) else None
    if config is None:
        return "INLINE"
    where = f"{f.at(key)}/ProcessorConfig"
    if not isinstance(config, dict):
        f.problems.append(Problem(path=where, message="'ProcessorConfig' must be a JSON object"))
        return "INLINE"
    mode = config.get("Mode", "INLINE")
    if mode not in _PROCESSOR_MODES:
        f.problems.append(
            Problem(path=f"{where}/Mode", message="'Mode' must be INLINE or DISTRIBUTED")
        )
    kind = config.get("ExecutionType")
    if mode == "DISTRIBUTED" and kind not in _EXECUTION_TYPES:
        f.problems.append(
            Problem(
                path=f"{where}/ExecutionType",
                message="a DISTRIBUTED Map needs 'ExecutionType' STANDARD or EXPRESS",
            )
        )
    return str(mode)


def _check_map_pairs(f: _Fields) -> None:
    for a in ("MaxConcurrency", "ToleratedFailurePercentage", "ToleratedFailureCount"):
        if f.has(a) and f.has(a + "Path"):
            f.problem(a + "Path", f"a Map state cannot have both '{a}' and '{a}Path'")


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _message(f: _Fields, common: dict[str, Any]) -> State:
    key = f.string("CorrelationKey", required=True)
    timeout = f.number("TimeoutSeconds", minimum=0, integer=True)
    timeout_path = f.string("TimeoutPath")
    if timeout and timeout_path is None and not common.get("catch"):
        f.problem(
            "TimeoutSeconds",
            "a Message state with 'TimeoutSeconds' needs a "
            "'TimeoutPath' or a Catch for States.Timeout",
        )
    return MessageState(
        **common,
        correlation_key=key or "",
        correlation_value_path=f.path("CorrelationValuePath"),
        timeout_seconds=timeout or None,
        timeout_path=timeout_path,
    )


_PARSERS: dict[str, Callable[[_Fields, dict[str, Any]], State]] = {
    "Pass": _pass,
    "Task": _task,
    "Choice": _choice,
    "Wait": _wait,
    "Succeed": _succeed,
    "Fail": _fail,
    "Parallel": _parallel,
    "Map": _map,
    "Message": _message,
}


def parse_timestamp(text: str) -> datetime | None:
    """Parse an RFC 3339 timestamp as AWS accepts it (``Z`` or an offset required)."""
    if not isinstance(text, str) or "T" not in text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None
