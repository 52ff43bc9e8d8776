"""Flower's configuration: ``celery -A orchestrator flower --conf=flower/flowerconfig.py``.

Flower executes this file and reads the module-level names that match its
options. Everything comes from the environment through the orchestrator
settings (prefix ``ORCHESTRATOR_``), never from ``os.environ`` directly:

====================================  ===============  ==========================================
variable                              default          Flower option
====================================  ===============  ==========================================
``ORCHESTRATOR_FLOWER_BASIC_AUTH``    none             ``basic_auth``: ``user:password``, several
                                                       comma-separated
``ORCHESTRATOR_FLOWER_ADDRESS``       ``127.0.0.1``    ``address``
``ORCHESTRATOR_FLOWER_PORT``          ``5555``         ``port``
``ORCHESTRATOR_FLOWER_DB``            ``flower.db``    ``db``: the persistent state file
``ORCHESTRATOR_FLOWER_PERSISTENT``    ``true``         ``persistent``
``ORCHESTRATOR_FLOWER_SAVE_SECONDS``  ``60``           ``state_save_interval`` (in ms)
``ORCHESTRATOR_FLOWER_MAX_TASKS``     ``10000``        ``max_tasks``
====================================  ===============  ==========================================

The Tasks page shows each task's arguments (``tasks_columns``), so a
``orchestrator.run_execution`` task reads as the execution it advanced.
The broker is the orchestrator's (``ORCHESTRATOR_BROKER_URL``, through ``-A
orchestrator``). Flower's HTTP API answers 401 until basic auth is set, and a
non-loopback address is refused without it: the check runs on the address
Flower actually binds, after its command line (``--address=0.0.0.0`` or an
empty address cannot get around it). With basic auth set, every page needs it:
the UI, ``/tasks`` (task arguments), ``/api/*`` and the Prometheus metrics at
``/metrics`` (Flower 2 alone serves those without auth); only ``/healthcheck``
(it answers ``OK``) stays open, for load balancers. Workers must send task
events (``celery worker -E``, or ``ORCHESTRATOR_TASK_EVENTS=true``); Flower
also asks them to every few seconds (its ``enable_events`` option).

Only names without a leading underscore that match a Flower option are read,
so helpers here start with ``_`` or have names Flower does not know.
"""

# No ``from __future__ import annotations``: Flower execs this file outside any
# module, where pydantic could not resolve the fields' string annotations.
import ipaddress
from typing import Any

from pydantic import Field, SecretStr

from orchestrator.errors import ConfigurationError
from orchestrator.settings import Settings

#: Columns of the Tasks page: the arguments show each task's execution id.
TASKS_COLUMNS = "name,uuid,state,args,received,started,runtime,worker"


class FlowerSettings(Settings):
    """The orchestrator settings plus Flower's own (same ``ORCHESTRATOR_`` prefix)."""

    flower_basic_auth: SecretStr | None = None
    """``user:password`` pairs, comma-separated. Default none (the HTTP API answers 401)."""

    flower_address: str = "127.0.0.1"
    """Address Flower listens on. Default ``127.0.0.1`` (loopback only)."""

    flower_port: int = Field(default=5555, ge=1, le=65535)
    """Port Flower listens on. Default 5555."""

    flower_db: str = "flower.db"
    """File of Flower's persistent state (tasks and workers seen). Default ``flower.db``."""

    flower_persistent: bool = True
    """Keep Flower's state across restarts in ``flower_db``. Default on."""

    flower_save_seconds: float = Field(default=60.0, gt=0)
    """Seconds between two saves of the state (and at shutdown). Default 60."""

    flower_max_tasks: int = Field(default=10_000, ge=1)
    """Tasks Flower keeps in memory (and in its state file). Default 10000."""


