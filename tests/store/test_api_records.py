"""The API's responses are read from the store's records, so the two cannot drift apart."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from orchestrator.api.schemas import (
    BatchOut,
    ExecutionOut,
    HistoryEventOut,
    StateMachineOut,
    StateMachineSummary,
)
from orchestrator.batch import BatchProgress
from orchestrator.store import Batch, Execution, HistoryEvent, StateMachineInfo, Version
from orchestrator.types import BatchStatus, ExecutionStatus

T = datetime(2030, 1, 1, tzinfo=UTC)
VERSION = Version(
    id=1,
    state_machine_id=2,
    state_machine_name="orders",
    version=3,
    definition={"StartAt": "A"},
    definition_hash="h",
    created_at=T,
)
EXECUTION = Execution(
    id="e-1",
    state_machine_id=2,
    version_id=1,
    name="run-1",
    status=ExecutionStatus.FAILED,
    input={"n": 1},
    output=None,
    error="States.TaskFailed",
    cause="boom",
    cursor={"secret": True},
    current_state="A",
    priority=5,
    batch_id="b-1",
    source_execution_id="e-0",
    source_state_name="S",
    started_at=T,
    updated_at=T,
    ended_at=T,
    lease_owner="w1",
    lease_expires_at=T,
    revision=4,
    last_seq=7,
    wake_pending=False,
    redrive_count=2,
)
BATCH = Batch(
    id="b-1",
    state_machine_id=2,
    filter={"state_machine": "orders"},
    options={},
    status=BatchStatus.PAUSED,
    source_count=10,
    created_count=9,
    skipped_count=1,
    published_count=8,
    error=None,
    started_at=T,
    updated_at=T,
    ended_at=None,
    status_reason="guard",
    archived_count=3,
)
PROGRESS = BatchProgress(total=9, by_status={"FAILED": 1}, finished=1, failed=1, done=False)
HISTORY = HistoryEvent(
    execution_id="e-1",
    seq=1,
    event_type="StateExited",
    state_name="A",
    state_type="Pass",
    input=1,
    output=2,
    error=None,
    cause=None,
    attempt=0,
    entered_at=None,
    recorded_at=T,
)
INFO = StateMachineInfo(id=2, name="orders", created_at=T, latest_version=3)

#: API field -> record field, where the API names it differently.
RENAMED = {
    "name": "state_machine_name",
    "type": "machine_type",
    "sources": "source_count",
    "created": "created_count",
    "skipped": "skipped_count",
    "published": "published_count",
}

CASES: list[tuple[BaseModel, object, set[str]]] = [
    (StateMachineOut.of(VERSION), VERSION, set()),
    (StateMachineSummary.of(INFO), INFO, set()),
    (ExecutionOut.of(EXECUTION, VERSION), EXECUTION, {"state_machine", "version"}),
    (HistoryEventOut.of(HISTORY), HISTORY, set()),
    (BatchOut.of(BATCH, "orders", PROGRESS), BATCH, {"state_machine", "progress"}),
]


@pytest.mark.parametrize(("out", "record", "joined"), CASES, ids=lambda c: type(c).__name__)
def test_every_response_field_is_the_records_field(
    out: BaseModel, record: object, joined: set[str]
) -> None:
    dumped = out.model_dump()
    for name in set(type(out).model_fields) - joined:
        source = RENAMED.get(name, name) if not hasattr(record, name) else name
        assert dumped[name] == getattr(record, source), name


def test_the_joined_fields_come_from_the_version_and_the_progress() -> None:
    execution = ExecutionOut.of(EXECUTION, VERSION)
    batch = BatchOut.of(BATCH, "orders", PROGRESS)
    assert (execution.state_machine, execution.version) == ("orders", 3)
    assert batch.state_machine == "orders"
    assert batch.progress.model_dump() == {
        f.name: getattr(PROGRESS, f.name) for f in fields(PROGRESS)
    }


def test_internal_record_fields_stay_out_of_the_response() -> None:
    dumped = ExecutionOut.of(EXECUTION, VERSION).model_dump()
    assert not {"cursor", "lease_owner", "revision", "last_seq"} & set(dumped)


def test_a_record_field_renamed_fails_the_response_instead_of_drifting() -> None:
    # Given a history record whose state_type was renamed (here: kind)
    fields_ = {("kind" if k == "state_type" else k): v for k, v in vars(HISTORY).items()}
    renamed: Any = SimpleNamespace(**fields_)

    # Then the response cannot be built, and says which field is missing
    with pytest.raises(ValidationError, match="state_type"):
        HistoryEventOut.of(renamed)
