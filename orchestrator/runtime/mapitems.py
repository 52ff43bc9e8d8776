"""A Distributed Map's items: read (ItemReader), selected, batched; and its results written.

Objects are read and written through fsspec: ``s3://`` (s3fs, any S3-compatible
endpoint with ``ORCHESTRATOR_S3_ENDPOINT_URL``) or ``file://`` for local runs
(``ORCHESTRATOR_MAP_OBJECT_STORE``). Everything streams: an object is read a
chunk or a line at a time, and :func:`child_inputs` yields one child input at a
time, so a Map Run over millions of items holds one chunk of children in memory.

A reader that finds a malformed item (a bad JSON line, a CSV row with too few
fields) raises :class:`ItemsFailed` naming the line; the Map Run reads the whole
object once before it creates a child (:func:`count_children`), so none is created
for an object that fails.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import IO, Any

from orchestrator.asl import errors as asl_errors
from orchestrator.asl.distributed import CSV_DELIMITERS, LIST_OBJECTS
from orchestrator.asl.errors import StatesError
from orchestrator.asl.interpreter import RunMap
from orchestrator.settings import Settings

ITEM_READER_FAILED = "States.ItemReaderFailed"
RESULT_WRITER_FAILED = "States.ResultWriterFailed"
_CHUNK = 1 << 16


class ItemsFailed(StatesError):
    """The items cannot be read (States.ItemReaderFailed), or an item is refused."""

    def __init__(self, cause: str, name: str = ITEM_READER_FAILED) -> None:
        super().__init__(name, cause)


# --- where objects are ------------------------------------------------------------------


def object_url(settings: Settings, bucket: str, key: str) -> str:
    """The fsspec URL of ``bucket``/``key`` under ``settings.map_object_store``."""
    return f"{settings.map_object_store}{bucket}/{key.lstrip('/')}"


def storage_options(settings: Settings) -> dict[str, Any]:
    """fsspec options: the S3-compatible endpoint, if one is set."""
    if settings.s3_endpoint_url and settings.map_object_store.startswith("s3://"):
        return {"client_kwargs": {"endpoint_url": settings.s3_endpoint_url}}
    return {}


def _open(settings: Settings, bucket: str, key: str, mode: str = "rb") -> Any:
    import fsspec

    return fsspec.open(object_url(settings, bucket, key), mode, **storage_options(settings))


def _filesystem(settings: Settings) -> Any:
    import fsspec

    protocol = settings.map_object_store.split("://", 1)[0]
    return fsspec.filesystem(protocol, **storage_options(settings))


# --- reading --------------------------------------------------------------------------


def raw_items(command: RunMap, settings: Settings) -> Iterator[Any]:
    """The items of a Map Run, in order, before ItemSelector and ItemBatcher."""
    if command.reader is None:
        yield from command.items or ()
        return
    reader = command.reader
    params = reader.get("Parameters") or {}
    config = reader.get("ReaderConfig") or {}
    limit = config.get("MaxItems")
    source: Generator[Any, None, None] | None = None
    if reader["Resource"] == LIST_OBJECTS:
        source = _objects(settings, params)
    if source is None:
        bucket, key = _bucket_key(params, "Key")
        source = _read_object(settings, bucket, key, config)
    try:
        for count, item in enumerate(source):
            if limit and count >= limit:
                return
            yield item
    except ItemsFailed:
        raise
    except (OSError, ValueError) as exc:
        raise ItemsFailed(f"the ItemReader failed: {type(exc).__name__}: {exc}") from None
    finally:
        source.close()  # closes the object now, not when the generator is collected


def _bucket_key(params: Any, key_field: str) -> tuple[str, str]:
    if not isinstance(params, dict) or not isinstance(params.get("Bucket"), str):
        raise ItemsFailed("the ItemReader's Parameters need a 'Bucket' string")
    key = params.get(key_field, "")
    if not isinstance(key, str) or (key_field == "Key" and not key):
        raise ItemsFailed(f"the ItemReader's Parameters need a '{key_field}' string")
    return params["Bucket"], key


def _read_object(
    settings: Settings, bucket: str, key: str, config: dict[str, Any]
) -> Generator[Any, None, None]:
    kind = config.get("InputType")
    where = f"s3://{bucket}/{key}"
    try:
        handle = _open(settings, bucket, key).open()
    except FileNotFoundError:
        raise ItemsFailed(f"the ItemReader found no object {where}") from None
    with handle:
        if kind == "JSONL":
            yield from _jsonl(handle, where)
        elif kind == "JSON":
            yield from _json_array(handle, where)
        elif kind == "CSV":
            yield from _csv(handle, where, config)
        elif kind == "MANIFEST":
            yield from _manifest(settings, handle, where)
        else:
            raise ItemsFailed(f"InputType {kind} is not read by this engine")


def _text(handle: IO[bytes]) -> io.TextIOWrapper:
    return io.TextIOWrapper(handle, encoding="utf-8", newline="")


def _jsonl(handle: IO[bytes], where: str) -> Iterator[Any]:
    with _text(handle) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise ItemsFailed(f"{where} line {number} is not JSON: {exc}") from None


def _json_array(handle: IO[bytes], where: str) -> Iterator[Any]:
    """The elements of a JSON array, decoded one at a time from a stream of chunks."""
    decoder, text = json.JSONDecoder(), codecs.getincrementaldecoder("utf-8")()
    buffer, position, done, started = "", 0, False, False
    while True:
        if not done:
            chunk = handle.read(_CHUNK)
            done = not chunk
            buffer = buffer[position:] + text.decode(chunk or b"", final=done)
            position = 0
        position = _skip(buffer, position)
        if not started:
            if position >= len(buffer) and not done:
                continue
            if buffer[position : position + 1] != "[":
                raise ItemsFailed(f"{where} is not a JSON array")
            started, position = True, position + 1
            continue
        position = _skip(buffer, position)
        if buffer[position : position + 1] in (",",):
            position = _skip(buffer, position + 1)
        if buffer[position : position + 1] == "]":
            return
        try:
            value, end = decoder.raw_decode(buffer, position)
        except ValueError as exc:
            if done:
                raise ItemsFailed(f"{where} is not a valid JSON array: {exc}") from None
            continue
        if end >= len(buffer) and not done:
            continue  # a number may go on in the next chunk
        yield value
        position = end


def _skip(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _csv(handle: IO[bytes], where: str, config: dict[str, Any]) -> Iterator[dict[str, str]]:
    delimiter = CSV_DELIMITERS.get(config.get("CSVDelimiter", "COMMA"), ",")
    headers = config.get("CSVHeaders") if config.get("CSVHeaderLocation") == "GIVEN" else None
    with _text(handle) as text:
        for number, row in enumerate(csv.reader(text, delimiter=delimiter), start=1):
            if headers is None:
                headers = row
                continue
            if not row:
                continue
            if len(row) != len(headers):
                raise ItemsFailed(
                    f"{where} line {number} has {len(row)} fields, the header has {len(headers)}"
                )
            yield dict(zip(headers, row, strict=True))


def _manifest(settings: Settings, handle: IO[bytes], where: str) -> Iterator[Any]:
    """An S3 Inventory manifest: its CSV files' rows, by the manifest's ``fileSchema``."""
    try:
        manifest = json.load(handle)
        schema = [name.strip() for name in manifest["fileSchema"].split(",")]
        files = [entry["key"] for entry in manifest["files"]]
        bucket = manifest.get("destinationBucket", "").removeprefix("arn:aws:s3:::")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ItemsFailed(f"{where} is not an S3 Inventory manifest: {exc}") from None
    for key in files:
        with _open(settings, bucket, key).open() as raw:
            data: Any = gzip.GzipFile(fileobj=raw) if key.endswith(".gz") else raw
            config = {"CSVHeaderLocation": "GIVEN", "CSVHeaders": schema}
            yield from _csv(data, f"s3://{bucket}/{key}", config)


def _objects(settings: Settings, params: Any) -> Generator[dict[str, Any], None, None]:
    """s3:listObjectsV2: one item per object under ``Prefix``, as AWS lists them."""
    bucket, prefix = _bucket_key(params, "Prefix")
    fs = _filesystem(settings)
    root = object_url(settings, bucket, "").split("://", 1)[-1].rstrip("/")
    try:
        found = fs.find(f"{root}/{prefix}" if prefix else root, detail=True)
    except FileNotFoundError:
        return
    for path in sorted(found):
        info = found[path]
        key = path[len(root) + 1 :]
        if not key.startswith(prefix):
            continue
        yield {
            "Key": key,
            "Size": info.get("size", 0),
            "Etag": str(info.get("ETag", "")),
            "LastModified": str(info.get("LastModified", info.get("mtime", ""))),
            "StorageClass": info.get("StorageClass", "STANDARD"),
        }


# --- ItemSelector and ItemBatcher -----------------------------------------------------


def child_inputs(command: RunMap, settings: Settings) -> Iterator[Any]:
    """Each child's input, in order: selected items, or batches of them."""
    selected = (command.select(i, item) for i, item in enumerate(raw_items(command, settings)))
    if command.batcher is None:
        yield from selected
        return
    yield from _batches(selected, command.batcher, settings.payload_max_bytes)


