"""The sweeper: what beat runs every few seconds (``orchestrator.sweep``).

PostgreSQL is the source of truth and the broker only a transport, so recovery
does not lean on the broker: due timers are fired and their executions published,
and executions that should be advancing but are not (a lost message, a flushed or
restarted Redis, a killed worker whose lease expired) are published again. A
second delivery of the same execution is harmless: the lease lets one worker at a
time advance it, and an ended execution is not claimed at all.
"""

from __future__ import annotations

import logging
from typing import Any

from orchestrator.distributed.publish import Depths, Publisher, publish_by_priority
from orchestrator.distributed.routing import queue_for
from orchestrator.runtime import metrics
from orchestrator.settings import Settings
from orchestrator.store import Repository

log = logging.getLogger("orchestrator.sweeper")


def sweep(
    *,
    settings: Settings,
    repository: Repository,
    publish: Publisher,
    depths: Depths,
    limit: int = 500,
) -> dict[str, Any]:
    """Fire due timers, re-publish stalled executions; return what was done (for Flower).

    RUNNING executions whose lease expired are re-published once unchanged for
    a lease length (``lease_seconds``: a live worker renews every third of it,
    so the worker is gone), others without a lease after the grace period.
    PENDING ones only when their priority's queue is empty: behind a
    queue of a million messages a PENDING execution is waiting its turn, and
    re-publishing it every grace period would only pile up duplicates. When the
    broker cannot say how deep its queues are, the grace period alone decides.
    """
    fired = repository.claim_due_timers(limit=limit)
    woken = {t.execution_id for t in fired}
    priorities = {e: repository.get_execution(e).priority for e in woken}
    timers = publish_by_priority(publish, priorities.items())
    stalled = repository.take_stalled(
        grace_seconds=settings.recovery_grace_seconds,
        limit=limit,
        pending_priorities=quiet_levels(depths()),
        expired_grace_seconds=settings.lease_seconds,
    )
    recovered = publish_by_priority(publish, stalled)
    metrics.count_recoveries(recovered, via="sweeper")
    if timers or recovered:
        log.info(
            "sweep published %d woken and %d stalled executions",
            timers,
            recovered,
            extra={"action": "sweep", "woken": timers, "stalled": recovered},
        )
    return {"woken": timers, "stalled": recovered}


def quiet_levels(depths: dict[str, int] | None) -> list[int] | None:
    """The priority levels (0-9) whose queue is empty; None (all) if depths are unknown."""
    if depths is None:
        return None
    return [level for level in range(10) if depths.get(queue_for(level), 0) == 0]


__all__ = ["quiet_levels", "sweep"]
