"""Inputs of ``execute_bulk``: JSON values from an iterable, a JSON array or a JSON-lines file.

A file is read as a stream: a JSON array in chunks with
``json.JSONDecoder.raw_decode`` (the standard library has no incremental array
reader that keeps line numbers), JSON lines one value per line, blank lines
skipped. :func:`check_inputs` reads a file from end to end before anything is
created, so a malformed file creates nothing; every error names the line (and,
in an array, the element).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

from orchestrator.errors import BulkInputError
from orchestrator.store import PayloadRejected, payloads

#: How ``execute_bulk`` reads a file: a JSON array, JSON lines, or guessed.
InputFormat = Literal["auto", "array", "lines"]

#: Characters read from an input file at a time.
CHUNK_CHARS = 1 << 16

#: File suffixes that mean JSON lines.
LINES_SUFFIXES = frozenset({".jsonl", ".ndjson", ".jsonlines"})


def check_payload(value: Any, where: str, limit: int) -> None:
    try:
        payloads.encode(value, field="input", limit=limit)
    except PayloadRejected as exc:
        raise BulkInputError("inputs", where, str(exc)) from None


def max_chars(payload_limit: int) -> int:
    # Room for pretty-printing and \\u escapes around a value of the largest size.
    return max(1 << 20, 8 * payload_limit)


def detect_format(path: Path, input_format: InputFormat = "auto") -> Literal["array", "lines"]:
    """``array`` or ``lines``: as given, by suffix (``.jsonl``), or by the first character.

    Raises:
        BulkInputError: the file cannot be read.
    """
    if input_format in ("array", "lines"):
        return input_format
    if input_format != "auto":
        raise ValueError(f"input_format must be 'auto', 'array' or 'lines', not {input_format!r}")
    if path.suffix.lower() in LINES_SUFFIXES:
        return "lines"
    with _open(path) as stream:
        while chunk := _read(stream, path, 1):
            first = chunk.lstrip()
            if first:
                return "array" if first[0] == "[" else "lines"
    return "lines"


def check_inputs(path: Path, *, input_format: Literal["array", "lines"], payload_limit: int) -> int:
    """Read the whole file once, checking every input; return how many there are.

    Raises:
        BulkInputError: the first input that is not valid, storable JSON.
    """
    count = 0
    for _, where, value in read_inputs(
        path, input_format=input_format, max_chars=max_chars(payload_limit)
    ):
        try:
            payloads.encode(value, field="input", limit=payload_limit)
        except PayloadRejected as exc:
            raise BulkInputError(str(path), where, str(exc)) from None
        count += 1
    return count


def read_inputs(
    path: Path, *, input_format: Literal["array", "lines"], max_chars: int = 1 << 24
) -> Iterator[tuple[int, str, Any]]:
    """Stream the values of a JSON array or JSON-lines file: (index, location, value).

    The file is read in chunks; at most one value (of at most ``max_chars``
    characters) and one chunk are in memory.

    Raises:
        BulkInputError: the file is not what ``input_format`` says, or holds
            invalid JSON (NaN and Infinity included); the error names the line.
    """
    with _open(path) as stream:
        if input_format == "array":
            values = _ArrayReader(stream, str(path), max_chars).values()
        else:
            values = _lines(stream, str(path), max_chars)
        for index, (where, value) in enumerate(values):
            yield index, where, value


def _open(path: Path) -> IO[str]:
    try:
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise BulkInputError(str(path), "opening it", exc.strerror or str(exc)) from None


def _read(stream: IO[str], path: Path, line: int, size: int | None = None) -> str:
    try:
        return stream.read(size or CHUNK_CHARS)
    except UnicodeDecodeError:
        raise BulkInputError(str(path), f"line {line}", "the file is not UTF-8 text") from None


class _NotJson(ValueError):
    """NaN, Infinity and -Infinity: Python reads them, JSON has no such values."""


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value")


def _decoder() -> json.JSONDecoder:
    return json.JSONDecoder(parse_constant=_refuse_constant)


def _lines(stream: IO[str], source: str, max_chars: int) -> Iterator[tuple[str, Any]]:
    decoder, number = _decoder(), 0
    while True:
        try:
            line = stream.readline(max_chars + 1)
        except UnicodeDecodeError:
            raise BulkInputError(source, f"line {number + 1}", "not UTF-8 text") from None
        if not line:
            return
        number += 1
        if len(line) > max_chars:
            raise BulkInputError(source, f"line {number}", f"longer than {max_chars} characters")
        if line.isspace():
            continue
        try:
            value = decoder.decode(line.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            reason = f"{exc.msg.removesuffix(' at')} at column {exc.colno}"
            raise BulkInputError(source, f"line {number}", reason) from None
        except _NotJson as exc:
            raise BulkInputError(source, f"line {number}", str(exc)) from None
        yield f"line {number}", value


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NUMBER_CHARS = frozenset("0123456789.eE+-")


class _ArrayReader:
    """The elements of a JSON array, decoded one by one from chunks of the file."""

    def __init__(self, stream: IO[str], source: str, max_chars: int) -> None:
        self.stream, self.source, self.max_chars = stream, source, max_chars
        self.buf, self.pos, self.eof, self.lines_before = "", 0, False, 0
        self.decoder = _decoder()

    def values(self) -> Iterator[tuple[str, Any]]:
        if self._next_char() != "[":
            raise self._error("expected '[': the file does not hold a JSON array")
        self.pos += 1
        if self._next_char() == "]":
            self.pos += 1
            return self._end()
        index = 0
        while True:
            line = self._line()
            yield f"element {index} (line {line})", self._value(index)
            char = self._next_char()
            if char == "]":
                self.pos += 1
                return self._end()
            if char != ",":
                found = repr(char) if char else "the end of the file"
                raise self._error(f"expected ',' or ']' after element {index}, found {found}")
            self.pos += 1
            index += 1
            if self._next_char() == "]":
                raise self._error(f"a ',' after element {index - 1} is followed by ']'")

    def _value(self, index: int) -> Any:
        while True:
            if not self._next_char():
                raise self._error(f"the file ends before element {index} (the array is not closed)")
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if len(self.buf) - self.pos <= self.max_chars and self._fill():
                    continue  # the element may only be cut off at the end of the chunk
                reason = f"element {index}: {exc.msg.removesuffix(' at')}"
                raise self._error(reason, at=exc.pos) from None
            except _NotJson as exc:
                raise self._error(f"element {index}: {exc}") from None
            if self._may_go_on(value, end) and self._fill():
                continue  # a number at the end of the chunk may go on in the next one
            self.pos = end
            return value

    def _may_go_on(self, value: Any, end: int) -> bool:
        """Whether a number just decoded may be the start of a longer one (``1`` of ``1.5e3``)."""
        if isinstance(value, bool) or not isinstance(value, int | float) or self.eof:
            return False
        return all(char in _NUMBER_CHARS for char in self.buf[end:])

    def _end(self) -> None:
        if self._next_char():
            raise self._error(
                "data after the end of the array (a file with one JSON value per line "
                "is read with input_format='lines')"
            )

    def _next_char(self) -> str:
        """Skip whitespace; return the next character ('' at the end of the file)."""
        while True:
            match = _WHITESPACE.match(self.buf, self.pos)
            assert match is not None
            self.pos = match.end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def _fill(self) -> bool:
        """Read the next chunk (dropping what was consumed); False at the end of the file."""
        if self.eof:
            return False
        chunk = _read(self.stream, Path(self.source), self._line())
        if not chunk:
            self.eof = True
            return False
        if self.pos > CHUNK_CHARS:
            self.lines_before += self.buf.count("\n", 0, self.pos)
            self.buf, self.pos = self.buf[self.pos :], 0
        self.buf += chunk
        return True

    def _line(self, at: int | None = None) -> int:
        return self.lines_before + self.buf.count("\n", 0, self.pos if at is None else at) + 1

    def _error(self, reason: str, *, at: int | None = None) -> BulkInputError:
        return BulkInputError(self.source, f"line {self._line(at)}", reason)
