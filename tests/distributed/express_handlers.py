"""Test-only handlers loaded INTO worker subprocesses (``ORCHESTRATOR_HANDLER_MODULES``).

``tests.express.work`` appends ``<execution id> <pid> <lease owner>`` to the ledger
file its input names (every call, so a test counts how often each execution ran;
the lease owner, read from the database, only if the input asks with ``owner``),
sleeps for ``sleep`` seconds, and returns its input's ``i`` doubled.
"""

from __future__ import annotations

import os
import time
from typing import Any

from orchestrator.handlers import HandlerContext, handler


@handler("tests.express.work")
def work(data: Any, ctx: HandlerContext) -> dict[str, Any]:
    """Record the call, take a while, answer."""
    owner = "-"
    if data.get("owner"):
        from orchestrator.worker import worker_client

        owner = str(worker_client().repository.get_execution(ctx.execution_id).lease_owner)
    with open(data["ledger"], "a", encoding="utf-8") as ledger:
        ledger.write(f"{ctx.execution_id} {os.getpid()} {owner}\n")
    time.sleep(float(data.get("sleep", 0)))
    return {"n": 2 * int(data["i"])}
