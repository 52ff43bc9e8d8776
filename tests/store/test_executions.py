"""Creating executions: name idempotency, bulk creation, chaining links, payload limits."""

from __future__ import annotations

import math
from typing import Any

import pytest

from orchestrator.errors import ExecutionAlreadyExists, ExecutionNotFound
from orchestrator.store import (
    ExecutionFilter,
    NewExecution,
    NewHistoryEvent,
    PayloadInvalid,
    PayloadTooLarge,
    Repository,
    Version,
)
from orchestrator.types import ExecutionStatus
from tests.support import statements

from .conftest import T0, start


def count(repo: Repository) -> int:
    return repo.count_executions(ExecutionFilter())


def test_a_new_execution_is_pending_with_its_input(repo: Repository, version: Version) -> None:
    execution, created = repo.create_execution(
        version, name="order-1", input={"id": 1}, priority=5, now=T0
    )

    assert created
    assert execution.status == ExecutionStatus.PENDING
    assert (execution.name, execution.input, execution.priority) == ("order-1", {"id": 1}, 5)
    assert (execution.state_machine_id, execution.version_id) == (
        version.state_machine_id,
        version.id,
    )
    assert execution.started_at == execution.updated_at == T0
    assert execution.started_at.tzinfo is not None
    assert repo.get_execution(execution.id) == execution


@pytest.mark.parametrize(
    "data",
    [
        {"b": [1, (2, 3)], "a": {"z": None, "y": 1.5}, "s": "é ☃ \\u0000", "n": 10**30},
        (1, "two", [3.0]),
        "text",
        None,
        -0.25,
    ],
)
@pytest.mark.parametrize("claim_as", [None, "@start:abc"])
def test_a_new_execution_is_returned_as_a_read_returns_it(
    repo: Repository, version: Version, data: Any, claim_as: str | None
) -> None:
    # The record is built from the values inserted, not read back: it must be the same
    execution, created = repo.create_execution(
        version, input=data, claim_as=claim_as, lease_seconds=30, batch_id=None
    )

    assert created
    assert repo.get_execution(execution.id) == execution
    assert type(execution.input) is type(repo.get_execution(execution.id).input)


def test_the_name_defaults_to_the_execution_id(repo: Repository, version: Version) -> None:
    execution, _ = repo.create_execution(version, input=None)

    assert execution.name == execution.id


def test_the_same_name_and_input_returns_the_existing_execution(
    repo: Repository, version: Version
) -> None:
    first = start(repo, version, "order-1", input={"items": [1, 2], "total": 3})

    # An equal input in another key order (and 3.0 for 3) is the same input
    again, created = repo.create_execution(
        version, name="order-1", input={"total": 3.0, "items": [1, 2]}
    )

    assert not created
    assert again == first
    assert count(repo) == 1


def test_the_same_name_with_another_input_raises(repo: Repository, version: Version) -> None:
    start(repo, version, "order-1", input={"total": 3})

    with pytest.raises(ExecutionAlreadyExists, match="order-1"):
        repo.create_execution(version, name="order-1", input={"total": True})
    assert count(repo) == 1


def test_names_are_unique_per_state_machine_only(repo: Repository, version: Version) -> None:
    _, other, _ = repo.create_or_get_version("invoices", {"StartAt": "X", "States": {}})

    start(repo, version, "same-name")
    _, created = repo.create_execution(other, name="same-name")

    assert created


def test_get_execution_of_an_unknown_id_raises(repo: Repository) -> None:
    with pytest.raises(ExecutionNotFound, match="nope"):
        repo.get_execution("nope")


def test_bulk_create_skips_existing_names_and_says_which(
    repo: Repository, version: Version
) -> None:
    # Given two executions that exist already
    start(repo, version, "n-1", input=1)
    start(repo, version, "n-3", input="different input is not checked in bulk")

    # When five are created in bulk, one name twice
    rows = [NewExecution(name=f"n-{i}", input=i) for i in range(5)]
    result = repo.create_executions_bulk(version, [*rows, NewExecution(name="n-0")], now=T0)

    # Then three are created and the rest reported skipped
    assert sorted(result.created) == ["n-0", "n-2", "n-4"]
    assert sorted(result.skipped) == ["n-0", "n-1", "n-3"]
    assert repo.get_execution(result.created["n-2"]).input == 2
    assert count(repo) == 5


