"""``execute_bulk`` inputs: JSON arrays and JSON lines, streamed; malformed ones refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from orchestrator.batch import inputs as inputs_module
from orchestrator.batch.inputs import detect_format, read_inputs
from orchestrator.errors import BulkInputError
from orchestrator.settings import Settings
from orchestrator.store import Repository
from orchestrator.types import BatchStatus
from tests.batch.conftest import World

#: Values that are awkward to split between chunks: brackets and commas in
#: strings, escapes, nesting, numbers of every shape, unicode.
AWKWARD: list[Any] = [
    {"n": 0, "text": "a ] b , c [ d", "quote": 'say "hi"\\'},
    [1, [2, [3, []]], {}],
    -12.5e-3,
    123456789012345678,
    "line\nbreak \u00e9\u4e2d \U0001f600",
    None,
    True,
    {"nested": {"deep": [{"x": 1}, {"y": [False, None]}]}},
    0,
    "",
]


def values(path: Path, fmt: str, **kwargs: Any) -> list[Any]:
    """The values ``read_inputs`` streams from ``path``."""
    return [value for _, _, value in read_inputs(path, input_format=fmt, **kwargs)]  # type: ignore[arg-type]


# -- reading -----------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 65536])
@pytest.mark.parametrize("indent", [None, 2])
def test_an_array_is_read_element_by_element_across_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, indent: int | None
) -> None:
    # Given a JSON array (compact or pretty-printed), read in chunks of a few characters
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps(AWKWARD * 3, indent=indent, ensure_ascii=False))
    monkeypatch.setattr(inputs_module, "CHUNK_CHARS", chunk)

    # Then every element comes out as json.load reads it, numbered from 0
    assert values(path, "array") == AWKWARD * 3
    numbered = list(read_inputs(path, input_format="array"))
    assert [index for index, _, _ in numbered] == list(range(len(AWKWARD) * 3))
    assert numbered[1][1].startswith("element 1 (line ")


def test_a_long_array_is_streamed_without_holding_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a 20,000-element array and a 1 KiB chunk
    path = tmp_path / "big.json"
    path.write_text(json.dumps([{"n": n, "pad": "x" * 20} for n in range(20_000)]))
    monkeypatch.setattr(inputs_module, "CHUNK_CHARS", 1024)
    # When it is read, the buffer never holds more than a chunk or two
    largest = count = 0
    with path.open() as stream:
        reader = inputs_module._ArrayReader(stream, str(path), 1 << 20)
        for _ in reader.values():
            count += 1
            largest = max(largest, len(reader.buf))
    assert count == 20_000
    assert largest < 3 * 1024


def test_json_lines_skip_blank_lines_and_accept_a_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "inputs.jsonl"
    lines = [json.dumps(v, ensure_ascii=False) for v in AWKWARD]
    path.write_bytes(("\ufeff" + "\r\n\r\n".join(lines) + "\r\n   \n").encode())

    numbered = list(read_inputs(path, input_format="lines"))

    assert [value for _, _, value in numbered] == AWKWARD
    assert [index for index, _, _ in numbered] == list(range(len(AWKWARD)))
    assert numbered[1][1] == "line 3"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.json", "  \n [1, 2]", "array"),
        ("a.json", '{"n": 1}\n{"n": 2}\n', "lines"),
        ("a.jsonl", "[1, 2]\n[3]\n", "lines"),
        ("a.ndjson", '{"n": 1}\n', "lines"),
        ("a.txt", "", "lines"),
    ],
)
def test_the_format_is_guessed_from_the_suffix_then_the_first_character(
    tmp_path: Path, name: str, content: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert detect_format(path) == expected


# -- malformed files ----------------------------------------------------------------

MALFORMED = [
    ("lines", '{"n": 1}\n{"n": 2}\n{"n": 3,}\n', "line 3", "Expecting property name"),
    ("lines", '{"n": 1}\n\n{"n": NaN}\n', "line 3", "NaN is not a JSON value"),
    ("lines", '{"n": 1} {"n": 2}\n', "line 1", "Extra data"),
    ("lines", '{"n": 1}\n"unterminated\n', "line 2", "Unterminated string"),
    ("array", '[{"n": 1},\n {"n": 2},\n {"n": 3,}\n]', "line 3", "element 2: Expecting"),
    ("array", "[1, 2, Infinity]", "line 1", "element 2: Infinity is not a JSON value"),
    ("array", "[1, 2,]", "line 1", "',' after element 1 is followed by ']'"),
    ("array", "[1, 2\n\n", "line 3", "found the end of the file"),
    ("array", "[1, 2 3]", "line 1", "expected ',' or ']' after element 1, found '3'"),
    ("array", '[1, "a', "line 1", "element 1: Unterminated string"),
    ("array", '[1, "a\n"]', "line 1", "element 1: Invalid control character"),
    ("array", "[1]\n[2]\n", "line 2", "data after the end of the array"),
    ("array", '{"n": 1}', "line 1", "does not hold a JSON array"),
    ("array", "[", "line 1", "the file ends before element 0"),
]


@pytest.mark.parametrize(("fmt", "content", "where", "reason"), MALFORMED)
def test_a_malformed_file_is_refused_naming_the_line(
    tmp_path: Path, fmt: str, content: str, where: str, reason: str
) -> None:
    path = tmp_path / "inputs.data"
    path.write_text(content)
    with pytest.raises(BulkInputError) as caught:
        values(path, fmt)
    assert caught.value.location == where
    assert reason in caught.value.reason
    assert str(path) in str(caught.value)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"n": 1}\n{"name": "caf\xe9"}\n')
    with pytest.raises(BulkInputError, match="not UTF-8"):
        values(path, "lines")


def test_an_element_longer_than_the_limit_is_refused_without_reading_on(tmp_path: Path) -> None:
    # Given an array whose second element never closes, followed by much more data
    path = tmp_path / "broken.json"
    path.write_text('[1, {"n": "' + "x" * 200_000 + '"')
    with pytest.raises(BulkInputError, match="element 1: Unterminated string"):
        values(path, "array", max_chars=1000)
    lines = tmp_path / "long.jsonl"
    lines.write_text('{"n": 1}\n"' + "x" * 5000 + '"\n')
    with pytest.raises(BulkInputError, match="longer than 1000 characters") as caught:
        values(lines, "lines", max_chars=1000)
    assert caught.value.location == "line 2"


# -- execute_bulk ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["array", "lines"])
def test_bulk_from_a_file_starts_one_execution_per_input_once(
    local: World, tmp_path: Path, fmt: str
) -> None:
    # Given 250 inputs in a file
    inputs = [{"n": n, "ok": True} for n in range(250)]
    path = tmp_path / f"inputs.{'json' if fmt == 'array' else 'jsonl'}"
    if fmt == "array":
        path.write_text(json.dumps(inputs, indent=1))
    else:
        path.write_text("\n".join(json.dumps(v) for v in inputs) + "\n")

    # When the batch runs, in slices of 100
    result = local.bulk(path, micro_batch_size=100)

    # Then each input has its execution, named by its index, and they all succeeded
    assert (result.status, result.created, result.sources) == (BatchStatus.COMPLETED, 250, 250)
    executions = {e.name: e for e in local.executions(result.batch_id)}
    assert set(executions) == {f"bulk-{n}" for n in range(250)}
    assert executions["bulk-137"].input == {"n": 137, "ok": True}
    batch = local.repo.get_batch(result.batch_id)
    assert batch.filter == {"inputs": "file", "path": str(path), "format": fmt, "count": 250}

    # And the same file again starts nothing twice
    again = local.bulk(path, micro_batch_size=100)
    assert (again.created, again.skipped) == (0, 250)


def test_a_malformed_file_creates_nothing(local: World, tmp_path: Path) -> None:
    # Given a JSON-lines file whose 1,201st line is broken
    path = tmp_path / "inputs.jsonl"
    lines = [json.dumps({"n": n}) for n in range(1500)]
    lines[1200] = '{"n": 1200'
    path.write_text("\n".join(lines))

    # When it is started, it is refused before anything is written
    with pytest.raises(BulkInputError) as caught:
        local.bulk(path)
    assert caught.value.location == "line 1201"
    assert "nothing was created" in str(caught.value)
    with local.repo.engine.connect() as conn:
        batches = conn.execute(text("SELECT count(*) FROM batches")).scalar()
        executions = conn.execute(text("SELECT count(*) FROM executions")).scalar()
    assert (batches, executions) == (0, 0)


def test_an_input_too_large_to_store_is_refused_by_its_line(
    database_url: str, tmp_path: Path
) -> None:
    # Given a store that takes payloads of 200 bytes at most
    settings = Settings(database_url=database_url, payload_max_bytes=200)
    repo = Repository.from_settings(settings)
    try:
        world = World(settings=settings, repo=repo, machine=_machine(repo, settings), mode="local")
        path = tmp_path / "inputs.jsonl"
        path.write_text('{"n": 1}\n{"n": 2, "pad": "' + "x" * 300 + '"}\n')
        with pytest.raises(BulkInputError, match="exceeds the maximum of 200 bytes") as caught:
            world.bulk(path)
        assert caught.value.location == "line 2"
    finally:
        repo.close()


def test_a_bad_input_from_an_iterable_fails_the_batch_and_says_what_was_created(
    local: World,
) -> None:
    # Given inputs whose 151st is not JSON (NaN), in slices of 100
    inputs = [{"n": n, "ok": True} for n in range(300)]
    inputs[150] = {"n": float("nan")}

    # When the batch runs, it fails at that input
    with pytest.raises(BulkInputError) as caught:
        local.bulk(iter(inputs), micro_batch_size=100)

    # Then the error names the input and what became of the first slice
    assert caught.value.location == "element 150"
    assert caught.value.created == 100
    assert "100 executions were created before it and stay" in str(caught.value)
    batch_id = local.only_batch()
    batch = local.repo.get_batch(batch_id)
    assert batch.status == BatchStatus.FAILED
    assert "element 150" in (batch.error or "")
    assert len(local.executions(batch_id)) == 100


def _machine(repo: Repository, settings: Settings) -> Any:
    from orchestrator.handlers import HandlerRegistry
    from orchestrator.runtime import Runner
    from orchestrator.statemachine import StateMachine
    from tests.batch.work import MACHINE, RESOURCE, work

    handlers = HandlerRegistry()
    handlers.register(RESOURCE, work)
    created = StateMachine.create("bulk", MACHINE, repository=repo, settings=settings)
    runner = Runner(repo, settings=settings, handlers=handlers)
    return StateMachine(created.version_record, repository=repo, settings=settings, runner=runner)
