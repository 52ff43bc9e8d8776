"""A three-node RabbitMQ cluster in the lab's namespaces (scenario 6 of issue 17).

One node on each of ``r1``, ``r2`` and ``r3`` (beside that host's Redis and
Sentinel: other ports), each with everything of its own under the lab's folder:
``RABBITMQ_MNESIA_BASE``, ``RABBITMQ_LOG_BASE``, configuration, enabled plugins
(none), and a ``HOME`` holding the cluster's Erlang cookie (the three nodes share
one cookie, made for this lab; the machine's own cookie is never read). Each
namespace runs its own ``epmd``, started and stopped here by PID. Node names are
long names on the hosts' addresses (``rabbit@10.231.17.21``), so nothing needs a
host name. The machine's own RabbitMQ (127.0.0.1:5672, ``/etc/rabbitmq``) is
neither read nor touched: its ``rabbitmq-env.conf`` is replaced by an empty file.

``r1`` starts first; ``r2`` and ``r3`` join it at their first boot (peer
discovery ``classic_config``). ``guest`` may log in from the lab's addresses
(``loopback_users = none``): the cluster is reachable only inside the namespaces.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.multihost.harness import Lab, Proc

RABBIT_HOSTS = ("r1", "r2", "r3")
RABBITMQ_SCRIPTS = Path("/usr/lib/rabbitmq/bin")
#: Each Erlang VM on one scheduler that sleeps when idle: three nodes share 2 cores.
ERL_ARGS = "+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none"


class RabbitUnavailable(Exception):
    """RabbitMQ's server or epmd is not installed here."""


def rabbitmq_installed() -> str | None:
    """Why a cluster cannot be started here, or None if it can."""
    if not (RABBITMQ_SCRIPTS / "rabbitmq-server").exists():
        return f"rabbitmq-server is not installed ({RABBITMQ_SCRIPTS})"
    if shutil.which("epmd") is None:
        return "epmd (Erlang) is not installed"
    return None


@dataclass
class RabbitCluster:
    """Three RabbitMQ nodes, clustered, in ``lab``; :meth:`stop` ends them by PID."""

    lab: Lab
    cookie: str = field(default_factory=lambda: secrets.token_hex(16).upper())
    nodes: dict[str, Proc] = field(default_factory=dict)
    epmds: dict[str, Proc] = field(default_factory=dict)

    def node(self, host: str) -> str:
        """The Erlang node name on ``host``."""
        return f"rabbit@{self.lab.ip(host)}"

    def home(self, host: str) -> Path:
        """The folder of ``host``'s node."""
        return self.lab.root / f"rabbit-{host}"

    def environment(self, host: str) -> dict[str, str]:
        """The environment of ``host``'s node and of ``rabbitmqctl`` talking to it."""
        home = self.home(host)
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(home / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(home / "log"),
            "RABBITMQ_PID_FILE": str(home / "rabbit.pid"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_NODENAME": self.node(host),
            "RABBITMQ_USE_LONGNAME": "true",
            "RABBITMQ_NODE_IP_ADDRESS": self.lab.ip(host),
            "RABBITMQ_NODE_PORT": "5672",
            "RABBITMQ_DIST_PORT": "25672",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": ERL_ARGS,
            "RABBITMQ_CTL_ERL_ARGS": ERL_ARGS,
        }

    def _prepare(self, host: str) -> None:
        home = self.home(host)
        for folder in (home, home / "mnesia", home / "log"):
            folder.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(self.cookie)
        cookie.chmod(0o400)
        (home / "rabbitmq-env.conf").write_text("")
        (home / "enabled_plugins").write_text("[].\n")
        peers = "".join(
            f"cluster_formation.classic_config.nodes.{i} = {self.node(h)}\n"
            for i, h in enumerate(RABBIT_HOSTS, start=1)
        )
        (home / "rabbitmq.conf").write_text(
            "loopback_users = none\n"
            "cluster_formation.peer_discovery_backend = classic_config\n"
            f"{peers}"
            # Quorum queues keep one copy per node; a small machine keeps little else.
            "vm_memory_high_watermark.absolute = 512MiB\n"
            "disk_free_limit.absolute = 50MB\n"
        )

    def start(self) -> RabbitCluster:
        """Start r1, then r2 and r3, which join it; wait until all three run clustered."""
        why = rabbitmq_installed()
        if why is not None:
            raise RabbitUnavailable(why)
        for host in RABBIT_HOSTS:
            self._prepare(host)
            self.epmds[host] = self.lab.start(
                host, f"epmd-{host}", ["epmd", "-port", "4369"], env=self.environment(host)
            )
        for index, host in enumerate(RABBIT_HOSTS):
            self.start_node(host)
            if index == 0:
                self.lab.wait_log(self.nodes[host], "Server startup complete", timeout=120)
        for host in RABBIT_HOSTS[1:]:
            self.lab.wait_log(self.nodes[host], "Server startup complete", timeout=120)
        deadline = time.monotonic() + 60
        while sorted(self.running_nodes("r1")) != sorted(map(self.node, RABBIT_HOSTS)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the nodes did not cluster: {self.running_nodes('r1')}")
            time.sleep(1)
        return self

    def start_node(self, host: str) -> Proc:
        """Start (or restart) the node on ``host``."""
        proc = self.lab.start(
            host,
            f"rabbit-{host}-{secrets.token_hex(2)}",
            [str(RABBITMQ_SCRIPTS / "rabbitmq-server")],
            env=self.environment(host),
        )
        self.nodes[host] = proc
        return proc

    def ctl(self, host: str, *args: str, tool: str = "rabbitmqctl") -> str:
        """Run ``rabbitmqctl`` (or another CLI tool) against ``host``'s node; its stdout."""
        command = [
            "ip", "netns", "exec", self.lab.ns(host), str(RABBITMQ_SCRIPTS / tool),
            "-n", self.node(host), "--longnames", *args,
        ]  # fmt: skip
        done = subprocess.run(  # noqa: S603  # our own command
            command,
            env=self.environment(host),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} on {host} failed: {done.stderr[-2000:]}")
        return done.stdout

    def running_nodes(self, host: str) -> list[str]:
        """The running nodes of the cluster, as ``host``'s node sees them."""
        try:
            status = json.loads(self.ctl(host, "cluster_status", "--formatter", "json"))
        except (RuntimeError, ValueError):
            return []
        return [str(n) for n in status.get("running_nodes", [])]

    def quorum_leaders(self, host: str) -> dict[str, str]:
        """Queue -> the node leading it, for the quorum queues (as ``host`` sees them)."""
        out = self.ctl(
            host, "list_queues", "name", "type", "leader", "--formatter", "json", "--quiet"
        )
        return {q["name"]: q.get("leader", "") for q in json.loads(out) if q["type"] == "quorum"}

    def kill(self, host: str) -> None:
        """SIGKILL ``host``'s node (the Erlang VM and its helpers)."""
        self.nodes[host].signal_group(signal.SIGKILL)

    def rss_mib(self) -> dict[str, float]:
        """Resident memory of each running node's process group, in MiB."""
        return {host: _group_rss_mib(proc.pid) for host, proc in self.nodes.items() if proc.alive()}

    def broker_url(self) -> str:
        """Celery's failover URL over the three nodes."""
        return ";".join(f"amqp://guest:guest@{self.lab.ip(h)}:5672//" for h in RABBIT_HOSTS)

    def stop(self) -> None:
        """Stop every node and epmd started here (by PID)."""
        for proc in [*self.nodes.values(), *self.epmds.values()]:
            proc.stop()


def _group_rss_mib(pgid: int) -> float:
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return round(total / 1024, 1)
