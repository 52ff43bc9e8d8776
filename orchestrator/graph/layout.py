"""Where every node and edge of a :class:`~orchestrator.graph.model.Graph` goes.

The layered (Sugiyama) layout is grandalf's (pure Python; docs/design-notes.md,
"Graph layout", says why). Nested groups are laid out inside out: each Parallel
branch or Map processor is laid out first, its size becomes the size of the group
node in the graph around it, and its boxes are then moved into place.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from grandalf.graphs import Edge as GEdge
from grandalf.graphs import Graph as GGraph
from grandalf.graphs import Vertex
from grandalf.layouts import SugiyamaLayout

from orchestrator.graph.model import Edge, Graph, Node

CHAR_WIDTH: Final = 7.2
NODE_HEIGHT: Final = 40.0
NODE_PADDING: Final = 24.0
PSEUDO_SIZE: Final = 18.0
GROUP_PADDING: Final = 14.0
GROUP_HEADER: Final = 26.0
BRANCH_GAP: Final = 16.0
MARGIN: Final = 16.0
X_SPACE: Final = 36.0
Y_SPACE: Final = 44.0

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Box:
    """A placed rectangle, top-left ``(x, y)``."""

    x: float
    y: float
    w: float
    h: float

    @property
    def center(self) -> Point:
        """The middle of the box."""
        return (self.x + self.w / 2, self.y + self.h / 2)

    def moved(self, dx: float, dy: float) -> Box:
        """The same box shifted by ``(dx, dy)``."""
        return Box(self.x + dx, self.y + dy, self.w, self.h)


@dataclass(frozen=True, slots=True)
class PlacedNode:
    """A node and its box."""

    node: Node
    box: Box


@dataclass(frozen=True, slots=True)
class PlacedEdge:
    """An edge and the polyline it is drawn along (from its source's border to its target's)."""

    edge: Edge
    points: tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class PlacedGraph:
    """A laid-out (sub)graph: the frame of a branch, its nodes and edges."""

    graph: Graph
    box: Box
    nodes: tuple[PlacedNode, ...] = ()
    edges: tuple[PlacedEdge, ...] = ()
    children: tuple[PlacedGraph, ...] = field(default=())

    def moved(self, dx: float, dy: float) -> PlacedGraph:
        """Everything shifted by ``(dx, dy)``."""
        return PlacedGraph(
            self.graph,
            self.box.moved(dx, dy),
            tuple(PlacedNode(p.node, p.box.moved(dx, dy)) for p in self.nodes),
            tuple(
                PlacedEdge(e.edge, tuple((x + dx, y + dy) for x, y in e.points)) for e in self.edges
            ),
            tuple(c.moved(dx, dy) for c in self.children),
        )

    def all_nodes(self) -> Iterator[PlacedNode]:
        """Nodes here and in nested groups."""
        yield from self.nodes
        for child in self.children:
            yield from child.all_nodes()

    def all_edges(self) -> Iterator[PlacedEdge]:
        """Edges here and in nested groups."""
        yield from self.edges
        for child in self.children:
            yield from child.all_edges()

    def all_frames(self) -> Iterator[PlacedGraph]:
        """The nested (sub)graphs, outermost first, without this one."""
        for child in self.children:
            yield child
            yield from child.all_frames()


class _View:
    """What grandalf reads (``w``, ``h``) and writes (``xy``) on a vertex."""

    def __init__(self, w: float, h: float) -> None:
        self.w, self.h = w, h
        self.xy: Point = (0.0, 0.0)


class _EdgeView:
    def __init__(self) -> None:
        self.points: list[Point] = []

    def setpath(self, points: list[Point]) -> None:
        self.points = list(points)


def layout(graph: Graph) -> PlacedGraph:
    """Lay out ``graph`` and its nested groups; the result's box starts at ``(0, 0)``.

    Args:
        graph: from :func:`orchestrator.graph.build`.

    Returns:
        Every node's box and every edge's polyline, in pixels, with a margin.
    """
    inner = {n.id: _layout_group(n) for n in graph.nodes if n.is_group}
    sizes = {n.id: _size(n, inner.get(n.id)) for n in graph.nodes}
    centers, paths = _sugiyama(graph, sizes)
    min_x = min(x - sizes[i][0] / 2 for i, (x, _) in centers.items())
    min_y = min(y - sizes[i][1] / 2 for i, (_, y) in centers.items())
    dx, dy = MARGIN - min_x, MARGIN - min_y
    boxes = {
        i: Box(x - sizes[i][0] / 2 + dx, y - sizes[i][1] / 2 + dy, *sizes[i])
        for i, (x, y) in centers.items()
    }
    nodes = tuple(PlacedNode(n, boxes[n.id]) for n in graph.nodes)
    edges = tuple(_place_edge(e, paths, boxes, dx, dy) for e in graph.edges)
    children = tuple(_place_children(boxes[i], frames) for i, frames in inner.items())
    width = max(b.x + b.w for b in boxes.values()) + MARGIN
    height = max(b.y + b.h for b in boxes.values()) + MARGIN
    return PlacedGraph(graph, Box(0, 0, width, height), nodes, edges, tuple(sum(children, ())))


def _layout_group(node: Node) -> tuple[PlacedGraph, ...]:
    return tuple(layout(child) for child in node.children)


def _size(node: Node, frames: tuple[PlacedGraph, ...] | None) -> tuple[float, float]:
    if node.is_pseudo:
        return (PSEUDO_SIZE, PSEUDO_SIZE)
    label_width = max(len(node.name), len(node.type) + 2) * CHAR_WIDTH + NODE_PADDING
    if not frames:
        return (label_width, NODE_HEIGHT)
    width = sum(f.box.w for f in frames) + BRANCH_GAP * (len(frames) - 1) + 2 * GROUP_PADDING
    height = max(f.box.h for f in frames) + GROUP_HEADER + GROUP_PADDING
    return (max(width, label_width), height)


def _place_children(group: Box, frames: tuple[PlacedGraph, ...]) -> tuple[PlacedGraph, ...]:
    used = sum(f.box.w for f in frames) + BRANCH_GAP * (len(frames) - 1)
    x = group.x + (group.w - used) / 2
    placed = []
    for frame in frames:
        placed.append(frame.moved(x, group.y + GROUP_HEADER))
        x += frame.box.w + BRANCH_GAP
    return tuple(placed)


def _sugiyama(
    graph: Graph, sizes: dict[str, tuple[float, float]]
) -> tuple[dict[str, Point], dict[tuple[str, str], list[Point]]]:
    """Centers of the nodes, and the routed points of each (source, target) pair."""
    vertices = {n.id: Vertex(n.id) for n in graph.nodes}
    for node_id, vertex in vertices.items():
        vertex.view = _View(*sizes[node_id])
    pairs: dict[tuple[str, str], GEdge] = {}
    for edge in graph.edges:
        key = (edge.source, edge.target)
        # One layout edge per pair; self-loops are drawn apart (grandalf ranks no loop).
        if edge.source != edge.target and key not in pairs and edge.target in vertices:
            pairs[key] = GEdge(vertices[edge.source], vertices[edge.target])
            pairs[key].view = _EdgeView()
    ggraph = GGraph(list(vertices.values()), list(pairs.values()))
    offset = 0.0
    for component in ggraph.C:
        _draw_component(component, vertices[graph.nodes[0].id])
        right = max(v.view.xy[0] + v.view.w / 2 for v in component.sV)
        left = min(v.view.xy[0] - v.view.w / 2 for v in component.sV)
        # Components after the first (unreachable states) go to the right.
        shift = offset - left if offset else 0.0
        for v in component.sV:
            v.view.xy = (v.view.xy[0] + shift, v.view.xy[1])
        for e in component.sE:
            e.view.points = [(x + shift, y) for x, y in e.view.points]
        offset = right + shift + X_SPACE
    centers = {i: v.view.xy for i, v in vertices.items()}
    return centers, {key: e.view.points for key, e in pairs.items()}


def _draw_component(component: Any, start: Vertex) -> None:
    sugiyama = SugiyamaLayout(component)
    sugiyama.xspace, sugiyama.yspace = X_SPACE, Y_SPACE
    roots = [start] if start in component.sV else None
    sugiyama.init_all(roots=roots)
    sugiyama.draw(4)


def _place_edge(
    edge: Edge,
    paths: dict[tuple[str, str], list[Point]],
    boxes: dict[str, Box],
    dx: float,
    dy: float,
) -> PlacedEdge:
    source = boxes[edge.source]
    if edge.source == edge.target:
        return PlacedEdge(edge, _self_loop(source))
    raw = paths.get((edge.source, edge.target))
    points = [(x + dx, y + dy) for x, y in raw] if raw else [source.center]
    if len(points) < 2:
        points = [source.center, boxes[edge.target].center]
    points[0] = clip(source, points[1])
    points[-1] = clip(boxes[edge.target], points[-2])
    return PlacedEdge(edge, tuple(points))


def _self_loop(box: Box) -> tuple[Point, ...]:
    right, top, bottom = box.x + box.w, box.y + box.h * 0.25, box.y + box.h * 0.75
    return ((right, top), (right + 22, top), (right + 22, bottom), (right, bottom))


def clip(box: Box, toward: Point) -> Point:
    """Where the segment from ``box``'s center toward ``toward`` leaves the box."""
    cx, cy = box.center
    vx, vy = toward[0] - cx, toward[1] - cy
    if vx == 0 and vy == 0:
        return (cx, cy)
    scale_x = (box.w / 2) / abs(vx) if vx else float("inf")
    scale_y = (box.h / 2) / abs(vy) if vy else float("inf")
    scale = min(scale_x, scale_y, 1.0)
    return (cx + vx * scale, cy + vy * scale)


__all__ = ["Box", "PlacedEdge", "PlacedGraph", "PlacedNode", "Point", "clip", "layout"]
