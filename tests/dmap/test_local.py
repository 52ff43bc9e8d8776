"""Distributed Maps whose children run in this process (no broker), on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

import orchestrator
from orchestrator import Orchestrator
from orchestrator.asl import DefinitionInvalid, validate
from orchestrator.handlers import MappingResolver
from orchestrator.runtime import Runner
from orchestrator.settings import Settings
from orchestrator.store import Repository
from tests.dmap.work import FAILING, RESOURCE, machine, work


@pytest.fixture
def client(settings: Settings) -> Iterator[Orchestrator]:
    repo = Repository.from_settings(settings)
    runner = Runner(repo, settings=settings, handlers=MappingResolver({RESOURCE: work}))
    yield Orchestrator(settings, repository=repo, runner=runner)
    repo.close()


def _children(client: Orchestrator) -> list[Any]:
    with client.repository.engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT item_index, status, input, parent_execution_id FROM executions "
                    "WHERE map_run_id IS NOT NULL ORDER BY item_index"
                )
            )
        )


def test_items_run_as_child_executions_and_the_map_returns_their_outputs(
    client: Orchestrator,
) -> None:
    # Given a Distributed Map with an ItemSelector reading the item's index and value
    selector = {"n.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index", "k.$": "$.k"}
    sm = client.create_state_machine(
        "fan", machine(ItemsPath="$.items", ItemSelector=selector, MaxConcurrency=3)
    )

    # When it starts in this process
    done = sm.start({"k": "x", "items": [10, 11, 12, 13, 14]})

    # Then each item ran as a child execution linked to the parent and its Map Run
    assert done.status == "SUCCEEDED"
    assert done.output == [{"n": 10 + i, "i": i, "k": "x"} for i in range(5)]
    children = _children(client)
    assert [(c.item_index, c.status, c.parent_execution_id) for c in children] == [
        (i, "SUCCEEDED", done.id) for i in range(5)
    ]
    (run,) = client.repository.map_runs.list_map_runs(parent_execution_id=done.id)
    assert run.status == "SUCCEEDED"
    assert run.counts() == {
        "pending": 0, "running": 0, "succeeded": 5, "failed": 0, "timedOut": 0,
        "aborted": 0, "total": 5,
    }  # fmt: skip
    assert run.max_concurrency == 3
    assert run.stopped_at is not None
    # And the children are executions of the ItemProcessor's derived machine, with history
    child = client.execution(client.map_run(run.id).children()[0].id).describe()
    assert client.version(child.version_id).state_machine_name == "fan/Fan"
    assert [h.state_name for h in client.execution(child.id).history()] == ["Work"]


def test_a_failure_past_the_tolerated_count_fails_the_map_and_aborts_unstarted_children(
    client: Orchestrator,
) -> None:
    # Given a Map that tolerates one failure, one child at a time, and items 1 and 2 failing
    sm = client.create_state_machine("tol", machine(MaxConcurrency=1, ToleratedFailureCount=1))
    items = [{"n": n, "fail": n in (1, 2)} for n in range(6)]

    # When it runs
    done = sm.start(items)

    # Then the second failure fails the Map with AWS's error, and the rest never started
    assert done.status == "FAILED"
    assert done.error == "States.ExceedToleratedFailureThreshold"
    statuses = [c.status for c in _children(client)]
    assert statuses == ["SUCCEEDED", "FAILED", "FAILED", "ABORTED", "ABORTED", "ABORTED"]
    (run,) = client.repository.map_runs.list_map_runs()
    assert (run.status, run.failed_count, run.aborted_count) == ("FAILED", 2, 3)


def test_failures_within_the_tolerance_succeed_with_their_errors_in_the_output(
    client: Orchestrator,
) -> None:
    sm = client.create_state_machine("ok", machine(ToleratedFailurePercentage=50))
    done = sm.start([{"n": 0}, {"n": 1, "fail": True}])
    assert done.status == "SUCCEEDED"
    assert done.output[0] == {"n": 0}
    assert done.output[1]["Error"] == "ValueError"


def test_redrive_runs_only_the_failed_and_aborted_children_again(
    client: Orchestrator, settings: Settings
) -> None:
    # Given a Map run that failed on its first item, the others aborted unstarted
    sm = client.create_state_machine("redo", machine(MaxConcurrency=1))
    FAILING.add(1)
    failed = sm.start([{"n": 0}, {"n": 1}, {"n": 2}])
    assert failed.status == "FAILED"
    first = {c.item_index: c.status for c in _children(client)}
    assert first == {0: "SUCCEEDED", 1: "FAILED", 2: "ABORTED"}
    FAILING.discard(1)  # the cause is fixed
    histories = {c.item_index: len(_history(client, c.item_index)) for c in _children(client)}

    # When the parent is redriven
    done = client.execution(failed.id).redrive()

    # Then the same Map Run finished, the succeeded child did not run again
    assert done.status == "SUCCEEDED"
    assert done.output == [{"n": 0}, {"n": 1}, {"n": 2}]
    (run,) = client.repository.map_runs.list_map_runs()
    assert (run.status, run.succeeded_count) == ("SUCCEEDED", 3)
    assert len(_history(client, 0)) == histories[0]


def _history(client: Orchestrator, index: int) -> list[Any]:
    with client.repository.engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT h.seq FROM history h JOIN executions e ON e.id = h.execution_id "
                    "WHERE e.item_index = :i"
                ),
                {"i": index},
            )
        )


def test_item_batcher_gives_each_child_a_batch_with_its_batch_input(
    client: Orchestrator,
) -> None:
    batcher = {"MaxItemsPerBatch": 2, "BatchInput": {"tag.$": "$.tag"}}
    sm = client.create_state_machine("batch", machine(ItemsPath="$.xs", ItemBatcher=batcher))
    done = sm.start({"tag": "t", "xs": [1, 2, 3, 4, 5]})
    assert done.status == "SUCCEEDED"
    assert done.output == [
        {"Items": [1, 2], "BatchInput": {"tag": "t"}},
        {"Items": [3, 4], "BatchInput": {"tag": "t"}},
        {"Items": [5], "BatchInput": {"tag": "t"}},
    ]


def test_a_result_over_the_payload_limit_fails_with_data_limit_exceeded(
    client: Orchestrator,
) -> None:
    client.repository.payload_max_bytes = 2000
    selector = {"v.$": "$$.Map.Item.Value", "pad": "x" * 60}
    sm = client.create_state_machine("big", machine(ItemSelector=selector))
    done = sm.start(list(range(40)))
    assert done.status == "FAILED"
    assert done.error == "States.DataLimitExceeded"


def test_stopping_the_parent_aborts_the_children_that_have_not_ended(
    client: Orchestrator,
) -> None:
    # Given a parent parked on its Map Run with children not started (a worker would run them)
    sm = client.create_state_machine("stop", machine(MaxConcurrency=1))
    client.runner.map_runs.publisher = lambda ids, priority: len(ids)
    parked = sm.start([{"n": n} for n in range(4)])
    assert parked.status == "WAITING"

    # When the parent is stopped
    assert client.execution(parked.id).stop()

    # Then its children and Map Run are aborted
    assert {c.status for c in _children(client)} == {"ABORTED"}
    (run,) = client.repository.map_runs.list_map_runs()
    assert (run.status, run.aborted_count) == ("ABORTED", 4)


def test_orchestrator_run_runs_a_distributed_map_in_memory() -> None:
    result = orchestrator.run(
        machine(ItemBatcher={"MaxItemsPerBatch": 2}, ToleratedFailureCount=0),
        [1, 2, 3],
        handlers={RESOURCE: work},
    )
    assert result.status == "SUCCEEDED"
    assert result.output == [{"Items": [1, 2]}, {"Items": [3]}]


@pytest.mark.parametrize(
    ("fields", "pointer", "words"),
    [
        ({"ItemReader": {"Resource": "arn:aws:states:::s3:getObject"}},
         "/States/Fan/ItemReader/ReaderConfig/InputType", "InputType"),
        ({"ItemReader": {"Resource": "arn:aws:states:::lambda:invoke"}},
         "/States/Fan/ItemReader/Resource", "Resource"),
        ({"ItemBatcher": {}}, "/States/Fan/ItemBatcher", "MaxItemsPerBatch"),
        ({"ItemBatcher": {"MaxInputBytesPerBatch": 300000}},
         "/States/Fan/ItemBatcher/MaxInputBytesPerBatch", "262144"),
        ({"ResultWriter": {"Resource": "arn:aws:states:::s3:putObject"}},
         "/States/Fan/ResultWriter", "Parameters"),
        ({"ResultWriter": {"WriterConfig": {"OutputType": "XML"}}},
         "/States/Fan/ResultWriter/WriterConfig/OutputType", "JSONL"),
        ({"Label": "has space"}, "/States/Fan/Label", "Label"),
        ({"ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {
            "InputType": "CSV", "CSVHeaderLocation": "GIVEN"}}},
         "/States/Fan/ItemReader/ReaderConfig/CSVHeaders", "CSVHeaders"),
    ],
)  # fmt: skip
def test_validation_refuses_what_aws_refuses_with_pointers(
    fields: dict[str, Any], pointer: str, words: str
) -> None:
    problems = validate(machine(**fields))
    assert any(p.path == pointer and words in p.message for p in problems), problems


def test_validation_accepts_every_distributed_map_field() -> None:
    definition = machine(
        Label="fan",
        MaxConcurrency=10,
        ToleratedFailurePercentage=5,
        ToleratedFailureCount=3,
        ItemSelector={"v.$": "$$.Map.Item.Value"},
        ItemReader={
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {
                "InputType": "CSV",
                "CSVHeaderLocation": "GIVEN",
                "CSVHeaders": ["a", "b"],
                "CSVDelimiter": "SEMICOLON",
                "MaxItems": 100,
            },
            "Parameters": {"Bucket": "b", "Key.$": "$.key"},
        },
        ItemBatcher={
            "MaxItemsPerBatchPath": "$.per",
            "MaxInputBytesPerBatch": 1024,
            "BatchInput": {"x.$": "$.x"},
        },
        ResultWriter={
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "b", "Prefix": "out"},
            "WriterConfig": {"OutputType": "JSONL", "Transformation": "FLATTEN"},
        },
    )
    assert validate(definition) == []


def test_an_inline_map_refuses_the_distributed_fields() -> None:
    definition = machine(ItemBatcher={"MaxItemsPerBatch": 2})
    definition["States"]["Fan"]["ItemProcessor"]["ProcessorConfig"] = {"Mode": "INLINE"}
    with pytest.raises(DefinitionInvalid) as caught:
        orchestrator.asl.load(definition)
    assert "/States/Fan/ItemBatcher" in str(caught.value)


def test_express_children_keep_only_their_final_row(client: Orchestrator) -> None:
    # Given a Distributed Map whose children are EXPRESS
    sm = client.create_state_machine("fast", machine(execution_type="EXPRESS"))

    # When it runs
    done = sm.start([{"n": n} for n in range(4)])

    # Then the children ended through the EXPRESS path: final rows, no history, no cursor
    assert done.status == "SUCCEEDED"
    assert done.output == [{"n": n} for n in range(4)]
    with client.repository.engine.connect() as conn:
        rows = list(
            conn.execute(
                text(
                    "SELECT e.execution_type, e.status, e.cursor, "
                    "(SELECT count(*) FROM history h WHERE h.execution_id = e.id) AS events "
                    "FROM executions e WHERE e.map_run_id IS NOT NULL"
                )
            )
        )
    assert {(r.execution_type, r.status, r.cursor, r.events) for r in rows} == {
        ("EXPRESS", "SUCCEEDED", None, 0)
    }
    (run,) = client.map_runs()
    assert (run.execution_type, run.succeeded_count) == ("EXPRESS", 4)


def test_execute_bulk_runs_machines_that_hold_a_distributed_map(client: Orchestrator) -> None:
    sm = client.create_state_machine("bulk", machine())
    result = sm.execute_bulk([[1, 2], [3]], name_prefix="b", mode="local")
    progress = result.wait(timeout=60, poll=0.05)
    assert progress.by_status == {"SUCCEEDED": 2}
    parents = [client.execution(r.parent_execution_id).describe() for r in client.map_runs()]
    assert sorted(p.output for p in parents) == [[1, 2], [3]]


def test_a_jsonata_distributed_map_selects_items_with_its_expressions(
    client: Orchestrator,
) -> None:
    definition = machine(
        Items="{% $states.input.xs %}",
        ItemSelector={"v": "{% $states.context.Map.Item.Value * 10 %}"},
    )
    definition["QueryLanguage"] = "JSONata"
    sm = client.create_state_machine("jsonata", definition)
    done = sm.start({"xs": [1, 2]})
    assert done.status == "SUCCEEDED", done.cause
    assert done.output == [{"v": 10}, {"v": 20}]
