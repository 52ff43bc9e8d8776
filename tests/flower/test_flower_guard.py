"""A real Flower process: the loopback guard on the bound address, auth on every page.

Flower is started as operators start it, ``celery -A orchestrator flower
--conf=flower/flowerconfig.py`` plus command-line options, on its own Redis
database; no worker is needed to check who may read what.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.distributed.conftest import REPO_ROOT, RedisDB
from tests.distributed.conftest import redis_db as redis_db  # the fixture
from tests.flower.test_flower import (
    FLOWER_CONF,
    USER,
    Flower,
    _flower_environment,
    _stop,
    free_port,
)

pytestmark = pytest.mark.slow

#: Pages that show tasks, workers, their arguments or the broker: each needs the password.
PAGES = ["/", "/tasks", "/workers", "/broker", "/api/workers", "/api/tasks", "/metrics"]


def _command(*options: str) -> list[str]:
    conf = f"--conf={FLOWER_CONF}"
    return [sys.executable, "-m", "celery", "-A", "orchestrator", "flower", conf, *options]


@pytest.fixture
def run_flower(
    redis_db: RedisDB, tmp_path: Path
) -> Iterator[Callable[..., tuple[Flower, subprocess.Popen[bytes]]]]:
    """Start Flower with given options and environment changes; stopped at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*options: str, auth: bool = True) -> tuple[Flower, subprocess.Popen[bytes]]:
        flower = Flower(port=free_port(), log_path=tmp_path / f"flower-{len(started)}.log")
        env = _flower_environment(redis_db.url, tmp_path / "state.db", flower.port)
        if not auth:
            del env["ORCHESTRATOR_FLOWER_BASIC_AUTH"]
        with flower.log_path.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603  # our interpreter, our arguments
                _command(f"--port={flower.port}", *options), cwd=REPO_ROOT, env=env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        flower.process = process
        started.append(process)
        return flower, process

    yield start
    for process in started:
        _stop(process)


def _wait_answering(flower: Flower, process: subprocess.Popen[bytes]) -> None:
    import time

    deadline = time.monotonic() + 30
    while not flower.answers():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"Flower did not start:\n{flower.log()[-4000:]}")
        time.sleep(0.1)


@pytest.mark.parametrize("address", ["0.0.0.0", ""])  # noqa: S104  # the cases under test
def test_an_address_beyond_loopback_on_the_command_line_is_refused_without_auth(
    run_flower: Callable[..., tuple[Flower, subprocess.Popen[bytes]]], address: str
) -> None:
    # Given no basic auth, when Flower is told on its command line to listen everywhere
    flower, process = run_flower(f"--address={address}", auth=False)

    # Then it refuses to start, saying why, and never answers
    assert process.wait(60) != 0
    assert "refusing to start" in flower.log()
    assert "needs ORCHESTRATOR_FLOWER_BASIC_AUTH" in flower.log()
    assert not flower.answers()


def test_with_basic_auth_every_page_needs_it_but_the_healthcheck(
    run_flower: Callable[..., tuple[Flower, subprocess.Popen[bytes]]],
) -> None:
    flower, process = run_flower()
    _wait_answering(flower, process)

    anonymous = {page: flower.get(page, auth=False)[0] for page in PAGES}
    authorised = {page: flower.get(page)[0] for page in PAGES}

    assert anonymous == dict.fromkeys(PAGES, 401)
    assert authorised == dict.fromkeys(PAGES, 200)
    assert flower.get("/healthcheck", auth=False) == (200, b"OK")


def test_a_wrong_password_is_refused_everywhere(
    run_flower: Callable[..., tuple[Flower, subprocess.Popen[bytes]]],
) -> None:
    import base64
    import urllib.error
    import urllib.request

    flower, process = run_flower()
    _wait_answering(flower, process)
    token = base64.b64encode(f"{USER}:wrong".encode()).decode()

    statuses = {}
    for page in PAGES:
        request = urllib.request.Request(flower.url + page)  # noqa: S310  # loopback
        request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                statuses[page] = int(response.status)
        except urllib.error.HTTPError as exc:
            statuses[page] = exc.code
            exc.close()

    assert statuses == dict.fromkeys(PAGES, 401)
