"""Broker settings for several hosts: Redis Sentinel URLs and RabbitMQ quorum queues.

The quorum-queue test declares the queues on the RabbitMQ on this machine under
names of its own (the shared broker's ``critical``/``default``/``low`` are left
alone) and deletes them afterwards. A RabbitMQ *cluster* losing a node (scenario 6
of issue 17) runs in the namespaces: ``test_scenarios.py`` and ``rabbit.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue

from orchestrator.celery import create_app
from orchestrator.distributed.config import task_queues
from orchestrator.errors import ConfigurationError
from orchestrator.settings import Settings
from orchestrator.store import Repository
from orchestrator.types import ExecutionStatus
from tests.distributed.conftest import (
    REPO_ROOT,
    Worker,
    worker_command,
    worker_environment,
)
from tests.support import wait_until

SENTINELS = "sentinel://127.0.0.1:26379;sentinel://127.0.0.2:26379;sentinel://127.0.0.3:26379"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


def test_a_sentinel_broker_gets_its_master_name_from_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_BROKER_URL", SENTINELS)
    monkeypatch.setenv(
        "ORCHESTRATOR_BROKER_TRANSPORT_OPTIONS",
        '{"master_name": "orchestrator", "sentinel_kwargs": {"socket_timeout": 1}}',
    )
    app = create_app(Settings(), set_as_current=False)
    try:
        options = app.conf.broker_transport_options
        assert options["master_name"] == "orchestrator"
        assert options["sentinel_kwargs"] == {"socket_timeout": 1}
        # Ours stay: the visibility timeout and the weighted consumer.
        assert options["visibility_timeout"] == 3600.0
        assert "queue_order_strategy" in options
        assert app.conf.broker_url == SENTINELS
    finally:
        app.close()


def test_a_sentinel_url_without_a_master_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="master_name"):
        create_app(Settings(broker_url=SENTINELS), set_as_current=False)


def test_quorum_queues_are_refused_on_redis() -> None:
    with pytest.raises(ConfigurationError, match="broker_quorum_queues needs a RabbitMQ"):
        create_app(Settings(broker_quorum_queues=True), set_as_current=False)


def test_quorum_queues_are_declared_quorum() -> None:
    app = create_app(Settings(broker_url=AMQP_URL, broker_quorum_queues=True), set_as_current=False)
    try:
        queues = {q.name: q for q in app.conf.task_queues}
        assert set(queues) == {"critical", "default", "low"}
        for queue in queues.values():
            assert queue.queue_arguments == {"x-queue-type": "quorum"}
            # Celery sends countdowns by native delayed delivery only off direct exchanges.
            assert queue.exchange.type == "topic"
        # Transport options for amqp:// are only the user's: none here.
        assert app.conf.broker_transport_options == {}
    finally:
        app.close()
    classic = {q.name: q.queue_arguments for q in task_queues()}
    assert set(classic.values()) == {None}


@pytest.fixture
def rabbitmq() -> Iterator[Connection]:
    """A connection to the RabbitMQ on this machine (skipped locally if down, fails in CI)."""
    conn = Connection(AMQP_URL, connect_timeout=3)
    try:
        conn.ensure_connection(max_retries=1)
    except conn.connection_errors as exc:
        conn.release()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"RabbitMQ not reachable: {exc}")
    yield conn
    conn.release()


def test_rabbitmq_creates_the_queues_as_quorum_queues(rabbitmq: Connection) -> None:
    # The queues as our configuration declares them, under names of this test only.
    suffix = uuid.uuid4().hex[:8]
    declared = []
    channel = rabbitmq.channel()
    try:
        for queue in task_queues(quorum=True):
            name = f"{queue.name}-mh-{suffix}"
            mine = Queue(
                name,
                Exchange(name, type=queue.exchange.type),
                name,
                queue_arguments=queue.queue_arguments,
            )
            mine.maybe_bind(channel)
            mine.declare()
            declared.append(mine)
            mine.exchange.publish(mine.exchange.Message(b'{"n": 1}'), routing_key=mine.routing_key)
        for queue in declared:
            # RabbitMQ refuses to redeclare a quorum queue as a classic one: the
            # queue on the broker is a quorum queue.
            probe = rabbitmq.channel()
            classic = Queue(queue.name, queue.exchange, queue.routing_key)
            with pytest.raises(rabbitmq.channel_errors, match="x-queue-type"):
                classic.maybe_bind(probe).queue_declare()
            with contextlib.suppress(*rabbitmq.connection_errors, *rabbitmq.channel_errors):
                probe.close()
            message = queue.get(no_ack=True)
            assert message is not None
            assert message.body == b'{"n": 1}'
    finally:
        cleanup = rabbitmq.channel()
        for queue in declared:
            with contextlib.suppress(*rabbitmq.channel_errors):
                queue.maybe_bind(cleanup).delete()
            with contextlib.suppress(*rabbitmq.channel_errors):
                queue.exchange.maybe_bind(cleanup).delete()
        cleanup.close()


@pytest.fixture
def private_vhost(rabbitmq: Connection) -> Iterator[str]:
    """A RabbitMQ virtual host of this test only (our queue names, nobody else's queues)."""
    vhost = f"orch-mh-{uuid.uuid4().hex[:8]}"
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        if os.environ.get("CI"):
            raise RuntimeError("rabbitmqctl is not installed")
        pytest.skip("rabbitmqctl is not installed")
    subprocess.run([ctl, "add_vhost", vhost], check=True, capture_output=True, timeout=60)  # noqa: S603
    try:
        subprocess.run(  # noqa: S603
            [ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield vhost
    finally:
        subprocess.run([ctl, "delete_vhost", vhost], check=False, capture_output=True, timeout=60)  # noqa: S603


@pytest.mark.slow
def test_a_worker_on_quorum_queues_runs_a_countdown_task(
    private_vhost: str, postgres_url: str, tmp_path: Path
) -> None:
    broker = f"amqp://guest:guest@127.0.0.1:5672/{private_vhost}"
    settings = Settings(database_url=postgres_url, broker_url=broker, broker_quorum_queues=True)
    repo = Repository.from_settings(settings)
    _, version, _ = repo.create_or_get_version(
        "quorum", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    )
    execution, _ = repo.create_execution(version, name="one")
    env = worker_environment(
        broker,
        {
            "ORCHESTRATOR_DATABASE_URL": postgres_url,
            "ORCHESTRATOR_BROKER_QUORUM_QUEUES": "true",
            "ORCHESTRATOR_HANDLER_MODULES": "",
        },
    )
    name = f"quorum-{uuid.uuid4().hex[:6]}@%h"
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603  # our own interpreter and arguments
            worker_command(
                name, queues=["critical", "default", "low"], pool="prefork", concurrency=1,
                events=False,
            ),
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    worker = Worker(process, log_path, name.replace("%h", os.uname().nodename))
    app = create_app(settings, set_as_current=False)
    try:
        worker.wait_ready()
        # A countdown, as a retry's back-off sends (native delayed delivery needs the
        # queues' exchanges not to be direct: see test_quorum_queues_are_declared_quorum).
        app.send_task(
            "orchestrator.run_execution", args=[execution.id], queue="default", countdown=2
        )
        wait_until(
            lambda: repo.get_execution(execution.id).status == ExecutionStatus.SUCCEEDED,
            timeout=60,
            what=f"the execution to run\n{worker.log()[-3000:]}",
        )
        assert "Global QoS is disabled" in worker.log()
        exchanges = subprocess.run(  # noqa: S603
            [str(shutil.which("rabbitmqctl")), "list_exchanges", "-p", private_vhost, "name"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.split()
        # Celery set native delayed delivery up (its exchanges exist in our vhost).
        assert "celery_delayed_27" in exchanges
    finally:
        app.close()
        worker.stop()
        repo.close()
