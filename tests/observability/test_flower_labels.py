"""Flower tells the truth at its level: run messages name their machine and batch."""

from __future__ import annotations

import base64
import json
from typing import Any

from orchestrator.client import Orchestrator
from orchestrator.store.records import execution_from_json
from tests.batch.conftest import (  # noqa: F401  # fixtures of ``cluster``
    MACHINE,
    Cluster,
    cluster,
    make_app,
    redis_db,
    start_worker,
)


def queued(cluster: Cluster, queue: str = "default") -> list[dict[str, Any]]:  # noqa: F811
    """The task name, args and kwargs of each message waiting in ``queue``."""
    assert cluster.redis is not None
    found = []
    for raw in cluster.redis.client.lrange(queue, 0, -1):
        message = json.loads(raw)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        headers = message["headers"]
        found.append(
            {
                "task": headers["task"],
                "args": args,
                "kwargs": kwargs,
                # What Flower's task events and the worker's "received" line show.
                "kwargsrepr": headers["kwargsrepr"],
            }
        )
    return found


def test_a_batchs_messages_carry_its_machine_and_id(cluster: Cluster) -> None:  # noqa: F811
    result = cluster.bulk([{"n": n, "ok": True} for n in range(30)], failure_pause_threshold=None)
    messages = queued(cluster)
    assert messages
    for message in messages:
        assert message["kwargs"] == {"state_machine": "bulk", "batch_id": result.batch_id}
        assert message["kwargsrepr"] == repr(message["kwargs"])
    ids = [m["args"][0] for m in messages]
    assert sum(len(i) if isinstance(i, list) else 1 for i in ids) == 30


def test_a_single_start_names_its_machine(cluster: Cluster) -> None:  # noqa: F811
    execution = cluster.machine.start_async({"n": 1}, publisher=cluster.publish)
    (message,) = queued(cluster)
    assert message["args"][0] == execution.id
    assert message["kwargs"] == {"state_machine": "bulk"}
    assert message["kwargsrepr"] == "{'state_machine': 'bulk'}"


def test_messages_published_outside_a_start_or_batch_have_no_labels(
    cluster: Cluster,  # noqa: F811
) -> None:
    cluster.publish(["some-id"], "default")
    (message,) = queued(cluster)
    assert message["kwargs"] == {}


def test_an_express_start_shows_its_ticket_not_the_row_it_carries(
    cluster: Cluster,  # noqa: F811
) -> None:
    # Given a client that publishes with its own Celery app (so starts take tickets)
    client = Orchestrator(cluster.settings, repository=cluster.repo)
    machine = client.create_state_machine("fast", MACHINE, machine_type="EXPRESS")

    execution = machine.start_async({"n": 1, "text": "x" * 2000})

    # Then the message carries the ticket and the row, and shows only the ticket
    (message,) = queued(cluster)
    client.celery_app.close()
    kwargs = message["kwargs"]
    assert message["args"] == [execution.id]
    assert kwargs["ticket"] == execution.lease_owner
    assert execution_from_json(kwargs["start"]) == execution
    assert message["kwargsrepr"] == repr({"ticket": execution.lease_owner, "state_machine": "fast"})