def _batches(items: Iterable[Any], batcher: dict[str, Any], limit: int) -> Iterator[Any]:
    most = batcher.get("MaxItemsPerBatch")
    most_bytes = batcher.get("MaxInputBytesPerBatch") or limit
    extra = {"BatchInput": batcher["BatchInput"]} if "BatchInput" in batcher else {}
    frame = len(json.dumps({"Items": [], **extra}, separators=(",", ":")))
    batch: list[Any] = []
    size = frame
    for item in items:
        item_size = len(json.dumps(item, separators=(",", ":")).encode()) + 1
        full = batch and ((most and len(batch) >= most) or size + item_size > most_bytes)
        if full:
            yield {"Items": batch, **extra}
            batch, size = [], frame
        if frame + item_size > most_bytes:
            raise ItemsFailed(
                f"one item is {item_size} bytes, more than MaxInputBytesPerBatch ({most_bytes})"
            )
        batch.append(item)
        size += item_size
    if batch:
        yield {"Items": batch, **extra}


def count_children(command: RunMap, settings: Settings) -> int:
    """Read every item once (nothing kept) and count the children; fail on a bad one.

    Raises:
        ItemsFailed: the object is malformed (naming the line) or cannot be read.
        StatesError: ItemSelector failed on an item.
    """
    limit = settings.payload_max_bytes
    count = 0
    for index, data in enumerate(child_inputs(command, settings)):
        size = len(json.dumps(data, separators=(",", ":")).encode())
        if size > limit:
            raise ItemsFailed(
                f"the input of child {index} is {size} bytes, more than {limit}",
                name=asl_errors.DATA_LIMIT_EXCEEDED,
            )
        count += 1
    return count


