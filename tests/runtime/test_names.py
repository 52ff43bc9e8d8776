"""State machine names follow AWS's rule, refused with the reason before anything is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.errors import InvalidName, StateMachineNotFound
from orchestrator.settings import get_settings
from orchestrator.statemachine import StateMachine

from .conftest import Env

PASS = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "1 to 80 characters, not 0"),
        ("x" * 81, "1 to 80 characters, not 81"),
        ("two words", "may not contain ' ' (at 3)"),
        ("tab\there", "may not contain '\\t'"),
        ("a/b", "may not contain '/' (at 1)"),
        ("orders:v2", "may not contain ':'"),
        ("nul\x00", "may not contain '\\x00'"),
    ],
)
def test_a_name_aws_would_refuse_is_refused_and_nothing_is_stored(
    env: Env, name: str, reason: str
) -> None:
    with pytest.raises(InvalidName, match="state machine name") as refused:
        StateMachine.create(name, PASS, repository=env.repo, settings=env.settings)
    assert reason in str(refused.value)
    assert StateMachine.list(repository=env.repo) == []
    with pytest.raises(StateMachineNotFound):
        StateMachine.load(name or "-", repository=env.repo, settings=env.settings)


def test_names_of_80_characters_with_dashes_dots_and_underscores_are_fine(env: Env) -> None:
    name = "Orders_v2.1-" + "x" * 68
    assert StateMachine.create(name, PASS, repository=env.repo, settings=env.settings).name == name


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    get_settings.cache_clear()
    definition = tmp_path / "m.json"
    definition.write_text('{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}')
    yield definition
    get_settings.cache_clear()


def test_the_cli_refuses_a_bad_name_in_one_line(cli_db: Path) -> None:
    result = CliRunner().invoke(app, ["machines", "create", "my orders", str(cli_db)])
    assert result.exit_code != 0
    assert "state machine name 'my orders' may not contain ' '" in result.output
    assert "Traceback" not in result.output
