"""Real ``celery -A orchestrator worker`` subprocesses on a private Redis database.

The worker loads ``tests.distributed.worker_tasks``: a ``tests.record`` task and
a fake runtime (see that module), and records every task attempt in Redis.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections.abc import Callable

import pytest
from celery import Celery

from orchestrator.distributed.publish import publish_runs
from tests.distributed.conftest import (
    RedisDB,
    Worker,
    prerun_attempts,
    queue_depths,
)
from tests.support import wait_until

pytestmark = pytest.mark.slow  # real worker processes

RUN = "orchestrator.run_execution"
SETTLE_SECONDS = 1.5


def _settle(db: RedisDB, app: Celery, *, label: str = "sentinel") -> None:
    """Publish a sentinel behind what was sent; wait for it, then a little longer.

    A solo worker runs one queue in order, so once the sentinel ran every earlier
    message was handled; the pause gives a wrongly scheduled retry time to show.
    """
    app.send_task("tests.record", args=[label], queue="default")
    wait_until(lambda: label in db.strings("ran"), timeout=20, what=f"{label} to run")
    wait_until(lambda: queue_depths(db) == 0, timeout=5, what="the queues to drain")
    time.sleep(SETTLE_SECONDS)


def test_a_pickle_message_is_refused_and_dropped(
    redis_db: RedisDB, app: Celery, start_worker: Callable[..., Worker]
) -> None:
    # Given a worker, and a task message serialised with pickle
    worker = start_worker(redis_db.url)
    app.send_task("tests.record", args=["pickled"], queue="default", serializer="pickle")
    # When a JSON message follows it
    app.send_task("tests.record", args=["json"], queue="default")
    wait_until(lambda: "json" in redis_db.strings("ran"), timeout=20, what="the JSON task")
    # Then only the JSON task ran, the pickle message is gone, and the log says why
    assert redis_db.strings("ran") == ["json"]
    wait_until(lambda: queue_depths(redis_db) == 0, timeout=5, what="the queue to drain")
    assert "untrusted content" in worker.log()


def test_malformed_run_execution_messages_are_rejected_once_and_logged(
    redis_db: RedisDB, app: Celery, start_worker: Callable[..., Worker]
) -> None:
    # Given a worker, and run_execution messages no producer of ours would send
    worker = start_worker(redis_db.url)
    bad = {
        "non-string id": [123],
        "event not an object": ["exec-1", "not-an-object"],
        "id too long": ["x" * 300],
        "no arguments": [],
    }
    sent = {why: app.send_task(RUN, args=args, queue="default").id for why, args in bad.items()}
    # When the worker has handled them
    _settle(redis_db, app)
    # Then each was attempted exactly once, never reached the runtime, and left no message
    for why, task_id in sent.items():
        assert prerun_attempts(redis_db, task_id) == [0], why
    assert redis_db.strings("advanced") == []
    assert queue_depths(redis_db) == 0
    log = worker.log()
    assert "rejected orchestrator.run_execution task" in log
    assert "execution_id must be a non-empty string, got int 123" in log
    assert "event must be null or a JSON object" in log


def test_transient_errors_are_retried_and_others_are_not(
    redis_db: RedisDB, app: Celery, start_worker: Callable[..., Worker]
) -> None:
    # Given a worker whose (fake) runtime fails as the execution id says
    start_worker(redis_db.url)
    ids = ["flaky-2-a", "invalidated-b", "broken-c", "integrity-d", "fine-e"]
    sent = {eid: app.send_task(RUN, args=[eid], queue="default").id for eid in ids}
    # When the retries (back-off 0-1 s, then 0-2 s) have run their course
    wait_until(
        lambda: {"flaky-2-a", "invalidated-b", "fine-e"} <= set(redis_db.strings("advanced")),
        timeout=30,
        what="the retried executions to finish",
    )
    _settle(redis_db, app)
    # Then database/broker outages were retried until they passed; bugs were not
    assert prerun_attempts(redis_db, sent["flaky-2-a"]) == [0, 1, 2]
    assert prerun_attempts(redis_db, sent["invalidated-b"]) == [0, 1]
    assert prerun_attempts(redis_db, sent["broken-c"]) == [0]
    assert prerun_attempts(redis_db, sent["integrity-d"]) == [0]
    assert prerun_attempts(redis_db, sent["fine-e"]) == [0]
    assert sorted(redis_db.strings("advanced")) == ["fine-e", "flaky-2-a", "invalidated-b"]


def test_run_execution_passes_its_event_and_sweep_runs(
    redis_db: RedisDB, app: Celery, start_worker: Callable[..., Worker]
) -> None:
    start_worker(redis_db.url)
    app.send_task(RUN, args=["exec-9", {"type": "timer"}], queue="critical")
    app.send_task("orchestrator.sweep", queue="critical")
    wait_until(lambda: redis_db.strings("swept") == ["1"], timeout=20, what="the sweep")
    wait_until(lambda: redis_db.strings("advanced") == ["exec-9"], timeout=5, what="exec-9")
    # The event reached the runtime's entry point as it was sent
    assert redis_db.strings("events") == ['{"type": "timer"}']


def test_publishing_still_reaches_the_worker_after_redis_is_flushed(
    redis_db: RedisDB, app: Celery, start_worker: Callable[..., Worker]
) -> None:
    # Given a worker and a publisher that already declared the queues
    start_worker(redis_db.url)
    app.send_task("tests.record", args=["before"], queue="low")
    wait_until(lambda: redis_db.strings("ran") == ["before"], timeout=20, what="before")
    # When Redis loses everything (binding tables included)
    redis_db.client.flushdb()
    redis_db.relock("flushed")
    # Then a publish through the same app is still delivered and run
    app.send_task("tests.record", args=["after"], queue="low")
    wait_until(lambda: redis_db.strings("ran") == ["after"], timeout=20, what="after")


def test_publish_runs_pipelines_one_task_per_execution_to_its_queue(
    redis_db: RedisDB, app: Celery, start_worker: Callable[..., Worker]
) -> None:
    # Given 250 executions published at low priority, in batches of 100 commands
    ids = [f"exec-{n}" for n in range(250)]
    assert publish_runs(app, ids, "low", batch_size=100) == len(ids)
    # Then each is one message on low, naming its execution positionally
    assert redis_db.client.llen("low") == len(ids)
    message = json.loads(redis_db.client.lindex("low", -1))
    assert message["headers"]["task"] == RUN
    assert json.loads(base64.b64decode(message["body"]))[0] == ["exec-0"]
    # And a worker runs them all
    start_worker(redis_db.url)
    wait_until(
        lambda: sorted(redis_db.strings("advanced")) == sorted(ids),
        timeout=30,
        what="all published executions to run",
    )


def test_a_task_whose_pool_process_is_killed_runs_again(
    redis_db: RedisDB, app: Celery, start_worker: Callable[..., Worker]
) -> None:
    # Given a prefork worker running a task that hangs on its first attempt
    start_worker(redis_db.url, pool="prefork", concurrency=1)
    app.send_task("tests.die_once", args=["survivor"], queue="default")
    wait_until(lambda: redis_db.strings("pids") != [], timeout=20, what="the task to start")
    # When its pool process is killed (acks_late: the message is not acknowledged yet)
    os.kill(int(redis_db.strings("pids")[0]), signal.SIGKILL)
    # Then reject_on_worker_lost puts the message back and a new process runs it
    wait_until(lambda: redis_db.strings("ran") == ["survivor"], timeout=30, what="the rerun")
    wait_until(lambda: queue_depths(redis_db) == 0, timeout=5, what="the acknowledgement")


RUN_MANY = "orchestrator.run_executions"


def test_publish_runs_packs_several_executions_per_message_and_a_worker_runs_each(
    redis_db: RedisDB, app: Celery, start_worker: Callable[..., Worker]
) -> None:
    # Given 1,000 executions published 10 to a message
    ids = [f"exec-{n}" for n in range(1000)]
    assert publish_runs(app, ids, "default", per_message=10) == len(ids)
    # Then they are 100 run_executions messages, each naming its 10 ids, in order
    assert redis_db.client.llen("default") == 100
    message = json.loads(redis_db.client.lindex("default", -1))
    assert message["headers"]["task"] == RUN_MANY
    assert json.loads(base64.b64decode(message["body"]))[0] == [ids[:10]]
    # And a worker runs every one of them exactly once
    start_worker(redis_db.url)
    wait_until(
        lambda: len(redis_db.strings("advanced")) >= len(ids),
        timeout=30,
        what="all published executions to run",
    )
    _settle(redis_db, app)
    assert sorted(redis_db.strings("advanced")) == sorted(ids)


def test_a_small_publish_still_spreads_one_execution_per_message(
    redis_db: RedisDB, app: Celery
) -> None:
    # 100 ids at up to 10 a message would be 10 messages for 2+ worker processes: too few
    publish_runs(app, [f"exec-{n}" for n in range(100)], "low", per_message=10)
    assert redis_db.client.llen("low") == 100
    message = json.loads(redis_db.client.lindex("low", -1))
    assert message["headers"]["task"] == RUN


def test_a_transient_error_retries_only_the_executions_not_yet_done(
    redis_db: RedisDB, app: Celery, start_worker: Callable[..., Worker]
) -> None:
    # Given one message of five executions: a bug in the 2nd, a database outage at the 4th
    start_worker(redis_db.url)
    ids = ["one", "broken-two", "three", "flaky-2-four", "five"]
    task_id = app.send_task(RUN_MANY, args=[ids], queue="default").id
    # When the retries have run their course
    wait_until(
        lambda: "five" in redis_db.strings("advanced"), timeout=30, what="the last execution"
    )
    _settle(redis_db, app)
    # Then the message ran three times, each retry carrying only what was left,
    assert prerun_attempts(redis_db, task_id) == [0, 1, 2]
    # every execution but the broken one ran exactly once, and the bug was logged
    assert redis_db.strings("advanced") == ["one", "three", "flaky-2-four", "five"]


def test_malformed_run_executions_messages_are_rejected_once_and_logged(
    redis_db: RedisDB, app: Celery, start_worker: Callable[..., Worker]
) -> None:
    worker = start_worker(redis_db.url)
    bad = {
        "not a list": ["exec-1"],
        "empty": [[]],
        "an id not a string": [["exec-1", 7]],
        "too many": [[f"exec-{n}" for n in range(101)]],
    }
    sent = {
        why: app.send_task(RUN_MANY, args=args, queue="default").id for why, args in bad.items()
    }
    _settle(redis_db, app)
    for why, task_id in sent.items():
        assert prerun_attempts(redis_db, task_id) == [0], why
    assert redis_db.strings("advanced") == []
    log = worker.log()
    assert "rejected orchestrator.run_executions task" in log
    assert "execution_ids must be a non-empty list, got str 'exec-1'" in log
    assert "execution_ids[1]: execution_id must be a non-empty string, got int 7" in log
    assert "holds 101 ids, more than 100" in log
