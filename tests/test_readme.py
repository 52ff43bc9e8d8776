"""The README's commands are the ones CI runs, and its main job works on a fresh directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI = (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def section_commands(title: str) -> list[str]:
    """The lines of the first ```bash block after the heading that starts with ``title``."""
    match = re.search(rf"^## {re.escape(title)}.*?```bash\n(.*?)```", README, re.S | re.M)
    assert match, f"README has no '## {title}' section with a bash block"
    return [line.strip() for line in match.group(1).splitlines() if line.strip()]


def test_the_readme_sets_up_in_two_commands_that_ci_also_runs() -> None:
    setup = section_commands("Set up")
    assert len(setup) == 2
    assert setup[0].startswith("python3 -m venv .venv")
    assert "pip install -e '.[dev]'" in setup[1]
    assert "-m venv .venv" in CI
    assert ".venv/bin/pip install -q -e '.[dev]'" in CI


def test_ci_runs_the_readme_test_command() -> None:
    (command,) = section_commands("Run the tests")
    ci_lines = [line.strip() for line in CI.splitlines()]
    assert command in ci_lines


@pytest.mark.slow
def test_the_readme_main_job_runs_on_the_embedded_default_in_a_fresh_directory(
    tmp_path: Path,
) -> None:
    (command,) = section_commands("Run the main job")
    program, *args = command.split()
    assert program == ".venv/bin/orchestrator"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    result = subprocess.run(  # noqa: S603 - our own CLI, arguments from our README
        [sys.executable, "-m", "orchestrator", *args, "--sources", "5"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "SUCCEEDED" in result.stdout
    assert (tmp_path / "orchestrator.db").exists()
