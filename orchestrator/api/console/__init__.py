"""The web console served by ``orchestrator api`` under ``/console``.

State machines drawn as graphs, executions with their coloured path and timeline,
batches with progress and steering: one HTML page, one script, one stylesheet,
all packaged (no CDN). The API's bearer token guards it through a login form.
"""

from orchestrator.api.console.routes import router

__all__ = ["router"]
