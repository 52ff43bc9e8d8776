"""Test-only handlers loaded INTO worker subprocesses (``ORCHESTRATOR_HANDLER_MODULES``).

``tests.callback.waitForTaskToken`` writes its task token to the file its input
names, as a queue would carry it to whoever answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.handlers import HandlerContext, handler


@handler("tests.callback.waitForTaskToken")
def callback(data: Any, ctx: HandlerContext) -> None:
    """Hand the token out through a file; the return value is ignored anyway."""
    Path(data["outbox"]).write_text(data["token"])
