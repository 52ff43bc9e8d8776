"""Wake-up notices (``orchestrator/runtime/notices.py``): a wait blocks until the worker says.

Real PostgreSQL, real Redis, real ``celery -A orchestrator worker`` subprocesses. Reads
of the row are counted (``ExecutionHandle.describe``) rather than times measured: a
wait woken by a notice reads the row about twice, whatever the machine's load; a
polling wait reads it dozens of times.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.client import Orchestrator
from orchestrator.handlers import HandlerContext, HandlerRegistry
from orchestrator.handles import ExecutionHandle
from orchestrator.runtime import Runner, notices
from orchestrator.settings import Settings
from orchestrator.store import NewExecution, Repository
from orchestrator.types import ExecutionStatus
from tests.support import wait_until

from .conftest import RedisDB, Worker
from .test_express_worker import HANDLERS, THREE_STATES

#: Nothing listens there: every connection is refused.
DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of every ``ExecutionHandle.describe`` call, in order."""
    seen: list[str] = []
    describe = ExecutionHandle.describe

    def counted(self: ExecutionHandle) -> Any:
        seen.append(self.id)
        return describe(self)

    monkeypatch.setattr(ExecutionHandle, "describe", counted)
    return seen


def make_client(postgres_url: str, broker_url: str, **changes: Any) -> Orchestrator:
    """A client on the test's database and broker."""
    settings = Settings(database_url=postgres_url, broker_url=broker_url, **changes)
    return Orchestrator(settings, repository=Repository.from_settings(settings))


@pytest.fixture
def client(postgres_url: str, redis_db: RedisDB) -> Iterator[Orchestrator]:
    """A client on the test's database and Redis (notices on: the broker is Redis)."""
    orchestrator = make_client(postgres_url, redis_db.url)
    yield orchestrator
    orchestrator.celery_app.close()
    orchestrator.repository.close()


def start(start_worker: Callable[..., Worker], client: Orchestrator, **env: str) -> Worker:
    """A prefork worker, two processes, with the test's handlers."""
    return start_worker(
        client.settings.broker_url,
        pool="prefork",
        concurrency=2,
        env={
            "ORCHESTRATOR_DATABASE_URL": client.settings.database_url,
            "ORCHESTRATOR_HANDLER_MODULES": HANDLERS,
            **env,
        },
    )


def notice_connections(db: RedisDB) -> int:
    """Redis connections this process opened for notices (named after its pid)."""
    import os

    name = f"orchestrator-notices-{os.getpid()}"
    return sum(1 for entry in db.client.client_list() if entry.get("name") == name)


