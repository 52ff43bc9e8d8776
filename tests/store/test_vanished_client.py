"""A client that vanishes in the middle of a transaction does not lock its rows for good.

Found on several hosts (issue 17, ``tests/multihost``): a worker cut from
PostgreSQL between the group claim's UPDATE and its COMMIT gave up on the
connection, but the server never learnt that the client was gone. Its backend sat
"idle in transaction" holding the row locks of one message's executions: they
stayed PENDING, the sweeper skipped them (``SKIP LOCKED``) and every later claim
of them waited on the locks, for as long as the server's TCP keepalive takes
(hours). Here a proxy on loopback plays the vanished network: it swallows the
first COMMIT and hangs up on the client while keeping the server's side open.
The group claim has since become one autocommitted statement (no COMMIT to lose);
the test cuts another transaction of several statements, a new version's.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from orchestrator.settings import Settings
from orchestrator.store import Repository

from .conftest import DEFINITION

LEASE = 1.0


class VanishingProxy:
    """Forwards TCP to PostgreSQL; on the first COMMIT, drops the client, keeps the server side.

    The backend behind the swallowed COMMIT is left exactly as a network cut leaves
    it: its transaction open, its client unreachable, its socket alive.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.swallowed = threading.Event()
        self.stranded: list[socket.socket] = []
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while not self.closing:
                ready, _, _ = select.select([client, server], [], [], 0.2)
                for side in ready:
                    data = side.recv(65536)
                    if not data:
                        client.close()
                        server.close()
                        return
                    if side is client and b"COMMIT" in data and not self.swallowed.is_set():
                        self.swallowed.set()
                        self.stranded.append(server)  # open, silent: the cut
                        client.close()
                        return
                    (server if side is client else client).sendall(data)

    def close(self) -> None:
        self.closing = True
        self.listener.close()
        for sock in self.stranded:
            sock.close()


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[VanishingProxy]:
    url = make_url(postgres_url)
    vanishing = VanishingProxy((url.host or "127.0.0.1", url.port or 5432))
    yield vanishing
    vanishing.close()


def test_a_transaction_cut_before_its_commit_does_not_lock_its_rows_for_good(
    postgres_url: str, proxy: VanishingProxy
) -> None:
    direct = Repository.from_settings(Settings(database_url=postgres_url, lease_seconds=LEASE))
    proxied_url = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
    cut = Repository.from_settings(
        Settings(
            database_url=proxied_url.render_as_string(hide_password=False), lease_seconds=LEASE
        )
    )
    try:
        _, version, _ = direct.create_or_get_version("orders", DEFINITION)
        ids = [direct.create_execution(version, name=f"run-{i}")[0].id for i in range(10)]

        # The group claim is one autocommitted statement (issue 16): no COMMIT to lose.
        claimed = cut.claim_many(ids, "w1", lease_seconds=LEASE)
        assert sorted(claimed) == sorted(ids)
        assert not proxy.swallowed.is_set()

        # A transaction of several statements (a new version: the machine's row is
        # locked, the version inserted) loses its COMMIT; w1 sees an error.
        with pytest.raises(sqlalchemy.exc.OperationalError):
            cut.create_or_get_version("orders", {**DEFINITION, "Comment": "lost"})
        assert proxy.swallowed.is_set()

        # Another process stores a version of the same machine. Before the fix this
        # waited on the stranded backend's row lock for as long as the server kept it
        # (hours); now the server ends that transaction once it has sat idle for a lease.
        result: dict[str, Any] = {}

        def store() -> None:
            result["stored"] = direct.create_or_get_version(
                "orders", {**DEFINITION, "Comment": "v2"}
            )

        worker = threading.Thread(target=store, daemon=True)
        worker.start()
        worker.join(timeout=60)  # a liveness bound, far above the lease
        assert not worker.is_alive(), "the write still waits on the vanished client's lock"
        assert result["stored"][1].version == 2  # the cut transaction was rolled back
    finally:
        cut.close()
        direct.close()


def idle_timeout(repo: Repository) -> str:
    with repo.engine.connect() as conn:
        return str(conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar())


def test_a_repository_from_settings_ends_transactions_idle_for_a_lease(postgres_url: str) -> None:
    repo = Repository.from_settings(Settings(database_url=postgres_url, lease_seconds=7))
    try:
        assert idle_timeout(repo) == "7s"
    finally:
        repo.close()


def test_a_shorter_timeout_already_set_is_kept(postgres_url: str) -> None:
    url = make_url(postgres_url).update_query_dict(
        {"options": "-c idle_in_transaction_session_timeout=2000"}
    )
    repo = Repository.from_settings(
        Settings(database_url=url.render_as_string(hide_password=False), lease_seconds=7)
    )
    try:
        assert idle_timeout(repo) == "2s"
    finally:
        repo.close()
