"""What a JSONata expression refers to, read from its tokens (no evaluation).

AWS refuses, when a state machine is created, a JSONata expression that reads the
context item: AWS evaluates expressions with no context item, so a path that starts
with a field name (``phone`` instead of ``$states.input.phone``) or ``$`` at the top
level can never find anything, and ``$$`` is not supported at all::

    UNSUPPORTED_JSONATA_EXPRESSION: Reference to 'phone' at the top level is not supported.

Only the *first* step of a path is read against the top-level context: a name after
``.``, inside a predicate or index (``items[value > 3]``), a sort term (``^(x)``), a
group-by (``items{k: v}``), a parenthesised step (``a.(b + c)``) or a transform
(``| a | {...} |``) is read against the step's own context and stays legal. A lambda
body keeps the context of the expression that defines it, so the ``b`` in
``$map($states.input.a, function($x){ b })`` is at the top level.

The engine does not expose its syntax tree, so this is a scan of the tokens with a
stack of bracket contexts. It runs only on expressions the engine has already parsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>/\*.*?\*/)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<backtick>`[^`]*`)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<variable>\$\$|\$[^\s.\[\]{}(),:;&|!=<>~?+\-*/%@#^"'`$]*)
  | (?P<operator>:=|~>|\.\.|!=|<=|>=|\?:|\?\?|[.\[\]{}(),:;&|!=<>~?+\-*/%@#^])
  | (?P<name>[^\s.\[\]{}(),:;&|!=<>~?+\-*/%@#^"'`$]+)
    """,
    re.VERBOSE | re.DOTALL,
)
_REGEX = re.compile(r"/(?:[^/\\]|\\.)*/[a-z]*")
_KEYWORDS = frozenset({"and", "or", "in", "true", "false", "null", "function", "λ"})
_LITERALS = frozenset({"true", "false", "null"})


@dataclass(frozen=True, kw_only=True)
class Token:
    """One token: its kind (``name``, ``variable``, ``operator``, ...) and text."""

    kind: str
    text: str


def tokens(text: str) -> Iterator[Token]:
    """The significant tokens of an expression (no spaces or comments).

    A ``/`` where an operand is expected starts a regular expression literal.
    """
    pos, operand = 0, False
    while pos < len(text):
        if text[pos] == "/" and not operand and not text.startswith("/*", pos):
            regex = _REGEX.match(text, pos)
            if regex is not None:
                pos = regex.end()
                operand = True
                yield Token(kind="regex", text=regex.group(0))
                continue
        match = _TOKEN.match(text, pos)
        if match is None:  # not reached for text the engine parsed; stop rather than loop
            return
        pos = match.end()
        kind = match.lastgroup or "name"
        if kind in ("space", "comment"):
            continue
        token = Token(kind=kind, text=match.group(0))
        operand = kind != "operator" or token.text in (")", "]", "}")
        if kind == "name" and token.text in _KEYWORDS - _LITERALS:
            operand = False
        yield token


@dataclass(kw_only=True)
class _Frame:
    closing: str
    top: bool  # names in this frame are read against the top-level context
    kind: str = ""  # "params" for a lambda's parameter list, "transform" for | ... |
    bars: int = 0


def top_level_references(text: str) -> list[str]:
    """Names (and ``$``/``$$``) that read the top-level context, in order of appearance.

    ``$$`` is reported wherever it appears; ``$`` and field names only at the top level.
    """
    found: list[str] = []
    scan = _Scan()
    for token in tokens(text):
        if scan.in_signature(token):
            continue
        top = scan.stack[-1].top
        if token.kind == "variable":
            if token.text == "$$" or (token.text == "$" and top):
                found.append(token.text)
            scan.step_call = scan.after_dot()  # a.$f(x): x reads each item of a
        elif token.kind in ("name", "backtick"):
            if token.text in ("function", "λ"):
                scan.lambda_state = "params"
            elif token.text not in _KEYWORDS and not scan.after_dot() and top:
                found.append(token.text.strip("`"))
        elif token.kind == "operator":
            scan.operator(token)
        scan.previous = token
    return found