# -- a real worker ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("machine_type", ["EXPRESS", "STANDARD"])
def test_a_wait_is_woken_by_the_workers_notice(
    client: Orchestrator,
    start_worker: Callable[..., Worker],
    reads: list[str],
    tmp_path: Path,
    machine_type: str,
) -> None:
    # Given a worker, and an execution whose Task takes half a second
    start(start_worker, client)
    machine = client.create_state_machine("woken", THREE_STATES, machine_type=machine_type)
    execution = machine.start_async({"i": 4, "ledger": str(tmp_path / "ledger"), "sleep": 0.5})

    # When it is waited on with a fallback read only every 30 s
    began = time.monotonic()
    done = client.execution(execution.id).wait(60, poll=30)

    # Then the wait ended with the execution, having read the row once before the
    # notice and once after it (a polling wait reads it every millisecond at first)
    assert done.status == ExecutionStatus.SUCCEEDED, done
    assert done.output["work"] == {"n": 8}
    assert time.monotonic() - began < 25
    assert len(reads) <= 3, reads
    # An EXPRESS end comes whole in its notice: the row is read once (after the first
    # 20 ms look for a notice, long before the half-second Task ends) and what the
    # wait returns is the row as committed.
    if machine_type == "EXPRESS":
        assert len(reads) == 1, reads
    assert done == client.execution(execution.id).describe()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_started_express_end_is_kept_for_a_wait_that_subscribes_late(
    client: Orchestrator,
    start_worker: Callable[..., Worker],
    redis_db: RedisDB,
    reads: list[str],
    tmp_path: Path,
) -> None:
    # Given a worker, an EXPRESS execution started for it and ended before any wait,
    # and another of the same machine started in bulk (no start ticket)
    start(start_worker, client)
    machine = client.create_state_machine("late", THREE_STATES, machine_type="EXPRESS")
    ledger = str(tmp_path / "ledger")
    started = machine.start_async({"i": 3, "ledger": ledger})
    [bulk] = client.repository.create_executions_bulk(
        machine.version_record, [NewExecution(name="bulk", input={"i": 1, "ledger": ledger})]
    ).created.values()
    client.publisher([bulk], "default")
    wait_until(
        lambda: all(
            client.repository.get_execution(i).status == ExecutionStatus.SUCCEEDED
            for i in (started.id, bulk)
        ),
        timeout=60,
        what="both ends",
    )
    reads.clear()

    # When the first is waited on after its end
    began = time.monotonic()
    done = client.execution(started.id).wait(60, poll=30)
    elapsed = time.monotonic() - began

    # Then its end was found kept on Redis: no read of the row, no 20 ms first look
    assert done == client.repository.get_execution(started.id)
    assert reads == []
    assert elapsed < notices.FIRST_LOOK_SECONDS, elapsed
    assert 0 < redis_db.client.ttl(notices.kept_key(started.id)) <= notices.KEEP_SECONDS
    # And an end of a bulk start is announced only, not kept
    assert redis_db.client.exists(notices.kept_key(bulk)) == 0


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_an_express_end_too_large_for_its_notice_is_read(
    client: Orchestrator,
    start_worker: Callable[..., Worker],
    reads: list[str],
    tmp_path: Path,
) -> None:
    # Given a worker, and an EXPRESS execution whose output is over the notice's limit
    start(start_worker, client)
    machine = client.create_state_machine("large", THREE_STATES, machine_type="EXPRESS")
    padding = "x" * (notices.DETAIL_MAX_CHARS + 10)
    execution = machine.start_async(
        {"i": 1, "ledger": str(tmp_path / "ledger"), "sleep": 0.3, "padding": padding}
    )

    # When it is waited on
    done = client.execution(execution.id).wait(60, poll=30)

    # Then the notice only woke the wait, which read the row again
    assert done.status == ExecutionStatus.SUCCEEDED, done
    assert done.output["padding"] == padding
    assert len(reads) == 2, reads


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_start_sync_on_a_worker_is_woken_by_the_notice(
    client: Orchestrator,
    start_worker: Callable[..., Worker],
    reads: list[str],
    tmp_path: Path,
) -> None:
    start(start_worker, client)
    machine = client.create_state_machine("sync", THREE_STATES, machine_type="EXPRESS")
    ledger = str(tmp_path / "ledger")
    machine.start_sync({"i": 0, "ledger": ledger}, on_worker=True, timeout=60)  # warm
    reads.clear()

    began = time.monotonic()
    done = machine.start_sync({"i": 5, "ledger": ledger, "sleep": 0.3}, on_worker=True, timeout=60)
    elapsed = time.monotonic() - began

    # start_sync waits with the default fallback read every 0.2 s: the reads are the
    # first, those fallbacks, and the one on the notice (polling would make ~60)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.output["work"] == {"n": 10}
    assert len(reads) <= 2 + elapsed / 0.2, (reads, elapsed)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_without_notices_a_wait_polls(
    postgres_url: str,
    redis_db: RedisDB,
    start_worker: Callable[..., Worker],
    reads: list[str],
    tmp_path: Path,
) -> None:
    # Given notices turned off, on the worker and on the waiter
    orchestrator = make_client(postgres_url, redis_db.url, notice_url="")
    try:
        start(start_worker, orchestrator, ORCHESTRATOR_NOTICE_URL="")
        machine = orchestrator.create_state_machine("polled", THREE_STATES, machine_type="EXPRESS")
        execution = machine.start_async({"i": 3, "ledger": str(tmp_path / "ledger"), "sleep": 0.3})

        # When it is waited on, the wait reads the row until it has ended
        done = orchestrator.execution(execution.id).wait(60, poll=0.05)

        assert done.status == ExecutionStatus.SUCCEEDED
        assert done.output["work"] == {"n": 6}
        assert len(reads) > 5, reads  # it polled: the 0.3 s Task took many reads
    finally:
        orchestrator.celery_app.close()
        orchestrator.repository.close()


# -- the fallback read, and connections ---------------------------------------------


@pytest.mark.timeout(60)
def test_a_stop_that_announces_nothing_is_seen_by_the_fallback_read(
    client: Orchestrator, reads: list[str], tmp_path: Path
) -> None:
    # Given an execution no worker takes up (none runs), waited on with notices on
    machine = client.create_state_machine("stopped", THREE_STATES, machine_type="EXPRESS")
    execution = machine.start_async({"i": 1, "ledger": str(tmp_path / "ledger")})
    handle = client.execution(execution.id)
    stopper = threading.Timer(0.3, handle.stop)

    # When another thread stops it (a stop publishes no notice)
    stopper.start()
    try:
        done = handle.wait(20, poll=0.1)
    finally:
        stopper.join()

    # Then the wait saw it by its slow fallback read, within a few `poll`s
    assert done.status == ExecutionStatus.ABORTED
    assert 3 <= len(reads) < 60, reads


