"""The console in a real browser (Debian's chromium): each page, a failed execution, a batch.

Screenshots of every page go to ``console-screenshots/`` (see ``tests/console/conftest.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from orchestrator.graph import COLOURS, Outcome
from orchestrator.settings import Settings
from tests.api import handlers
from tests.api.conftest import create_machine, make_client, start  # noqa: F401  # fixtures
from tests.api.test_tasks import CALLBACK
from tests.batch.conftest import Cluster, cluster  # noqa: F401  # a fixture
from tests.console.conftest import TOKEN, Served, login, screenshot, wait
from tests.console.test_console_http import CHECK
from tests.distributed.conftest import (  # noqa: F401  # fixtures of ``cluster``
    make_app,
    redis_db,
    start_worker,
)

pytestmark = pytest.mark.slow


def by(kind: str) -> Any:
    from selenium.webdriver.common.by import By

    return getattr(By, kind)


@pytest.fixture
def served(
    sqlite_url: str,
    serve: Callable[[Settings], Served],
    make_client: Callable[..., TestClient],  # noqa: F811
) -> tuple[Served, TestClient]:
    """The API with a token on SQLite, and an HTTP client of the same database to set up data."""
    settings = Settings(database_url=sqlite_url, api_token=TOKEN)
    client = make_client(settings, headers={"Authorization": f"Bearer {TOKEN}"})
    return serve(settings), client


def test_every_page_after_logging_in(browser: Any, served: tuple[Served, TestClient]) -> None:
    server, client = served
    create_machine(client, "checks", CHECK)
    create_machine(client, "checks", {**CHECK, "Comment": "second version"})
    for n in range(3):
        start(client, "checks", {"ok": n != 1}, name=f"order-{n}")

    login(browser, server)
    rows = wait(
        browser, lambda d: d.find_elements(by("CSS_SELECTOR"), "tr[data-execution]"), "rows"
    )
    assert len(rows) == 3
    total = browser.find_element(by("CSS_SELECTOR"), '[data-count="total"]')
    assert total.text == "3 executions"
    screenshot(browser, "executions")

    # The filters narrow the list and its counts.
    browser.find_element(by("NAME"), "status").send_keys("FAILED")
    browser.find_element(by("CSS_SELECTOR"), "#filters button").click()
    wait(
        browser,
        lambda d: len(d.find_elements(by("CSS_SELECTOR"), "tr[data-execution]")) == 1,
        "one",
    )
    assert "order-1" in browser.find_element(by("ID"), "executions").text

    browser.get(f"{server.url}/console/#/machines")
    row = wait(
        browser, lambda d: d.find_elements(by("CSS_SELECTOR"), '[data-machine="checks"]'), "m"
    )
    assert [v.text.strip() for v in row[0].find_elements(by("CLASS_NAME"), "version")] == [
        "v1",
        "v2",
    ]
    screenshot(browser, "machines")

    browser.get(f"{server.url}/console/#/machines/checks?version=1")
    states = wait(browser, lambda d: d.find_elements(by("CSS_SELECTOR"), "#graph g.state"), "graph")
    assert {s.get_attribute("data-state") for s in states} == {"Check", "Broken", "Done"}
    screenshot(browser, "machine-graph")

    browser.get(f"{server.url}/console/#/batches")
    wait(browser, lambda d: d.find_elements(by("ID"), "batches"), "the batches page")
    screenshot(browser, "batches")


def test_a_failed_execution_shows_its_failed_state_in_red_with_its_error(
    browser: Any, served: tuple[Served, TestClient]
) -> None:
    server, client = served
    create_machine(client, "checks", CHECK)
    failed = start(client, "checks", {"ok": False}, name="bad-order")

    login(browser, server)
    browser.get(f"{server.url}/console/#/executions/{failed['id']}")
    broken = wait(
        browser,
        lambda d: d.find_elements(by("CSS_SELECTOR"), '#graph g.state[data-state="Broken"]'),
        "the graph",
    )[0]
    assert "outcome-failed" in broken.get_attribute("class")
    rect = broken.find_element(by("TAG_NAME"), "rect")
    fill, stroke = COLOURS[Outcome.FAILED]
    assert (rect.get_attribute("fill"), rect.get_attribute("stroke")) == (fill, stroke)
    # Drawn red, not just labelled so: the browser's computed stroke.
    assert rect.value_of_css_property("stroke") == "rgb(198, 40, 40)"
    assert browser.find_element(by("ID"), "execution-error").text == "NotOk"
    details = browser.find_element(by("CSS_SELECTOR"), '#states details[data-state="Broken"]')
    assert details.find_element(by("CLASS_NAME"), "state-error").text == "NotOk"
    assert "ok was false" in details.text
    timeline = browser.find_element(by("ID"), "timeline").text
    assert "StateFailed" in timeline
    assert "Broken" in timeline
    screenshot(browser, "execution-failed")


def test_a_waiting_task_token_is_shown_and_answered_from_the_execution_page(
    browser: Any, served: tuple[Served, TestClient]
) -> None:
    # Given an execution waiting on a .waitForTaskToken Task
    server, client = served
    create_machine(client, "approvals", CALLBACK)
    waiting = start(client, "approvals", {"order": 1})
    token = handlers.tokens[waiting["id"]]

    # When its page is open, the waiting token is shown
    login(browser, server)
    browser.get(f"{server.url}/console/#/executions/{waiting['id']}")
    row = wait(
        browser,
        lambda d: d.find_elements(
            by("CSS_SELECTOR"), '#task-tokens tr[data-token-state="Approve"]'
        ),
        "the token's row",
    )[0]
    assert row.get_attribute("data-token-status") == "WAITING"
    assert token not in browser.page_source
    screenshot(browser, "execution-task-token-waiting")

    # And the form sends the task's success with its output
    browser.find_element(by("ID"), "token-input").send_keys(token)
    browser.find_element(by("ID"), "token-output").send_keys('{"ok": true}')
    browser.find_element(by("ID"), "send-success").click()

    # Then the execution succeeds with it, and the token is shown as used
    wait(browser, lambda d: "SUCCEEDED" in d.find_element(by("ID"), "title").text, "SUCCEEDED")
    wait(
        browser,
        lambda d: d.find_elements(
            by("CSS_SELECTOR"), '#task-tokens tr[data-token-status="SUCCEEDED"]'
        ),
        "the token to show SUCCEEDED",
    )
    assert client.get(f"/executions/{waiting['id']}").json()["output"] == {
        "order": 1,
        "approval": {"ok": True},
    }
    assert browser.find_element(by("ID"), "notice").text == "Task success: done"
    screenshot(browser, "execution-task-token-answered")


def test_a_view_left_before_its_answers_arrive_does_not_replace_the_next_one(
    browser: Any, served: tuple[Served, TestClient]
) -> None:
    # Given every request of the page takes a second (Chromium's network emulation)
    server, client = served
    create_machine(client, "checks", CHECK)
    failed = start(client, "checks", {"ok": False}, name="bad-order")
    login(browser, server)
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 1000, "downloadThroughput": -1, "uploadThroughput": -1},
    )

    # When the executions list is opened and left before its answers arrive
    browser.get(f"{server.url}/console/#/executions?status=FAILED")
    browser.get(f"{server.url}/console/#/executions/{failed['id']}")

    # Then the list's late answers neither fill nor replace the execution's page
    # (they did: "Cannot read properties of null" replaced the page, which then never drew)
    wait(
        browser,
        lambda d: d.find_elements(by("CSS_SELECTOR"), '#graph g.state[data-state="Broken"]'),
        "the execution's graph",
    )
    assert browser.find_elements(by("ID"), "error") == []
    assert browser.find_element(by("ID"), "execution-error").text == "NotOk"


def test_a_running_batch_moves_and_the_pause_button_pauses_it_on_a_real_worker(
    browser: Any,
    cluster: Cluster,  # noqa: F811
    serve: Callable[[Settings], Served],
) -> None:
    # Given a worker and a distributed batch of 60 slow executions
    cluster.start_workers(1, concurrency=2)
    server = serve(cluster.settings.model_copy(update={"api_token": SecretStr(TOKEN)}))
    inputs = [{"n": n, "ok": True, "sleep": 0.3} for n in range(60)]
    led = cluster.bulk_in_background(inputs, failure_pause_threshold=None)
    batch_id = cluster.only_batch()

    # When its page is open, the bar moves
    login(browser, server)
    browser.get(f"{server.url}/console/#/batches/{batch_id}")
    bar = '#bar [role="progressbar"]'

    def ended() -> int:
        found = browser.find_elements(by("CSS_SELECTOR"), bar)
        return int(found[0].get_attribute("data-ended")) if found else -1

    first = wait(browser, lambda d: ended() >= 0 and ended() + 1, "the bar") - 1
    wait(browser, lambda d: ended() > first, "the bar to move")
    screenshot(browser, "batch-running")

    # And the pause button pauses it: nothing new starts
    browser.find_element(by("ID"), "pause").click()
    wait(browser, lambda d: "PAUSED" in d.find_element(by("ID"), "title").text, "PAUSED")
    time.sleep(2.0)  # executions claimed before the pause may still end
    held = ended()
    time.sleep(2.0)
    assert ended() == held
    assert held < 60
    screenshot(browser, "batch-paused")

    # And resume finishes it
    browser.find_element(by("ID"), "resume").click()
    wait(browser, lambda d: ended() == 60, "all 60 to end", 60)
    assert "COMPLETED" in browser.find_element(by("ID"), "title").text
    assert "60 of 60 ended, 0 failed" in browser.find_element(by("ID"), "progress-text").text
    assert led.result(timeout=30).batch_id == batch_id
    screenshot(browser, "batch-completed")
