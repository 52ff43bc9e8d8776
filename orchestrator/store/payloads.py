"""JSON payload checks and canonical forms, applied before anything is stored.

Everything written to a JSON column passes :func:`encode` first, so a payload
that PostgreSQL would refuse half-way through a transaction (NaN, a NUL
character) or that would not read back as written (non-string keys) is refused
up front with a clear error, on every backend alike.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from orchestrator.store.engine import json_dumps
from orchestrator.store.errors import PayloadInvalid, PayloadTooLarge

# An escaped NUL (\u0000) not preceded by an escaping backslash: PostgreSQL's
# jsonb cannot hold it.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def encode(value: Any, *, field: str, limit: int | None = None) -> str:
    """Serialise ``value`` as compact JSON, refusing what cannot be stored.

    Args:
        value: any JSON value (``None`` is JSON null).
        field: the payload's name in error messages, e.g. ``input``.
        limit: the maximum size in bytes of the UTF-8 JSON text; None for no
            limit. Default None.

    Returns:
        The JSON text.

    Raises:
        PayloadInvalid: ``value`` is not JSON (NaN, a set, a non-string key, a
            NUL character, ...).
        PayloadTooLarge: the text is longer than ``limit`` bytes.
    """
    try:
        text = json_dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise PayloadInvalid(field, f"not storable as JSON: {exc}") from None
    _check_round_trip(value, text, field)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        # A lone surrogate ("\ud800"): Python holds it, UTF-8 and the drivers cannot.
        raise PayloadInvalid(
            field, f"strings may not contain a lone surrogate (U+{ord(text[exc.start]):04X})"
        ) from None
    if limit is not None and size > limit:
        raise PayloadTooLarge(field, size, limit)
    return text


def canonical(value: Any, *, field: str = "value") -> str:
    """Return the canonical JSON text of ``value``: sorted keys, integral floats as ints.

    Two JSON values that compare equal (``{"a": 1}`` and ``{"a": 1.0}``) get the
    same text; ``true`` and ``1`` do not.

    Raises:
        PayloadInvalid: ``value`` is not JSON.
    """
    encode(value, field=field)
    return json.dumps(_normalise(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def check_text(value: str | None, *, field: str, max_chars: int) -> None:
    """Refuse text longer than its column (PostgreSQL would fail mid-transaction, SQLite not).

    Raises:
        PayloadInvalid: ``value`` has more than ``max_chars`` characters.
    """
    if value is not None and len(value) > max_chars:
        raise PayloadInvalid(field, f"longer than {max_chars} characters ({len(value)})")


def digest(text: str) -> str:
    """Return the SHA-256 hex digest of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_round_trip(value: Any, text: str, field: str) -> None:
    if _NUL_ESCAPE.search(text):
        raise PayloadInvalid(field, "strings may not contain the NUL character (\\u0000)")
    if _has_non_string_key(value):
        raise PayloadInvalid(field, "object keys must be strings")


def _has_non_string_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any(not isinstance(k, str) or _has_non_string_key(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_non_string_key(v) for v in value)
    return False


def _normalise(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


__all__ = ["canonical", "check_text", "digest", "encode"]
