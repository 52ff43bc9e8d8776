"""Steering batches over HTTP: pause, resume, cancel, and a batch's failures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi.testclient import TestClient

from orchestrator.batch import BatchOptions, Mode, execute_bulk
from orchestrator.handlers import HandlerRegistry
from orchestrator.runtime import Runner
from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine
from orchestrator.store import Repository
from tests.batch.work import MACHINE, RESOURCE, work


def start_batch(settings: Settings, count: int, mode: Mode) -> str:
    """A bulk batch of ``count`` inputs (2 in 5 fail), published nowhere or run here."""
    repo = Repository.from_settings(settings)
    try:
        handlers = HandlerRegistry()
        handlers.register(RESOURCE, work)
        created = StateMachine.create("bulk", MACHINE, repository=repo, settings=settings)
        runner = Runner(repo, settings=settings, handlers=handlers)
        machine = StateMachine(
            created.version_record, repository=repo, settings=settings, runner=runner
        )

        def drop(ids: Sequence[str], priority: Any) -> int:
            return len(ids)

        options = BatchOptions(name_prefix="b", mode=mode, failure_pause_threshold=None)
        inputs = [{"n": n} for n in range(count)]
        return execute_bulk(machine, inputs, options, publisher=drop).batch_id
    finally:
        repo.close()


def test_a_batch_is_paused_resumed_and_cancelled_over_http(
    api_settings: Settings, make_client: Callable[..., TestClient]
) -> None:
    # Given 20 executions published, none started
    client = make_client(api_settings)
    batch_id = start_batch(api_settings, 20, "distributed")

    # When it is paused twice, then resumed with its guard disarmed
    paused = client.post(f"/batches/{batch_id}/pause", json={"reason": "freeze"}).json()
    again = client.post(f"/batches/{batch_id}/pause").json()
    resumed = client.post(f"/batches/{batch_id}/resume", json={"arm_guard": False}).json()

    # Then the first pause held all 20, the second nothing, and the resume released them
    assert (paused["changed"], paused["held"], paused["batch"]["status"]) == (True, 20, "PAUSED")
    assert paused["batch"]["status_reason"] == "freeze"
    assert (again["changed"], again["held"]) == (False, 0)
    assert (resumed["released"], resumed["published"]) == (20, 20)
    assert resumed["batch"]["guard_armed"] is False

    # And a cancel aborts them; a cancelled batch cannot be resumed; an unknown one is a 404
    cancelled = client.post(f"/batches/{batch_id}/cancel").json()
    assert (cancelled["aborted"], cancelled["batch"]["status"]) == (20, "CANCELLED")
    assert client.post(f"/batches/{batch_id}/resume").status_code == 409
    assert client.post("/batches/nope/pause").status_code == 404


def test_a_batchs_failures_are_listed_archived_and_redriven_over_http(
    api_settings: Settings, make_client: Callable[..., TestClient]
) -> None:
    # Given a batch of 10 run to its end, 4 of which failed
    client = make_client(api_settings)
    batch_id = start_batch(api_settings, 10, "local")

    # Then its failures page with their errors
    page = client.get(f"/batches/{batch_id}/failures", params={"limit": 3}).json()
    assert len(page["items"]) == 3
    assert page["next_cursor"]
    assert page["items"][0]["error"] == "ValueError"
    assert client.get(f"/batches/{batch_id}/failures", params={"cursor": "x"}).status_code == 422

    # And once archived they leave the listing, are not redriven, and are not deleted
    assert client.post(f"/batches/{batch_id}/failures/archive").json() == {"count": 4}
    assert client.get(f"/batches/{batch_id}/failures").json()["items"] == []
    archived = client.get(f"/batches/{batch_id}/failures", params={"archived": "only"}).json()
    assert len(archived["items"]) == 4
    assert client.post(f"/batches/{batch_id}/failures/redrive").json() == {"count": 0}
    shown = client.get(f"/batches/{batch_id}").json()
    assert shown["archived_count"] == 4
    assert shown["failure_rate"] is not None
