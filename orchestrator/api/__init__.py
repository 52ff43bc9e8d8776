"""The HTTP API over the facade (FastAPI), and ``serve`` for ``orchestrator api``.

    orchestrator api                      # 127.0.0.1:8000 unless ORCHESTRATOR_API_HOST/PORT
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/executions

OpenAPI: ``/openapi.json``, Swagger UI at ``/docs``.
"""

from __future__ import annotations

from orchestrator.api.app import create_app
from orchestrator.settings import Settings, get_settings


def serve(settings: Settings | None = None) -> None:
    """Serve the API with uvicorn on ``settings.api_host``:``settings.api_port`` until stopped.

    Args:
        settings: default :func:`get_settings` (loopback, port 8000).
    """
    import uvicorn

    from orchestrator.logs import configure_logging

    settings = settings or get_settings()
    json_logs = configure_logging(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        proxy_headers=False,
        # JSON logs: uvicorn's loggers go to the root logger's JSON handler.
        log_config=None if json_logs else uvicorn.config.LOGGING_CONFIG,
    )


__all__ = ["create_app", "serve"]
