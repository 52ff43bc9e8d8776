"""The client host's program: start a batch with ``execute_batch``, print its id as JSON.

Run inside the ``c`` namespace by the multihost tests, with the settings of the
deployment in its environment (``ORCHESTRATOR_*``): it reaches PostgreSQL and the
brokers over the namespace network, as a client on its own host would.
"""

from __future__ import annotations

import json
import sys
import time

from orchestrator.statemachine import StateMachine
from orchestrator.store import ExecutionFilter
from orchestrator.types import ExecutionStatus

MACHINE_NAME = "multihost"
SOURCE_MACHINE = "multihost-source"


def main() -> None:
    """``python -m tests.multihost.client PREFIX``: one batch over every source."""
    prefix = sys.argv[1]
    started = time.time()
    machine = StateMachine.load(MACHINE_NAME)
    result = machine.execute_batch(
        ExecutionFilter(state_machine=SOURCE_MACHINE, status=ExecutionStatus.SUCCEEDED),
        name_prefix=prefix,
        priority="default",
    )
    print(
        json.dumps(
            {
                "batch_id": result.batch_id,
                "created": result.created,
                "published": result.published,
                "started": started,
                "seconds": time.time() - started,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
