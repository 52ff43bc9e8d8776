"""A TCP proxy that delays, "loses" and stalls traffic: the harness's stand-in for netem.

This machine's kernel has no ``netem`` qdisc (``tc qdisc add ... netem`` fails with
"Specified qdisc kind is unknown"), so delay, loss and stalls between two hosts are
made by a proxy in the path. It listens on one address and forwards every
connection to a target; each chunk read from either side is released to the other
side after a delay, always in order (TCP never reorders):

- ``delay``: a fixed one-way latency per chunk.
- ``loss``: the probability that a chunk is "lost". A TCP proxy cannot drop bytes
  (the stream would be corrupt); what loss costs a TCP connection is the
  retransmission, so a lost chunk is released ``retransmit`` seconds late (Linux's
  minimum retransmission timeout is 200 ms), holding everything behind it.
- ``stall_on``: when the client sends a chunk containing these bytes, the chunk
  (``direction="request"``) or the server's next answer (``direction="reply"``) is
  held for ``stall_seconds``: a statement caught in a partition in flight.

Plain threads, no asyncio: the tests that use it are synchronous, and a proxy
thread keeps running while the test thread blocks in a driver call.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field

CHUNK = 65536


@dataclass
class Faults:
    """What the proxy does to traffic now (changed while it runs)."""

    delay: float = 0.0
    loss: float = 0.0
    retransmit: float = 0.2
    stall_on: bytes | None = None
    stall_seconds: float = 0.0
    direction: str = "request"
    stalls: int = 0  # how many stalls happened (read by tests)
    seed: int = 17
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


class _Pipe:
    """One direction of one connection: read, hold until due, write in order."""

    def __init__(self, source: socket.socket, sink: socket.socket, proxy: DelayProxy) -> None:
        self.source, self.sink, self.proxy = source, sink, proxy
        self.queue: deque[tuple[float, bytes]] = deque()
        self.ready = threading.Condition()
        self.closed = False
        self.stall_next = False  # set by the other direction: hold the next reply

    def delay_for(self, data: bytes, peer: _Pipe | None) -> float:
        faults = self.proxy.faults
        extra = faults.delay
        if faults.loss and faults.rng.random() < faults.loss:
            extra += faults.retransmit
        if peer is not None and faults.stall_on and faults.stall_on in data:
            faults.stalls += 1
            if faults.direction == "request":
                extra += faults.stall_seconds
            else:
                peer.stall_next = True
        if self.stall_next:
            self.stall_next = False
            extra += faults.stall_seconds
        return extra

    def read_loop(self, peer: _Pipe | None) -> None:
        try:
            while data := self.source.recv(CHUNK):
                due = time.monotonic() + self.delay_for(data, peer)
                with self.ready:
                    # In order: never release before the chunk ahead of it.
                    if self.queue:
                        due = max(due, self.queue[-1][0])
                    self.queue.append((due, data))
                    self.ready.notify()
        except OSError:
            pass
        finally:
            with self.ready:
                self.closed = True
                self.ready.notify()

    def write_loop(self) -> None:
        try:
            while True:
                with self.ready:
                    while not self.queue and not self.closed:
                        self.ready.wait()
                    if not self.queue:
                        break
                    due, data = self.queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                with self.ready:
                    self.queue.popleft()
                self.sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                self.sink.shutdown(socket.SHUT_WR)


class DelayProxy:
    """Forward ``listen`` -> ``target`` with the :class:`Faults` in ``faults``.

    Args:
        target: (host, port) to connect to.
        listen: (host, port) to listen on; port 0 picks a free one (see ``port``).
    """

    def __init__(self, target: tuple[str, int], listen: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.target = target
        self.faults = Faults()
        self._server = socket.create_server(listen)
        self.host, self.port = self._server.getsockname()[:2]
        self._sockets: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)

    def __enter__(self) -> DelayProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> DelayProxy:
        """Start accepting connections."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop accepting and close every connection."""
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._server.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, server]
            up, down = _Pipe(client, server, self), _Pipe(server, client, self)
            for target, args in (
                (up.read_loop, (down,)),
                (up.write_loop, ()),
                (down.read_loop, (None,)),
                (down.write_loop, ()),
            ):
                threading.Thread(target=target, args=args, daemon=True).start()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> None:
    """Run a proxy until killed: ``python -m tests.multihost.proxy --listen H:P --target H:P``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_address, required=True)
    parser.add_argument("--target", type=_address, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="one-way seconds per chunk")
    parser.add_argument("--loss", type=float, default=0.0, help="share of chunks retransmitted")
    args = parser.parse_args(argv)
    proxy = DelayProxy(args.target, args.listen)
    proxy.faults.delay, proxy.faults.loss = args.delay, args.loss
    proxy.start()
    print(f"proxy ready on {proxy.host}:{proxy.port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
