"""Payload templates: Parameters, ResultSelector, ItemSelector.

Spec ("Payload Template"): a field whose name ends in ``.$`` has a value that is a
Path or an intrinsic function call; the field is renamed without the suffix and its
value replaced by what the path or call yields. Other fields are copied as they are,
objects and arrays are walked recursively.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from orchestrator.asl import errors
from orchestrator.asl.errors import Problem
from orchestrator.asl.intrinsics import (
    Intrinsic,
    IntrinsicSyntaxError,
    compile_intrinsic,
    is_intrinsic,
)
from orchestrator.asl.paths import Path, PathNotFound, PathSyntaxError, compact, compile_path

_STATIC, _PATH, _CALL, _OBJECT, _ARRAY = range(5)
#: Intrinsics that draw from the rng passed to ``render``.
_RANDOM_FUNCTIONS = ("States.MathRandom", "States.UUID")


@dataclass(frozen=True, slots=True)
class _Node:
    kind: int
    value: Any  # static JSON | Path | Intrinsic | tuple[(key, field, _Node)] | tuple[_Node]


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled payload template.

    Attributes:
        raw: the template as written.
        uses_context: True when some binding reads ``$$`` (the context object).
        uses_random: True when some binding calls ``States.MathRandom`` or ``States.UUID``
            (so the interpreter makes a random generator only for those).
    """

    raw: Any
    root: _Node
    uses_context: bool
    uses_random: bool = False

    def render(self, data: Any, context: Any, *, rng: random.Random | None = None) -> Any:
        """Build the payload from ``data`` (and the context object).

        Raises:
            StatesError: ``States.Runtime`` when a path matches nothing (AWS's wording),
                ``States.IntrinsicFailure`` when a function fails.
        """
        return _render(self.root, data, context, rng, "")


def _render(node: _Node, data: Any, context: Any, rng: random.Random | None, name: str) -> Any:
    kind = node.kind
    if kind == _STATIC:
        return node.value
    if kind == _OBJECT:
        return {key: _render(child, data, context, rng, fld) for key, fld, child in node.value}
    if kind == _PATH:
        path: Path = node.value
        try:
            return path.find(data, context)
        except PathNotFound:
            where = "the context object" if path.context else "the input"
            shown = compact(context if path.context else data)
            raise errors.StatesError(
                errors.RUNTIME,
                f"The JSONPath '{path.text}' specified for the field '{name}' could not be "
                f"found in {where} '{shown}'",
            ) from None
    if kind == _CALL:
        call: Intrinsic = node.value
        return call.evaluate(data, context, rng=rng)
    return [_render(child, data, context, rng, name) for child in node.value]


def compile_template(raw: Any, where: str, problems: list[Problem]) -> Template:
    """Compile a payload template, appending a Problem (with its pointer) per bad binding."""
    flags = {"context": False, "random": False}
    root = _compile(raw, where, problems, flags)
    return Template(raw=raw, root=root, uses_context=flags["context"], uses_random=flags["random"])


def _compile(raw: Any, where: str, problems: list[Problem], flags: dict[str, bool]) -> _Node:
    if isinstance(raw, dict):
        children = []
        dynamic = False
        for key, value in raw.items():
            at = f"{where}/{errors.pointer(key)[1:]}"
            if isinstance(key, str) and key.endswith(".$"):
                node = _binding(value, key, at, problems, flags)
                children.append((key[:-2], key, node))
                dynamic = True
            else:
                node = _compile(value, at, problems, flags)
                children.append((key, key, node))
                dynamic = dynamic or node.kind != _STATIC
        if dynamic:
            return _Node(_OBJECT, tuple(children))
        return _Node(_STATIC, raw)
    if isinstance(raw, list):
        items = [_compile(v, f"{where}/{i}", problems, flags) for i, v in enumerate(raw)]
        if any(n.kind != _STATIC for n in items):
            return _Node(_ARRAY, tuple(items))
    return _Node(_STATIC, raw)


def _binding(
    value: Any, key: str, at: str, problems: list[Problem], flags: dict[str, bool]
) -> _Node:
    if isinstance(value, str) and value.startswith("$"):
        try:
            path = compile_path(value)
        except PathSyntaxError as exc:
            problems.append(Problem(path=at, message=str(exc)))
            return _Node(_STATIC, None)
        flags["context"] = flags["context"] or path.context
        return _Node(_PATH, path)
    if isinstance(value, str) and is_intrinsic(value):
        try:
            call = compile_intrinsic(value)
        except IntrinsicSyntaxError as exc:
            problems.append(Problem(path=at, message=f"invalid intrinsic function: {exc}"))
            return _Node(_STATIC, None)
        flags["context"] = flags["context"] or "$$" in value
        flags["random"] = flags["random"] or any(f in value for f in _RANDOM_FUNCTIONS)
        return _Node(_CALL, call)
    problems.append(
        Problem(
            path=at,
            message=f"the value of field '{key}' must be a JSONPath or an intrinsic "
            f"function call, not {compact(value)}",
        )
    )
    return _Node(_STATIC, None)
