"""A state machine as a graph: nodes, edges and nested groups, built from a parsed definition.

Pure: it reads an :class:`orchestrator.asl.Definition` and returns frozen data. The
renderers (Mermaid, DOT, SVG) and the console all draw this one graph.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from orchestrator.asl.model import ChoiceState, Definition, MapState, ParallelState, State

#: Longest label drawn for a Choice rule; longer ones are cut with an ellipsis.
RULE_LABEL_MAX: Final = 40

#: Pseudo-nodes that start and end every (sub)graph.
START: Final = "__start__"
END: Final = "__end__"


class EdgeKind(StrEnum):
    """Why one state leads to another."""

    NEXT = "next"
    CHOICE = "choice"
    DEFAULT = "default"
    CATCH = "catch"
    TIMEOUT = "timeout"
    START = "start"
    END = "end"


class Outcome(StrEnum):
    """What happened to a state in one execution (the colour it is drawn in)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CAUGHT = "caught"
    RUNNING = "running"
    WAITING = "waiting"
    NOT_REACHED = "not_reached"


@dataclass(frozen=True, slots=True)
class Edge:
    """A transition: ``label`` is the Choice rule, the caught errors, or empty."""

    source: str
    target: str
    kind: EdgeKind
    label: str = ""


@dataclass(frozen=True, slots=True)
class Node:
    """A state (or the start/end pseudo-node) of one (sub)graph.

    ``id`` is unique in the whole drawing (``Parallel/0/Inner`` for nested states);
    ``children`` holds a Parallel state's branches or a Map state's processor.
    """

    id: str
    name: str
    type: str
    children: tuple[Graph, ...] = ()
    resource: str = ""

    @property
    def is_group(self) -> bool:
        """True for a Parallel or Map state, drawn as a box around its sub-graphs."""
        return bool(self.children)

    @property
    def is_pseudo(self) -> bool:
        """True for the start and end markers."""
        return self.type in (START, END)


@dataclass(frozen=True, slots=True)
class Graph:
    """One definition's states and transitions; ``prefix`` makes node ids unique."""

    prefix: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    label: str = ""
    comment: str = ""
    _by_id: dict[str, Node] = field(default_factory=dict, compare=False, repr=False)

    def node(self, node_id: str) -> Node:
        """The node with ``node_id`` in this graph (not its sub-graphs)."""
        if not self._by_id:
            self._by_id.update((n.id, n) for n in self.nodes)
        return self._by_id[node_id]

    def walk(self) -> Iterator[Node]:
        """Every state node here and in nested groups, depth first (no pseudo-nodes)."""
        for node in self.nodes:
            if not node.is_pseudo:
                yield node
            for child in node.children:
                yield from child.walk()


def build(defn: Definition, *, prefix: str = "", label: str = "") -> Graph:
    """The graph of ``defn``: its states, transitions, Catch edges and nested groups.

    Args:
        defn: a parsed definition (:func:`orchestrator.asl.load`).
        prefix: prepended to node ids (for a Parallel branch or Map processor).
        label: the caption of a nested graph ("Branch 1", "Item processor").

    Returns:
        The graph, with a start node leading to ``StartAt`` and an end node after
        every terminal state.
    """
    start, end = f"{prefix}{START}", f"{prefix}{END}"
    nodes = [Node(start, "Start", START)]
    edges = [Edge(start, _id(prefix, defn.start_at), EdgeKind.START)]
    raw_states = defn.raw.get("States", {}) if isinstance(defn.raw, Mapping) else {}
    for name, state in defn.states.items():
        nodes.append(_node(prefix, name, state))
        edges.extend(_edges(prefix, state, raw_states.get(name, {}), end))
    nodes.append(Node(end, "End", END))
    comment = defn.comment or ""
    return Graph(
        prefix=prefix, nodes=tuple(nodes), edges=tuple(edges), label=label, comment=comment
    )


