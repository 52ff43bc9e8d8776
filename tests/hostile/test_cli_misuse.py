"""CLI misuse: every case prints one line on stderr, exits 2 and shows no traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.settings import get_settings

REPO_ROOT = Path(__file__).resolve().parents[2]

#: A broker and a PostgreSQL server nothing listens on (port 1 of loopback).
DEAD_BROKER = "redis://127.0.0.1:1/0"
DEAD_POSTGRES = "postgresql://postgres:secret@127.0.0.1:1/nothing"

ONE_STATE = '{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}'

#: (id, arguments, environment, what the line must say). ``{dir}`` is the test's directory.
CASES: list[tuple[str, list[str], dict[str, str], str]] = [
    ("db-unreachable", ["machines", "list"], {"DATABASE_URL": DEAD_POSTGRES},
     "cannot reach the database at postgresql://postgres:***@127.0.0.1:1/nothing"),
    ("db-url-unparseable", ["machines", "list"], {"DATABASE_URL": "nonsense"},
     "ORCHESTRATOR_DATABASE_URL is not a database URL we can use"),
    ("db-url-unknown", ["machines", "list"], {"DATABASE_URL": "foo://x/y"},
     "ORCHESTRATOR_DATABASE_URL is not a database URL we can use"),
    ("db-driver-missing", ["machines", "list"], {"DATABASE_URL": "mysql://x/y"},
     "a module is missing"),
    ("status-bogus", ["executions", "list", "--status", "BOGUS"], {},
     "--status 'BOGUS' is not one of PENDING"),
    ("version-huge", ["machines", "show", "m", "--version", "99999999999999999999"], {},
     "--version must be a number from 1 to 2147483647"),
    ("version-zero", ["machines", "show", "m", "--version", "0"], {}, "--version must be"),
    ("age-1e400", ["executions", "purge", "--older-than", "1e400d"], {}, "not a finite age"),
    ("age-inf", ["executions", "purge", "--older-than", "infd"], {}, "not a finite age"),
    ("age-nan", ["executions", "purge", "--older-than", "nand"], {}, "not a finite age"),
    ("age-huge", ["executions", "purge", "--older-than", "1e300d"], {}, "longer than any age"),
    ("age-negative", ["executions", "purge", "--older-than", "-5d"], {}, "must not be negative"),
    ("age-words", ["executions", "purge", "--older-than", "soon"], {}, "not an age like 30d"),
    ("payload-max-negative", ["machines", "list"], {"PAYLOAD_MAX_BYTES": "-1"},
     "invalid settings: ORCHESTRATOR_PAYLOAD_MAX_BYTES: Input should be greater than 0"),
    ("api-port-out-of-range", ["machines", "list"], {"API_PORT": "99999"},
     "invalid settings: ORCHESTRATOR_API_PORT"),
    ("celery-overrides-malformed", ["machines", "list"], {"CELERY_OVERRIDES": "{x"},
     "invalid settings: ORCHESTRATOR_CELERY_OVERRIDES is not valid JSON"),
    ("events-limit-zero", ["machines", "list"], {"MAX_EVENTS_PER_EXECUTION": "0"},
     "ORCHESTRATOR_MAX_EVENTS_PER_EXECUTION"),
    ("machine-unknown", ["machines", "show", "nope"], {}, "state machine 'nope' does not exist"),
    ("execution-unknown", ["executions", "show", "nope"], {}, "nope"),
    ("machine-name-aws-refuses", ["machines", "create", "a b", "{dir}/p.json"], {},
     "state machine name 'a b' may not contain ' '"),
    ("execution-name-aws-refuses", ["executions", "start", "m", "--name", "a;b"], {},
     "execution name 'a;b' may not contain ';'"),
    ("input-lone-surrogate", ["executions", "start", "m", "-i", '{"a": "\\ud800"}'], {},
     "input: strings may not contain a lone surrogate (U+D800)"),
    ("input-not-json", ["executions", "start", "m", "-i", "{"], {}, "--input is not valid JSON"),
    ("limit-zero", ["executions", "list", "--limit", "0"], {}, "--limit"),
    ("option-unknown", ["executions", "list", "--bogus"], {}, "No such option: --bogus"),
    ("broker-down-batch", ["batch", "start", "m", "--name-prefix", "b", "--inputs",
                           "{dir}/inputs.json"], {"BROKER_URL": DEAD_BROKER},
     "executions PENDING; once the broker is back, `orchestrator batch resume"),
]  # fmt: skip


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_template: Path) -> Iterator[Path]:
    """A SQLite store holding the state machine ``m``, and its settings in the environment."""
    # A copy of the migrated template: migrating a new file costs 0.15 s a case.
    shutil.copyfile(sqlite_template, tmp_path / "cli.db")
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    get_settings.cache_clear()
    (tmp_path / "p.json").write_text(ONE_STATE)
    (tmp_path / "inputs.json").write_text('[{"n": 1}, {"n": 2}, {"n": 3}]')
    created = CliRunner().invoke(app, ["machines", "create", "m", str(tmp_path / "p.json")])
    assert created.exit_code == 0, created.output
    yield tmp_path
    get_settings.cache_clear()


@pytest.mark.parametrize(("arguments", "environment", "says"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_misuse_is_one_line_and_exit_code_two(
    store: Path,
    monkeypatch: pytest.MonkeyPatch,
    arguments: list[str],
    environment: dict[str, str],
    says: str,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(f"ORCHESTRATOR_{name}", value)
    get_settings.cache_clear()

    result = CliRunner().invoke(app, [a.replace("{dir}", str(store)) for a in arguments])

    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    assert says in lines[0]
    assert "Traceback" not in result.output


def test_the_broker_down_case_leaves_the_executions_pending_as_it_says(store: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("ORCHESTRATOR_BROKER_URL", DEAD_BROKER)
    get_settings.cache_clear()
    arguments = ["batch", "start", "m", "--name-prefix", "b", "--inputs", f"{store}/inputs.json"]
    CliRunner().invoke(app, arguments)

    listed = CliRunner().invoke(app, ["executions", "list", "--status", "PENDING", "--json"])

    assert listed.exit_code == 0, listed.output
    assert listed.stdout.count('"status": "PENDING"') == 3


@pytest.mark.parametrize(
    ("arguments", "environment", "says"),
    [
        (["machines", "list"], {"ORCHESTRATOR_DATABASE_URL": DEAD_POSTGRES}, "cannot reach"),
        (["machines", "list"], {"ORCHESTRATOR_API_PORT": "99999"}, "invalid settings"),
    ],
)
def test_the_installed_entry_point_prints_one_line_too(
    tmp_path: Path, arguments: list[str], environment: dict[str, str], says: str
) -> None:
    env = {"PATH": "/usr/bin:/bin", "ORCHESTRATOR_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    env.update(environment)
    script = Path(sys.executable).with_name("orchestrator")
    done = subprocess.run(  # noqa: S603  # our own entry point
        [str(script), *arguments], capture_output=True, text=True, env=env, cwd=REPO_ROOT,
        timeout=60,
    )  # fmt: skip

    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: "), done.stderr
    assert says in done.stderr
