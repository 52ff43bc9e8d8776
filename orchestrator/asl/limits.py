"""Limits of the pure engine, and the check that a value is JSON.

AWS's quotas, where it documents them (developer guide, "Step Functions service
quotas"): a definition is at most 1 MB (the ``CreateStateMachine`` request limit), an
execution's history at most 25,000 events. The nesting depth is ours: AWS documents
none, and a value nested deeper than Python's recursion limit would crash the code
that walks it (the JSON encoder, template rendering) instead of failing cleanly.

A *JSON value* here is what RFC 8259 can carry and the store will accept: ``None``,
``bool``, ``int``, finite ``float``, ``str`` encodable as UTF-8 (no lone surrogates),
lists (or tuples) and dicts with string keys. YAML dates, ``!!binary`` bytes, sets,
``NaN`` and ``inf`` are not.
"""

from __future__ import annotations

import math
from typing import Any

from orchestrator.asl import errors

#: AWS: "Maximum request size: 1 MB per request" bounds a definition; 1,048,576 bytes
#: of the definition's UTF-8 text.
MAX_DEFINITION_BYTES = 1_048_576
#: AWS: "Maximum execution history size: 25,000 events". Ours counts the history rows
#: the engine records (one per finished state or failed attempt).
MAX_EVENTS_PER_EXECUTION = 25_000
#: Items one inline Map state may hold in its checkpoint at once. Ours: AWS bounds an
#: inline Map only by the 256 KiB payload, which holds at most 131,071 items
#: (``[0,0,...,0]``, two bytes an item), so no valid AWS inline Map reaches 131,072.
MAX_MAP_ITEMS = 131_072
#: Wall time of one JSONata expression, in milliseconds (see ``jsonata.Limits``).
EXPRESSION_TIMEOUT_MS = 1000
#: Deepest nesting of objects/arrays accepted in a definition or a value.
MAX_DEPTH = 512
#: The largest seconds value a ``...SecondsPath`` may name (AWS's ``TimeoutSeconds``
#: and ``Seconds`` upper bound, 99999999).
MAX_SECONDS = 99_999_999
#: AWS: a workflow variable holds at most 256 KiB, and the variables of an execution
#: at most 10 MiB in all (developer guide, "Passing data between states with
#: variables"), each measured as its JSON text in UTF-8.
MAX_VARIABLE_BYTES = 256 * 1024
MAX_VARIABLES_BYTES = 10 * 1024 * 1024


def json_problem(value: Any, *, max_depth: int = MAX_DEPTH) -> tuple[str, str] | None:
    """Find the first part of ``value`` that is not JSON.

    Walks iteratively, so a deep value cannot exhaust the stack.

    Returns:
        ``(pointer, reason)`` of the first offending part, or None when ``value`` is JSON.
    """
    todo: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while todo:
        item, where = todo.pop()
        if len(where) > max_depth:
            return errors.pointer(*where), f"nested deeper than {max_depth} levels"
        reason = _scalar_problem(item)
        if reason is not None:
            return errors.pointer(*where), reason
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return errors.pointer(*where), f"object key {key!r} is not a string"
                if _bad_text(key):
                    return errors.pointer(*where), f"object key {key!r} is not valid UTF-8 text"
                todo.append((child, (*where, key)))
        elif isinstance(item, list | tuple):
            todo.extend((child, (*where, i)) for i, child in enumerate(item))
    return None


#: Python writes no integer of more than 4,300 digits as text (``sys.int_info``), so
#: such a number could be neither stored nor printed; 14,000 bits is about 4,214 digits.
MAX_INT_BITS = 14_000


def _scalar_problem(item: Any) -> str | None:
    if isinstance(item, int) and not isinstance(item, bool):
        if item.bit_length() > MAX_INT_BITS:
            return "an integer of more than 4,000 digits is too large"
        return None
    if item is None or isinstance(item, bool | dict | list | tuple):
        return None
    if isinstance(item, float):
        return None if math.isfinite(item) else f"{item!r} is not a JSON number"
    if isinstance(item, str):
        return "text with a lone surrogate is not valid UTF-8" if _bad_text(item) else None
    return f"a {type(item).__name__} is not a JSON value"


def _bad_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def describe(problem: tuple[str, str]) -> str:
    """One line for a :func:`json_problem` result: ``at /a/0: reason``."""
    where, reason = problem
    return f"at {where or '/'}: {reason}"