def _id(prefix: str, name: str) -> str:
    return f"{prefix}{name}"


def _node(prefix: str, name: str, state: State) -> Node:
    node_id = _id(prefix, name)
    children: tuple[Graph, ...] = ()
    if isinstance(state, ParallelState):
        children = tuple(
            build(branch, prefix=f"{node_id}/{i}/", label=f"Branch {i + 1}")
            for i, branch in enumerate(state.branches)
        )
    elif isinstance(state, MapState) and state.processor is not None:
        children = (build(state.processor, prefix=f"{node_id}/item/", label="Item processor"),)
    resource = getattr(state, "resource", "") or ""
    return Node(node_id, name, state.type, children, resource)


def _edges(prefix: str, state: State, raw: Any, end: str) -> Iterator[Edge]:
    source = _id(prefix, state.name)
    if isinstance(state, ChoiceState):
        raw_rules = raw.get("Choices", []) if isinstance(raw, Mapping) else []
        for i, rule in enumerate(state.choices):
            text = rule_label(raw_rules[i]) if i < len(raw_rules) else f"rule {i + 1}"
            yield Edge(source, _id(prefix, rule.next), EdgeKind.CHOICE, text)
        if state.default is not None:
            yield Edge(source, _id(prefix, state.default), EdgeKind.DEFAULT, "Default")
    if state.next is not None:
        yield Edge(source, _id(prefix, state.next), EdgeKind.NEXT)
    timeout_path = getattr(state, "timeout_path", None)
    if isinstance(timeout_path, str):
        yield Edge(source, _id(prefix, timeout_path), EdgeKind.TIMEOUT, "timeout")
    for catcher in state.catch:
        yield Edge(
            source, _id(prefix, catcher.next), EdgeKind.CATCH, ", ".join(catcher.error_equals)
        )
    if state.end or state.type in ("Succeed", "Fail"):
        yield Edge(source, end, EdgeKind.END)


#: Comparison operators, shortest spelling for a label.
_OPERATORS: Final = {
    "Equals": "==",
    "LessThan": "<",
    "GreaterThan": ">",
    "LessThanEquals": "<=",
    "GreaterThanEquals": ">=",
}


def rule_label(raw: Any) -> str:
    """A short text for a Choice rule as written: ``$.total > 0``, ``And(2)``, a Condition."""
    return _cut(_rule_text(raw))


def _rule_text(raw: Any) -> str:
    if not isinstance(raw, Mapping):
        return "rule"
    if "Condition" in raw:
        return str(raw["Condition"])
    for combinator in ("And", "Or"):
        if isinstance(raw.get(combinator), list):
            parts = [_rule_text(r) for r in raw[combinator]]
            return f" {combinator.lower()} ".join(parts)
    if "Not" in raw:
        return f"not ({_rule_text(raw['Not'])})"
    return _comparison(raw)


def _comparison(raw: Mapping[str, Any]) -> str:
    variable = str(raw.get("Variable", "$"))
    for key, value in raw.items():
        if key in ("Variable", "Next", "Assign", "Comment"):
            continue
        return f"{variable} {_operator(key)} {_value(key, value)}"
    return variable


def _operator(key: str) -> str:
    bare = key.removesuffix("Path")
    # Longest suffix first: LessThanEquals is not Equals.
    for suffix in sorted(_OPERATORS, key=len, reverse=True):
        if bare.endswith(suffix):
            return _OPERATORS[suffix]
    return {"IsPresent": "present", "IsNull": "null", "StringMatches": "matches"}.get(bare, bare)


def _value(key: str, value: Any) -> str:
    if key.endswith("Path"):
        return str(value)
    return json.dumps(value)


def _cut(text: str) -> str:
    return text if len(text) <= RULE_LABEL_MAX else text[: RULE_LABEL_MAX - 1] + "…"


__all__ = ["END", "START", "Edge", "EdgeKind", "Graph", "Node", "Outcome", "build", "rule_label"]
