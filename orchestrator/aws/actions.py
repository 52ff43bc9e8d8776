"""The table of built actions: importing the action modules fills it."""

from __future__ import annotations

from orchestrator.aws import definitions, executions, history, machines, mapruns
from orchestrator.aws.context import ACTIONS, Aws

#: The modules whose actions the table holds (imported for their registrations).
MODULES = (definitions, executions, history, machines, mapruns)

__all__ = ["ACTIONS", "MODULES", "Aws"]