def basic_auth_pairs(secret: SecretStr | None) -> list[str]:
    """The ``user:password`` entries of the setting.

    Raises:
        ConfigurationError: an entry has no ``:`` or an empty user or password.
    """
    if secret is None:
        return []
    pairs = [p.strip() for p in secret.get_secret_value().split(",") if p.strip()]
    for pair in pairs:
        user, _, password = pair.partition(":")
        if not user or not password:
            raise ConfigurationError(
                "ORCHESTRATOR_FLOWER_BASIC_AUTH entries must be user:password (comma-separated)"
            )
    return pairs


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def flower_options(settings: FlowerSettings) -> dict[str, Any]:
    """Flower's options from the settings.

    Raises:
        ConfigurationError: a non-loopback address without basic auth, or a bad auth entry.
    """
    auth = basic_auth_pairs(settings.flower_basic_auth)
    if not auth and not _is_loopback(settings.flower_address):
        raise ConfigurationError(
            f"Flower on {settings.flower_address} needs ORCHESTRATOR_FLOWER_BASIC_AUTH "
            "(only a loopback address may go without)"
        )
    options: dict[str, Any] = {
        "address": settings.flower_address,
        "port": settings.flower_port,
        "persistent": settings.flower_persistent,
        "db": settings.flower_db,
        "state_save_interval": int(settings.flower_save_seconds * 1000),
        "max_tasks": settings.flower_max_tasks,
        "tasks_columns": TASKS_COLUMNS,
    }
    if auth:
        options["basic_auth"] = auth
    return options


def check_exposure(address: str, *, unix_socket: str = "", authenticated: bool) -> None:
    """Refuse to serve beyond loopback without authentication.

    Raises:
        ConfigurationError: ``address`` is not loopback (an empty one means every
            interface) and neither basic auth nor OAuth is set.
    """
    if unix_socket or authenticated or _is_loopback(address):
        return
    where = address or "every interface"
    raise ConfigurationError(
        f"Flower on {where} needs ORCHESTRATOR_FLOWER_BASIC_AUTH "
        "(only a loopback address may go without)"
    )


def _guard_flower() -> None:
    """Enforce the rules in the Flower process itself, on its final options.

    This file is read before Flower parses its command line again, so the
    module-level names alone cannot stop ``--address=0.0.0.0``; the bind and
    every request are checked here instead.
    """
    import tornado.web
    from flower.api import BaseApiHandler
    from flower.app import Flower
    from flower.views import BaseHandler
    from flower.views.monitor import Healthcheck

    if getattr(Flower, "_orchestrator_guarded", False):
        return
    bind = Flower.start_http_server

    def start_http_server(self: Any) -> Any:
        options = self.options
        try:
            check_exposure(
                options.address,
                unix_socket=options.unix_socket or "",
                authenticated=bool(options.basic_auth or options.auth),
            )
        except ConfigurationError as exc:
            raise SystemExit(f"refusing to start: {exc}") from None
        return bind(self)

    def guarded(prepare: Any) -> Any:
        def prepare_authenticated(self: Any) -> Any:
            options = self.application.options
            # current_user raises 401 itself on a wrong password; None means none given.
            needed = options.basic_auth and not isinstance(self, Healthcheck)
            if needed and not self.current_user:
                raise tornado.web.HTTPError(401)
            return prepare(self)

        return prepare_authenticated

    Flower.start_http_server = start_http_server
    BaseHandler.prepare = guarded(BaseHandler.prepare)
    if "prepare" in vars(BaseApiHandler):  # its own prepare would skip the guard
        BaseApiHandler.prepare = guarded(BaseApiHandler.prepare)
    Flower._orchestrator_guarded = True


_guard_flower()
_options = flower_options(FlowerSettings())

address = _options["address"]
port = _options["port"]
persistent = _options["persistent"]
db = _options["db"]
state_save_interval = _options["state_save_interval"]
max_tasks = _options["max_tasks"]
tasks_columns = _options["tasks_columns"]
if "basic_auth" in _options:
    basic_auth = _options["basic_auth"]
