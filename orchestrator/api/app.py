"""The FastAPI application: routes, error handlers, the body size limit, OpenAPI.

    from orchestrator.api import create_app
    app = create_app(Settings(database_url="postgresql://..."))

Handlers of Task states run in the API process for synchronous starts, redrives
and messages, so the app imports ``settings.handler_modules`` when it is built,
as a worker does.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import orchestrator
from orchestrator.api import console, mapruns, metrics, routes
from orchestrator.api.context import ApiContext
from orchestrator.api.errors import error_response, install_error_handlers
from orchestrator.client import Orchestrator
from orchestrator.handlers import import_handler_modules
from orchestrator.settings import Settings, get_settings

#: Smallest request body limit, in bytes: a definition may be larger than a payload.
MIN_BODY_BYTES: Final = 1024 * 1024

DESCRIPTION = """\
Amazon States Language state machines on PostgreSQL (or SQLite) and Celery.

Every route but `/health` and these docs needs `Authorization: Bearer <token>`
when `ORCHESTRATOR_API_TOKEN` is set. Errors share one body: `error` (a code),
`detail` (a sentence) and `problems` (each with a JSON pointer).
"""


def body_limit(settings: Settings) -> int:
    """Largest request body accepted, in bytes: four payloads, at least 1 MiB.

    A body carries one payload (``input``, ``data``) plus a little; the store
    still refuses a payload above ``payload_max_bytes`` (413).
    """
    return max(MIN_BODY_BYTES, 4 * settings.payload_max_bytes)


class BodyTooLarge(HTTPException):
    """The request body grew past the limit while it was read (413).

    An ``HTTPException``, because FastAPI turns any other error raised while it
    reads the body into a 400.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodyLimitMiddleware:
    """Answer 413 to a request body larger than ``limit`` bytes, before it is parsed.

    A declared ``Content-Length`` is checked up front; a chunked body is counted
    as it arrives.
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a counting ``receive``; answer 413 when the count passes the limit."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared(scope) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counting, send)

    @staticmethod
    def _declared(scope: Scope) -> int:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0
        return 0

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, "PayloadTooLarge", BodyTooLarge(self.limit).detail)
        await response(scope, receive, send)


def _operation_id(route: APIRoute) -> str:
    return route.name


def create_app(settings: Settings | None = None, *, client: Orchestrator | None = None) -> FastAPI:
    """Build the HTTP API.

    Args:
        settings: database, broker, token and limits; default :func:`get_settings`
            (or the client's).
        client: the composition root; default the shared client of ``settings``.

    Returns:
        The FastAPI app (serve it with uvicorn, or :func:`orchestrator.api.serve`).
    """
    if client is None:
        client = Orchestrator.shared(settings or get_settings())
    settings = client.settings
    client.enable_metrics()
    import_handler_modules(settings.handler_modules)
    app = FastAPI(
        title="orchestrator",
        version=orchestrator.__version__,
        description=DESCRIPTION,
        generate_unique_id_function=_operation_id,
        docs_url="/docs" if settings.api_docs else None,
        redoc_url="/redoc" if settings.api_docs else None,
        openapi_url="/openapi.json" if settings.api_docs else None,
    )
    app.state.context = ApiContext(client=client)
    install_error_handlers(app)
    for router in routes.PROTECTED:
        app.include_router(router, **routes.PROTECTION)
    app.include_router(mapruns.router, **routes.PROTECTION)
    app.include_router(routes.health)
    app.include_router(console.router)
    app.include_router(metrics.router)
    app.add_middleware(BodyLimitMiddleware, limit=body_limit(settings))
    return app


__all__ = ["BodyLimitMiddleware", "BodyTooLarge", "MIN_BODY_BYTES", "body_limit", "create_app"]
