"""No handler starts under an expired lease, even when the claim is delayed in flight.

Issue 17 found it on two namespace hosts: a worker cut from PostgreSQL for
longer than its lease had its claim committed when the link came back, and the
runner called the Task handler seconds after the lease had expired, while
another worker ran the same Task. Here a :class:`~tests.multihost.proxy.DelayProxy`
between the runner and PostgreSQL holds the claim (the request, or its reply)
for longer than the lease; the handler checks on a connection of its own, by the
database's clock, that the caller's lease is live when it is called.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from orchestrator.handlers import HandlerContext, HandlerRegistry
from orchestrator.runtime.runner import Runner
from orchestrator.settings import Settings
from orchestrator.store import Repository
from orchestrator.types import ExecutionStatus
from tests.multihost.proxy import DelayProxy

pytestmark = pytest.mark.slow

LEASE_SECONDS = 2.0
STALL_SECONDS = 4.0
MACHINE = {
    "StartAt": "Charge",
    "States": {"Charge": {"Type": "Task", "Resource": "lease.check", "End": True}},
}


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def proxied(postgres_url: str) -> Iterator[tuple[DelayProxy, str]]:
    """A proxy in front of the test's PostgreSQL, and the database URL through it."""
    url = make_url(postgres_url)
    with DelayProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        # Plain text on the wire, so the proxy can spot the claim's UPDATE.
        through = url.set(host=proxy.host, port=proxy.port, query={"sslmode": "disable"})
        yield proxy, through.render_as_string(hide_password=False)


class LeaseCheck:
    """A handler that records, per call, whether its caller held a live lease."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.calls: list[tuple[str | None, bool]] = []
        self.lock = threading.Lock()

    def __call__(self, data: Any, ctx: HandlerContext) -> Any:
        conn = psycopg2.connect(self.dsn)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT lease_owner, lease_expires_at > clock_timestamp() "
                    "FROM executions WHERE id = %s",
                    (ctx.execution_id,),
                )
                owner, live = cur.fetchone()
        finally:
            conn.close()
        with self.lock:
            self.calls.append((owner, bool(live)))
        return {"charged": True}


@pytest.mark.parametrize("direction", ["request", "reply"])
def test_no_handler_starts_under_a_lease_that_expired_in_flight(
    postgres_url: str, proxied: tuple[DelayProxy, str], direction: str
) -> None:
    proxy, through = proxied
    direct = Repository.from_settings(Settings(database_url=postgres_url))
    slow = Repository.from_settings(Settings(database_url=through))
    try:
        check = LeaseCheck(libpq(postgres_url))
        handlers = HandlerRegistry()
        handlers.register("lease.check", check)
        _, version, _ = direct.create_or_get_version("lease-in-flight", MACHINE)
        execution, _ = direct.create_execution(version, name="one")
        settings = Settings(database_url=through, lease_seconds=LEASE_SECONDS)
        stalled = Runner(slow, settings=settings, handlers=handlers, owner="stalled")
        slow.get_version_by_id(version.id)  # a warm connection: the next statement is the claim

        proxy.faults.stall_on = b"UPDATE executions"
        proxy.faults.stall_seconds = STALL_SECONDS
        proxy.faults.direction = direction
        stalled.advance(execution.id)
        proxy.faults.stall_on = None
        assert proxy.faults.stalls >= 1, "the claim never went through the proxy"

        # Whatever the stalled runner did, every handler call it made was under
        # its own live lease; the execution is then finished by another runner.
        assert all(live for _, live in check.calls), check.calls
        recovering = Runner(
            direct,
            settings=Settings(database_url=postgres_url, lease_seconds=LEASE_SECONDS),
            handlers=handlers,
            owner="recovering",
        )
        if direct.get_execution(execution.id).status != ExecutionStatus.SUCCEEDED:
            recovering.recover(grace_seconds=0.0)
        assert direct.get_execution(execution.id).status == ExecutionStatus.SUCCEEDED
        assert check.calls, "the Task never ran"
        assert all(live for _, live in check.calls), check.calls
    finally:
        slow.close()
        direct.close()
