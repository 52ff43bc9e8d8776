"""What every request works with: the client (settings, store, runner, Celery app), the token.

One :class:`ApiContext` per app (``app.state.context``); routes get it through
the :func:`context` dependency, and :func:`require_token` guards them.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from orchestrator.api.errors import ApiError
from orchestrator.client import Execution, Orchestrator, Version
from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine

#: Seconds ``/stats`` waits for workers to answer a ping.
PING_TIMEOUT = 0.5


@dataclass
class ApiContext:
    """The API's view of the system: one client.

    Attributes:
        client: the composition root (store, runner, publisher, Celery app).
        ping_timeout: seconds ``/stats`` waits for workers to answer a ping. Default 0.5.
    """

    client: Orchestrator
    ping_timeout: float = PING_TIMEOUT
    _machines: dict[int, StateMachine] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def settings(self) -> Settings:
        """What the app was built with."""
        return self.client.settings

    def machine(self, name: str, version: int | None = None) -> StateMachine:
        """A stored state machine, its newest version by default (raises StateMachineNotFound)."""
        return self.bind(self.client.find_version(name, version))

    def bind(self, version: Version) -> StateMachine:
        """The facade of ``version`` on the API's client.

        Versions are immutable, so each is parsed once and its facade kept.
        """
        with self._lock:
            found = self._machines.get(version.id)
            if found is None:
                found = self.client.bind(version)
                self._machines[version.id] = found
            return found

    def machine_of(self, execution_id: str) -> tuple[StateMachine, Execution]:
        """The state machine version an execution runs on, and the execution."""
        execution = self.client.execution(execution_id).describe()
        return self.bind(self.client.version(execution.version_id)), execution


class VersionCache:
    """Version records by id, read once per request (a page shares few versions)."""

    def __init__(self, client: Orchestrator) -> None:
        self._client = client
        self._versions: dict[int, Version] = {}

    def __call__(self, version_id: int) -> Version:
        """The version with this id."""
        if version_id not in self._versions:
            self._versions[version_id] = self._client.version(version_id)
        return self._versions[version_id]


def context(request: Request) -> ApiContext:
    """The app's context (a FastAPI dependency)."""
    found: ApiContext = request.app.state.context
    return found


_bearer = HTTPBearer(auto_error=False, description="The API token (`ORCHESTRATOR_API_TOKEN`).")


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Refuse the request unless it carries the configured bearer token (if one is set).

    An empty ``ORCHESTRATOR_API_TOKEN`` counts as none set (docker-compose passes
    ``${ORCHESTRATOR_API_TOKEN:-}``).

    Raises:
        ApiError: 401 with ``WWW-Authenticate: Bearer``.
    """
    expected = context(request).settings.api_token
    if expected is None or not expected.get_secret_value():
        return
    given = credentials.credentials if credentials is not None else ""
    # Constant-time on bytes: compare_digest refuses non-ASCII str.
    if not secrets.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise ApiError(
            401,
            "Unauthorized",
            "a valid bearer token is required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )


__all__ = ["ApiContext", "VersionCache", "context", "require_token"]
