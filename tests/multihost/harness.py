"""Hosts as Linux network namespaces on a bridge: the multihost tests' world.

A :class:`Lab` makes, for one test module:

- a switch namespace ``<run>-sw`` holding a bridge, and one namespace per host,
  each joined to the bridge by a veth pair (``eth0`` inside the host) with an
  address in ``10.231.17.0/24``. The root namespace gets no address and no route,
  and no host has a default route: traffic never leaves these namespaces.
- processes started inside a host (``ip netns exec``), each in its own process
  group, tracked by PID and stopped at :meth:`Lab.close`, which also deletes every
  namespace (and with them the veths and the bridge), after a failure too.

Faults:

- :meth:`Lab.partition`/:meth:`Lab.heal`: the host's port on the bridge goes
  down/up. Packets vanish, as in a real partition (the host's own link stays up,
  so its connections hang rather than fail at once).
- :meth:`Lab.cut`/:meth:`Lab.uncut`: one host no longer reaches one peer (a static
  neighbour entry to a MAC address nobody has), everything else still flows.
- Delay and loss: this kernel has no netem, see :mod:`tests.multihost.proxy`, which
  :func:`proxy_command` runs inside a host.

The test process itself stays in the root namespace; it reaches PostgreSQL and
Redis through their Unix sockets (a Unix socket is a file, not bound to a network
namespace).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SUBNET = "10.231.17"
#: Host name -> last octet of its address.
HOSTS: Mapping[str, int] = {
    "db": 10,
    "r1": 21,
    "r2": 22,
    "r3": 23,
    "w1": 31,
    "w2": 32,
    "c": 40,
}
#: Second addresses of a host (name -> (host, last octet)): ``ledger`` is the ``db``
#: host's PostgreSQL seen at another address, so a cut of ``db`` (a neighbour entry
#: per address) can spare the test's own instrument, the handlers' ledger.
ALIASES: Mapping[str, tuple[str, int]] = {"ledger": ("db", 11)}
NOWHERE_MAC = "02:00:00:00:00:99"


class LabUnavailable(Exception):
    """Network namespaces cannot be made here (not root, no ``ip``, no veth)."""


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; raise with its output when it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)  # noqa: S603
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


@dataclass
class Proc:
    """A process started in a host: its Popen, log and name."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """The process's PID (also its process group)."""
        return self.process.pid

    def log(self) -> str:
        """What it wrote so far."""
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        """Whether it still runs."""
        return self.process.poll() is None

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to its whole process group (a worker and its pool)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGCONT + SIGTERM the group; SIGKILL it after ``timeout``."""
        if self.alive():
            self.signal_group(signal.SIGCONT)
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


@dataclass
class Lab:
    """The namespaces, bridge and processes of one test module."""

    run_id: str = field(default_factory=lambda: "mh" + uuid.uuid4().hex[:4])
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="orch-multihost-")))
    procs: list[Proc] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)

    # -- topology -------------------------------------------------------------

    def ns(self, host: str) -> str:
        """The namespace name of ``host``."""
        return f"{self.run_id}-{host}"

    @staticmethod
    def ip(host: str) -> str:
        """The address of ``host`` (or of an alias in :data:`ALIASES`)."""
        if host in ALIASES:
            return f"{SUBNET}.{ALIASES[host][1]}"
        return f"{SUBNET}.{HOSTS[host]}"

    def port(self, host: str) -> str:
        """The bridge-side end of ``host``'s veth (in the switch namespace)."""
        return f"p{self.run_id[2:]}{host}"

    def build(self) -> Lab:
        """Make the switch and every host; raise LabUnavailable where that cannot work."""
        if os.geteuid() != 0:
            raise LabUnavailable("network namespaces need root (run the multihost tests as root)")
        if shutil.which("ip") is None:
            raise LabUnavailable("iproute2's ip command is not installed")
        self.root.chmod(0o755)  # PostgreSQL runs as the postgres user below it
        switch = self.ns("sw")
        try:
            self._add_namespace(switch)
        except RuntimeError as exc:
            raise LabUnavailable(f"cannot create a network namespace: {exc}") from exc
        run("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", switch, "link", "set", "br0", "up")
        for host in HOSTS:
            self._add_host(host)
        return self

    def _add_namespace(self, name: str) -> None:
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")

    def _add_host(self, host: str) -> None:
        name, switch, port = self.ns(host), self.ns("sw"), self.port(host)
        self._add_namespace(name)
        inside = f"e{self.run_id[2:]}{host}"
        run(
            "ip",
            "link",
            "add",
            inside,
            "netns",
            name,
            "type",
            "veth",
            "peer",
            port,
            "netns",
            switch,
        )
        run("ip", "-n", name, "link", "set", inside, "name", "eth0")
        run("ip", "-n", name, "addr", "add", f"{self.ip(host)}/24", "dev", "eth0")
        for alias, (owner, _) in ALIASES.items():
            if owner == host:
                run("ip", "-n", name, "addr", "add", f"{self.ip(alias)}/24", "dev", "eth0")
        run("ip", "-n", name, "link", "set", "eth0", "up")
        run("ip", "-n", switch, "link", "set", port, "master", "br0")
        run("ip", "-n", switch, "link", "set", port, "up")

    def close(self) -> None:
        """Stop every process started here (by PID), delete every namespace and the files."""
        for proc in reversed(self.procs):
            proc.stop()
        for name in reversed(self.namespaces):
            run("ip", "netns", "del", name, check=False)
        self.namespaces.clear()
        keep = os.environ.get("MULTIHOST_KEEP_LOGS")
        if keep:  # a folder to copy every process's log into (CI artifacts, debugging)
            Path(keep).mkdir(parents=True, exist_ok=True)
            for log in self.root.glob("*.log"):
                shutil.copy(log, Path(keep) / f"{self.run_id}-{log.name}")
        shutil.rmtree(self.root, ignore_errors=True)

    # -- faults -----------------------------------------------------------------

    def partition(self, host: str) -> None:
        """Cut ``host`` off from every other host (its bridge port goes down)."""
        run("ip", "-n", self.ns("sw"), "link", "set", self.port(host), "down")

    def heal(self, host: str) -> None:
        """Undo :meth:`partition`."""
        run("ip", "-n", self.ns("sw"), "link", "set", self.port(host), "up")

    def cut(self, host: str, peer: str) -> None:
        """``host`` can no longer reach ``peer`` (its packets go to a MAC nobody has)."""
        run(
            "ip", "-n", self.ns(host), "neigh", "replace", self.ip(peer),
            "lladdr", NOWHERE_MAC, "dev", "eth0", "nud", "permanent",
        )  # fmt: skip

    def uncut(self, host: str, peer: str) -> None:
        """Undo :meth:`cut`."""
        run("ip", "-n", self.ns(host), "neigh", "del", self.ip(peer), "dev", "eth0", check=False)

    # -- processes -----------------------------------------------------------------

    def start(
        self,
        host: str,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        hostname: bool = False,
    ) -> Proc:
        """Start ``argv`` inside ``host``, in a process group of its own.

        Args:
            host: where it runs.
            name: its name (and its log file's).
            argv: the command.
            env: its environment (default: ours).
            user: run it as this user (``setpriv``), e.g. ``postgres``.
            hostname: give it a UTS namespace whose host name is ``host``, so lease
                owners and Celery node names tell the hosts apart.
        """
        command = ["ip", "netns", "exec", self.ns(host)]
        if hostname:
            command += ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$0" "$@"']
        if user is not None:
            command += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
        command += list(argv)
        log_path = self.root / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603  # our own commands
                command,
                cwd=REPO_ROOT,
                env=dict(os.environ if env is None else env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        proc = Proc(name, process, log_path)
        self.procs.append(proc)
        return proc

    def wait_log(self, proc: Proc, text: str, *, timeout: float = 30.0) -> None:
        """Wait until ``proc`` logged ``text``; raise with its log if it exits first."""
        deadline = time.monotonic() + timeout
        while text not in proc.log():
            if not proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} did not log {text!r}:\n{proc.log()[-3000:]}")
            time.sleep(0.1)


def python_command(*args: str) -> list[str]:
    """Our interpreter, unbuffered, with ``args``."""
    return [sys.executable, "-u", *args]


def proxy_command(
    listen: tuple[str, int], target: tuple[str, int], *, delay: float, loss: float
) -> list[str]:
    """The command that runs :mod:`tests.multihost.proxy` as a process."""
    return python_command(
        "-m", "tests.multihost.proxy",
        "--listen", f"{listen[0]}:{listen[1]}", "--target", f"{target[0]}:{target[1]}",
        "--delay", str(delay), "--loss", str(loss),
    )  # fmt: skip
