"""Task handlers loaded INTO the multihost workers (``ORCHESTRATOR_HANDLER_MODULES``).

``multihost.effect`` is the business side effect the tests count, as in
``tests.distributed.reliability_handlers`` but without its Redis side channel
(the broker here is a Sentinel set, not one Redis): one ``ledger`` row per
idempotency key, ``calls`` counting how often the key was presented, ``hosts``
which worker hosts presented it. The write goes to the execution's database, at
``$MULTIHOST_LEDGER_URL`` if set (the db host's second address, which a cut of
the orchestrator's own address spares: scenario 3 cuts the worker from
PostgreSQL, not the handler from the service it calls). It is retried for
:data:`RECONNECT_SECONDS` while unreachable, with libpq timeouts so a partition
fails a call in seconds instead of hanging it.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any

import psycopg2
from sqlalchemy.engine import make_url

from orchestrator.handlers import HandlerContext, handler
from orchestrator.settings import get_settings

if "pytest" in sys.modules:  # pragma: no cover - a guard, not a code path
    raise RuntimeError("tests.multihost.ledger_handlers is for worker subprocesses only")

RECONNECT_SECONDS = 120.0

LEDGER_DDL = """
CREATE TABLE ledger (
    idempotency_key text PRIMARY KEY,
    execution_id text NOT NULL,
    state_name text NOT NULL,
    calls integer NOT NULL,
    hosts text[] NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""

LEDGER_UPSERT = """
INSERT INTO ledger (idempotency_key, execution_id, state_name, calls, hosts)
VALUES (%s, %s, %s, 1, ARRAY[%s])
ON CONFLICT (idempotency_key)
DO UPDATE SET calls = ledger.calls + 1, hosts = ledger.hosts || EXCLUDED.hosts
"""

_connection: dict[int, Any] = {}


def _connect() -> Any:
    pid = os.getpid()
    conn = _connection.get(pid)
    if conn is None or conn.closed:
        ledger = os.environ.get("MULTIHOST_LEDGER_URL") or get_settings().database_url
        url = make_url(ledger).set(drivername="postgresql")
        conn = psycopg2.connect(url.render_as_string(hide_password=False))
        conn.autocommit = True
        _connection[pid] = conn
    return conn


@handler("multihost.effect")
def effect(data: Any, ctx: HandlerContext) -> Any:
    """Record this call in the ledger; retry while the database is unreachable."""
    deadline = time.monotonic() + RECONNECT_SECONDS
    while True:
        try:
            with _connect().cursor() as cur:
                cur.execute(
                    LEDGER_UPSERT,
                    (ctx.idempotency_key, ctx.execution_id, ctx.state, socket.gethostname()),
                )
            return {"recorded": ctx.state}
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            _connection.pop(os.getpid(), None)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