class _Scan:
    """The bracket contexts met so far, and where a lambda definition stands."""

    def __init__(self) -> None:
        self.stack = [_Frame(closing="", top=True)]
        self.previous: Token | None = None
        #: "" | "params": "(" opens a lambda's parameters | "body": "<" or "{" follows
        self.lambda_state = ""
        self.signature_depth = 0
        #: the variable just read was a path step, so its call arguments read the step
        self.step_call = False

    def after_dot(self) -> bool:
        return (
            self.previous is not None
            and self.previous.text == "."
            and (self.previous.kind == "operator")
        )

    def after_operand(self) -> bool:
        return self.previous is not None and _is_operand(self.previous)

    def in_signature(self, token: Token) -> bool:
        """Skip a lambda's type signature, ``<a<s>s?:s>``, between its ``)`` and ``{``."""
        if self.signature_depth:
            self.signature_depth += {"<": 1, ">": -1}.get(token.text, 0)
            return True
        if self.lambda_state == "body" and token.text == "<":
            self.signature_depth = 1
            return True
        return False

    def operator(self, token: Token) -> None:
        frame, text = self.stack[-1], token.text
        state, self.lambda_state = self.lambda_state, ""
        step_call, self.step_call = self.step_call, False
        # After ".", a bracket is a step of the path and reads that step's items.
        step = self.after_dot()
        if text == "(":
            params = state == "params"
            sort = self.previous is not None and self.previous.text == "^"
            relative = not params and (step or sort or step_call)
            self.stack.append(
                _Frame(closing=")", top=frame.top and not relative, kind="params" * params)
            )
        elif text == "[":
            relative = step or self.after_operand()
            self.stack.append(_Frame(closing="]", top=frame.top and not relative))
        elif text == "{":
            # A lambda body keeps its definer's context; after an operand, "{" groups.
            relative = step or (state != "body" and self.after_operand())
            self.stack.append(_Frame(closing="}", top=frame.top and not relative))
        elif text == frame.closing and len(self.stack) > 1:
            self.stack.pop()
            if frame.kind == "params":
                self.lambda_state = "body"
        elif text == "|":
            self._bar(frame)

    def _bar(self, frame: _Frame) -> None:
        # A transform, | location | update [, delete] |, reads each matched object.
        if frame.kind == "transform":
            frame.bars += 1
            if frame.bars == 3:
                self.stack.pop()
        else:
            self.stack.append(_Frame(closing="", top=False, kind="transform", bars=1))


def _is_operand(token: Token) -> bool:
    if token.kind == "operator":
        return token.text in (")", "]", "}")
    return not (token.kind == "name" and token.text in _KEYWORDS - _LITERALS)


def variable_references(text: str) -> list[str]:
    """The ``$name`` variables an expression reads and does not bind itself.

    Names bound inside the expression (``$x := ...``, lambda parameters) and ``$states``
    are left out, as are the bare ``$``/``$$``. Function names are *not* left out:
    ``$sum`` reads like a variable; the caller drops the names of built-in functions
    (see ``orchestrator.asl.jsonata.is_function_name``).
    """
    items = list(tokens(text))
    bound = {"states"}
    for i, token in enumerate(items):
        if token.kind != "variable":
            continue
        following = items[i + 1] if i + 1 < len(items) else None
        if following is not None and following.text == ":=":
            bound.add(token.text[1:])
    bound |= _lambda_parameters(items)
    seen: list[str] = []
    for token in items:
        name = token.text[1:]
        fresh = name and token.text != "$$" and name not in bound and name not in seen
        if token.kind == "variable" and fresh:
            seen.append(name)
    return seen


def reads_states_field(text: str, field: str) -> bool:
    """Whether the expression reads ``$states.<field>`` (e.g. ``errorOutput``)."""
    items = list(tokens(text))
    return any(
        items[i].text == "$states" and items[i + 1].text == "." and items[i + 2].text == field
        for i in range(len(items) - 2)
    )


def _lambda_parameters(items: list[Token]) -> set[str]:
    names: set[str] = set()
    for i, token in enumerate(items):
        if token.kind == "name" and token.text in ("function", "λ"):
            for item in items[i + 2 :]:
                if item.text == ")":
                    break
                if item.kind == "variable":
                    names.add(item.text[1:])
    return names
