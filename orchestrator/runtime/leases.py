"""Keeping a lease while a handler runs: one renewal thread per runner."""

from __future__ import annotations

import logging
import threading

from orchestrator.errors import LeaseLost
from orchestrator.store import Repository

log = logging.getLogger("orchestrator.runtime")


class LeaseKeeper:
    """One background thread per runner that renews the leases it is asked to hold.

    Holding a lease is two dict operations, so a short task costs no thread start;
    a long one is renewed every third of the lease.
    """

    def __init__(self, repo: Repository, owner: str, lease_seconds: float) -> None:
        self.repo, self.owner, self.lease_seconds = repo, owner, lease_seconds
        # Counted: a group holds every lease of its message while one of them
        # also holds its own around a handler call.
        self._held: dict[str, list[LeaseLost]] = {}
        self._counts: dict[str, int] = {}
        #: Leases held under another owner than the runner's (a start ticket's).
        self._owners: dict[str, str] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lease-keeper", daemon=True)
        self._thread.start()

    def hold(self, execution_id: str, owner: str | None = None) -> list[LeaseLost]:
        """Start renewing (``owner``'s lease, default the runner's); the returned
        list receives LeaseLost if renewal fails."""
        with self._lock:
            if owner is not None and owner != self.owner:
                self._owners[execution_id] = owner
            lost = self._held.setdefault(execution_id, [])
            self._counts[execution_id] = self._counts.get(execution_id, 0) + 1
        return lost

    def drop(self, execution_id: str) -> None:
        """Stop renewing (once every hold of it is dropped)."""
        with self._lock:
            count = self._counts.pop(execution_id, 0) - 1
            if count > 0:
                self._counts[execution_id] = count
            else:
                self._held.pop(execution_id, None)
                self._owners.pop(execution_id, None)

    def _forget(self, execution_id: str) -> None:
        with self._lock:
            self._counts.pop(execution_id, None)
            self._held.pop(execution_id, None)
            self._owners.pop(execution_id, None)

    def _loop(self) -> None:
        interval = max(0.5, self.lease_seconds / 3)
        while not self._wake.wait(interval):
            with self._lock:
                owners = self._owners
                held = [(i, owners.get(i, self.owner), lost) for i, lost in self._held.items()]
            for execution_id, owner, lost in held:
                self._renew(execution_id, owner, lost)

    def _renew(self, execution_id: str, owner: str, lost: list[LeaseLost]) -> None:
        try:
            self.repo.renew_lease(execution_id, owner, lease_seconds=self.lease_seconds)
        except LeaseLost as exc:
            lost.append(exc)
            self._forget(execution_id)
        except Exception:  # a database hiccup: try again at the next interval
            log.warning("lease renewal failed", exc_info=True)


__all__ = ["LeaseKeeper"]
