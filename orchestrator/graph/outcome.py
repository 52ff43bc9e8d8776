"""Each state's outcome in one execution, read from its history and status.

History rows name a state, not its place in nested Parallel branches or Map
processors, so a name used in two branches gets the outcome of its last event in
both. That is the one approximation here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, Protocol

from orchestrator.graph.model import Graph, Node, Outcome

#: History event types (runtime rows) and the outcome each one records.
EVENT_OUTCOMES: Final[Mapping[str, Outcome]] = {
    "StateSucceeded": Outcome.SUCCEEDED,
    "StateFailed": Outcome.FAILED,
    "StateCaught": Outcome.CAUGHT,
    "StateRetrying": Outcome.RUNNING,
}

#: Execution statuses in which the current state is still live, and its outcome.
LIVE: Final[Mapping[str, Outcome]] = {
    "PENDING": Outcome.RUNNING,
    "RUNNING": Outcome.RUNNING,
    "WAITING": Outcome.WAITING,
}

#: Execution statuses that end it badly: its current state, if unfinished, failed.
ENDED_BADLY: Final = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


class EventLike(Protocol):
    """What outcomes read of a history row."""

    @property
    def event_type(self) -> str:
        """``StateSucceeded``, ``StateFailed``, ``StateCaught`` or ``StateRetrying``."""

    @property
    def state_name(self) -> str | None:
        """The state the event is about."""


def outcomes(
    graph: Graph,
    events: Iterable[EventLike],
    *,
    status: str,
    current_state: str | None = None,
) -> dict[str, Outcome]:
    """The outcome of every state node of ``graph`` (nested ones too), by node id.

    Args:
        graph: the execution's version's graph.
        events: its history, oldest first.
        status: its status (``RUNNING``, ``FAILED``...).
        current_state: the state it is in or ended in.

    Returns:
        One outcome per state node; states with no event are ``not_reached``.
    """
    by_name = _last_outcome_by_name(events)
    if current_state:
        by_name[current_state] = _current(status, by_name.get(current_state))
    result: dict[str, Outcome] = {}
    for node in graph.nodes:
        _assign(node, by_name, status, result)
    return result


def _last_outcome_by_name(events: Iterable[EventLike]) -> dict[str, Outcome]:
    by_name: dict[str, Outcome] = {}
    for event in events:
        outcome = EVENT_OUTCOMES.get(event.event_type)
        if outcome is not None and event.state_name:
            by_name[event.state_name] = outcome
    return by_name


def _current(status: str, recorded: Outcome | None) -> Outcome:
    if status in LIVE:
        return LIVE[status]
    if status in ENDED_BADLY and recorded in (None, Outcome.RUNNING, Outcome.SUCCEEDED):
        # A stop or timeout ends the state it was in; a recorded success there is an
        # earlier visit of a loop.
        return Outcome.FAILED
    return recorded or Outcome.SUCCEEDED


def _assign(
    node: Node, by_name: Mapping[str, Outcome], status: str, result: dict[str, Outcome]
) -> None:
    if node.is_pseudo:
        return
    for child in node.children:
        for inner in child.nodes:
            _assign(inner, by_name, status, result)
    outcome = by_name.get(node.name)
    if outcome is None and node.children and _any_reached(node, result):
        # A group whose branches ran but which has no event of its own is still going.
        outcome = LIVE.get(status, Outcome.FAILED if status in ENDED_BADLY else None)
    result[node.id] = outcome or Outcome.NOT_REACHED


def _any_reached(node: Node, result: Mapping[str, Outcome]) -> bool:
    return any(
        result.get(inner.id, Outcome.NOT_REACHED) is not Outcome.NOT_REACHED
        for child in node.children
        for inner in child.walk()
    )


__all__ = ["ENDED_BADLY", "EVENT_OUTCOMES", "LIVE", "EventLike", "outcomes"]