@pytest.mark.timeout(120)
def test_many_waits_keep_a_bounded_number_of_connections(
    client: Orchestrator, redis_db: RedisDB, tmp_path: Path
) -> None:
    # Given ended executions (ended in this process: nothing to wait for), and the
    # notice connections this process has open already (its pool outlives a test)
    before = notice_connections(redis_db)
    machine = client.create_state_machine("many", THREE_STATES, machine_type="EXPRESS")
    ledger = str(tmp_path / "ledger")
    rows = [NewExecution(name=f"m-{i}", input={"i": i, "ledger": ledger}) for i in range(40)]
    ids = list(
        client.repository.create_executions_bulk(machine.version_record, rows).created.values()
    )
    runner = Runner(client.repository, settings=client.settings, handlers=_handlers())
    runner.advance_many(ids)

    # When they are waited on many times, from this thread and from four others
    def wait_all() -> None:
        for execution_id in ids:
            assert client.execution(execution_id).wait(10).status == ExecutionStatus.SUCCEEDED

    wait_all()
    threads = [threading.Thread(target=wait_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_all()

    # Then each waiting thread kept at most one subscriber connection, and the
    # process's pool (the GET of a kept end) at most one per thread that used it at
    # once; none is subscribed to anything between waits
    assert 1 <= notice_connections(redis_db) <= before + 2 * 5
    channels = redis_db.client.pubsub_channels(f"{notices.CHANNEL_PREFIX}*")
    assert channels == []


# -- the worker's side, in this process ---------------------------------------------


def _handlers() -> HandlerRegistry:
    registry = HandlerRegistry()

    def work(data: Any, ctx: HandlerContext) -> dict[str, Any]:
        return {"n": 2 * int(data["i"])}

    registry.register("tests.express.work", work)
    return registry


@pytest.mark.parametrize("machine_type", ["EXPRESS", "STANDARD"])
def test_the_ends_of_one_message_go_in_one_round_trip(
    client: Orchestrator, redis_db: RedisDB, monkeypatch: pytest.MonkeyPatch, machine_type: str
) -> None:
    # Given ten executions of one message, and a listener on every notice
    machine = client.create_state_machine("ten", THREE_STATES, machine_type=machine_type)
    rows = [NewExecution(name=f"t-{i}", input={"i": i}) for i in range(10)]
    ids = list(
        client.repository.create_executions_bulk(machine.version_record, rows).created.values()
    )
    listener = redis.Redis.from_url(redis_db.url).pubsub()
    listener.psubscribe(f"{notices.CHANNEL_PREFIX}*")
    assert listener.get_message(timeout=5)["type"] == "psubscribe"
    round_trips: list[int] = []
    execute = redis.client.Pipeline.execute

    def counted(self: redis.client.Pipeline, *args: Any, **kwargs: Any) -> Any:
        round_trips.append(len(self.command_stack))
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", counted)

    # When a runner advances them as a worker advances a message
    runner = Runner(client.repository, settings=client.settings, handlers=_handlers())
    outcome = runner.advance_many(ids)

    # Then every one ended, and their ten notices went in one pipeline
    assert {e.status for e in outcome.executions.values() if e} == {ExecutionStatus.SUCCEEDED}
    assert round_trips == [10]
    heard: dict[str, str] = {}
    deadline = time.monotonic() + 10
    while len(heard) < 10 and time.monotonic() < deadline:
        message = listener.get_message(timeout=1)
        if message and message["type"] == "pmessage":
            # Pub/sub ignores Redis DB numbers: skip other tests' notices (xdist).
            said_of = message["channel"].decode().removeprefix(notices.CHANNEL_PREFIX)
            if said_of in ids:
                heard[said_of] = message["data"].decode()
    listener.close()
    assert set(heard) == set(ids)
    for execution_id, said in heard.items():
        if machine_type == "STANDARD":
            assert said == "SUCCEEDED"
        else:  # the end itself, as stored
            stored = client.repository.get_execution(execution_id)
            assert notices.ended_row(execution_id, said) == stored


def test_a_failed_publish_fails_no_execution(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given notices sent to a Redis that is away
    settings = Settings(database_url=postgres_url, notice_url=DEAD_REDIS)
    repository = Repository.from_settings(settings)
    try:
        orchestrator = Orchestrator(settings, repository=repository)
        runner = Runner(repository, settings=settings, handlers=_handlers())
        ends = {}
        for machine_type in ("EXPRESS", "STANDARD"):
            machine = orchestrator.create_state_machine(
                f"away-{machine_type.lower()}", THREE_STATES, machine_type=machine_type
            )
            rows = [NewExecution(name=f"a-{i}", input={"i": i}) for i in range(3)]
            ids = list(
                repository.create_executions_bulk(machine.version_record, rows).created.values()
            )

            # When a runner ends them (a group, then one alone)
            with caplog.at_level(logging.WARNING, logger="orchestrator.notices"):
                outcome = runner.advance_many(ids[:2])
                alone = runner.advance(ids[2])
            ends.update(outcome.executions)
            ends[ids[2]] = alone

        # Then each ended as it would have, nothing to retry, and one warning told why
        assert outcome.retry == []
        assert {e.status for e in ends.values() if e} == {ExecutionStatus.SUCCEEDED}
        assert len(ends) == 6
        warnings = [r for r in caplog.records if r.name == "orchestrator.notices"]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "PUBLISH" in warnings[0].getMessage()

        # And a wait, with notices away too, still sees them (it polls)
        assert orchestrator.execution(ids[2]).wait(5).status == ExecutionStatus.SUCCEEDED
    finally:
        repository.close()
        notices._process().quiet_until.clear()


def test_where_notices_go(sqlite_url: str) -> None:
    redis_broker = Settings(broker_url="redis://h:6379/3")
    assert notices.notice_url(redis_broker) == "redis://h:6379/3"
    assert notices.notice_url(Settings(broker_url="rediss://h:6380/0")) == "rediss://h:6380/0"
    assert notices.notice_url(Settings(broker_url="amqp://guest@h//")) is None
    assert notices.notice_url(Settings(broker_url="redis://h/0", notice_url="")) is None
    overridden = Settings(broker_url="amqp://guest@h//", notice_url="redis://n:6379/1")
    assert notices.notice_url(overridden) == "redis://n:6379/1"
    repository = Repository.from_settings(Settings(database_url=sqlite_url))
    try:
        assert notices.notice_url(redis_broker, repository) is None  # nobody shares SQLite
    finally:
        repository.close()


# -- what an EXPRESS end's notice carries (pure) --------------------------------------


def _row(**changes: Any) -> Any:
    from datetime import UTC, datetime

    from orchestrator.store.records import Execution

    now = datetime(2030, 1, 1, tzinfo=UTC)
    fields: dict[str, Any] = {
        "id": "e1", "state_machine_id": 1, "version_id": 1, "name": "n",
        "status": ExecutionStatus.RUNNING, "input": {"a": 1}, "output": None, "error": None,
        "cause": None, "cursor": None, "current_state": None, "priority": 5, "batch_id": None,
        "source_execution_id": None, "source_state_name": None, "started_at": now,
        "updated_at": now, "ended_at": None, "lease_owner": "w", "lease_expires_at": now,
        "revision": 0, "last_seq": 0, "wake_pending": False, "redrive_count": 0,
        "claim_count": 1, "execution_type": "EXPRESS",
    }  # fmt: skip
    fields.update(changes)
    return Execution(**fields)


def test_an_express_end_notice_is_the_row_stored() -> None:
    from datetime import UTC, datetime

    ended_at = datetime(2030, 1, 1, 0, 0, 1, 5, tzinfo=UTC)
    stored = replace(
        _row(input={"a": ["é", 1.5, None]}, trace_context={"traceparent": "00-x"}),
        status=ExecutionStatus.FAILED, output={"o": [1, "é"]}, error="E", cause="c",
        ended_at=ended_at, updated_at=ended_at, lease_owner=None, lease_expires_at=None,
        revision=1, claim_count=0,
    )  # fmt: skip
    notice = notices.express_end(stored, '{"o":[1,"é"]}')
    assert notice is not None
    assert notices.ended_row("e1", notice.encode()) == stored
    assert notices.ended_row("e1", notice) == stored


def test_a_notice_that_is_not_an_ended_row_of_this_execution_is_not_used() -> None:
    from datetime import UTC, datetime

    ended_at = datetime(2030, 1, 1, tzinfo=UTC)
    stored = replace(
        _row(), status=ExecutionStatus.SUCCEEDED, ended_at=ended_at, revision=1, claim_count=0
    )
    notice = notices.express_end(stored, "null")
    assert notice is not None
    assert notices.ended_row("another", notice) is None
    assert notices.ended_row("e1", b"SUCCEEDED") is None  # a status only: read the row
    assert notices.ended_row("e1", b'{"id": "e1", "status": "x"}') is None
    assert notices.ended_row("e1", b'{"id": "e1"}') is None
    running = replace(stored, status=ExecutionStatus.RUNNING)
    assert notices.ended_row("e1", notices.express_end(running, "null") or "") is None
    too_large = "1" * (notices.DETAIL_MAX_CHARS + 1)
    assert notices.express_end(stored, too_large) is None
    half = "[" + ",".join(["1"] * (notices.DETAIL_MAX_CHARS // 4)) + "]"
    assert notices.express_end(replace(stored, input=json.loads(half)), half) is None
