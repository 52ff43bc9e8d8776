"""State-machine graphs: build one from a definition, colour it by an execution, draw it.

    >>> from orchestrator import asl, graph
    >>> g = graph.build(asl.load({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}))
    >>> print(graph.to_mermaid(g).splitlines()[0])
    flowchart TD

The CLI (``orchestrator graph``) and the web console draw with these same functions.
Pure: no database, no I/O.
"""

from orchestrator.graph.draw import FORMATS, Format, draw
from orchestrator.graph.layout import Box, PlacedEdge, PlacedGraph, PlacedNode, layout
from orchestrator.graph.model import (
    END,
    START,
    Edge,
    EdgeKind,
    Graph,
    Node,
    Outcome,
    build,
    rule_label,
)
from orchestrator.graph.outcome import EventLike, outcomes
from orchestrator.graph.render import COLOURS, to_dot, to_mermaid, to_svg

__all__ = [
    "COLOURS",
    "END",
    "FORMATS",
    "START",
    "Box",
    "Edge",
    "EdgeKind",
    "EventLike",
    "Format",
    "Graph",
    "Node",
    "Outcome",
    "PlacedEdge",
    "PlacedGraph",
    "PlacedNode",
    "build",
    "draw",
    "layout",
    "outcomes",
    "rule_label",
    "to_dot",
    "to_mermaid",
    "to_svg",
]
