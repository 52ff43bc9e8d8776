"""The repository's layout: backend differences in one dialect object, a facade over its parts."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import Engine

from orchestrator.errors import ConfigurationError
from orchestrator.store import Repository
from orchestrator.store import repository as repository_package
from orchestrator.store.dialect import PostgresDialect, SqliteDialect, dialect_for
from orchestrator.store.repository import (
    Batches,
    BatchExecutions,
    Checkpoints,
    Definitions,
    Executions,
    Runs,
    Waits,
)

REPOSITORY_DIR = Path(repository_package.__file__).parent
BACKENDS = {"postgresql", "sqlite", "postgres"}
PARTS = (Definitions, Executions, Runs, Checkpoints, Waits, Batches, BatchExecutions)
#: Public names of the facade that are its own, not a part's.
FACADE_OWN = {"from_settings", "close", "engine", "payload_max_bytes"}


def backend_mentions(source: str) -> list[str]:
    """Where code (not docstrings or comments) names a backend or asks the engine which it is."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and str(node.value).lower() in BACKENDS:
            found.append(f"line {node.lineno}: {node.value!r}")
        if isinstance(node, ast.ImportFrom) and "sqlalchemy.dialects" in (node.module or ""):
            found.append(f"line {node.lineno}: from {node.module} import")
        if isinstance(node, ast.Attribute) and _asks_the_backend(node):
            found.append(f"line {node.lineno}: .{node.attr}")
    return found


def _asks_the_backend(node: ast.Attribute) -> bool:
    """``engine.dialect`` or ``dialect.name``: reading which backend runs."""
    owner = node.value.attr if isinstance(node.value, ast.Attribute) else None
    owner = node.value.id if isinstance(node.value, ast.Name) else owner
    return (node.attr, owner) in {
        ("dialect", "engine"),
        ("dialect", "_engine"),
        ("name", "dialect"),
        ("name", "_dialect"),
    }


def test_no_repository_module_names_a_backend() -> None:
    # Given every module of the repository package
    modules = sorted(REPOSITORY_DIR.glob("*.py"))
    assert len(modules) >= 8

    # Then none branches on the backend: that is the dialect's job (store/dialect.py)
    offenders = {p.name: backend_mentions(p.read_text()) for p in modules}
    assert {name: lines for name, lines in offenders.items() if lines} == {}


@pytest.mark.parametrize(
    "source",
    [
        'if self._dialect == "postgresql":\n    pass\n',
        "from sqlalchemy.dialects import postgresql\n",
        "x = conn.engine.dialect.name\n",
        "x = self.dialect.name == other\n",
    ],
)
def test_the_backend_check_finds_a_branch_on_the_backend(source: str) -> None:
    assert backend_mentions(source)


def test_the_dialect_is_picked_from_the_engine(repo: Repository) -> None:
    expected = {"postgresql": PostgresDialect, "sqlite": SqliteDialect}[repo.engine.dialect.name]
    assert type(dialect_for(repo.engine)) is expected


def test_an_unsupported_database_is_refused_by_name() -> None:
    engine = cast(Engine, SimpleNamespace(dialect=SimpleNamespace(name="oracle")))
    with pytest.raises(ConfigurationError, match="'oracle'"):
        dialect_for(engine)


def public_names(cls: type) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_")}


def test_the_facade_has_every_method_of_every_part_and_nothing_else() -> None:
    part_methods: dict[str, type] = {}
    for part in PARTS:
        for name in public_names(part):
            assert name not in part_methods, f"{name} in {part_methods.get(name)} and {part}"
            part_methods[name] = part

    assert public_names(Repository) == set(part_methods) | FACADE_OWN
    # The 49 methods: 46 use cases, plus from_settings, close and engine;
    # issue 13 added six for task tokens, issue 16 claim_many, check_checkpoint and
    # checkpoint_many (group claim and commit), then check_end and end_many (EXPRESS),
    # and issue 15 set_trace_context.
    assert len(part_methods) == 58


@pytest.mark.parametrize("name", ["claim", "create_executions_bulk", "pause_batch", "history"])
def test_a_facade_method_has_its_parts_signature_and_runs_on_the_part(
    repo: Repository, name: str
) -> None:
    part: Any = next(p for p in PARTS if name in vars(p))
    assert inspect.signature(getattr(Repository, name)) == inspect.signature(getattr(part, name))
    bound = getattr(repo, name)
    assert bound.__self__ is next(v for v in vars(repo).values() if isinstance(v, part))
    assert bound.__doc__ == getattr(part, name).__doc__
