"""Under saturation a real worker serves critical:default:low near 6:3:1, and low never starves.

600 tasks per queue are published before the worker starts, so all three queues
are full for the whole measurement. Each task appends its queue to ``ran``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from celery import Celery

from tests.distributed.conftest import RedisDB, Worker
from tests.support import wait_until

pytestmark = pytest.mark.slow  # real worker processes

PER_QUEUE = 600
WINDOW = 300
EXPECTED_SHARE = {"critical": 0.6, "default": 0.3, "low": 0.1}
TOLERANCE = 0.03
LOW_WITHIN = 20


def _fill_queues(app: Celery) -> None:
    with app.producer_or_acquire() as producer, producer.batch():
        for _ in range(PER_QUEUE):
            for queue in ("low", "default", "critical"):
                app.send_task("tests.record", args=[queue], queue=queue, producer=producer)


@pytest.mark.parametrize(("pool", "concurrency"), [("solo", 1), ("prefork", 2)])
def test_saturated_queues_are_served_six_three_one(
    redis_db: RedisDB,
    app: Celery,
    start_worker: Callable[..., Worker],
    pool: str,
    concurrency: int,
) -> None:
    # Given 600 waiting tasks in each of critical, default and low
    _fill_queues(app)
    assert redis_db.client.llen("low") == PER_QUEUE
    # When a worker consumes all three queues
    start_worker(redis_db.url, pool=pool, concurrency=concurrency)
    wait_until(
        lambda: redis_db.client.llen("ran") >= WINDOW,
        timeout=60,
        what=f"{WINDOW} tasks to run",
    )
    # Then the first 300 are shared 6:3:1 (within 3 points) and low ran early
    ran = redis_db.strings("ran")
    shares = {queue: count / WINDOW for queue, count in Counter(ran[:WINDOW]).items()}
    for queue, expected in EXPECTED_SHARE.items():
        assert shares.get(queue, 0.0) == pytest.approx(expected, abs=TOLERANCE), shares
    assert "low" in ran[:LOW_WITHIN], ran[:LOW_WITHIN]
