"""The repository: the only code that writes SQL.

Each public method of :class:`Repository` is one use case and one short
transaction. Methods take plain values and return frozen records
(:mod:`orchestrator.store.records`); no session or connection leaves this
package. Races are settled by the database, not by the caller: claims,
checkpoints, message consumption and timer firing are conditional UPDATEs
whose affected rows say who won, so they hold across processes on PostgreSQL
(READ COMMITTED re-checks the condition after a concurrent update) and on
SQLite (writers take the lock at BEGIN).

Times: every method that depends on the clock takes ``now`` (timezone-aware,
default: the current UTC time), so the runtime's clock and tests decide.

The methods are grouped by concept in private modules: ``_definitions``
(state machines, versions), ``_executions`` (create, read, list; filters and
keyset paging in ``_paging``), ``_runs`` (leases, checkpoints, stop, redrive,
recovery), ``_waits`` (timers, message correlations) and ``_batches``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.store.engine import make_engine
from orchestrator.store.repository._base import DEFAULT_CHUNK_SIZE, DEFAULT_PAYLOAD_MAX_BYTES
from orchestrator.store.repository._batch_failures import BatchFailuresMixin
from orchestrator.store.repository._batch_list import BatchListMixin
from orchestrator.store.repository._batches import BatchesMixin
from orchestrator.store.repository._definitions import DefinitionsMixin
from orchestrator.store.repository._executions import ExecutionsMixin
from orchestrator.store.repository._runs import RunsMixin
from orchestrator.store.repository._waits import WaitsMixin

if TYPE_CHECKING:
    from orchestrator.settings import Settings


class Repository(
    DefinitionsMixin,
    ExecutionsMixin,
    RunsMixin,
    WaitsMixin,
    BatchesMixin,
    BatchFailuresMixin,
    BatchListMixin,
):
    """Use-case methods over the store's tables.

    Args:
        engine: from :func:`orchestrator.store.engine.make_engine` (SQLite or
            PostgreSQL). The repository does not dispose of it unless it made it.
        payload_max_bytes: largest JSON payload accepted, in bytes. Default 262144.
    """

    @classmethod
    def from_settings(cls, settings: Settings) -> Repository:
        """Open the database of ``settings.database_url``; ``close()`` disposes of it."""
        engine = make_engine(settings.database_url)
        repo = cls(engine, payload_max_bytes=settings.payload_max_bytes)
        repo._owns_engine = True
        return repo


__all__ = ["DEFAULT_CHUNK_SIZE", "DEFAULT_PAYLOAD_MAX_BYTES", "Repository"]
