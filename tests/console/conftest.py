"""Fixtures of the console tests: the API served on a free port, a real Chromium, screenshots.

The browser is Debian's ``chromium`` driven through its ``chromedriver`` by Selenium
(no browser download). Screenshots go under ``$ORCHESTRATOR_TEST_ARTIFACTS`` (default:
the system temp dir) in ``console-screenshots/``; each path is printed.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
import uvicorn

from orchestrator.api import create_app
from orchestrator.client import Orchestrator
from orchestrator.settings import Settings
from orchestrator.store import Repository

TOKEN: Final = "console-test-token"  # noqa: S105  # a test token
CHROMIUM: Final = "/usr/bin/chromium"
CHROMEDRIVER: Final = "/usr/bin/chromedriver"
BROWSER_FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)
ARTIFACTS: Final = (
    Path(os.environ.get("ORCHESTRATOR_TEST_ARTIFACTS", tempfile.gettempdir()))
    / "console-screenshots"
)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    """The API (with the console) served by uvicorn in a thread of the test process."""

    url: str
    settings: Settings
    repository: Repository


@pytest.fixture
def serve() -> Iterator[Callable[[Settings], Served]]:
    """Serve the app of given settings on a free loopback port; stopped at teardown."""
    running: list[tuple[uvicorn.Server, threading.Thread, Repository]] = []

    def start(settings: Settings) -> Served:
        repository = Repository.from_settings(settings)
        port = free_port()
        config = uvicorn.Config(
            create_app(client=Orchestrator(settings, repository=repository)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="console-api", daemon=True)
        thread.start()
        running.append((server, thread, repository))
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail("the API did not start")
            time.sleep(0.02)
        return Served(f"http://127.0.0.1:{port}", settings, repository)

    yield start
    for server, thread, repository in running:
        server.should_exit = True
        thread.join(10)
        repository.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium (Debian's) driven by Selenium through the system chromedriver."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("needs chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def screenshot(driver: Any, name: str) -> Path:
    """Save the page as ``console-screenshots/<name>.png`` and print where."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")  # the artifact's path, for the reader of the log
    return path


def login(driver: Any, served: Served) -> None:
    """Log in through the form; end on the executions page."""
    from selenium.webdriver.common.by import By

    driver.get(f"{served.url}/console/")
    wait(driver, lambda d: d.current_url.endswith("/console/login"), "the login form")
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.ID, "login-button").click()
    wait(driver, lambda d: d.find_elements(By.ID, "executions"), "the executions page")


def wait(driver: Any, condition: Callable[[Any], Any], what: str, timeout: float = 60) -> Any:
    """Poll ``condition(driver)`` until truthy; fail the test with ``what`` after ``timeout``."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(
            driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
        ).until(condition)
    except TimeoutException:
        pytest.fail(f"timed out after {timeout}s waiting for {what}")
