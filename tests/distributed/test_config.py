"""The Celery configuration, routing, weighted cycle and task argument checks (no broker)."""

from __future__ import annotations

from collections import Counter

import kombu.exceptions
import pytest
import redis.exceptions
import sqlalchemy.exc
from celery import Celery
from kombu.serialization import dumps, loads
from kombu.utils.scheduling import cycle_by_name

from orchestrator.celery import HANDLER_MODULES_KEY, create_app
from orchestrator.distributed import publish, tasks
from orchestrator.distributed.config import (
    SWEEP_ENTRY,
    SWEEP_TASK,
    CeleryOptions,
    celery_config,
    transport_options,
)
from orchestrator.distributed.consumer import WeightedCycle, weighted_cycle
from orchestrator.distributed.routing import QUEUES, queue_for
from orchestrator.errors import ConfigurationError
from orchestrator.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture
def app() -> Celery:
    return create_app(Settings(broker_url=REDIS_URL, handler_modules=["a.b"]), set_as_current=False)


# -- the app's configuration ------------------------------------------------------


def test_the_app_acks_late_rejects_on_worker_loss_and_prefetches_one(app: Celery) -> None:
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_connection_retry_on_startup is True


def test_the_app_speaks_json_only(app: Celery) -> None:
    conf = app.conf
    assert conf.task_serializer == "json"
    assert conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert list(conf.result_accept_content) == ["json"]


def test_the_app_refuses_to_decode_a_pickle_message(app: Celery) -> None:
    # Given a message body serialised with pickle
    content_type, encoding, body = dumps({"x": 1}, serializer="pickle")
    # Then decoding it with the app's accept list refuses it
    with pytest.raises(kombu.exceptions.ContentDisallowed):
        loads(body, content_type, encoding, accept=app.conf.accept_content)


def test_the_three_queues_exist_and_default_is_the_default(app: Celery) -> None:
    queues = {queue.name: queue for queue in app.conf.task_queues}
    assert set(queues) == {"critical", "default", "low"}
    assert app.conf.task_default_queue == "default"
    assert all(queue.routing_key == name for name, queue in queues.items())


def test_the_visibility_timeout_outlasts_the_hard_time_limit(app: Celery) -> None:
    options = app.conf.broker_transport_options
    assert options["visibility_timeout"] > app.conf.task_time_limit
    assert app.conf.task_soft_time_limit < app.conf.task_time_limit


def test_no_result_backend_and_results_ignored(app: Celery) -> None:
    assert app.conf.result_backend is None
    assert app.conf.task_ignore_result is True


def test_task_events_are_off_by_default_and_configurable() -> None:
    settings = Settings(broker_url=REDIS_URL)
    assert celery_config(settings)["worker_send_task_events"] is False
    on = celery_config(settings, CeleryOptions(task_events=True))
    assert on["worker_send_task_events"] is True
    assert on["task_send_sent_event"] is True


def test_the_sweeper_is_scheduled_every_few_seconds(app: Celery) -> None:
    entry = app.conf.beat_schedule[SWEEP_ENTRY]
    assert entry["task"] == SWEEP_TASK
    assert 0 < entry["schedule"] <= 10
    assert entry["options"]["queue"] == "critical"


def test_workers_import_the_handler_modules_of_the_settings(app: Celery) -> None:
    assert app.conf[HANDLER_MODULES_KEY] == ["a.b"]


def test_the_tasks_have_readable_names(app: Celery) -> None:
    assert {"orchestrator.run_execution", "orchestrator.sweep"} <= set(app.tasks)


