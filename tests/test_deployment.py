"""Running the system: the Procfile under honcho, and docker/ mirroring it.

No Docker engine runs here or in CI, so the compose file is checked for what it
must say (services, images and builds, commands, environment, loopback ports)
and, where a compose client is installed, by ``docker compose config``. The
Procfile is run for real: ``honcho start`` brings up api, worker, beat and
Flower on a fresh PostgreSQL database and a private Redis database, and an
execution started over HTTP is run by the worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator import examples
from tests.distributed.conftest import RedisDB, redis_db  # noqa: F401  # fixture
from tests.support import wait_until

pytestmark = pytest.mark.slow  # the whole deployment as processes

REPO_ROOT = Path(__file__).resolve().parents[1]
PROCFILE = REPO_ROOT / "Procfile"
COMPOSE = REPO_ROOT / "docker" / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
BIN = Path(sys.executable).parent

#: honcho's own pattern for a Procfile line (honcho.environ.PROCFILE_LINE).
PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")

PROCESSES = {"api", "worker", "beat", "flower"}
ORCHESTRATOR_SERVICES = {"migrate", "api", "worker", "beat", "flower"}
FLOWER_AUTH = ("operator", "procfile-test")


def procfile() -> dict[str, str]:
    """Process name -> command, as honcho reads the Procfile."""
    lines = PROCFILE.read_text().splitlines()
    return {m[1]: m[2] for m in map(PROCFILE_LINE.match, lines) if m}


def last_command(shell: str) -> list[str]:
    """The argv a Procfile command finally runs (after ``&&``, without ``exec``)."""
    argv = shlex.split(shell.split("&&")[-1])
    return argv[1:] if argv[0] == "exec" else argv


def compose() -> dict[str, Any]:
    """The compose file, YAML anchors and merge keys resolved."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


# -- the files -------------------------------------------------------------------------


def test_the_procfile_runs_api_worker_beat_and_flower_with_commands_we_ship() -> None:
    processes = procfile()

    assert set(processes) == PROCESSES
    for name, command in processes.items():
        executable = last_command(command)[0]
        assert (BIN / executable).exists(), f"{name}: {executable} is not installed"
    worker = last_command(processes["worker"])
    assert worker[worker.index("-Q") + 1] == "critical,default,low"
    assert "-E" in worker  # task events, for Flower
    assert processes["api"].startswith("orchestrator db upgrade && ")
    flower = last_command(processes["flower"])
    conf = next(arg for arg in flower if arg.startswith("--conf="))
    assert (REPO_ROOT / conf.removeprefix("--conf=")).exists()


def test_compose_has_the_datastores_and_one_service_per_procfile_process() -> None:
    services = compose()["services"]

    assert set(services) == {"postgres", "redis", "prometheus", "grafana"} | ORCHESTRATOR_SERVICES
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name


