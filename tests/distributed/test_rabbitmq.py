"""Smoke test on RabbitMQ: a task published to amqp:// runs on a worker.

The worker consumes a queue named for this test only; it is deleted afterwards.
Skipped when RabbitMQ is unreachable, except in CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from celery import Celery
from kombu import Connection, Exchange, Queue

from tests.distributed.conftest import RedisDB, Worker
from tests.support import wait_until

pytestmark = pytest.mark.slow  # real worker processes on RabbitMQ

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture
def amqp_queue() -> Iterator[str]:
    """A fresh queue name on the local RabbitMQ; the queue and its exchange are deleted."""
    with Connection(AMQP_URL, connect_timeout=3) as conn:
        try:
            conn.ensure_connection(max_retries=1)
        except conn.connection_errors as exc:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"RabbitMQ not reachable: {exc}")
    name = f"orchestrator-test-{uuid.uuid4().hex[:12]}"
    yield name
    with Connection(AMQP_URL, connect_timeout=3) as conn:
        channel = conn.default_channel
        with contextlib.suppress(*conn.channel_errors):
            Queue(name, Exchange(name)).bind(channel).delete()
        with contextlib.suppress(*conn.channel_errors):
            Exchange(name).bind(channel).delete()


def test_a_task_published_to_rabbitmq_runs_on_a_worker(
    amqp_queue: str,
    redis_db: RedisDB,
    make_app: Callable[[str], Celery],
    start_worker: Callable[..., Worker],
) -> None:
    # Given a worker on RabbitMQ consuming this test's queue
    # prefork, not solo: a solo worker on AMQP takes 6-10 s to see SIGTERM (no timer wakes
    # its event loop), while prefork's pool maintenance wakes it every second.
    start_worker(AMQP_URL, queues=[amqp_queue], pool="prefork")
    app = make_app(AMQP_URL)
    # When a task is published there (it records into the test's Redis database)
    app.send_task("tests.record", args=["via-rabbitmq", redis_db.url], queue=amqp_queue)
    # Then it runs
    wait_until(
        lambda: redis_db.strings("ran") == ["via-rabbitmq"], timeout=30, what="the AMQP task"
    )