def test_overrides_apply_last() -> None:
    options = CeleryOptions(celery_overrides={"worker_prefetch_multiplier": 4})
    assert celery_config(Settings(), options)["worker_prefetch_multiplier"] == 4


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"task_time_limit": 4000.0, "task_soft_time_limit": 100.0}, "visibility"),
        ({"task_soft_time_limit": 1800.0}, "soft"),
        ({"sweep_interval_seconds": 0.0}, "sweep"),
    ],
)
def test_impossible_limits_are_refused(fields: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        CeleryOptions(**fields)  # type: ignore[arg-type]


def test_redis_gets_the_weighted_cycle_and_amqp_no_redis_options() -> None:
    redis_options = transport_options(REDIS_URL, CeleryOptions())
    # kombu resolves the option the way the Redis channel does.
    assert cycle_by_name(redis_options["queue_order_strategy"]) is WeightedCycle
    assert transport_options(AMQP_URL, CeleryOptions()) == {}


def test_other_weights_give_a_class_kombu_accepts() -> None:
    options = transport_options(REDIS_URL, CeleryOptions(queue_weights={"critical": 2, "low": 1}))
    strategy = options["queue_order_strategy"]
    assert cycle_by_name(strategy) is strategy
    assert strategy.weights == {"critical": 2, "low": 1}
    assert strategy is weighted_cycle({"low": 1, "critical": 2})


# -- routing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "queue"),
    [
        ("critical", "critical"),
        ("default", "default"),
        ("low", "low"),
        (" Critical ", "critical"),
        (9, "critical"),
        (7, "critical"),
        (6, "default"),
        (3, "default"),
        (2, "low"),
        (0, "low"),
    ],
)
def test_a_priority_picks_its_queue(priority: str | int, queue: str) -> None:
    assert queue_for(priority) == queue


@pytest.mark.parametrize("priority", ["urgent", "", "7", 10, -1, True, None, 1.5])
def test_anything_else_is_a_clear_value_error(priority: object) -> None:
    with pytest.raises(ValueError, match="priority must be one of critical, default, low"):
        queue_for(priority)  # type: ignore[arg-type]


# -- the weighted cycle (pure) ---------------------------------------------------------


def _serve(cycle: WeightedCycle, pops: int, empty: frozenset[str] = frozenset()) -> list[str]:
    """Simulate BRPOP: pop from the first non-empty queue of the cycle's order."""
    served = []
    for _ in range(pops):
        queue = next(q for q in cycle.consume(len(cycle.items)) if q not in empty)
        served.append(cycle.rotate(queue))
    return served


def _fresh(weights: dict[str, int] | None = None) -> WeightedCycle:
    cycle = weighted_cycle(weights)()
    cycle.update({"low", "critical", "default"})
    return cycle


def test_saturated_queues_are_served_exactly_six_three_one_per_ten() -> None:
    served = _serve(_fresh(), 300)
    for start in range(0, 300, 10):
        assert Counter(served[start : start + 10]) == {"critical": 6, "default": 3, "low": 1}
    assert served.index("low") < 10


def test_an_empty_queue_does_not_hoard_credit() -> None:
    # Given critical was empty for 100 pops
    cycle = _fresh()
    idle = _serve(cycle, 100, empty=frozenset({"critical"}))
    assert Counter(idle) == {"default": 75, "low": 25}
    # When it refills, it gets its share, not a burst that starves low
    after = _serve(cycle, 20)
    assert "low" in after[:10]
    assert Counter(after)["critical"] == 12


def test_other_weights_and_unlisted_queues() -> None:
    cycle = weighted_cycle({"critical": 1, "default": 1})()
    cycle.update({"critical", "default", "extra"})
    assert Counter(_serve(cycle, 30)) == {"critical": 10, "default": 10, "extra": 10}


@pytest.mark.parametrize("weights", [{}, {"low": 0}, {"low": -1}, {"low": 1.5}, {"low": True}])
def test_bad_weights_are_refused(weights: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="weight"):
        weighted_cycle(weights)


def test_rotate_ignores_a_queue_it_did_not_offer() -> None:
    cycle = _fresh()
    assert cycle.rotate("gone") == "gone"
    assert _serve(cycle, 1) == ["critical"]


