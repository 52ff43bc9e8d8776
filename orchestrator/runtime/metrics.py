"""Prometheus series the runtime records as it advances executions.

Each process (the API, each prefork child of a worker) records into
prometheus-client's registry. With ``ORCHESTRATOR_METRICS_DIR`` set, workers run
prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by
:func:`enable_multiprocess` before the client library is first imported), and the
API's ``/metrics`` adds up every process that wrote to that directory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from orchestrator.asl import HistoryEvent
    from orchestrator.asl.model import Definition
    from orchestrator.store import Repository

#: Seconds buckets of the state-duration histogram: a Pass state to a long Task.
DURATION_BUCKETS: Final = (0.005, 0.025, 0.1, 0.25, 1.0, 2.5, 10.0, 30.0, 120.0, 600.0, 3600.0)


def enable_multiprocess(directory: str | None) -> None:
    """Point prometheus-client at ``directory`` for multiprocess mode (None: single process).

    Must run before ``prometheus_client`` is imported in this process, since the
    library picks its value store at import time; a worker calls it first thing.
    """
    if directory:
        os.makedirs(directory, exist_ok=True)
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", directory)


class _Series:
    """The series, created on first use (so importing the runtime needs no registry)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.state_seconds = Histogram(
            "orchestrator_state_duration_seconds",
            "Time from entering a state to its recorded end, by machine, state and resource.",
            ["state_machine", "state", "resource"],
            buckets=DURATION_BUCKETS,
        )
        self.handler_errors = Counter(
            "orchestrator_handler_errors",
            "Errors of Task states (failed, retried or caught), by error name.",
            ["state_machine", "error"],
        )
        self.recoveries = Counter(
            "orchestrator_recoveries",
            "Stalled executions recovered (an expired lease, or one nobody took up): "
            "re-published by the sweeper, or advanced in-process by recover().",
            ["via"],
        )
        self.takeovers = Counter(
            "orchestrator_lease_takeovers",
            "Claims that took an execution over: the claim before it never committed "
            "(its worker died, or lost or gave back the lease).",
            ["state_machine"],
        )


_series: _Series | None = None
_lock = threading.Lock()


def series() -> _Series:
    """The process's series (created once, by whichever thread comes first)."""
    global _series
    if _series is None:
        with _lock:  # two threads creating them would register each name twice
            if _series is None:
                _series = _Series()
    return _series


_names: dict[tuple[int, int], str] = {}


def machine_name(repo: Repository, version_id: int) -> str:
    """The state machine name of a version (cached: versions never change)."""
    key = (id(repo), version_id)
    if key not in _names:
        _names[key] = repo.get_version_by_id(version_id).state_machine_name
    return _names[key]


def observe_events(
    repo: Repository, version_id: int, defn: Definition, events: Iterable[HistoryEvent]
) -> None:
    """Record the duration of each finished state and the error of each failed Task."""
    found = list(events)
    if not found:
        return
    s, machine = series(), machine_name(repo, version_id)
    for event in found:
        state = defn.states.get(event.state)
        resource = str(getattr(state, "resource", "") or "")
        if event.exited_at and event.entered_at and event.status != "retrying":
            elapsed = max(event.exited_at - event.entered_at, 0.0)
            s.state_seconds.labels(machine, event.state, resource).observe(elapsed)
        if event.error and event.type == "Task":
            s.handler_errors.labels(machine, event.error).inc()


def count_recoveries(count: int, *, via: str = "recover") -> None:
    """Record ``count`` recovered executions (``via``: ``sweeper`` or ``recover``)."""
    if count:
        series().recoveries.labels(via).inc(count)


def count_takeover(machine: str) -> None:
    """Record a claim that took an execution over from an uncommitted earlier claim."""
    series().takeovers.labels(machine).inc()


def exposition(directory: str | None) -> bytes:
    """The runtime's series as Prometheus text: of every process that wrote to
    ``directory`` (multiprocess mode, when it is set and enabled), else of this process."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    registry: CollectorRegistry = REGISTRY
    if directory and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return bytes(generate_latest(registry))


__all__ = [
    "DURATION_BUCKETS",
    "count_recoveries",
    "count_takeover",
    "enable_multiprocess",
    "exposition",
    "machine_name",
    "observe_events",
    "series",
]
