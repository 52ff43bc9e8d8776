"""One call from a stored definition (and an execution's history) to a drawing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Literal

from orchestrator.asl import load
from orchestrator.graph.model import build
from orchestrator.graph.outcome import EventLike, outcomes
from orchestrator.graph.render import to_dot, to_mermaid, to_svg

Format = Literal["svg", "mermaid", "dot"]

#: The formats :func:`draw` knows, for help texts and validation.
FORMATS: Final[tuple[Format, ...]] = ("svg", "mermaid", "dot")


def draw(
    definition: Any,
    fmt: str,
    *,
    events: Iterable[EventLike] | None = None,
    status: str | None = None,
    current_state: str | None = None,
    title: str = "",
) -> str:
    """Draw ``definition`` as ``fmt``, coloured by an execution when ``status`` is given.

    Args:
        definition: the definition as stored (JSON text, or the decoded object).
        fmt: ``svg``, ``mermaid`` or ``dot``.
        events: the execution's history, oldest first.
        status: the execution's status; None draws the bare definition.
        current_state: the state the execution is in or ended in.
        title: the SVG's title.

    Raises:
        ValueError: an unknown format.
        orchestrator.asl.DefinitionInvalid: a definition that does not parse.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    graph = build(load(definition))
    coloured = None
    if status is not None:
        coloured = outcomes(graph, events or (), status=status, current_state=current_state)
    if fmt == "svg":
        return to_svg(graph, coloured, title=title)
    return to_mermaid(graph, coloured) if fmt == "mermaid" else to_dot(graph, coloured)


__all__ = ["FORMATS", "Format", "draw"]
