"""The client: one composition root, built from explicit parts, with handles by id.

Real databases (PostgreSQL and SQLite); the publisher is a recorder, since what
is under test is which parts the client hands where, not Celery.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from typer.testing import CliRunner

from orchestrator import Orchestrator, pause_batch, send_message
from orchestrator.cli import app
from orchestrator.client import client_for
from orchestrator.errors import BatchNotFound, ExecutionNotFound, MessageRefused
from orchestrator.settings import Settings
from orchestrator.store import ExecutionFilter, Repository
from orchestrator.types import BatchStatus, ExecutionStatus
from tests.support import FakeClock

PASS = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
LISTEN = {
    "StartAt": "Listen",
    "States": {"Listen": {"Type": "Message", "CorrelationKey": "order", "End": True}},
}
FAILS = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "no"}}}


class Recorder:
    """A publisher that keeps what it was given."""

    def __init__(self) -> None:
        self.published: list[tuple[list[str], str | int]] = []

    def __call__(self, execution_ids: Sequence[str], priority: str | int) -> int:
        self.published.append((list(execution_ids), priority))
        return len(execution_ids)

    @property
    def ids(self) -> list[str]:
        return [execution_id for ids, _ in self.published for execution_id in ids]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def client(settings: Settings, repo: Repository, recorder: Recorder) -> Orchestrator:
    return Orchestrator(settings, repository=repo, publisher=recorder, clock=FakeClock())


def test_a_client_built_from_parts_hands_them_to_its_machines_and_runner(
    client: Orchestrator, repo: Repository, recorder: Recorder
) -> None:
    # Given a client over a repository, a recording publisher and a fake clock
    sm = client.create_state_machine("parts", PASS)
    # Then its state machines and its runner use exactly those parts
    assert sm.client is client
    assert sm.repository is repo
    assert client.runner.repo is repo
    assert isinstance(client.runner.clock, FakeClock)
    # and an async start is published with its publisher
    started = sm.start_async({"n": 1}, priority="low")
    assert recorder.published == [([started.id], "low")]


def test_parts_not_given_are_borrowed_from_the_shared_client_of_the_same_settings(
    settings: Settings, repo: Repository
) -> None:
    # Given the shared client of some settings, and a client with only a publisher
    shared = Orchestrator.shared(settings)
    partial = Orchestrator(settings, publisher=Recorder())
    # Then both use one repository (one pool per settings), and the shared one is unique
    assert partial.repository is shared.repository
    assert Orchestrator.shared(settings) is shared
    assert client_for(settings=settings) is shared
    assert client_for(settings=settings, repository=repo).repository is repo


def test_an_execution_handle_describes_waits_for_and_reads_the_history(
    client: Orchestrator,
) -> None:
    sm = client.create_state_machine("handled", PASS)
    done = sm.start({"x": 1})
    handle = client.execution(done.id)
    assert handle.describe() == done
    assert handle.wait(timeout=5).status == ExecutionStatus.SUCCEEDED
    assert [e.state_name for e in handle.history() if e.event_type == "StateSucceeded"] == ["A"]


def test_an_execution_handle_stops_and_redrives(client: Orchestrator) -> None:
    # Given an execution parked on a Message state
    sm = client.create_state_machine("stoppable", LISTEN)
    waiting = sm.start("o-1")
    handle = client.execution(waiting.id)
    # When it is stopped through its handle, twice
    assert handle.stop(error="Ops.Stop", cause="by hand") is True
    assert handle.stop() is False
    stopped = handle.describe()
    assert (stopped.status, stopped.error) == (ExecutionStatus.ABORTED, "Ops.Stop")
    # Then a message for it is refused, and a redrive puts it back to waiting
    with pytest.raises(MessageRefused):
        client.send_message("order", "o-1", {"paid": True})
    assert handle.redrive().status == ExecutionStatus.WAITING


def test_a_handle_on_an_unknown_id_is_built_but_raises_when_asked(
    client: Orchestrator,
) -> None:
    with pytest.raises(ExecutionNotFound):
        client.execution("nope").describe()
    with pytest.raises(ExecutionNotFound):
        client.execution("nope").stop()
    with pytest.raises(BatchNotFound):
        client.batch("nope").describe()


def test_a_batch_handle_steers_a_batch_and_lists_its_failures(
    client: Orchestrator, recorder: Recorder
) -> None:
    # Given a distributed batch of three, published with the client's publisher
    sm = client.create_state_machine("bulk", PASS)
    result = sm.execute_bulk([{"n": n} for n in range(3)], name_prefix="b")
    assert sorted(recorder.ids) == sorted(
        e.id for e in sm.list_executions(ExecutionFilter(batch_id=result.batch_id)).items
    )
    handle = client.batch(result.batch_id)
    # When it is paused and resumed through its handle
    paused = handle.pause(reason="night freeze")
    assert (paused.batch.status, paused.held) == (BatchStatus.PAUSED, 3)
    resumed = handle.resume()
    assert (resumed.released, resumed.published) == (3, 3)
    # Then its record and progress are read through the same handle
    assert handle.record().id == result.batch_id
    progress = handle.progress()
    assert (progress.total, progress.finished) == (3, 0)
    assert handle.failures().items == ()
    assert handle.archive() == 0
    # and a cancel aborts what has not started
    cancelled = handle.cancel()
    assert cancelled.aborted == 3
    assert handle.wait(timeout=5).done


def test_a_local_batch_redriven_through_its_handle_runs_here(client: Orchestrator) -> None:
    # Given a local batch whose executions all fail
    sm = client.create_state_machine("failing", FAILS)
    result = sm.execute_bulk([1, 2], name_prefix="f", mode="local")
    handle = client.batch(result.batch_id)
    assert len(handle.failures().items) == 2
    # When its failures are redriven here, they run (and fail) again in this process
    assert handle.redrive(local=True) == 2
    assert {e.status for e in handle.failures().items} == {ExecutionStatus.FAILED}


def test_the_free_functions_are_thin_conveniences_over_a_client(
    settings: Settings, repo: Repository
) -> None:
    sm = Orchestrator(settings, repository=repo).create_state_machine("free", LISTEN)
    waiting = sm.start("o-9")
    assert send_message("order", "o-9", None, repository=repo, settings=settings) == [waiting.id]
    with pytest.raises(BatchNotFound):
        pause_batch("missing", repository=repo)


def test_the_cli_stops_an_execution_through_its_handle(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the CLI on the test's database (its one client is the shared one)
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", settings.database_url)
    sm = Orchestrator.shared(Settings(database_url=settings.database_url)).create_state_machine(
        "cli", LISTEN
    )
    waiting = sm.start("o-2")
    # When it stops the execution twice, and an unknown one
    runner = CliRunner()
    first = runner.invoke(app, ["executions", "stop", waiting.id, "--error", "Cli.Stop"])
    again = runner.invoke(app, ["executions", "stop", waiting.id])
    unknown = runner.invoke(app, ["executions", "stop", "no-such-id"])
    # Then it says what happened each time; an unknown id is one line and exit 2
    assert (first.exit_code, first.output.strip()) == (0, "stopped")
    assert (again.exit_code, again.output.strip()) == (0, "already ended")
    assert unknown.exit_code == 2
    assert "no-such-id" in unknown.output


def test_start_tickets_come_with_the_clients_own_celery_publisher_only(
    settings: Settings, repo: Repository, recorder: Recorder
) -> None:
    # Given a client with its own (Celery) publisher, already used, and one given another
    own = Orchestrator(settings, repository=repo)
    assert own.publisher is not None  # built on first use; tickets stay on
    given = Orchestrator(settings, repository=repo, publisher=recorder)

    # Then EXPRESS starts take a ticket on the first only
    ticket = own.start_ticket()
    assert ticket is not None
    assert ticket.startswith("@start:")
    assert own.start_ticket() != ticket
    assert given.start_ticket() is None

    # And a machine started on the other publisher is stored PENDING and published by id
    machine = given.create_state_machine("express", PASS, machine_type="EXPRESS")
    started = machine.start_async({"n": 1})
    assert started.status == ExecutionStatus.PENDING
    assert started.lease_owner is None
    assert recorder.ids == [started.id]
