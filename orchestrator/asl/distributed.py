"""The Distributed Map's own fields: parsed and validated as AWS does, evaluated when entered.

A Map state whose ``ItemProcessor.ProcessorConfig.Mode`` is ``DISTRIBUTED`` runs its
items as child executions (the runtime's Map Run). This module parses what only such
a Map has (``ItemReader``, ``ItemBatcher``, ``ResultWriter``, ``ExecutionType``,
``Label``) into a :class:`DistributedMap`, with a problem (and its JSON pointer) for
anything AWS refuses; and evaluates it against the state's input when the state is
entered (:func:`evaluate`), so the runtime gets plain values. Pure, like all of ``asl``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.asl import errors, jsonata
from orchestrator.asl.errors import Problem, StatesError
from orchestrator.asl.paths import Path, PathNotFound, PathSyntaxError, compile_path, select
from orchestrator.asl.templates import Template, compile_template

GET_OBJECT = "arn:aws:states:::s3:getObject"
LIST_OBJECTS = "arn:aws:states:::s3:listObjectsV2"
PUT_OBJECT = "arn:aws:states:::s3:putObject"
READERS = (GET_OBJECT, LIST_OBJECTS)
INPUT_TYPES = ("CSV", "JSON", "JSONL", "MANIFEST", "PARQUET")
CSV_HEADER_LOCATIONS = ("FIRST_ROW", "GIVEN")
CSV_DELIMITERS = {"COMMA": ",", "PIPE": "|", "SEMICOLON": ";", "SPACE": " ", "TAB": "\t"}
OUTPUT_TYPES = ("JSON", "JSONL")
TRANSFORMATIONS = ("NONE", "COMPACT", "FLATTEN")
#: AWS's largest MaxItems of a reader, and MaxInputBytesPerBatch (256 KiB).
MAX_READER_ITEMS = 100_000_000
MAX_BATCH_BYTES = 262_144
#: AWS: a Map Run label is at most 40 characters.
MAX_LABEL = 40
_LABEL_REFUSED = set(' <>{}[]?*"#%\\^|~`$&,;:/')

_READER_FIELDS = {"Resource", "Parameters", "Arguments", "ReaderConfig"}
_CONFIG_FIELDS = {
    "InputType",
    "CSVHeaderLocation",
    "CSVHeaders",
    "CSVDelimiter",
    "MaxItems",
    "MaxItemsPath",
    "ManifestType",
}
_BATCHER_FIELDS = {
    "MaxItemsPerBatch",
    "MaxItemsPerBatchPath",
    "MaxInputBytesPerBatch",
    "MaxInputBytesPerBatchPath",
    "BatchInput",
}
_WRITER_FIELDS = {"Resource", "Parameters", "Arguments", "WriterConfig"}


@dataclass(frozen=True, slots=True, kw_only=True)
class DistributedMap:
    """What a Distributed Map adds to a Map state (as parsed; see :func:`evaluate`)."""

    execution_type: str
    label: str | None = None
    reader: dict[str, Any] | None = None
    batcher: dict[str, Any] | None = None
    writer: dict[str, Any] | None = None
    jsonata: bool = False
    #: Compiled JSONPath templates and paths, by where they sit (``reader``, ...).
    templates: dict[str, Template] = field(default_factory=dict, compare=False)
    paths: dict[str, Path] = field(default_factory=dict, compare=False)


def parse(
    raw: dict[str, Any],
    where: str,
    problems: list[Problem],
    *,
    mode: str,
    execution_type: str | None,
    jsonata_state: bool,
) -> DistributedMap | None:
    """Check the Distributed Map fields of a Map state's ``raw``; None for an inline Map.

    ``ItemReader``, ``ItemBatcher``, ``ResultWriter`` and ``Label`` in an INLINE
    Map are refused, as AWS refuses them.
    """
    p = _Checker(where, problems)
    used = [name for name in ("ItemReader", "ItemBatcher", "ResultWriter", "Label") if name in raw]
    if mode != "DISTRIBUTED":
        for name in used:
            p.add(
                name,
                f"'{name}' is only valid in a Distributed Map "
                "(ItemProcessor.ProcessorConfig.Mode DISTRIBUTED)",
            )
        return None
    out = DistributedMap(execution_type=execution_type or "STANDARD", jsonata=jsonata_state)
    label = raw.get("Label")
    if "Label" in raw and not _good_label(label):
        p.add(
            "Label",
            f"'Label' must be a string of 1 to {MAX_LABEL} characters, no spaces "
            "or special characters",
        )
    reader = _reader(raw.get("ItemReader"), p, out) if "ItemReader" in raw else None
    batcher = _batcher(raw.get("ItemBatcher"), p, out) if "ItemBatcher" in raw else None
    writer = _writer(raw.get("ResultWriter"), p, out) if "ResultWriter" in raw else None
    return DistributedMap(
        execution_type=out.execution_type,
        label=label if isinstance(label, str) else None,
        reader=reader,
        batcher=batcher,
        writer=writer,
        jsonata=jsonata_state,
        templates=out.templates,
        paths=out.paths,
    )


def _good_label(label: Any) -> bool:
    return (
        isinstance(label, str)
        and 0 < len(label) <= MAX_LABEL
        and not any(ch in _LABEL_REFUSED or ord(ch) < 32 for ch in label)
    )


class _Checker:
    def __init__(self, where: str, problems: list[Problem]) -> None:
        self.where, self.problems = where, problems

    def add(self, at: str, message: str) -> None:
        self.problems.append(Problem(path=f"{self.where}/{at}", message=message))

    def unknown(self, raw: dict[str, Any], allowed: set[str], at: str, what: str) -> None:
        for key in raw:
            if key not in allowed:
                self.add(f"{at}/{errors.pointer(key)[1:]}", f"unknown field '{key}' in {what}")

    def integer(
        self, raw: dict[str, Any], name: str, at: str, *, low: int, high: int
    ) -> int | None:
        if name not in raw:
            return None
        value = raw[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.add(f"{at}/{name}", f"'{name}' must be an integer from {low} to {high}")
            return None
        return value

    def path(self, raw: dict[str, Any], name: str, at: str, out: DistributedMap) -> None:
        if name not in raw:
            return
        text = raw[name]
        if not isinstance(text, str):
            self.add(f"{at}/{name}", f"'{name}' must be a path string")
            return
        try:
            out.paths[f"{at}/{name}"] = compile_path(text)
        except PathSyntaxError as exc:
            self.add(f"{at}/{name}", str(exc))

    def template(self, raw: Any, at: str, out: DistributedMap) -> None:
        if out.jsonata:
            return  # JSONata templates are evaluated as they stand
        out.templates[at] = compile_template(raw, f"{self.where}/{at}", self.problems)


def _object(value: Any, name: str, p: _Checker) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        p.add(name, f"'{name}' must be a JSON object")
        return None
    return value


def _parameters(raw: dict[str, Any], at: str, p: _Checker, out: DistributedMap) -> None:
    wrong, right = ("Arguments", "Parameters") if not out.jsonata else ("Parameters", "Arguments")
    if wrong in raw:
        p.add(
            f"{at}/{wrong}",
            f"'{wrong}' is not valid here in a "
            f"{'JSONata' if out.jsonata else 'JSONPath'} state; use '{right}'",
        )
    if right in raw:
        p.template(raw[right], f"{at}/{right}", out)


def _reader(value: Any, p: _Checker, out: DistributedMap) -> dict[str, Any] | None:
    raw = _object(value, "ItemReader", p)
    if raw is None:
        return None
    p.unknown(raw, _READER_FIELDS, "ItemReader", "'ItemReader'")
    resource = raw.get("Resource")
    if resource not in READERS:
        p.add("ItemReader/Resource", f"'Resource' must be one of {', '.join(READERS)}")
    _parameters(raw, "ItemReader", p, out)
    config = raw.get("ReaderConfig", {})
    if not isinstance(config, dict):
        p.add("ItemReader/ReaderConfig", "'ReaderConfig' must be a JSON object")
        config = {}
    _reader_config(config, resource, p, out)
    return raw


def _reader_config(config: dict[str, Any], resource: Any, p: _Checker, out: DistributedMap) -> None:
    at = "ItemReader/ReaderConfig"
    p.unknown(config, _CONFIG_FIELDS, at, "'ReaderConfig'")
    kind = config.get("InputType")
    if resource == GET_OBJECT and kind not in INPUT_TYPES:
        p.add(f"{at}/InputType", f"s3:getObject needs 'InputType' {', '.join(INPUT_TYPES)}")
    if resource == LIST_OBJECTS and "InputType" in config:
        p.add(f"{at}/InputType", "s3:listObjectsV2 lists objects: it takes no 'InputType'")
    location = config.get("CSVHeaderLocation")
    csv_fields = [k for k in ("CSVHeaderLocation", "CSVHeaders", "CSVDelimiter") if k in config]
    if kind != "CSV" and csv_fields:
        p.add(f"{at}/{csv_fields[0]}", f"'{csv_fields[0]}' applies to InputType CSV only")
    if kind == "CSV" and location not in CSV_HEADER_LOCATIONS:
        p.add(
            f"{at}/CSVHeaderLocation", "InputType CSV needs 'CSVHeaderLocation' FIRST_ROW or GIVEN"
        )
    headers = config.get("CSVHeaders")
    if location == "GIVEN":
        good = isinstance(headers, list) and headers and all(isinstance(h, str) for h in headers)
        if not good:
            p.add(
                f"{at}/CSVHeaders",
                "CSVHeaderLocation GIVEN needs 'CSVHeaders', a non-empty array of strings",
            )
    elif "CSVHeaders" in config:
        p.add(f"{at}/CSVHeaders", "'CSVHeaders' needs CSVHeaderLocation GIVEN")
    if "CSVDelimiter" in config and config["CSVDelimiter"] not in CSV_DELIMITERS:
        p.add(f"{at}/CSVDelimiter", f"'CSVDelimiter' must be one of {', '.join(CSV_DELIMITERS)}")
    if "MaxItems" in config and "MaxItemsPath" in config:
        p.add(f"{at}/MaxItemsPath", "a ReaderConfig cannot have both 'MaxItems' and 'MaxItemsPath'")
    if not (out.jsonata and jsonata.is_expression(config.get("MaxItems"))):
        p.integer(config, "MaxItems", at, low=0, high=MAX_READER_ITEMS)
    p.path(config, "MaxItemsPath", at, out)


def _batcher(value: Any, p: _Checker, out: DistributedMap) -> dict[str, Any] | None:
    raw = _object(value, "ItemBatcher", p)
    if raw is None:
        return None
    p.unknown(raw, _BATCHER_FIELDS, "ItemBatcher", "'ItemBatcher'")
    limits = [k for k in _BATCHER_FIELDS if k != "BatchInput" and k in raw]
    if not limits:
        p.add(
            "ItemBatcher",
            "'ItemBatcher' needs 'MaxItemsPerBatch' or "
            "'MaxInputBytesPerBatch' (or their Path forms)",
        )
    for name in ("MaxItemsPerBatch", "MaxInputBytesPerBatch"):
        if name in raw and name + "Path" in raw:
            p.add(
                f"ItemBatcher/{name}Path",
                f"an ItemBatcher cannot have both '{name}' and '{name}Path'",
            )
        if not (out.jsonata and jsonata.is_expression(raw.get(name))):
            high = MAX_BATCH_BYTES if name == "MaxInputBytesPerBatch" else MAX_READER_ITEMS
            p.integer(raw, name, "ItemBatcher", low=1, high=high)
        p.path(raw, name + "Path", "ItemBatcher", out)
    if "BatchInput" in raw:
        p.template(raw["BatchInput"], "ItemBatcher/BatchInput", out)
    return raw


def _writer(value: Any, p: _Checker, out: DistributedMap) -> dict[str, Any] | None:
    raw = _object(value, "ResultWriter", p)
    if raw is None:
        return None
    p.unknown(raw, _WRITER_FIELDS, "ResultWriter", "'ResultWriter'")
    has_target = "Resource" in raw or "Parameters" in raw or "Arguments" in raw
    if not has_target and "WriterConfig" not in raw:
        p.add(
            "ResultWriter",
            "'ResultWriter' needs 'Resource' and 'Parameters', 'WriterConfig', or all three",
        )
    if has_target and raw.get("Resource") != PUT_OBJECT:
        p.add("ResultWriter/Resource", f"'Resource' must be {PUT_OBJECT}")
    if "Resource" in raw and not ("Parameters" in raw or "Arguments" in raw):
        p.add(
            "ResultWriter",
            "'ResultWriter' with a 'Resource' needs its 'Parameters' (Bucket, Prefix)",
        )
    _parameters(raw, "ResultWriter", p, out)
    config = raw.get("WriterConfig")
    if config is not None:
        if not isinstance(config, dict):
            p.add("ResultWriter/WriterConfig", "'WriterConfig' must be a JSON object")
        else:
            at = "ResultWriter/WriterConfig"
            p.unknown(config, {"OutputType", "Transformation"}, at, "'WriterConfig'")
            if config.get("OutputType", "JSON") not in OUTPUT_TYPES:
                p.add(f"{at}/OutputType", "'OutputType' must be JSON or JSONL")
            if config.get("Transformation", "NONE") not in TRANSFORMATIONS:
                p.add(f"{at}/Transformation", "'Transformation' must be NONE, COMPACT or FLATTEN")
    return raw


# --- evaluation, when the state is entered ------------------------------------------------

#: Evaluates a template (JSONPath) or a JSONata template against the effective input.
Render = Callable[[str, Any], Any]


def evaluate(dist: DistributedMap, data: Any, ctx: Any, render: Render) -> dict[str, Any]:
    """The reader, batcher and writer with every path and template evaluated.

    Returns ``{"reader": ..., "batcher": ..., "writer": ...}`` (each None when absent).

    Raises:
        StatesError: a path matches nothing, or a value read has the wrong type.
    """
    return {
        "reader": _evaluate_reader(dist, data, ctx, render),
        "batcher": _evaluate_batcher(dist, data, ctx, render),
        "writer": _evaluate_writer(dist, render),
    }


def _parameters_of(dist: DistributedMap, raw: dict[str, Any], at: str, render: Render) -> Any:
    name = "Arguments" if dist.jsonata else "Parameters"
    return render(f"{at}/{name}", raw[name]) if name in raw else {}


def _evaluate_reader(
    dist: DistributedMap, data: Any, ctx: Any, render: Render
) -> dict[str, Any] | None:
    raw = dist.reader
    if raw is None:
        return None
    config = dict(raw.get("ReaderConfig", {}))
    at = "ItemReader/ReaderConfig"
    path = dist.paths.get(f"{at}/MaxItemsPath")
    if path is not None:
        config["MaxItems"] = _count(path, data, ctx, "MaxItemsPath", low=0)
        config.pop("MaxItemsPath", None)
    elif dist.jsonata and jsonata.is_expression(config.get("MaxItems")):
        config["MaxItems"] = render(f"{at}/MaxItems", config["MaxItems"])
    return {
        "Resource": raw["Resource"],
        "Parameters": _parameters_of(dist, raw, "ItemReader", render),
        "ReaderConfig": config,
    }


def _evaluate_batcher(
    dist: DistributedMap, data: Any, ctx: Any, render: Render
) -> dict[str, Any] | None:
    raw = dist.batcher
    if raw is None:
        return None
    out: dict[str, Any] = {}
    for name in ("MaxItemsPerBatch", "MaxInputBytesPerBatch"):
        path = dist.paths.get(f"ItemBatcher/{name}Path")
        if path is not None:
            out[name] = _count(path, data, ctx, f"{name}Path", low=1)
        elif dist.jsonata and jsonata.is_expression(raw.get(name)):
            out[name] = render(f"ItemBatcher/{name}", raw[name])
        elif name in raw:
            out[name] = raw[name]
    if "BatchInput" in raw:
        out["BatchInput"] = render("ItemBatcher/BatchInput", raw["BatchInput"])
    return out


def _evaluate_writer(dist: DistributedMap, render: Render) -> dict[str, Any] | None:
    raw = dist.writer
    if raw is None:
        return None
    config = dict(raw.get("WriterConfig") or {})
    if "Resource" in raw:
        config.setdefault("Transformation", "NONE")
    else:
        config.setdefault("Transformation", "COMPACT")
    config.setdefault("OutputType", "JSON")
    return {
        "Resource": raw.get("Resource"),
        "Parameters": _parameters_of(dist, raw, "ResultWriter", render)
        if "Resource" in raw
        else None,
        "WriterConfig": config,
    }


def _count(path: Path, data: Any, ctx: Any, name: str, *, low: int) -> int:
    try:
        value = select(path, data, ctx)
    except PathNotFound as exc:
        raise StatesError(errors.RUNTIME, f"{name} '{path.text}' found nothing: {exc}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise StatesError(
            errors.RUNTIME,
            f"{name} '{path.text}' must name an integer >= {low}, not {value!r}",
        )
    return value


__all__ = ["DistributedMap", "evaluate", "parse"]
