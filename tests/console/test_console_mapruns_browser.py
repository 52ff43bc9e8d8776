"""A Map Run's page in a real browser (Debian's chromium) while a real worker runs it.

A Distributed Map on PostgreSQL, Redis and a ``celery -A orchestrator worker``
subprocess; the test process plays beat (it sweeps while it waits). Screenshots go to
``console-screenshots/`` (see ``tests/console/conftest.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from celery import Celery
from pydantic import SecretStr

from orchestrator import Orchestrator
from orchestrator.distributed.publish import celery_publisher
from orchestrator.settings import Settings
from orchestrator.store import Repository
from tests.console.conftest import TOKEN, Served, login, screenshot, wait
from tests.distributed.conftest import (  # noqa: F401  # fixtures
    RedisDB,
    Worker,
    make_app,
    redis_db,
    start_worker,
)
from tests.dmap.work import machine

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ITEMS = 24
BROKEN = 7  # the item that fails until the cause is fixed


def href(within: Any, selector: str) -> str | None:
    """The address of the first link ``selector`` finds, or None."""
    found = within.find_elements(by("CSS_SELECTOR"), selector)
    return str(found[0].get_attribute("href")) if found else None


def by(kind: str) -> Any:
    from selenium.webdriver.common.by import By

    return getattr(By, kind)


def test_map_run_pages_follow_real_workers_to_the_end_and_stop_the_parent(  # noqa: PLR0915
    browser: Any,
    postgres_url: str,
    redis_db: RedisDB,  # noqa: F811
    make_app: Callable[[str], Celery],  # noqa: F811
    start_worker: Callable[..., Worker],  # noqa: F811
    serve: Callable[[Settings], Served],
) -> None:
    # Given a worker, and a Distributed Map of 24 items where item 7 fails
    settings = Settings(
        database_url=postgres_url, broker_url=redis_db.url, lease_seconds=4,
        recovery_grace_seconds=2,
    )  # fmt: skip
    start_worker(
        redis_db.url,
        pool="prefork",
        concurrency=2,
        env={
            "ORCHESTRATOR_DATABASE_URL": postgres_url,
            "ORCHESTRATOR_HANDLER_MODULES": "tests.dmap.handlers",
            "ORCHESTRATOR_LEASE_SECONDS": "4",
            "ORCHESTRATOR_RECOVERY_GRACE_SECONDS": "2",
        },
    )
    redis_db.client.sadd("broken", str(BROKEN))
    repo = Repository.from_settings(settings)
    client = Orchestrator(
        settings, repository=repo, publisher=celery_publisher(make_app(redis_db.url), settings)
    )
    client.runner.map_runs.publisher = client.publisher
    server = serve(settings.model_copy(update={"api_token": SecretStr(TOKEN)}))
    try:
        sm = client.create_state_machine("console-fan", machine(Label="fan", MaxConcurrency=2))
        parent = sm.start_async([{"n": n, "sleep": 0.1} for n in range(ITEMS)])
        swept = [0.0]

        def sweep() -> bool:  # beat's part, at most twice a second; False to chain with or
            if time.monotonic() - swept[0] > 0.5:
                client.sweep()
                swept[0] = time.monotonic()
            return False

        # When the parent's page is open, it links to its Map Run
        login(browser, server)
        browser.get(f"{server.url}/console/#/executions/{parent.id}")
        link = wait(
            browser,
            lambda d: sweep() or href(d, "#map-runs a"),
            "the parent's link to its Map Run",
        )
        browser.get(link)

        # Then the Map Run page's bar and counts reach the end: item 7 failed, the Map too
        bar = '#bar [role="progressbar"]'

        def bar_at(d: Any) -> tuple[int, int] | None:
            found = d.find_elements(by("CSS_SELECTOR"), bar)
            if not found:
                return None
            return int(found[0].get_attribute("data-ended")), int(
                found[0].get_attribute("data-total")
            )

        def count(d: Any, status: str) -> int:
            text = d.find_element(
                by("CSS_SELECTOR"), f'#maprun-counts [data-count="{status}"]'
            ).text
            return int(text.split()[-1])

        def settled(d: Any, status: str) -> bool:
            sweep()
            at = bar_at(d)
            return (
                at == (ITEMS, ITEMS)
                and status in d.find_element(by("ID"), "title").text
                and count(d, "RUNNING") == 0
            )

        wait(browser, lambda d: settled(d, "FAILED"), "the failed Map Run's bar to end", 60)
        row = f'#children tr[data-item="{BROKEN}"]'
        # Read in one go (the page re-draws every 2 s; wait retries a stale read).
        failed, others, chart, row_text, child = wait(
            browser,
            lambda d: (
                count(d, "FAILED"),
                count(d, "SUCCEEDED") + count(d, "ABORTED"),
                len(
                    d.find_element(by("ID"), "failure-chart").find_elements(by("TAG_NAME"), "rect")
                ),
                d.find_element(by("CSS_SELECTOR"), row).text,
                href(d, f"{row} a"),
            ),
            "the Map Run's counts",
        )
        assert (failed, others) == (1, ITEMS - 1)
        assert chart > 0
        assert "FAILED" in row_text
        screenshot(browser, "maprun-failed")

        # And a child's page links back to its Map Run and the parent
        browser.get(child)
        back = wait(browser, lambda d: href(d, "#map-run-link"), "the back link")
        assert browser.find_element(by("ID"), "parent-link").text == parent.id
        browser.get(back)
        wait(browser, lambda d: d.find_elements(by("ID"), "redrive-parent"), "the Map Run page")

        # When a second, slower Map runs, its page is opened from the Map Runs list
        slow = sm.start_async([{"n": 100 + n, "sleep": 0.3} for n in range(ITEMS)])
        browser.get(f"{server.url}/console/#/mapruns")
        mine = wait(
            browser,
            lambda d: (
                sweep()
                or [
                    href(r, "a")
                    for r in d.find_elements(by("CSS_SELECTOR"), "tr[data-maprun]")
                    if slow.id[:8] in r.text
                ]
            ),
            "the second Map Run in the list",
        )
        assert len(browser.find_elements(by("CSS_SELECTOR"), "tr[data-maprun]")) == 2
        browser.get(mine[0])
        wait(browser, lambda d: (bar_at(d) or (0, 0))[0] >= 2, "two children to end")
        assert slow.id in browser.find_element(by("ID"), "parent-link").text

        # And the parent is stopped from it
        browser.find_element(by("ID"), "stop-parent").click()

        # Then its children are aborted and the bar reaches the end
        wait(browser, lambda d: settled(d, "ABORTED"), "the stopped Map Run to end", 60)
        assert count(browser, "ABORTED") > 0
        assert count(browser, "SUCCEEDED") + count(browser, "ABORTED") == ITEMS
        assert browser.find_element(by("ID"), "notice").text == "Stop parent: done"
        assert client.execution(slow.id).describe().status == "ABORTED"
        screenshot(browser, "maprun-stopped")
    finally:
        repo.close()
