"""The bench scripts stay runnable: each imports, and every name it takes from a
sibling bench module exists there.

The benches are not run by CI (they print figures, not verdicts), so a helper
moved from one script to another would otherwise break them silently.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py"))
SIBLINGS = {p.stem for p in SCRIPTS}


@pytest.fixture(scope="module", autouse=True)
def bench_on_path() -> Iterator[None]:
    sys.path.insert(0, str(BENCH))
    yield
    sys.path.remove(str(BENCH))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_a_bench_script_imports_and_its_sibling_names_exist(script: Path) -> None:
    module = importlib.import_module(script.stem)
    assert module is not None
    tree = ast.parse(script.read_text(), filename=str(script))
    missing = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in SIBLINGS
            and node.value.id != script.stem
        ):
            sibling = importlib.import_module(node.value.id)
            if not hasattr(sibling, node.attr):
                missing.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    assert missing == []