# -- task argument checks and error classes ------------------------------------------------


@pytest.mark.parametrize(
    ("execution_id", "event"),
    [(123, None), ("", None), ("  ", None), ("x" * 300, None), ("ok", "text"), ("ok", {1: 2})],
)
def test_malformed_run_arguments_are_refused(execution_id: object, event: object) -> None:
    with pytest.raises(tasks.InvalidTaskArguments):
        tasks.validate_run_arguments(execution_id, event)


def test_well_formed_run_arguments_pass() -> None:
    tasks.validate_run_arguments("exec-1", None)
    tasks.validate_run_arguments("exec-1", {"type": "timer"})
    tasks.validate_run_arguments("exec-1", None, "@start:abc", '{"id": "exec-1"}')
    tasks.validate_run_arguments("exec-1", None, "@start:abc", None)


@pytest.mark.parametrize(
    ("ticket", "start"),
    [
        ("host:worker", None),  # not a start ticket: a worker's lease is not the message's
        (7, None),
        ("@start:" + "x" * 300, None),
        (None, '{"id": "exec-1"}'),  # a row without its ticket
        ("@start:abc", {"id": "exec-1"}),
        ("@start:abc", "x" * (tasks.MAX_START_ROW_CHARS + 1)),
    ],
)
def test_malformed_start_arguments_are_refused(ticket: object, start: object) -> None:
    with pytest.raises(tasks.InvalidTaskArguments):
        tasks.validate_run_arguments("exec-1", None, ticket, start)


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("down")), True),
        (sqlalchemy.exc.InterfaceError("SELECT 1", {}, Exception("closed")), True),
        (
            sqlalchemy.exc.DBAPIError("SELECT 1", {}, Exception("x"), connection_invalidated=True),
            True,
        ),
        (sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("dup")), False),
        (kombu.exceptions.OperationalError("broker down"), True),
        (redis.exceptions.ConnectionError("refused"), True),
        (ValueError("bug"), False),
    ],
)
def test_only_infrastructure_errors_are_transient(exc: Exception, transient: bool) -> None:
    assert tasks.is_transient(exc) is transient


def test_run_execution_retries_with_bounded_jittered_backoff(app: Celery) -> None:
    task = app.tasks["orchestrator.run_execution"]
    assert task.acks_late is True
    assert task.max_retries == tasks.MAX_RETRIES
    assert task.retry_backoff is True
    assert task.retry_backoff_max == 60
    assert task.retry_jitter is True
    assert set(task.autoretry_for) == set(tasks.TRANSIENT_ERRORS)


def test_queues_constant_matches_the_config() -> None:
    assert QUEUES == ("critical", "default", "low")


@pytest.mark.parametrize(
    ("count", "per_message", "expected"),
    [(1, 10, 1), (63, 10, 1), (64, 10, 1), (128, 10, 2), (640, 10, 10), (20_000, 10, 10),
     (20_000, 1, 1), (20_000, 100, 100)],
)  # fmt: skip
def test_ids_per_message_keep_at_least_64_messages_per_publish(
    count: int, per_message: int, expected: int
) -> None:
    from orchestrator.distributed.publish import ids_per_message

    assert ids_per_message(count, per_message) == expected


@pytest.mark.parametrize(
    ("url", "skips"),
    [
        ("redis://127.0.0.1:6379/0", True),
        ("rediss://cache.example:6380/1", True),
        ("amqp://guest:guest@127.0.0.1:5672//", False),
        ("sentinel://127.0.0.1:26379", False),
    ],
)
def test_a_start_declares_its_queue_except_on_redis(url: str, skips: bool) -> None:
    # A Redis queue is a list the push creates; RabbitMQ drops a message to a
    # queue nobody declared, so there the declaration stays.
    app = Celery("declares", broker=url, set_as_current=False)
    assert publish._on_redis(app) is skips
