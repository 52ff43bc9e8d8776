"""Task handlers loaded INTO the batch tests' worker subprocesses.

``ORCHESTRATOR_HANDLER_MODULES=tests.batch.handlers`` makes a worker import this
module before its pool forks, registering :func:`tests.batch.work.work` on the
process-wide registry; the workers run the real runtime against the test's
PostgreSQL database. Tests in the pytest process register it on a registry of
their own instead, so this module is for workers only.
"""

from __future__ import annotations

import sys

from orchestrator.handlers import handler
from tests.batch.work import RESOURCE, work

if "pytest" in sys.modules:  # pragma: no cover - a guard, not a code path
    raise RuntimeError("tests.batch.handlers is for worker subprocesses only")

handler(RESOURCE)(work)
