"""``orchestrator demo``: the order pipeline on the embedded default, with progress and a summary.

Nothing beyond the package is needed: the store is ``settings.database_url``
(SQLite by default, migrated on first use), executions run in this process, no
broker is contacted. The demo

1. stores the example machines ``orders`` and ``order-analytics``
   (:mod:`orchestrator.examples`) and imports their handlers, which sleep briefly;
2. runs ``sources`` orders in this process, a few at a time (some are rejected
   or declined, so failures show too);
3. runs a chained batch of ``order-analytics`` over the succeeded orders' final
   outputs (``execute_batch(mode="local")``, priority ``low``);

showing a progress bar per phase, then a table of counts per status, rate and time.
"""

from __future__ import annotations

import importlib
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from orchestrator import examples
from orchestrator.client import Execution, ExecutionFilter, Orchestrator
from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine
from orchestrator.types import ExecutionStatus

#: Executions run at once in each phase.
CONCURRENCY: Final = 8

ORDERS: Final = "orders"
ANALYTICS: Final = "order-analytics"


def order_input(index: int, run: str) -> dict[str, Any]:
    """The input of order ``index``: every tenth is rejected (total 0), every tenth declined."""
    if index % 10 == 9:
        total = 0.0
    elif index % 10 == 4:
        total = 1500.0  # over the example card limit
    else:
        total = round(10 + (index * 7.5) % 200, 2)
    items = [{"sku": f"sku-{(index + line) % 7}"} for line in range(1 + index % 3)]
    order_id = f"{run}-{index:05d}"
    return {
        "order": {
            "id": order_id,
            "total": total,
            "email": f"{order_id}@example.com",
            "items": items,
        }
    }


def run_demo(
    settings: Settings, *, sources: int = 50, console: Console | None = None
) -> dict[str, Any]:
    """Run the example pipeline in this process and print its progress and summary.

    Args:
        settings: where the store is (``database_url``); nothing else is used.
        sources: how many orders to run. Default 50.
        console: where to print. Default a new :class:`rich.console.Console`.

    Returns:
        ``{"run": id, "database": url, "phases": {machine: {...}}}``; each phase
        has ``total``, ``by_status``, ``seconds`` and ``rate`` (executions/s),
        the analytics phase also ``batch_id``.

    Raises:
        ValueError: ``sources`` is below 1.
    """
    if sources < 1:
        raise ValueError("sources must be at least 1")
    console = console or Console()
    client = Orchestrator.shared(settings)
    orders, analytics = _machines(client)
    run = uuid.uuid4().hex[:8]
    console.print(
        f"[bold]orchestrator demo[/] run [cyan]{run}[/]: {sources} orders, then analytics"
    )
    with _progress(console) as progress:
        first = _run_orders(orders, run, sources, progress)
        second = _run_analytics(analytics, run, progress)
    summary = {
        "run": run,
        "database": client.database_url(),
        "phases": {ORDERS: first, ANALYTICS: second},
    }
    console.print(summary_table(summary))
    console.print(
        f"See them: [bold]orchestrator executions list --machine {ORDERS}[/] "
        f"(database {summary['database']})"
    )
    return summary


def _machines(client: Orchestrator) -> tuple[StateMachine, StateMachine]:
    importlib.import_module(examples.HANDLER_MODULE)
    created = [
        client.create_state_machine(name, examples.definition(name)) for name in (ORDERS, ANALYTICS)
    ]
    return created[0], created[1]


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _run_orders(machine: StateMachine, run: str, count: int, progress: Progress) -> dict[str, Any]:
    """Phase 1: ``count`` orders, ``CONCURRENCY`` at a time, each to its end."""
    task = progress.add_task(ORDERS, total=count)
    statuses: Counter[str] = Counter()
    lock = threading.Lock()

    def one(index: int) -> None:
        execution = machine.start(order_input(index, run), name=f"demo-{run}-{index:05d}")
        with lock:
            statuses[str(execution.status)] += 1
        progress.advance(task)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="demo") as pool:
        list(pool.map(one, range(count)))
    return _phase(count, dict(statuses), time.monotonic() - started)


def _run_analytics(machine: StateMachine, run: str, progress: Progress) -> dict[str, Any]:
    """Phase 2: one ``order-analytics`` execution per succeeded order, chained on its output."""
    sources = ExecutionFilter(
        state_machine=ORDERS, name_prefix=f"demo-{run}-", status=ExecutionStatus.SUCCEEDED
    )
    task = progress.add_task(ANALYTICS, total=machine.client.count_executions(sources))

    def advance(_: Execution) -> None:
        progress.advance(task)

    started = time.monotonic()
    batch = machine.execute_batch(
        sources,
        name_prefix=f"analytics-{run}",
        priority="low",
        mode="local",
        concurrency=CONCURRENCY,
        on_execution_complete=advance,
    )
    seconds = time.monotonic() - started
    counts = batch.progress()
    return {**_phase(counts.total, counts.by_status, seconds), "batch_id": batch.batch_id}


def _phase(total: int, by_status: dict[str, int], seconds: float) -> dict[str, Any]:
    return {
        "total": total,
        "by_status": dict(sorted(by_status.items())),
        "seconds": round(seconds, 3),
        "rate": round(total / seconds, 1) if seconds > 0 else 0.0,
    }


def summary_table(summary: dict[str, Any]) -> Table:
    """The summary as a table: one row per phase, counts per status, time and rate."""
    phases: dict[str, dict[str, Any]] = summary["phases"]
    statuses = sorted({s for phase in phases.values() for s in phase["by_status"]})
    table = Table(title=f"demo run {summary['run']}")
    table.add_column("state machine")
    table.add_column("executions", justify="right")
    for status in statuses:
        table.add_column(status, justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("executions/s", justify="right")
    for name, phase in phases.items():
        counts = [str(phase["by_status"].get(status, 0)) for status in statuses]
        table.add_row(
            name, str(phase["total"]), *counts, f"{phase['seconds']:.2f}", f"{phase['rate']:.1f}"
        )
    return table


__all__ = ["run_demo", "summary_table"]
