"""The registry of Task resources: resource name (or ARN) -> Python callable.

    from orchestrator import handler

    @handler("charge-card")
    def charge(data, ctx):          # ctx: HandlerContext (execution id, state, attempt, key)
        return {"charged": data["amount"]}

A handler is sync or ``async def``, takes ``(input)`` or ``(input, context)`` and
returns a JSON value. Raising :class:`~orchestrator.errors.StatesError` chooses the
error name; any other exception is named after its class (``ValueError``).
Workers find handlers by importing the modules named in settings.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from orchestrator.asl import errors
from orchestrator.asl.errors import StatesError

#: A Task handler: ``fn(input)`` or ``fn(input, context)``, sync or ``async def``.
Handler = Callable[..., Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskContext:
    """What a task handler receives beside its input.

    Attributes:
        execution_id: the execution's id.
        state: the Task state's name.
        attempt: 0 for the first try, then 1, 2, ... for retries.
        idempotency_key: stable for one attempt of one state of one execution; a handler
            with side effects should use it to make a repeated call harmless.
        context: the ``$$`` context object.
    """

    execution_id: str
    state: str
    attempt: int
    idempotency_key: str
    context: Mapping[str, Any] = field(default_factory=dict)


class HandlerResolver(Protocol):
    """Anything that maps a Task ``Resource`` to a callable (the registry does)."""

    def resolve(self, resource: str) -> Handler:
        """Return the handler, or raise StatesError when there is none."""
        ...


class MappingResolver:
    """Resolve resources from a plain ``{name: callable}`` mapping (names or ARNs)."""

    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self.handlers = dict(handlers)

    def resolve(self, resource: str) -> Handler:
        """Find by exact resource, then by the name at the end of an ARN."""
        found = self.handlers.get(resource) or self.handlers.get(resource_name(resource))
        if found is None:
            raise StatesError(
                errors.TASK_FAILED, f"no handler registered for resource '{resource}'"
            )
        return found


def resource_name(resource: str) -> str:
    """The plain name of a resource ARN, used when no handler has the full ARN.

    ``arn:aws:lambda:us-east-1:123:function:charge[:qualifier]`` -> ``charge``;
    ``arn:aws:states:us-east-1:123:activity:review`` -> ``review``;
    ``arn:aws:states:::lambda:invoke.sync`` -> ``lambda:invoke``.
    """
    parts = resource.split(":")
    if len(parts) < 6 or parts[0] != "arn":
        return resource
    if len(parts) >= 7 and parts[5] in ("function", "activity"):
        return parts[6]
    return ":".join(parts[5:]).split(".")[0]


HandlerContext = TaskContext
F = TypeVar("F", bound=Callable[..., object])


class HandlerRegistry(MappingResolver):
    """Resource names to handlers; thread-safe to register into.

    ``resolve`` (inherited) looks up the exact resource, then the ARN's plain name, and
    raises ``States.TaskFailed`` naming the resource when none is registered.
    """

    def __init__(self) -> None:
        super().__init__({})
        self._lock = threading.Lock()

    def register(self, resource: str, fn: Handler, *, replace: bool = False) -> None:
        """Register ``fn`` for ``resource``.

        Raises:
            ValueError: the resource is empty, or taken and ``replace`` is False.
        """
        if not isinstance(resource, str) or not resource:
            raise ValueError("a handler's resource name must be a non-empty string")
        with self._lock:
            if not replace and resource in self.handlers and self.handlers[resource] is not fn:
                raise ValueError(f"a handler is already registered for {resource!r}")
            self.handlers[resource] = fn

    def __call__(self, resource: str, *, replace: bool = False) -> Callable[[F], F]:
        """Decorator form of :meth:`register`."""

        def decorate(fn: F) -> F:
            self.register(resource, fn, replace=replace)
            return fn

        return decorate

    def names(self) -> list[str]:
        """Registered resource names, sorted."""
        return sorted(self.handlers)

    def unregister(self, resource: str) -> None:
        """Remove a handler (tests)."""
        with self._lock:
            self.handlers.pop(resource, None)


class TransformerRegistry:
    """Named input transformers for chained executions: ``fn(source_output) -> input``.

    Registered by name so that a worker process finds the same function.
    """

    def __init__(self) -> None:
        self._transformers: dict[str, Callable[[Any], Any]] = {}

    def register(self, name: str, fn: Callable[[Any], Any]) -> None:
        """Register ``fn`` under ``name`` (replacing an earlier one)."""
        if not isinstance(name, str) or not name:
            raise ValueError("an input transformer's name must be a non-empty string")
        self._transformers[name] = fn

    def __call__(self, name: str) -> Callable[[F], F]:
        """Decorator form of :meth:`register`."""

        def decorate(fn: F) -> F:
            self.register(name, fn)
            return fn

        return decorate

    def get(self, name: str) -> Callable[[Any], Any]:
        """The transformer registered as ``name``.

        Raises:
            KeyError: none is; the message lists the registered names.
        """
        try:
            return self._transformers[name]
        except KeyError:
            known = ", ".join(sorted(self._transformers)) or "none"
            raise KeyError(f"no input transformer named {name!r} (registered: {known})") from None


#: The process-wide input transformers that ``@input_transformer`` fills.
input_transformers = TransformerRegistry()
input_transformer = input_transformers.__call__

#: The process-wide registry that ``@handler`` fills and workers resolve from.
registry = HandlerRegistry()
handler = registry.__call__


def import_handler_modules(modules: Iterable[str]) -> None:
    """Import modules that register handlers (``ORCHESTRATOR_HANDLER_MODULES``)."""
    for name in modules:
        if name:
            importlib.import_module(name)


__all__ = [
    "Handler",
    "HandlerContext",
    "HandlerRegistry",
    "HandlerResolver",
    "MappingResolver",
    "TransformerRegistry",
    "handler",
    "import_handler_modules",
    "input_transformer",
    "input_transformers",
    "registry",
    "resource_name",
]
