"""The public surface is exactly what we mean to offer (STYLE.md rule 4)."""

from __future__ import annotations

import orchestrator
from orchestrator import asl


def test_the_package_exports_exactly_the_public_names_sorted() -> None:
    assert orchestrator.__all__ == sorted(orchestrator.__all__)
    assert set(orchestrator.__all__) == {
        "BatchHandle",
        "BatchNotFound",
        "ExecutionHandle",
        "ExecutionResult",
        "Orchestrator",
        "run",
        "DefinitionInvalid",
        "ExecutionAlreadyExists",
        "ExecutionFilter",
        "ExecutionNotFound",
        "HandlerContext",
        "HandlerNotFound",
        "MessageRefused",
        "OrchestratorError",
        "StateMachine",
        "StateMachineNotFound",
        "StatesError",
        "__version__",
        "handler",
        "input_transformer",
        "send_message",
        "archive_batch_failures",
        "batch_failures",
        "cancel_batch",
        "pause_batch",
        "purge_executions",
        "redrive_batch_failures",
        "resume_batch",
    }


def test_every_exported_name_exists() -> None:
    for name in orchestrator.__all__:
        assert hasattr(orchestrator, name), name
    for name in asl.__all__:
        assert hasattr(asl, name), name


def test_the_interpreter_exports_its_step_api() -> None:
    assert {"validate", "load", "start", "step", "reissue", "redrive"} <= set(asl.__all__)


def test_the_interpreter_does_not_run_anything_itself() -> None:
    # The in-process driver is the runtime's (orchestrator.run), not the pure interpreter's.
    assert "run" not in asl.__all__
    assert not hasattr(asl, "run")
