"""Draw a graph as Mermaid text, Graphviz DOT text or a self-contained SVG.

Each renderer takes the graph and, optionally, each state's outcome (from
:func:`orchestrator.graph.outcomes`); a state's colour says its outcome.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping
from typing import Final

from orchestrator.graph.layout import PlacedEdge, PlacedGraph, PlacedNode, layout
from orchestrator.graph.model import END, START, Edge, EdgeKind, Graph, Node, Outcome

#: Fill and stroke colours per outcome; ``None`` is a definition with no execution.
COLOURS: Final[Mapping[Outcome | None, tuple[str, str]]] = {
    None: ("#ffffff", "#455a64"),
    Outcome.SUCCEEDED: ("#c8e6c9", "#2e7d32"),
    Outcome.FAILED: ("#ffcdd2", "#c62828"),
    Outcome.CAUGHT: ("#ffe0b2", "#ef6c00"),
    Outcome.RUNNING: ("#bbdefb", "#1565c0"),
    Outcome.WAITING: ("#e1bee7", "#6a1b9a"),
    Outcome.NOT_REACHED: ("#f5f5f5", "#9e9e9e"),
}

Outcomes = Mapping[str, Outcome]


def _ids(graph: Graph) -> dict[str, str]:
    """Short ids (``n0``, ``n1``...) safe in Mermaid and DOT for every node, nested too."""
    ids: dict[str, str] = {}

    def visit(g: Graph) -> None:
        for node in g.nodes:
            ids[node.id] = f"n{len(ids)}"
            for child in node.children:
                visit(child)

    visit(graph)
    return ids


# --------------------------------------------------------------------------- Mermaid


def to_mermaid(graph: Graph, outcomes: Outcomes | None = None) -> str:
    """The graph as a Mermaid ``flowchart``; groups are subgraphs, Catch edges dotted."""
    ids = _ids(graph)
    lines = ["flowchart TD"]
    lines.extend(_mermaid_graph(graph, ids, "  "))
    lines.extend(_mermaid_edges(graph, ids))
    if outcomes:
        lines.extend(_mermaid_classes(outcomes, ids))
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def _mermaid_graph(graph: Graph, ids: Mapping[str, str], indent: str) -> Iterator[str]:
    for node in graph.nodes:
        sid = ids[node.id]
        if node.children:
            yield f'{indent}subgraph {sid} ["{_mermaid_text(_caption(node))}"]'
            for i, child in enumerate(node.children):
                yield f'{indent}  subgraph {sid}_{i} ["{_mermaid_text(child.label)}"]'
                yield from _mermaid_graph(child, ids, indent + "    ")
                yield f"{indent}  end"
            yield f"{indent}end"
        elif node.type == START:
            yield f"{indent}{sid}(( ))"
        elif node.type == END:
            yield f"{indent}{sid}((( )))"
        else:
            shape = ('{"', '"}') if node.type == "Choice" else ('["', '"]')
            yield f"{indent}{sid}{shape[0]}{_mermaid_text(_caption(node))}{shape[1]}"


def _mermaid_edges(graph: Graph, ids: Mapping[str, str]) -> Iterator[str]:
    for edge in _all_edges(graph):
        arrow = "-.->" if edge.kind in (EdgeKind.CATCH, EdgeKind.TIMEOUT) else "-->"
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
        yield f"  {ids[edge.source]} {arrow}{label} {ids[edge.target]}"


def _mermaid_classes(outcomes: Outcomes, ids: Mapping[str, str]) -> Iterator[str]:
    for outcome in Outcome:
        fill, stroke = COLOURS[outcome]
        yield f"  classDef {outcome.value} fill:{fill},stroke:{stroke},stroke-width:2px"
    for node_id, outcome in outcomes.items():
        if node_id in ids:
            yield f"  class {ids[node_id]} {outcome.value}"


def _all_edges(graph: Graph) -> Iterator[Edge]:
    yield from graph.edges
    for node in graph.nodes:
        for child in node.children:
            yield from _all_edges(child)


def _caption(node: Node) -> str:
    return f"{node.name} ({node.type})" if node.children else node.name


# --------------------------------------------------------------------------- DOT


def to_dot(graph: Graph, outcomes: Outcomes | None = None) -> str:
    """The graph as Graphviz DOT; groups are clusters, Catch edges dashed."""
    ids = _ids(graph)
    lines = [
        "digraph statemachine {",
        "  compound=true;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fillcolor="#ffffff"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    lines.extend(_dot_graph(graph, ids, outcomes or {}, "  "))
    lines.extend(_dot_edges(graph, ids))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot_graph(
    graph: Graph, ids: Mapping[str, str], outcomes: Outcomes, indent: str
) -> Iterator[str]:
    for node in graph.nodes:
        sid = ids[node.id]
        if node.children:
            yield f"{indent}subgraph cluster_{sid} {{"
            yield f"{indent}  label={_dot_text(_caption(node))};"
            yield from _dot_colour(outcomes.get(node.id), indent + "  ")
            for i, child in enumerate(node.children):
                yield f"{indent}  subgraph cluster_{sid}_{i} {{"
                yield f'{indent}    label={_dot_text(child.label)}; style="dashed";'
                yield from _dot_graph(child, ids, outcomes, indent + "    ")
                yield f"{indent}  }}"
            yield f"{indent}}}"
        elif node.is_pseudo:
            shape = "circle" if node.type == START else "doublecircle"
            yield f'{indent}{sid} [label="", shape={shape}, width=0.2, fillcolor="#455a64"];'
        else:
            fill, stroke = COLOURS[outcomes.get(node.id)]
            shape = ", shape=diamond" if node.type == "Choice" else ""
            attrs = f'fillcolor="{fill}", color="{stroke}"{shape}'
            yield f"{indent}{sid} [label={_dot_text(node.name)}, {attrs}];"


def _dot_colour(outcome: Outcome | None, indent: str) -> Iterator[str]:
    fill, stroke = COLOURS[outcome]
    yield f'{indent}style="rounded,filled"; fillcolor="{fill}"; color="{stroke}";'


def _dot_edges(graph: Graph, ids: Mapping[str, str]) -> Iterator[str]:
    groups = {n.id: n for n in _all_nodes(graph) if n.children}
    for edge in _all_edges(graph):
        source, target, attrs = ids[edge.source], ids[edge.target], []
        if edge.source in groups:
            # An edge leaves a cluster from a node inside it, clipped at its border.
            inner = groups[edge.source].children[0]
            source = ids[f"{inner.prefix}{END}"]
            attrs.append(f"ltail=cluster_{ids[edge.source]}")
        if edge.target in groups:
            inner = groups[edge.target].children[0]
            target = ids[f"{inner.prefix}{START}"]
            attrs.append(f"lhead=cluster_{ids[edge.target]}")
        if edge.label:
            attrs.append(f"label={_dot_text(edge.label)}")
        if edge.kind in (EdgeKind.CATCH, EdgeKind.TIMEOUT):
            attrs.append('style=dashed, color="#ef6c00"')
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        yield f"  {source} -> {target}{suffix};"


def _all_nodes(graph: Graph) -> Iterator[Node]:
    for node in graph.nodes:
        yield node
        for child in node.children:
            yield from _all_nodes(child)


# --------------------------------------------------------------------------- SVG

_STYLE: Final = """
.state text{font:13px sans-serif;fill:#263238}
.state .type{font-size:10px;fill:#607d8b}
.frame text{font:11px sans-serif;fill:#607d8b}
.edge{fill:none;stroke:#607d8b;stroke-width:1.4}
.edge.catch,.edge.timeout{stroke:#ef6c00;stroke-dasharray:5 3}
.edge-label{font:10px sans-serif;fill:#37474f}
"""


def to_svg(graph: Graph, outcomes: Outcomes | None = None, *, title: str = "") -> str:
    """The graph as a standalone SVG document (no script, no external reference).

    Every state is a ``<g class="state outcome-...">`` with ``data-state`` (its name)
    and ``data-id`` (its unique id), so a page can find and annotate it.
    """
    placed = layout(graph)
    outcomes = outcomes or {}
    w, h = placed.box.w, placed.box.h
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="state-machine-graph" '
        f'width="{w:.0f}" height="{h:.0f}" viewBox="0 0 {w:.0f} {h:.0f}">',
        f"<title>{html.escape(title or graph.comment or 'state machine')}</title>",
        f"<style>{_STYLE}</style>",
        "<defs>",
        '<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#607d8b"/>'
        "</marker>",
        "</defs>",
    ]
    parts.extend(_svg_groups(placed, outcomes))
    parts.extend(_svg_frames(placed))
    parts.extend(_svg_edge(e) for e in placed.all_edges())
    parts.extend(_svg_node(p, outcomes.get(p.node.id)) for p in placed.all_nodes())
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _svg_groups(placed: PlacedGraph, outcomes: Outcomes) -> Iterator[str]:
    """Group states (Parallel, Map) first, so their branches draw on top."""
    for p in placed.all_nodes():
        if p.node.children:
            fill, stroke = COLOURS[outcomes.get(p.node.id)]
            b = p.box
            yield (
                f'<g class="state group outcome-{_outcome_class(outcomes.get(p.node.id))}" '
                f'data-state="{html.escape(p.node.name)}" data-id="{html.escape(p.node.id)}">'
                f"<title>{html.escape(p.node.name)} ({p.node.type})</title>"
                f'<rect x="{b.x:.1f}" y="{b.y:.1f}" width="{b.w:.1f}" height="{b.h:.1f}" rx="8" '
                f'fill="{fill}" fill-opacity="0.45" stroke="{stroke}" stroke-width="2"/>'
                f'<text x="{b.x + 10:.1f}" y="{b.y + 17:.1f}">{html.escape(p.node.name)}'
                f'<tspan class="type"> {p.node.type}</tspan></text></g>'
            )


def _svg_frames(placed: PlacedGraph) -> Iterator[str]:
    for frame in placed.all_frames():
        b = frame.box
        yield (
            f'<g class="frame"><rect x="{b.x:.1f}" y="{b.y:.1f}" width="{b.w:.1f}" '
            f'height="{b.h:.1f}" rx="6" fill="none" stroke="#b0bec5" '
            f'stroke-dasharray="4 3"/><text x="{b.x + 6:.1f}" y="{b.y + 12:.1f}">'
            f"{html.escape(frame.graph.label)}</text></g>"
        )


def _svg_edge(placed: PlacedEdge) -> str:
    points = placed.points
    path = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in points)
    kind = placed.edge.kind.value
    out = f'<path class="edge {kind}" d="{path}" marker-end="url(#arrow)"/>'
    if placed.edge.label:
        x, y = _label_point(points)
        out += (
            f'<text class="edge-label" x="{x + 4:.1f}" y="{y - 3:.1f}">'
            f"{html.escape(placed.edge.label)}</text>"
        )
    return out


def _label_point(points: tuple[tuple[float, float], ...]) -> tuple[float, float]:
    if len(points) > 2:
        return points[len(points) // 2]
    (x0, y0), (x1, y1) = points[0], points[-1]
    return ((x0 + x1) / 2, (y0 + y1) / 2)


def _svg_node(placed: PlacedNode, outcome: Outcome | None) -> str:
    node, b = placed.node, placed.box
    if node.children:
        return ""
    if node.is_pseudo:
        cx, cy = b.center
        inner = f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="#455a64"/>'
        fill = "#455a64" if node.type == START else "#ffffff"
        return (
            f'<g class="pseudo {node.type.strip("_")}"><circle cx="{cx:.1f}" cy="{cy:.1f}" '
            f'r="{b.w / 2:.1f}" fill="{fill}" stroke="#455a64" stroke-width="2"/>'
            f"{inner if node.type == END else ''}</g>"
        )
    fill, stroke = COLOURS[outcome]
    cx, cy = b.center
    rx = "18" if node.type == "Choice" else "6"
    return (
        f'<g class="state outcome-{_outcome_class(outcome)}" data-state="{html.escape(node.name)}" '
        f'data-id="{html.escape(node.id)}"><title>{html.escape(node.name)} ({node.type}'
        f"{', ' + html.escape(node.resource) if node.resource else ''})</title>"
        f'<rect x="{b.x:.1f}" y="{b.y:.1f}" width="{b.w:.1f}" height="{b.h:.1f}" rx="{rx}" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="2"/>'
        f'<text x="{cx:.1f}" y="{cy - 1:.1f}" text-anchor="middle">{html.escape(node.name)}</text>'
        f'<text class="type" x="{cx:.1f}" y="{cy + 12:.1f}" text-anchor="middle">{node.type}</text>'
        "</g>"
    )


def _outcome_class(outcome: Outcome | None) -> str:
    return outcome.value.replace("_", "-") if outcome else "none"


__all__ = ["COLOURS", "Outcomes", "to_dot", "to_mermaid", "to_svg"]