def test_the_compose_services_run_the_procfile_commands_on_the_image_we_build() -> None:
    services = compose()["services"]
    processes = procfile()

    for name in ORCHESTRATOR_SERVICES:
        service = services[name]
        build = service["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        environment = service["environment"]
        assert environment["ORCHESTRATOR_DATABASE_URL"].startswith("postgresql://")
        assert environment["ORCHESTRATOR_BROKER_URL"].startswith("redis://redis:")
    for name in PROCESSES:
        assert services[name]["command"] == last_command(processes[name]), name
    assert services["migrate"]["command"] == ["orchestrator", "db", "upgrade"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )


def test_compose_publishes_ports_on_the_host_loopback_only() -> None:
    services = compose()["services"]

    published = [port for service in services.values() for port in service.get("ports", [])]

    assert sorted(published) == [
        "127.0.0.1:3000:3000",
        "127.0.0.1:5555:5555",
        "127.0.0.1:8000:8000",
        "127.0.0.1:9090:9090",
    ]


def test_the_dockerfile_installs_the_package_and_runs_unprivileged() -> None:
    text = DOCKERFILE.read_text()

    assert re.search(r"^FROM python:3\.11", text, re.MULTILINE)
    assert "COPY orchestrator ./orchestrator" in text
    assert "COPY flower ./flower" in text
    assert "pip install ." in text
    assert re.search(r"^USER orchestrator$", text, re.MULTILINE)


def _compose_client() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)  # noqa: S603
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_a_compose_client_validates_the_file() -> None:
    client = _compose_client()
    if client is None:
        pytest.skip("no docker compose client installed (the structure is checked above)")

    done = subprocess.run(  # noqa: S603  # a compose client found on PATH
        [*client, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, check=False
    )

    assert done.returncode == 0, done.stderr


# -- honcho start ------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _honcho_environment(database_url: str, broker_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ORCHESTRATOR_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        ORCHESTRATOR_DATABASE_URL=database_url,
        ORCHESTRATOR_BROKER_URL=broker_url,
        ORCHESTRATOR_HANDLER_MODULES=examples.HANDLER_MODULE,
        ORCHESTRATOR_API_PORT=str(_free_port()),
        ORCHESTRATOR_FLOWER_PORT=str(_free_port()),
        ORCHESTRATOR_FLOWER_BASIC_AUTH=":".join(FLOWER_AUTH),
        ORCHESTRATOR_FLOWER_DB=str(tmp_path / "flower.db"),
        CELERY_BEAT_SCHEDULE=str(tmp_path / "celerybeat-schedule"),
    )
    return env


def _http(url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data)  # noqa: S310  # our loopback URL
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return 0, None


def _text(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310  # loopback
            return str(response.read().decode())
    except OSError:
        return None


@contextlib.contextmanager
def _honcho(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    honcho = BIN / "honcho"
    if not honcho.exists():
        if os.environ.get("CI"):
            pytest.fail("honcho is not installed (pip install -e '.[dev]')")
        pytest.skip("honcho is not installed")
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603  # our honcho, our Procfile
            [str(honcho), "start", "-f", str(PROCFILE)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)  # honcho stops every process it started
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_honcho_start_runs_the_whole_system_and_an_execution_goes_through_it(
    postgres_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Given honcho running the Procfile on a fresh database and Redis database
    broker: RedisDB = request.getfixturevalue("redis_db")
    env = _honcho_environment(postgres_url, broker.url, tmp_path)
    api = f"http://127.0.0.1:{env['ORCHESTRATOR_API_PORT']}"
    log_path = tmp_path / "honcho.log"
    with _honcho(env, log_path) as process:

        def healthy() -> bool:
            assert process.poll() is None, log_path.read_text()[-4000:]
            return _http(f"{api}/health")[0] == 200

        wait_until(healthy, timeout=60, what="the API to answer /health", interval=0.25)
        # When an order is started over HTTP on the workers
        definition = examples.definition("orders")
        assert (
            _http(f"{api}/state-machines", {"name": "orders", "definition": definition})[0] == 201
        )
        order = {"order": {"id": "p-1", "total": 12.5, "email": "p@example.com", "items": []}}
        status, started = _http(f"{api}/executions", {"state_machine": "orders", "input": order})
        assert status == 202

        # Then the worker runs it to the end
        def finished() -> bool:
            code, body = _http(f"{api}/executions/{started['id']}")
            return code == 200 and body["status"] == "SUCCEEDED"  # a busy API may time out

        wait_until(finished, timeout=30, what="the worker to run the order", interval=0.25)
        # And the API sees the worker, beat has sent the sweep, Flower answers
        assert _http(f"{api}/stats")[1]["broker"]["workers"]
        flower = f"http://127.0.0.1:{env['ORCHESTRATOR_FLOWER_PORT']}/healthcheck"
        wait_until(lambda: _text(flower) == "OK", timeout=30, what="Flower to answer")
        wait_until(
            lambda: "Sending due task orchestrator-sweep" in log_path.read_text(),
            timeout=15,
            what="beat to send the sweep",
        )
