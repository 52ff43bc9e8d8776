"""Test-only code loaded INTO worker subprocesses (``ORCHESTRATOR_HANDLER_MODULES``).

Never import this from the pytest process: it installs a fake
``orchestrator.worker`` (the tasks' entry points) into ``sys.modules`` so
``orchestrator.run_execution`` can run without a database. What the worker does
is written to Redis lists (the broker's database unless a sink URL is given),
which the tests read:

- ``ran``: labels recorded by ``tests.record`` (and ``tests.die_once``);
- ``pids``: pool processes that ``tests.die_once`` hangs in, for the test to kill;
- ``prerun``: ``<task name>|<task id>|<retries>`` for every task attempt;
- ``advanced``: execution ids the fake runner finished;
- ``events``: the event each ``run_execution`` passed, as JSON;
- ``swept``: one entry per fake sweep.

Fake runner behaviour, by execution id prefix: ``flaky-<n>-`` raises an
``OperationalError`` on its first ``n`` calls; ``invalidated-`` raises a
``DBAPIError`` with ``connection_invalidated`` once; ``broken-`` raises
``ValueError``; ``integrity-`` raises ``IntegrityError``; anything else succeeds.
"""

from __future__ import annotations

import json
import os
import sys
import time
import types
from typing import Any
from urllib.parse import urlsplit

import redis
import sqlalchemy.exc
from celery import current_app, shared_task
from celery.signals import task_prerun

if "pytest" in sys.modules:  # pragma: no cover - a guard, not a code path
    raise RuntimeError("tests.distributed.worker_tasks is for worker subprocesses only")

_clients: dict[str, redis.Redis] = {}


def _sink(url: str | None = None) -> redis.Redis:
    target = url or str(current_app.conf.broker_url)
    if target not in _clients:
        _clients[target] = redis.Redis.from_url(target)
    return _clients[target]


@shared_task(name="tests.record")
def record(label: str, sink_url: str | None = None) -> str:
    """Append ``label`` to the ``ran`` list."""
    _sink(sink_url).rpush("ran", label)
    return label


@shared_task(name="tests.die_once")
def die_once(label: str) -> str:
    """First attempt: publish this process's pid to ``pids`` and hang (to be killed)."""
    sink = _sink()
    if int(sink.incr(f"attempts:{label}")) == 1:
        sink.rpush("pids", os.getpid())
        time.sleep(60)
    sink.rpush("ran", label)
    return label


@task_prerun.connect
def _count_attempt(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if urlsplit(str(current_app.conf.broker_url)).scheme != "redis":
        return
    _sink().rpush("prerun", f"{task.name}|{task_id}|{task.request.retries}")


def _calls(execution_id: str) -> int:
    return int(_sink().incr(f"calls:{execution_id}"))


def advance_from_task(execution_id: str, event: dict[str, Any] | None) -> dict[str, Any]:
    """Fake runtime entry point; fails as the execution id asks."""
    calls = _calls(execution_id)
    if execution_id.startswith("flaky-"):
        failures = int(execution_id.split("-")[1])
        if calls <= failures:
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionError("db down"))
    if execution_id.startswith("invalidated-") and calls == 1:
        raise sqlalchemy.exc.DBAPIError(
            "SELECT 1", {}, ConnectionError("gone"), connection_invalidated=True
        )
    if execution_id.startswith("broken-"):
        raise ValueError(f"handler bug in {execution_id}")
    if execution_id.startswith("integrity-"):
        raise sqlalchemy.exc.IntegrityError("INSERT", {}, ValueError("duplicate key"))
    _sink().rpush("advanced", execution_id)
    _sink().rpush("events", json.dumps(event, sort_keys=True))
    return {"execution_id": execution_id, "status": "SUCCEEDED", "event": event}


def advance_many_from_task(
    execution_ids: list[str], transient: Any
) -> tuple[dict[str, int], list[str], BaseException | None]:
    """Fake group entry point: each id as ``advance_from_task`` would run it, in turn.

    A transient error hands back the ids not yet done, as the runner's group does;
    any other error counts as ERROR and the rest go on.
    """
    summary: dict[str, int] = {}
    for done, execution_id in enumerate(execution_ids):
        try:
            status = advance_from_task(execution_id, None)["status"]
        except Exception as exc:
            if transient(exc):
                return summary, execution_ids[done:], exc
            status = "ERROR"
        summary[status] = summary.get(status, 0) + 1
    return summary, [], None


def sweep() -> int:
    """Fake recovery sweep."""
    _sink().rpush("swept", "1")
    return 0


def _install_fake_worker() -> None:
    worker = types.ModuleType("orchestrator.worker")
    worker.advance_from_task = advance_from_task  # type: ignore[attr-defined]
    worker.advance_many_from_task = advance_many_from_task  # type: ignore[attr-defined]
    worker.sweep = sweep  # type: ignore[attr-defined]
    sys.modules["orchestrator.worker"] = worker


_install_fake_worker()
