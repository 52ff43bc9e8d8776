"""``GET /metrics``: behind the token, the store's series, and the runtime's, from a real worker."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.client import Orchestrator
from orchestrator.runtime import metrics as runtime_metrics
from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine
from orchestrator.store import Repository
from tests.api.conftest import DOUBLE, FLAKY, create_machine, make_client, start  # noqa: F401
from tests.batch.conftest import (  # noqa: F401  # fixtures of ``cluster``
    Cluster,
    cluster,
    make_app,
    redis_db,
    start_worker,
    wait_for,
)
from tests.console.conftest import TOKEN
from tests.distributed.conftest import RedisDB

PASS: dict[str, Any] = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}

BEARER = {"Authorization": f"Bearer {TOKEN}"}


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name{labels}`` in an exposition, None when absent."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:]+)(?:\{(.*)\})? (\S+)", line)
        if not match or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match[3])
    return None


@pytest.fixture
def client(sqlite_url: str, make_client: Callable[..., TestClient]) -> TestClient:  # noqa: F811
    return make_client(Settings(database_url=sqlite_url, api_token=TOKEN), headers=BEARER)


def test_metrics_need_the_token(client: TestClient) -> None:
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")


def test_executions_state_durations_and_handler_errors(client: TestClient) -> None:
    create_machine(client, "flaky", FLAKY)
    before = client.get("/metrics").text
    errors_before = sample(
        before, "orchestrator_handler_errors_total", state_machine="flaky", error="Flaky.Failed"
    )
    failed = start(client, "flaky", {})
    assert failed["status"] == "FAILED"
    assert client.post(f"/executions/{failed['id']}/redrive").json()["status"] == "SUCCEEDED"

    text = client.get("/metrics").text
    assert sample(text, "orchestrator_executions_started_total", state_machine="flaky") == 1
    assert sample(text, "orchestrator_executions", state_machine="flaky", status="SUCCEEDED") == 1
    labels = {"state_machine": "flaky", "state": "Flaky", "resource": "api-tests.fail-once"}
    # The failed attempt and the redriven one each end the state once.
    durations = sample(text, "orchestrator_state_duration_seconds_count", **labels)
    assert durations is not None
    assert durations >= 2
    errors = sample(
        text, "orchestrator_handler_errors_total", state_machine="flaky", error="Flaky.Failed"
    )
    assert errors == (errors_before or 0) + 1
    assert sample(text, "orchestrator_queue_depth", queue="default") is not None
    assert sample(text, "orchestrator_leases_expired") == 0


@pytest.mark.slow
def test_a_prefork_workers_series_reach_the_apis_metrics(
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
    make_client: Callable[..., TestClient],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a prefork worker writing its series to a metrics dir the API reads
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    assert cluster.launch is not None
    assert cluster.redis is not None
    cluster.launch(
        cluster.redis.url,
        pool="prefork",
        concurrency=2,
        env={
            "ORCHESTRATOR_DATABASE_URL": cluster.settings.database_url,
            "ORCHESTRATOR_HANDLER_MODULES": "tests.batch.handlers",
            "ORCHESTRATOR_METRICS_DIR": str(metrics_dir),
        },
    )
    # When a batch of 10 runs there (4 of them fail)
    result = cluster.bulk([{"n": n} for n in range(10)], failure_pause_threshold=None)
    wait_for(
        lambda: (
            all(e.ended_at for e in cluster.executions(result.batch_id))
            and len(cluster.executions(result.batch_id)) == 10
        ),
        timeout=60,
        what="the batch to end",
    )
    settings = cluster.settings.model_copy(update={"metrics_dir": str(metrics_dir)})
    text = make_client(settings).get("/metrics").text

    # Then the API's /metrics has the worker processes' series
    labels = {"state_machine": "bulk", "state": "Work", "resource": "batch.work"}
    assert sample(text, "orchestrator_state_duration_seconds_count", **labels) == 10
    assert (
        sample(text, "orchestrator_handler_errors_total", state_machine="bulk", error="ValueError")
        == 4
    )
    assert sample(text, "orchestrator_executions_ended_total", state_machine="bulk",
                  status="FAILED") == 4  # fmt: skip


def test_threads_recording_at_once_create_the_series_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from orchestrator.runtime import metrics

    monkeypatch.setattr(metrics, "_series", None)
    created: list[object] = []
    real = metrics._Series

    def slow_series() -> object:
        created.append(object())
        threading.Event().wait(0.05)  # widen the window two threads race through
        return real.__new__(real)

    monkeypatch.setattr(metrics, "_Series", slow_series)
    threads = [threading.Thread(target=metrics.series) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(created) == 1


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_sweeper_recovery_and_the_lease_takeover_after_it_are_counted(
    database_url: str,
    redis_db: RedisDB,  # noqa: F811
) -> None:
    # Given an execution claimed by a worker that died: its lease expired two minutes ago
    settings = Settings(database_url=database_url, broker_url=redis_db.url, lease_seconds=1)
    repository = Repository.from_settings(settings)
    try:
        client = Orchestrator(settings, repository=repository)
        machine = StateMachine.create("orphaned", PASS, repository=repository, settings=settings)
        execution = machine.start_async({})  # published to Redis; no worker takes it
        long_ago = datetime.now(UTC) - timedelta(minutes=2)
        assert repository.claim(execution.id, "dead-worker", lease_seconds=1, now=long_ago)
        before = runtime_metrics.exposition(None).decode()

        # When the sweeper re-publishes it, and a runner then claims and finishes it
        assert client.sweep()["stalled"] == 1
        assert client.runner.advance(execution.id) is not None
        after = runtime_metrics.exposition(None).decode()
        status = repository.get_execution(execution.id).status.value
    finally:
        repository.close()

    # Then the recovery and the take-over are counted
    assert status == "SUCCEEDED"
    recovered = "orchestrator_recoveries_total"
    assert (sample(after, recovered, via="sweeper") or 0) == (
        sample(before, recovered, via="sweeper") or 0
    ) + 1
    takeovers = "orchestrator_lease_takeovers_total"
    assert (sample(after, takeovers, state_machine="orphaned") or 0) == (
        sample(before, takeovers, state_machine="orphaned") or 0
    ) + 1


def test_a_running_batchs_progress_and_the_queue_it_fills_are_series(
    sqlite_url: str,
    redis_db: RedisDB,  # noqa: F811
    make_client: Callable[..., TestClient],  # noqa: F811
) -> None:
    # Given a distributed batch of three published executions and no worker
    settings = Settings(database_url=sqlite_url, broker_url=redis_db.url, api_token=TOKEN)
    client = make_client(settings, headers=BEARER)
    create_machine(client, "doubler", DOUBLE)
    for n in range(3):
        start(client, "doubler", {"n": n}, name=f"source-{n}")
    answer = client.post(
        "/batches",
        json={
            "state_machine": "doubler",
            "filter": {"state_machine": "doubler", "name_prefix": "source-"},
            "name_prefix": "again",
            "priority": "low",
        },
    )
    assert answer.status_code == 202, answer.text

    # Then /metrics shows its executions by status and the depth of its queue
    text = client.get("/metrics").text
    batch_id = answer.json()["id"]
    assert sample(text, "orchestrator_batch_executions", batch_id=batch_id, status="PENDING") == 3
    assert sample(text, "orchestrator_queue_depth", queue="low") == 3