def test_bulk_create_runs_one_insert_per_chunk(repo: Repository, version: Version) -> None:
    rows = [NewExecution(name=f"bulk-{i}", input={"i": i}, priority=i % 3) for i in range(1200)]

    with statements(repo.engine) as seen:
        result = repo.create_executions_bulk(version, rows, chunk_size=500)

    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT INTO EXECUTIONS")]
    assert len(inserts) == math.ceil(1200 / 500)
    assert len(result.created) == 1200
    assert count(repo) == 1200

    # And running the same rows again creates nothing, still one statement per chunk
    with statements(repo.engine) as seen:
        again = repo.create_executions_bulk(version, rows, chunk_size=500)
    assert again.created == {}
    assert len(again.skipped) == 1200


def test_chaining_links_are_queryable_both_ways(repo: Repository, version: Version) -> None:
    source = start(repo, version, "source")
    child, _ = repo.create_execution(
        version,
        name="child",
        source_execution_id=source.id,
        source_state_name="Hello",
        now=T0,
    )

    assert repo.get_execution(child.id).source_execution_id == source.id
    assert child.source_state_name == "Hello"
    linked = repo.list_executions(ExecutionFilter(source_execution_id=source.id)).items
    assert [e.id for e in linked] == [child.id]


# -- payloads -----------------------------------------------------------------


def test_an_oversized_input_is_rejected_and_nothing_stored(
    repo: Repository, version: Version
) -> None:
    big = "x" * repo.payload_max_bytes  # plus the quotes: two bytes over

    with pytest.raises(PayloadTooLarge) as raised:
        repo.create_execution(version, name="big", input=big)

    assert raised.value.size == repo.payload_max_bytes + 2
    assert raised.value.limit == repo.payload_max_bytes
    assert raised.value.states_error == "States.DataLimitExceeded"
    assert "exceeds the maximum" in str(raised.value)
    assert count(repo) == 0


def test_a_payload_exactly_at_the_limit_is_accepted(repo: Repository, version: Version) -> None:
    fits = "é" * ((repo.payload_max_bytes - 2) // 2)  # two UTF-8 bytes per character

    execution, _ = repo.create_execution(version, name="fits", input=fits)

    assert repo.get_execution(execution.id).input == fits


def test_one_oversized_row_rejects_the_whole_bulk_create(
    repo: Repository, version: Version
) -> None:
    rows = [NewExecution(name=f"n-{i}", input=i) for i in range(10)]
    rows[7] = NewExecution(name="n-7", input="x" * (repo.payload_max_bytes + 1))

    with pytest.raises(PayloadTooLarge, match=r"rows\[7\]\.input"):
        repo.create_executions_bulk(version, rows, chunk_size=3)

    assert count(repo) == 0


@pytest.mark.parametrize(
    ("bad_input", "reason"),
    [
        ({"x": math.nan}, "not storable as JSON"),
        ({"x": math.inf}, "not storable as JSON"),
        ({"x": {1, 2}}, "not storable as JSON"),
        ({1: "int key"}, "keys must be strings"),
        ({"x": "nul \x00 inside"}, "NUL"),
    ],
)
def test_input_that_is_not_storable_json_is_rejected(
    repo: Repository, version: Version, bad_input: Any, reason: str
) -> None:
    with pytest.raises(PayloadInvalid, match=reason):
        repo.create_execution(version, name="bad", input=bad_input)

    assert count(repo) == 0


def test_a_literal_backslash_u0000_text_is_fine(repo: Repository, version: Version) -> None:
    text = "a \\u0000 b"  # backslash, then "u0000": six ordinary characters

    execution, _ = repo.create_execution(version, name="ok", input={"t": text})

    assert repo.get_execution(execution.id).input == {"t": text}


def test_names_longer_than_the_column_are_refused(repo: Repository, version: Version) -> None:
    with pytest.raises(ValueError, match="1 to 255"):
        repo.create_execution(version, name="n" * 256)


def test_state_outputs_gives_each_sources_latest_output_of_a_state(
    repo: Repository, version: Version
) -> None:
    # Given two finished sources, one of which ran state "Price" twice
    outputs = {"a": [{"price": 1}, {"price": 2}], "b": [{"price": 5}], "c": []}
    ids = {}
    for name, prices in outputs.items():
        execution = start(repo, version, name)
        ids[name] = execution.id
        repo.claim(execution.id, "w", lease_seconds=60, now=T0)
        history = [
            NewHistoryEvent(event_type="StateExited", state_name="Price", output=price)
            for price in prices
        ]
        history.append(NewHistoryEvent(event_type="StateEntered", state_name="Price"))
        repo.checkpoint(
            execution.id,
            "w",
            cursor=None,
            status=ExecutionStatus.SUCCEEDED,
            history=history,
            now=T0,
        )

    # When their outputs of "Price" are fetched in one call
    found = repo.state_outputs(list(ids.values()), "Price", event_type="StateExited")

    # Then each source with such an event gives its latest output
    assert found == {ids["a"]: {"price": 2}, ids["b"]: {"price": 5}}
