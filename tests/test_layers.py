"""The layers of docs/architecture.md, read from the source with ``ast`` (no import runs).

- Imports point down the layers only (anywhere in a module: at its top, in a
  function, under ``TYPE_CHECKING``).
- ``asl/`` imports nothing of orchestrator but its own modules, ``errors`` and ``types``.
- A front end (``cli``, ``api``, ``demo``) imports the client layer and the
  shared vocabulary, never ``store``, ``runtime``, ``distributed`` or ``batch``.
- The imports that run when a module is imported (its top level, outside
  ``TYPE_CHECKING``) form no cycle.
- Each public package's ``__all__`` is sorted and is exactly its public names.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "orchestrator"

#: Layer of each top-level part, lowest first; a module may import its own layer and below.
LAYERS: dict[str, int] = {
    "settings": 0,
    "errors": 0,
    "types": 0,
    "logs": 0,  # JSON log set-up and context: imports only settings
    "asl": 1,
    "handlers": 2,
    "examples": 2,
    "graph": 2,  # drawing a definition (and its history): imports only asl
    "store": 3,
    "runtime": 4,
    "distributed": 5,
    "celery": 5,
    "batch": 6,
    "client": 7,
    "statemachine": 7,
    "handles": 7,
    "shortcuts": 7,
    "worker": 7,
    "": 7,  # the package itself: its lazy public surface
    "cli": 8,
    "api": 8,
    "aws": 8,  # the AWS JSON API, a front end served by the api
    "demo": 8,
    "__main__": 8,
}

#: Modules whose layer is not their part's: the ASL half of the exception tree is
#: vocabulary (``orchestrator.errors`` re-exports it), so it sits with ``errors``.
LAYER_OF_MODULE: dict[str, int] = {"orchestrator.asl.errors": 0}

#: What ``asl/`` may import of ours besides itself.
ASL_MAY_IMPORT = {"errors", "types"}

FRONT_ENDS = {"cli", "api", "aws", "demo"}
#: What a front end must not import: the layers below the client.
BELOW_THE_CLIENT = {"store", "runtime", "distributed", "batch", "celery", "worker"}

#: Front-end modules allowed a lower-layer import for now, each with the reason.
PENDING: dict[str, str] = {}

#: Public packages whose ``__all__`` is pinned to their public names.
PUBLIC_PACKAGES = [
    "orchestrator.asl",
    "orchestrator.batch",
    "orchestrator.distributed",
    "orchestrator.graph",
    "orchestrator.store",
]
#: Packages whose exports load lazily (PEP 562): ``__all__`` is pinned to ``_EXPORTS``.
LAZY_PACKAGES = ["orchestrator", "orchestrator.runtime"]


@dataclass(frozen=True)
class Import:
    """One import of one of our modules, as written in a source file."""

    source: str
    target: str
    line: int
    runs_on_import: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {
        module_name(path): path
        for path in sorted(package.rglob("*.py"))
        if "migrations" not in path.relative_to(PACKAGE).parts[:2] or path.name == "__init__.py"
    }


def _resolve(name: str, known: dict[str, Path]) -> str:
    """The module an imported dotted name lives in (``a.b.C`` -> ``a.b``)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, top: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) or (
            isinstance(child, ast.If) and _is_type_checking(child)
        ):
            yield from _walk(child, False)
        else:
            yield child, top
            yield from _walk(child, top)


