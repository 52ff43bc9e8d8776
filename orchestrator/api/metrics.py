"""``GET /metrics``: Prometheus text, behind the API token.

Two kinds of series:

- read from the store and the broker when scraped (so they are right whichever
  process did the work): executions by machine and status, started and ended;
  each running or paused batch's executions by status; queue depths; expired leases;
- recorded by the runtime as it works (:mod:`orchestrator.runtime.metrics`): state
  durations, handler errors, recoveries, lease take-overs. With
  ``ORCHESTRATOR_METRICS_DIR`` shared by the workers and the API, they are summed
  over every process (multiprocess mode).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from orchestrator.api.context import ApiContext, context, require_token
from orchestrator.client import ExecutionFilter

# Not in the OpenAPI document: Prometheus text, not JSON, for scrapers, not API clients.
router = APIRouter(tags=["operations"], include_in_schema=False)

#: Batch statuses whose progress is reported (ended batches would only grow the series).
LIVE_BATCHES = ("RUNNING", "PAUSED")
#: Execution statuses that are final.
ENDED_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
#: Most expired leases counted per scrape (the gauge saturates there).
LEASE_LIMIT = 1000


class StoreCollector:
    """Series read from the store and the broker at scrape time."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Any]:
        """The families of one scrape."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        started = CounterMetricFamily(
            "orchestrator_executions_started",
            "Executions started, by machine.",
            labels=["state_machine"],
        )
        ended = CounterMetricFamily(
            "orchestrator_executions_ended",
            "Executions ended, by machine and status.",
            labels=["state_machine", "status"],
        )
        current = GaugeMetricFamily(
            "orchestrator_executions", "Executions now, by machine and status.",
            labels=["state_machine", "status"],
        )  # fmt: skip
        for name, counts in self._counts().items():
            started.add_metric([name], sum(counts.values()))
            for status, count in counts.items():
                current.add_metric([name, status], count)
                if status in ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"):
                    ended.add_metric([name, status], count)
        yield from (started, ended, current)
        yield self._batches(GaugeMetricFamily)
        yield self._queues(GaugeMetricFamily)
        leases = GaugeMetricFamily(
            "orchestrator_leases_expired", "Executions whose lease expired (awaiting recovery)."
        )
        leases.add_metric([], self.ctx.client.count_expired_leases(limit=LEASE_LIMIT))
        yield leases

    def _counts(self) -> dict[str, dict[str, int]]:
        client = self.ctx.client
        return {
            info.name: {
                status.value: count
                for status, count in client.count_by_status(
                    ExecutionFilter(state_machine=info.name)
                ).items()
            }
            for info in client.state_machines()
        }

    def _batches(self, family: Any) -> Any:
        gauge = family(
            "orchestrator_batch_executions",
            "Executions of each batch in progress (running, paused, or completed "
            "with executions not ended yet), by status.",
            labels=["batch_id", "status"],
        )
        for batch in self.ctx.client.batches(limit=200):
            if batch.status.value not in LIVE_BATCHES and batch.status.value != "COMPLETED":
                continue
            counts = self.ctx.client.batch_counts(batch.id)
            # COMPLETED says every execution was published, not that they ended.
            if batch.status.value == "COMPLETED" and set(counts) <= ENDED_STATUSES:
                continue
            for status, count in counts.items():
                gauge.add_metric([batch.id, status], count)
        return gauge

    def _queues(self, family: Any) -> Any:
        gauge = family(
            "orchestrator_queue_depth", "Messages waiting in each queue.", labels=["queue"]
        )
        depths = self.ctx.client.queue_depths()
        if depths is None:  # an unreachable broker: no depths this scrape (/health says why)
            return gauge
        for queue, depth in depths.items():
            if depth is not None:
                gauge.add_metric([queue], depth)
        return gauge


def exposition(ctx: ApiContext) -> bytes:
    """The text of one scrape: the runtime's series (of every process sharing the metrics
    dir, or of this process) followed by the store's."""
    from prometheus_client import CollectorRegistry, generate_latest

    store = CollectorRegistry()
    store.register(StoreCollector(ctx))
    return ctx.client.runtime_metrics() + bytes(generate_latest(store))


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    dependencies=[Depends(require_token)],
    response_class=Response,
)
def metrics(request: Request) -> Response:
    """Prometheus text exposition format."""
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(exposition(context(request)), media_type=CONTENT_TYPE_LATEST)


__all__ = ["StoreCollector", "exposition", "router"]
