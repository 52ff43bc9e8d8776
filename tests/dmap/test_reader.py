"""ItemReader and ResultWriter against an S3-compatible server (moto) and local files."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from orchestrator import Orchestrator
from orchestrator.handlers import MappingResolver
from orchestrator.runtime import Runner
from orchestrator.settings import Settings
from orchestrator.store import Repository
from tests.dmap.conftest import S3
from tests.dmap.work import RESOURCE, machine, work

GET = "arn:aws:states:::s3:getObject"


@pytest.fixture
def bucket(s3: S3) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    s3.client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def client(sqlite_url: str, s3: S3) -> Iterator[Orchestrator]:
    settings = Settings(database_url=sqlite_url, s3_endpoint_url=s3.endpoint)
    repo = Repository.from_settings(settings)
    runner = Runner(repo, settings=settings, handlers=MappingResolver({RESOURCE: work}))
    yield Orchestrator(settings, repository=repo, runner=runner)
    repo.close()


def reader(bucket: str, key: str, **config: Any) -> dict[str, Any]:
    return {"Resource": GET, "ReaderConfig": config, "Parameters": {"Bucket": bucket, "Key": key}}


def _count_children(client: Orchestrator) -> int:
    with client.repository.engine.connect() as conn:
        query = text("SELECT count(*) FROM executions WHERE map_run_id IS NOT NULL")
        return int(conn.execute(query).scalar_one())


def test_jsonl_items_are_read_from_s3_up_to_max_items(
    client: Orchestrator, s3: S3, bucket: str
) -> None:
    s3.put(bucket, "in/items.jsonl", "".join(json.dumps({"n": n}) + "\n" for n in range(8)))
    sm = client.create_state_machine(
        "jsonl", machine(ItemReader=reader(bucket, "in/items.jsonl", InputType="JSONL", MaxItems=5))
    )
    done = sm.start({})
    assert done.status == "SUCCEEDED", done.cause
    assert done.output == [{"n": n} for n in range(5)]


def test_a_json_array_and_csv_with_a_header_row_or_given_headers(
    client: Orchestrator, s3: S3, bucket: str
) -> None:
    s3.put(bucket, "a.json", json.dumps([{"n": 1}, 2.5, "three", [4]]))
    s3.put(bucket, "h.csv", "id,name\n1,ann\n2,bob\n")
    s3.put(bucket, "g.csv", "1;ann\n2;bob\n")
    array = client.create_state_machine(
        "json", machine(ItemReader=reader(bucket, "a.json", InputType="JSON"))
    )
    header = client.create_state_machine(
        "csv1",
        machine(ItemReader=reader(bucket, "h.csv", InputType="CSV", CSVHeaderLocation="FIRST_ROW")),
    )
    given = client.create_state_machine(
        "csv2",
        machine(
            ItemReader=reader(
                bucket,
                "g.csv",
                InputType="CSV",
                CSVHeaderLocation="GIVEN",
                CSVHeaders=["id", "name"],
                CSVDelimiter="SEMICOLON",
            )
        ),
    )  # fmt: skip
    assert array.start({}).output == [{"n": 1}, 2.5, "three", [4]]
    rows = [{"id": "1", "name": "ann"}, {"id": "2", "name": "bob"}]
    assert header.start({}).output == rows
    assert given.start({}).output == rows


def test_list_objects_gives_one_item_per_object_under_the_prefix(
    client: Orchestrator, s3: S3, bucket: str
) -> None:
    for key in ("logs/a.txt", "logs/b.txt", "other/c.txt"):
        s3.put(bucket, key, "x" * 3)
    listing = {
        "Resource": "arn:aws:states:::s3:listObjectsV2",
        "Parameters": {"Bucket": bucket, "Prefix": "logs/"},
    }
    sm = client.create_state_machine(
        "list", machine(ItemReader=listing, ItemSelector={"k.$": "$$.Map.Item.Value.Key"})
    )
    done = sm.start({})
    assert done.status == "SUCCEEDED", done.cause
    assert done.output == [{"k": "logs/a.txt"}, {"k": "logs/b.txt"}]


def test_a_manifest_lists_inventory_files_whose_rows_are_the_items(
    client: Orchestrator, s3: S3, bucket: str
) -> None:
    s3.put(bucket, "inv/data.csv.gz", gzip.compress(b"src,a.txt\nsrc,b.txt\n"))
    manifest = {
        "destinationBucket": f"arn:aws:s3:::{bucket}",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key",
        "files": [{"key": "inv/data.csv.gz"}],
    }
    s3.put(bucket, "inv/manifest.json", json.dumps(manifest))
    sm = client.create_state_machine(
        "manifest", machine(ItemReader=reader(bucket, "inv/manifest.json", InputType="MANIFEST"))
    )
    assert sm.start({}).output == [
        {"Bucket": "src", "Key": "a.txt"},
        {"Bucket": "src", "Key": "b.txt"},
    ]


@pytest.mark.parametrize(
    ("key", "body", "config", "where"),
    [
        ("bad.jsonl", '{"n": 1}\n{"n": 2}\n{"n": \n{"n": 4}\n', {"InputType": "JSONL"}, "line 3"),
        (
            "short.csv",
            "a,b\n1,2\n3\n4,5\n",
            {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
            "line 3 has 1 fields",
        ),
    ],
)
def test_an_object_malformed_midway_fails_the_map_naming_the_line_and_creates_no_child(
    client: Orchestrator, s3: S3, bucket: str, key: str, body: str, config: dict[str, Any],
    where: str,
) -> None:  # fmt: skip
    s3.put(bucket, key, body)
    sm = client.create_state_machine("bad", machine(ItemReader=reader(bucket, key, **config)))
    done = sm.start({})
    assert (done.status, done.error) == ("FAILED", "States.ItemReaderFailed")
    assert where in (done.cause or "")
    assert key in (done.cause or "")
    assert _count_children(client) == 0


def test_result_writer_writes_the_manifest_and_result_files_as_aws_lays_them_out(
    client: Orchestrator, s3: S3, bucket: str
) -> None:
    writer = {
        "Resource": "arn:aws:states:::s3:putObject",
        "Parameters": {"Bucket": bucket, "Prefix": "out"},
    }
    sm = client.create_state_machine(
        "writer", machine(ResultWriter=writer, ToleratedFailureCount=1)
    )
    done = sm.start([{"n": 0}, {"n": 1, "fail": True}, {"n": 2}])
    assert done.status == "SUCCEEDED", done.cause
    (run,) = client.map_runs()
    base = f"out/{run.id}"
    assert done.output == {
        "MapRunArn": run.id,
        "ResultWriterDetails": {"Bucket": bucket, "Key": f"{base}/manifest.json"},
    }
    assert s3.keys(bucket) == [
        f"{base}/FAILED_0.json",
        f"{base}/SUCCEEDED_0.json",
        f"{base}/manifest.json",
    ]
    manifest = json.loads(s3.get(bucket, f"{base}/manifest.json"))
    assert manifest["DestinationBucket"] == bucket
    assert [f["Key"] for f in manifest["ResultFiles"]["SUCCEEDED"]] == [f"{base}/SUCCEEDED_0.json"]
    assert manifest["ResultFiles"]["PENDING"] == []
    succeeded = json.loads(s3.get(bucket, f"{base}/SUCCEEDED_0.json"))
    assert [json.loads(e["Output"]) for e in succeeded] == [{"n": 0}, {"n": 2}]
    assert {e["Status"] for e in succeeded} == {"SUCCEEDED"}
    (failed,) = json.loads(s3.get(bucket, f"{base}/FAILED_0.json"))
    assert (failed["Status"], failed["Error"]) == ("FAILED", "ValueError")
    assert manifest["ResultFiles"]["SUCCEEDED"][0]["Size"] == len(
        s3.get(bucket, f"{base}/SUCCEEDED_0.json")
    )


def test_local_files_stand_in_for_buckets_with_a_file_url(tmp_path: Path, sqlite_url: str) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "items.jsonl").write_text('{"n": 1}\n{"n": 2}\n')
    settings = Settings(database_url=sqlite_url, map_object_store=f"file://{tmp_path}/")
    repo = Repository.from_settings(settings)
    runner = Runner(repo, settings=settings, handlers=MappingResolver({RESOURCE: work}))
    client = Orchestrator(settings, repository=repo, runner=runner)
    sm = client.create_state_machine(
        "files", machine(ItemReader=reader("data", "items.jsonl", InputType="JSONL"))
    )
    assert sm.start({}).output == [{"n": 1}, {"n": 2}]
    repo.close()