def imports_of(name: str, path: Path, known: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node, top in _walk(tree, True):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            if target == "orchestrator" or target.startswith("orchestrator."):
                resolved = _resolve(target, known)
                if resolved and resolved != name:
                    found.append(Import(name, resolved, node.lineno, top))
    return found


def all_imports() -> list[Import]:
    known = modules()
    return [found for name, path in known.items() for found in imports_of(name, path, known)]


def part(module: str) -> str:
    """The top-level part of one of our modules: ``orchestrator.batch.run`` -> ``batch``."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else ""


def layer(module: str) -> int:
    """The layer of one of our modules."""
    return LAYER_OF_MODULE.get(module, LAYERS[part(module)])


def layer_violations(found: list[Import]) -> list[str]:
    bad = []
    for imp in found:
        if layer(imp.target) > layer(imp.source):
            bad.append(f"{imp.source}:{imp.line} imports {imp.target} (a layer above it)")
    return bad


def asl_violations(found: list[Import]) -> list[str]:
    return [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for imp in found
        if part(imp.source) == "asl" and part(imp.target) not in {"asl", *ASL_MAY_IMPORT}
    ]


def front_end_violations(found: list[Import]) -> list[str]:
    return [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for imp in found
        if part(imp.source) in FRONT_ENDS
        and part(imp.target) in BELOW_THE_CLIENT
        and imp.source not in PENDING
    ]


def import_graph(found: list[Import]) -> dict[str, set[str]]:
    """What importing each module runs at once (its top level, outside TYPE_CHECKING).

    Importing ``a.b.c`` first runs the package ``a.b``, so an import from outside
    ``a.b`` depends on it too. A submodule needs no edge to its own package:
    Python has the package in ``sys.modules`` already, and whatever the
    submodule takes from it is an explicit import (an edge of its own).
    """
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    for imp in found:
        if not imp.runs_on_import:
            continue
        graph[imp.source].add(imp.target)
        package = imp.target.rpartition(".")[0]
        while package.count(".") >= 1 and not imp.source.startswith(package + "."):
            graph[imp.source].add(package)
            package = package.rpartition(".")[0]
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


# -- the rules --------------------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    assert {part(name) for name in modules()} <= set(LAYERS)


def test_imports_point_down_the_layers() -> None:
    assert layer_violations(all_imports()) == []


def test_the_interpreter_imports_only_itself_errors_and_types() -> None:
    assert asl_violations(all_imports()) == []


def test_front_ends_import_the_client_not_the_layers_below_it() -> None:
    assert front_end_violations(all_imports()) == []


def test_the_pending_exceptions_are_still_needed() -> None:
    # An exception that is no longer needed must go, so the list cannot only grow.
    found = all_imports()
    for module in PENDING:
        assert any(
            imp.source == module and part(imp.target) in BELOW_THE_CLIENT for imp in found
        ), f"{module} no longer needs its exception: remove it from PENDING"


def test_no_import_cycle() -> None:
    assert cycles(import_graph(all_imports())) == []


def test_importing_the_interpreter_loads_no_database_or_broker_library() -> None:
    # Given a fresh interpreter that imports only orchestrator.asl
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import orchestrator.asl"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    # Then -X importtime lists no SQLAlchemy, alembic, kombu or celery module
    loaded = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line]
    heavy = [m for m in loaded if m.split(".")[0] in {"sqlalchemy", "alembic", "kombu", "celery"}]
    assert heavy == []
    # and none of our modules outside the interpreter and its vocabulary
    ours = {m for m in loaded if m.startswith("orchestrator")}
    assert all(part(m) in {"", "asl", *ASL_MAY_IMPORT} for m in ours), sorted(ours)


# -- the checks catch what they claim ------------------------------------------------------


def _fake(tmp_path: Path, files: dict[str, str]) -> tuple[list[Import], dict[str, Path]]:
    for relative, text in files.items():
        path = tmp_path / "orchestrator" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    known = {
        ".".join(p.relative_to(tmp_path).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (tmp_path / "orchestrator").rglob("*.py")
    }
    found = []
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        for node, top in _walk(tree, True):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("orchestrator"):
                target = _resolve(f"{node.module}.{node.names[0].name}", known)
                found.append(Import(name, target, node.lineno, top))
        del package
    return found, known


def test_the_checks_catch_an_interpreter_that_reaches_for_the_store(tmp_path: Path) -> None:
    found, _ = _fake(
        tmp_path,
        {
            "asl/__init__.py": "",
            "asl/model.py": "def f():\n    from orchestrator.store import Repository\n",
            "store/__init__.py": "Repository = 1\n",
        },
    )
    assert asl_violations(found) == ["orchestrator.asl.model:2 imports orchestrator.store"]
    assert layer_violations(found) != []


def test_the_checks_catch_a_front_end_that_goes_around_the_client(tmp_path: Path) -> None:
    found, _ = _fake(
        tmp_path,
        {
            "cli.py": "from orchestrator.runtime.runner import Runner\n",
            "runtime/__init__.py": "",
            "runtime/runner.py": "Runner = 1\n",
        },
    )
    assert front_end_violations(found) == ["orchestrator.cli:1 imports orchestrator.runtime.runner"]


def test_the_checks_catch_a_cycle_but_not_a_lazy_import(tmp_path: Path) -> None:
    found, _ = _fake(
        tmp_path,
        {
            "errors.py": "from orchestrator.store.errors import LeaseLost\n",
            "store/__init__.py": "",
            "store/errors.py": "from orchestrator.errors import Base\n",
            "client.py": "def f():\n    from orchestrator.statemachine import S\n",
            "statemachine.py": "from orchestrator.client import C\n",
        },
    )
    graph: dict[str, set[str]] = {}
    for imp in found:
        if imp.runs_on_import:
            graph.setdefault(imp.source, set()).add(imp.target)
    assert cycles(graph) == [["orchestrator.errors", "orchestrator.store.errors"]]


def test_a_cycle_through_a_package_init_counts() -> None:
    # errors -> store.errors runs store/__init__, which imports the repository,
    # which imports errors: the cycle the old tree held together by a late import.
    found = [
        Import("orchestrator.errors", "orchestrator.store.errors", 1, True),
        Import("orchestrator.store", "orchestrator.store.repository", 1, True),
        Import("orchestrator.store.repository", "orchestrator.errors", 1, True),
    ]
    assert cycles(import_graph(found)) == [
        ["orchestrator.errors", "orchestrator.store", "orchestrator.store.repository"]
    ]


# -- public surfaces ------------------------------------------------------------------------


def _public_names(module: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_a_package_exports_exactly_its_public_names(package: str) -> None:
    module = importlib.import_module(package)
    assert len(module.__all__) == len(set(module.__all__))
    assert set(module.__all__) == _public_names(module)


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_a_lazy_package_exports_exactly_what_it_loads(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__ == sorted(module.__all__)
    exported = set(module._EXPORTS) | ({"__version__"} if package == "orchestrator" else set())
    assert set(module.__all__) == exported
    for name in module.__all__:
        assert getattr(module, name) is not None
