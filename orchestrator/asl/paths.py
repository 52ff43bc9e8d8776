"""JSONPath and reference paths as ASL uses them.

ASL has two kinds of path (states-language.net, "Paths" and "Reference Paths"):

* a *Path* (InputPath, OutputPath, ItemsPath, ``"x.$"`` values, ``*Path`` fields) is
  any JSONPath; AWS evaluates it with Jayway JsonPath, where a *definite* path
  (only names and indexes) yields one value and an *indefinite* one (``*``,
  ``..``, filters, slices, unions) yields a list of every match;
* a *Reference Path* (ResultPath, Choice ``Variable``) may only name a single
  node: ``$``, ``.name``, ``['name']`` and ``[index]`` steps.

Reference paths are parsed here by hand into a tuple of steps, because they must
also be *written* (ResultPath) and because almost every real definition uses
only them: a tuple walk costs well under a microsecond, where a general JSONPath
engine costs about nine. Indefinite paths go to ``python-jsonpath`` (compiled
once per definition), which follows the same Jayway/RFC 9535 query rules.

A path starting ``$$`` reads the context object instead of the state data.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import jsonpath

from orchestrator.asl import errors

Step = str | int

_NAME = re.compile(r"[^.\[\]'\"\s*?@()=<>!,:]+")
_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_QUOTED = re.compile(r"""\[\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*\]""")


class PathSyntaxError(ValueError):
    """A path string that is not a valid (reference) path."""


class PathNotFound(LookupError):
    """A definite path named a node that the data does not have."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_reference(text: str) -> tuple[Step, ...] | None:
    """Parse a reference path into steps, or return None if it is not one.

    ``$.a['b c'][0]`` -> ``("a", "b c", 0)``. ``$`` -> ``()``.
    """
    if not text.startswith("$"):
        return None
    pos, n = 1, len(text)
    steps: list[Step] = []
    while pos < n:
        char = text[pos]
        if char == ".":
            match = _NAME.match(text, pos + 1)
            if match is None:
                return None
            steps.append(match.group(0))
        elif char == "[":
            match = _INDEX.match(text, pos)
            if match is not None:
                steps.append(int(match.group(1)))
            else:
                match = _QUOTED.match(text, pos)
                if match is None:
                    return None
                quoted = match.group(1) if match.group(1) is not None else match.group(2)
                steps.append(_unescape(quoted))
        else:
            return None
        pos = match.end()
    return tuple(steps)


def _walk(data: Any, steps: tuple[Step, ...], text: str) -> Any:
    for step in steps:
        if isinstance(step, str):
            if type(data) is not dict or step not in data:
                raise PathNotFound(text)
            data = data[step]
        else:
            if type(data) is not list or not -len(data) <= step < len(data):
                raise PathNotFound(text)
            data = data[step]
    return data


@dataclass(frozen=True, slots=True)
class Path:
    """A compiled ASL Path (possibly reading the context object with ``$$``).

    Attributes:
        text: the path as written.
        context: True for ``$$...`` paths, which read the context object.
        steps: the reference steps for a definite path, else None.
    """

    text: str
    context: bool
    steps: tuple[Step, ...] | None
    query: Any

    @property
    def definite(self) -> bool:
        """True when the path names a single node (a reference path)."""
        return self.steps is not None

    def find(self, data: Any, context: Any = None) -> Any:
        """Evaluate the path; a definite path returns the node, an indefinite one a list.

        Raises:
            PathNotFound: a definite path names a node the data does not have.
        """
        root = context if self.context else data
        if self.steps is not None:
            return _walk(root, self.steps, self.text)
        return self.query.findall(root)


def compile_path(text: str) -> Path:
    """Compile an ASL Path; raise PathSyntaxError if it is not a valid JSONPath."""
    if not isinstance(text, str) or not text.startswith("$"):
        raise PathSyntaxError(f"{text!r} is not a JSONPath (it must start with '$')")
    is_context = text.startswith("$$")
    body = text[1:] if is_context else text
    steps = parse_reference(body)
    if steps is not None:
        return Path(text=text, context=is_context, steps=steps, query=None)
    try:
        query = jsonpath.compile(_scripts(body))
    except Exception as exc:  # python-jsonpath raises several syntax error classes
        raise PathSyntaxError(f"{text!r} is not a valid JSONPath: {exc}") from exc
    return Path(text=text, context=is_context, steps=None, query=query)


#: Jayway's script expression ``[(@.length-N)]``, the N-th item from the end; AWS
#: accepts it (e.g. ``$.items[(@.length-1)]``) and RFC 9535 has no scripts, so it is
#: rewritten to the negative index that selects the same item.
_LENGTH_SCRIPT = re.compile(r"\[\s*\(\s*@\.length\s*-\s*([1-9][0-9]*)\s*\)\s*\]")


def _scripts(body: str) -> str:
    return _LENGTH_SCRIPT.sub(lambda m: f"[-{m.group(1)}]", body)


def compile_reference(text: str) -> tuple[Step, ...]:
    """Compile a Reference Path (one node only), as ResultPath and ``Variable`` need."""
    if not isinstance(text, str):
        raise PathSyntaxError(f"{text!r} is not a reference path")
    steps = parse_reference(text)
    if steps is None:
        raise PathSyntaxError(
            f"{text!r} is not a reference path (only $, .name, ['name'] and [index] steps)"
        )
    return steps


def jayway(steps: tuple[Step, ...]) -> str:
    """Render steps the way AWS (Jayway) prints a path in error causes: ``$['a'][0]``."""
    return "$" + "".join(f"[{s}]" if isinstance(s, int) else f"['{s}']" for s in steps)


def compact(value: Any) -> str:
    """JSON text as AWS prints data in causes (no spaces)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def select(path: Path | None, data: Any, context: Any) -> Any:
    """Apply InputPath/OutputPath/ItemsPath: None means ``null`` (an empty object).

    Raises:
        StatesError: ``States.Runtime`` when a definite path matches nothing, worded as AWS:
            ``Invalid path '$.x' : No results for path: $['x']``.
    """
    if path is None:
        return {}
    try:
        return path.find(data, context)
    except PathNotFound:
        where = jayway(path.steps or ())
        raise errors.StatesError(
            errors.RUNTIME, f"Invalid path '{path.text}' : No results for path: {where}"
        ) from None


def put(data: Any, steps: tuple[Step, ...], value: Any, *, text: str | None = None) -> Any:
    """Return ``data`` with ``value`` placed at the reference path (ResultPath semantics).

    Copies only the objects along the path; never mutates ``data``. Missing objects on
    the way are created, as AWS does.

    Raises:
        StatesError: ``States.ResultPathMatchFailure`` when a step cannot be applied
            (a name into a non-object, an index into a non-array or out of range).
    """
    try:
        return _put(data, steps, value)
    except _NoMatch:
        shown = text if text is not None else jayway(steps)
        raise errors.StatesError(
            errors.RESULT_PATH_MATCH_FAILURE,
            f'Unable to apply ResultPath "{shown}" to input "{compact(data)}"',
        ) from None


class _NoMatch(Exception):
    pass


def _put(data: Any, steps: tuple[Step, ...], value: Any) -> Any:
    if not steps:
        return value
    head, rest = steps[0], steps[1:]
    if isinstance(head, str):
        if data is None:
            data = {}
        if type(data) is not dict:
            raise _NoMatch
        copy = dict(data)
        copy[head] = _put(copy.get(head), rest, value) if rest else value
        return copy
    if type(data) is not list or not -len(data) <= head < len(data):
        raise _NoMatch
    items = list(data)
    items[head] = _put(items[head], rest, value) if rest else value
    return items
