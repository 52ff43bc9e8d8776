"""The distribution can be published: a name of its own, classifiers, the import package."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_the_distribution_is_not_named_after_the_unrelated_orchestrator_on_the_index() -> None:
    # "orchestrator" 1.0 (2020) on the index is another project: we could never publish there.
    assert PROJECT["name"] == "asl-orchestrator"


def test_the_import_package_and_the_command_stay_orchestrator() -> None:
    assert PROJECT["scripts"] == {"orchestrator": "orchestrator.cli:main"}
    assert (ROOT / "orchestrator" / "__init__.py").exists()


def test_the_distribution_says_what_it_is() -> None:
    classifiers = set(PROJECT["classifiers"])
    assert "Typing :: Typed" in classifiers
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert any(c.startswith("Development Status") for c in classifiers)


def test_the_readme_says_how_to_install_it() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"pip install {PROJECT['name']}" in readme
