"""A Redis outage seen from an open team dashboard: the badge says "memory offline" while Redis is
down, says "live" again once it is back, and the page keeps working without reload or server restart.

The site runs in a subprocess on a redis-server of this test's own (it is SIGKILLed, so it cannot be
the session's). Agents keep sending signals through the library during the outage. The channel layer
lives on the same Redis, so nothing can be relayed while it is down: each consumer notices by itself
(coordination/live.py). Figures are printed (``pytest -s``); only a generous bound is asserted.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from playwright.sync_api import expect

from coordination.bench_live import WS_PROBE_JS, SiteServer, log_in
from coordination.servers import DEFAULT_SERVER
from empathy_os import AgentCoordinator, AgentTask, EmpathyOS, MemoryUnavailableError
from tests.support import RedisServer

from .conftest import PASSWORD, live, stayed_live

#: A failure criterion, not a target (recovery is expected within about a second).
RECOVERY_BOUND_MS = 10_000

BADGE_IS = "(text) => document.querySelector('#memory-status').textContent.trim() === text"


@pytest.fixture
def redis_server():
    """A redis-server of this test's own (it is killed): replaces the session's, so the ``memory``
    fixture of tests/browser/conftest.py is the library on this one."""
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def outage_site(redis_server):
    """The site on this test's own redis-server."""
    site = SiteServer(redis_server.url, {"lee": "steward"}, PASSWORD, server=DEFAULT_SERVER)
    yield redis_server, site
    site.stop()


def wait_badge(page, text: str) -> float:
    """Wait (checking every 5 ms) until the badge reads ``text``; returns the seconds waited."""
    start = time.monotonic()
    page.wait_for_function(BADGE_IS, arg=text, polling=5, timeout=RECOVERY_BOUND_MS)
    return time.monotonic() - start


class Signals:
    """An agent broadcasting a signal every 10 ms in a thread, counting what succeeded and failed."""

    def __init__(self, memory, team):
        self.agent = EmpathyOS("chatty", memory, team_id=team)
        self.sent = self.failed = 0
        self.other: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            try:
                self.agent.send_signal("tick", {"n": self.sent})
                self.sent += 1
            except MemoryUnavailableError:
                self.failed += 1
            except Exception as exc:  # a leak: the test fails on it
                self.other.append(repr(exc))
            time.sleep(0.01)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)


def test_it_shows_memory_offline_and_reconnects_by_itself(browser, outage_site, memory):
    redis_server, site = outage_site
    pid = site.process.pid
    team = f"team-{uuid.uuid4().hex[:8]}"
    coordinator = AgentCoordinator(memory, team)
    coordinator.register_agent("alpha", ["review"])
    coordinator.add_task(AgentTask("before", "review"))
    context = browser.new_context(base_url=site.url)
    try:
        context.add_init_script(WS_PROBE_JS)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        log_in(page, "lee", PASSWORD)
        page.goto(f"/teams/{team}/")
        live(page)
        expect(page.locator("#tasks-pending #task-before")).to_be_visible()
        wait_badge(page, "live")

        with Signals(memory, team) as signals:
            redis_server.kill()
            offline_s = wait_badge(page, "memory offline")
            assert page.locator("#memory-status.badge-offline").count() == 1
            deadline = time.monotonic() + RECOVERY_BOUND_MS / 1000
            while signals.failed < 100:  # down for a second or so: every retry loop backs off meanwhile
                assert time.monotonic() < deadline
                time.sleep(0.01)
            redis_server.start()
            back = time.monotonic()
            live_s = wait_badge(page, "live")
            coordinator.add_task(AgentTask("after", "review"))
            try:
                expect(page.locator("#tasks-pending #task-after")).to_be_visible(timeout=RECOVERY_BOUND_MS)
            except AssertionError as exc:  # what the server said about the outage is the first clue
                raise AssertionError(f"{exc}\n--- the site's log, last lines ---\n{site.log_tail()}") from None
            change_s = time.monotonic() - back - live_s
            sent_at_restart = signals.sent
            deadline = time.monotonic() + RECOVERY_BOUND_MS / 1000
            while signals.sent < sent_at_restart + 10:  # the agent carries on too
                assert time.monotonic() < deadline, "the agent did not recover"
                time.sleep(0.01)

        assert signals.failed > 0 and signals.other == []
        assert stayed_live(page), "the page reloaded or its WebSocket was replaced"
        assert errors == []
        assert site.process.poll() is None and site.process.pid == pid, "the server process was restarted"
        print(f"\noutage (dashboard): 'memory offline' {offline_s * 1000:.0f} ms after the kill; 'live' "
              f"{live_s * 1000:.0f} ms after Redis answered; a task added then was on the page "
              f"{change_s * 1000:.0f} ms later; agent signals failed during the outage: {signals.failed}")
    finally:
        context.close()