# --- ResultWriter ---------------------------------------------------------------------

#: One child as a result file lists it (see :func:`write_results`).
ChildResult = dict[str, Any]


def transform(output: Any, transformation: str) -> list[Any]:
    """A child's output as the Map's result holds it (COMPACT/FLATTEN)."""
    if transformation == "FLATTEN" and isinstance(output, list):
        return list(output)
    return [output]


def write_results(
    settings: Settings,
    writer: dict[str, Any],
    map_run_id: str,
    results: Callable[[], Iterator[ChildResult]],
) -> dict[str, Any]:
    """Write the result files and ``manifest.json`` as AWS lays them out; return the
    Map's result (``MapRunArn`` and ``ResultWriterDetails``).

    ``<Prefix>/<map run id>/SUCCEEDED_0.json``, ``FAILED_0.json``, ``PENDING_0.json``
    (each a JSON array, or JSON Lines with ``OutputType`` JSONL) and ``manifest.json``
    listing them with their sizes. ``results`` is called once per file and streams.
    """
    params = writer.get("Parameters") or {}
    bucket = params.get("Bucket")
    if not isinstance(bucket, str) or not bucket:
        raise ItemsFailed("the ResultWriter needs a 'Bucket' string", RESULT_WRITER_FAILED)
    prefix = str(params.get("Prefix", "")).strip("/")
    base = f"{prefix}/{map_run_id}" if prefix else map_run_id
    config = writer.get("WriterConfig") or {}
    lines = config.get("OutputType") == "JSONL"
    files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    try:
        for status in files:
            key = f"{base}/{status}_0.json"
            size = _write_file(settings, bucket, key, results, status, config, lines)
            if size is not None:
                files[status].append({"Key": key, "Size": size})
        manifest = {
            "DestinationBucket": bucket,
            "MapRunArn": map_run_id,
            "ResultFiles": files,
        }
        with _open(settings, bucket, f"{base}/manifest.json", "wb") as handle:
            handle.write(json.dumps(manifest).encode())
    except OSError as exc:
        raise ItemsFailed(f"the ResultWriter failed: {exc}", RESULT_WRITER_FAILED) from None
    return {
        "MapRunArn": map_run_id,
        "ResultWriterDetails": {"Bucket": bucket, "Key": f"{base}/manifest.json"},
    }


def _write_file(
    settings: Settings,
    bucket: str,
    key: str,
    results: Callable[[], Iterator[ChildResult]],
    status: str,
    config: dict[str, Any],
    lines: bool,
) -> int | None:
    chosen = (r for r in results() if _group(r["Status"]) == status)
    first = next(chosen, None)
    if first is None:
        return None
    size = 0
    with _open(settings, bucket, key, "wb") as handle:
        size += handle.write(b"" if lines else b"[")
        written = 0
        for entry in _chain(first, chosen):
            for value in _entries(entry, config.get("Transformation", "NONE")):
                text = json.dumps(value, separators=(",", ":"))
                data = text + "\n" if lines else ("," if written else "") + text
                size += handle.write(data.encode())
                written += 1
        size += handle.write(b"" if lines else b"]")
    return int(size)


def _chain(first: ChildResult, rest: Iterator[ChildResult]) -> Iterator[ChildResult]:
    yield first
    yield from rest


def _entries(entry: ChildResult, transformation: str) -> list[Any]:
    if transformation == "NONE" or entry["Status"] != "SUCCEEDED":
        return [entry]
    return transform(json.loads(entry["Output"]) if entry.get("Output") else None, transformation)


def _group(status: str) -> str:
    if status == "SUCCEEDED":
        return "SUCCEEDED"
    if status in ("PENDING", "RUNNING", "WAITING"):
        return "PENDING"
    return "FAILED"


__all__ = [
    "ITEM_READER_FAILED",
    "RESULT_WRITER_FAILED",
    "ItemsFailed",
    "child_inputs",
    "count_children",
    "object_url",
    "raw_items",
    "storage_options",
    "transform",
    "write_results",
]
