"""Browser tests: the real site in a subprocess on the tests' private redis-server, driven by
headless Debian Chromium through Playwright's sync API; this process acts as the agents through
the library on the same Redis.

Each test works in a team of its own (the ``team`` fixture), so the server, its relay and the
browser are shared by the whole session and nothing is flushed under a running server.
"""

from __future__ import annotations

import os
import uuid

import pytest
from playwright.sync_api import expect, sync_playwright

from coordination.bench_live import WS_PROBE_JS, SiteServer, launch_chromium, log_in, wait_live
from coordination.servers import DEFAULT_SERVER
from empathy_os import AccessTier, AgentCredentials, RedisShortTermMemory

PASSWORD = "browser-tests-pass-7"
#: The people the pages care about: two validators review, a steward leads a team, an observer watches.
USERS = {"vera": "validator", "vic": "validator", "lee": "steward", "otto": "observer"}

expect.set_options(timeout=10_000)


@pytest.fixture(scope="session")
def site(redis_server):
    """The site with its own database and USERS, on the production path (DEBUG off, collected static
    files) under the default server of ``manage.py serve`` and the deployment: every browser test
    checks the WebSocket behaviour (auth, resync, outage) on the server the site is deployed with."""
    server = SiteServer(redis_server.url, USERS, PASSWORD, server=DEFAULT_SERVER)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    # Playwright's sync API runs an event loop in this thread: Django refuses ORM calls there unless
    # told. Set here, not when this file is imported, so the tests that run before the browser tests
    # (they run last) keep Django's check.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = launch_chromium(playwright)
            yield chromium
            chromium.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture(scope="session")
def sessions(browser, site):
    """Logged-in storage states by user name, made once per session through the login form."""
    states = {}

    def state_for(username: str) -> dict:
        if username not in states:
            context = browser.new_context(base_url=site.url)
            try:
                log_in(context.new_page(), username, PASSWORD)
                states[username] = context.storage_state()
            finally:
                context.close()
        return states[username]

    return state_for


@pytest.fixture
def open_page(browser, site, sessions):
    """``open_page(path, user=None)``: a page in a browser context of its own (logged in as ``user``),
    recording console errors and uncaught exceptions in ``page.console_errors``."""
    contexts = []

    def open_page(path: str | None = None, user: str | None = None):
        context = browser.new_context(base_url=site.url, storage_state=sessions(user) if user else None)
        contexts.append(context)
        context.add_init_script(WS_PROBE_JS)
        page = context.new_page()
        page.console_errors = []
        page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(
            f"console: {msg.text} ({msg.location.get('url')})"))
        page.on("pageerror", lambda exc: page.console_errors.append(f"pageerror: {exc}"))
        if path is not None:
            page.goto(path)
        return page

    yield open_page
    for context in contexts:
        context.close()


def live(page):
    """Wait until the page's WebSocket is open and its snapshot swapped in; mark the document, so
    :func:`stayed_live` can tell later that what changed since came without a reload."""
    wait_live(page)
    page.evaluate("window.__sinceLive = true")
    return page


def stayed_live(page) -> bool:
    """The page was not reloaded and kept its first WebSocket since :func:`live` (a reconnect would
    bring a fresh snapshot, hiding a lost event)."""
    return page.evaluate("window.__sinceLive === true && window.__wsOpen === 1")


@pytest.fixture
def memory(redis_server):
    """The agents' memory: the library on the server's Redis (overrides the two-backend fixture)."""
    memory = RedisShortTermMemory(redis_server.url)
    yield memory
    memory.client.close()


@pytest.fixture
def team():
    return f"team-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def contributor(team):
    """The credentials of an agent that discovers and stages patterns."""
    return AgentCredentials("scout", AccessTier.CONTRIBUTOR, team)
