"""The Celery app: what ``celery -A orchestrator worker -Q critical,default,low`` runs.

``celery -A orchestrator`` imports the package, finds no ``app`` attribute on it
and then tries the ``orchestrator.celery`` module's ``app`` (Celery's
``find_app``), so the package ``__init__`` need not import Celery.

The app is configured from :func:`orchestrator.settings.get_settings` when this
module is first imported; :func:`create_app` builds another one from explicit
settings (tests, tools). A worker imports the handler modules named in
``ORCHESTRATOR_HANDLER_MODULES`` before its pool starts, so a Task resource
resolves in every pool process the same way as in-process.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, worker_init

from orchestrator.distributed import tasks  # noqa: F401  # registers the shared tasks
from orchestrator.distributed.config import CeleryOptions, celery_config
from orchestrator.handlers import import_handler_modules
from orchestrator.settings import Settings, get_settings

log = logging.getLogger("orchestrator.celery")

#: App setting that lists the handler modules a worker of this app imports.
HANDLER_MODULES_KEY = "orchestrator_handler_modules"


def create_app(
    settings: Settings | None = None,
    *,
    options: CeleryOptions | None = None,
    set_as_current: bool = True,
) -> Celery:
    """Build the orchestrator Celery app.

    Args:
        settings: broker URL and handler modules; default :func:`get_settings`.
        options: Celery tunables; default read from ``settings``.
        set_as_current: make it Celery's current app (default True; tests that
            build several apps pass False).
    """
    chosen = get_settings() if settings is None else settings
    celery_app = Celery("orchestrator", set_as_current=set_as_current)
    celery_app.conf.update(celery_config(chosen, options))
    celery_app.conf[HANDLER_MODULES_KEY] = list(chosen.handler_modules)
    return celery_app


def _import_handler_modules(sender: Any = None, **_: Any) -> None:
    """Import the worker app's handler modules, before the pool forks.

    Like ``celery -A``, module names are found from the worker's working directory
    too. A module that cannot be imported stops the worker: running without its
    handlers would fail every Task that needs them.
    """
    worker_app = getattr(sender, "app", None)
    if worker_app is None:
        return
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    modules = worker_app.conf.get(HANDLER_MODULES_KEY) or ()
    try:
        import_handler_modules(modules)
    except ImportError as exc:
        log.critical("cannot import handler module: %s", exc)
        raise SystemExit(f"orchestrator worker: cannot import handler module: {exc}") from exc


def _metrics_multiprocess(sender: Any = None, **_: Any) -> None:
    """Prefork children write their series to ``metrics_dir`` (prometheus multiprocess mode)."""
    from orchestrator.runtime.metrics import enable_multiprocess

    enable_multiprocess(get_settings().metrics_dir)


def _json_logs(logger: Any = None, **_: Any) -> None:
    """With ``ORCHESTRATOR_LOG_FORMAT=json``, Celery's log handlers write JSON lines."""
    if logger is None or get_settings().log_format != "json":
        return
    from orchestrator.logs import make_json

    for handler in logger.handlers:
        make_json(handler)


after_setup_logger.connect(_json_logs)
after_setup_task_logger.connect(_json_logs)
worker_init.connect(_metrics_multiprocess)
worker_init.connect(_import_handler_modules)

app = create_app()

__all__ = ["HANDLER_MODULES_KEY", "app", "create_app"]
