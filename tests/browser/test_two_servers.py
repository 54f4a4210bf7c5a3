"""Two server processes (daphne, each with its embedded relay) on one Redis: every change reaches the
team dashboards open on both servers exactly once each.

How it can work: both relays read the teams' event streams as members of the one consumer group
"relay", so each event is taken by one relay only; that relay ``group_send``s it to the team's
channel-layer group, which channels-redis keeps in Redis, so the group holds the dashboards of both
servers. A relay that read with a group of its own, or a layer that stayed in-process, would show
here as doubled or missing messages on one server's sockets. It runs twice: on one redis-server,
and with the memory on a Redis Cluster of 3 masters (the channel layer on a plain Redis).

Here (in the browser tests, since the ``websockets`` package is not installed) plain WebSockets are
opened from a page of each server's origin; each counts the messages it receives.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from coordination.bench_live import WS_PROBE_JS, SiteServer, log_in
from empathy_os import AgentCoordinator, AgentTask, RedisShortTermMemory
from tests.support import RedisServer

from .conftest import live, stayed_live

PASSWORD = "two-servers-pass-7"
SOCKETS_PER_SERVER = 2
#: Changes made through the library: a task added, claimed and completed, this many times over.
ROUNDS = 10

OPEN_JS = """
async ([url, n]) => {
  window.__sockets = [];
  const opened = [];
  for (let i = 0; i < n; i++) {
    const ws = new WebSocket(url);
    ws.texts = [];
    ws.onmessage = (e) => { ws.texts.push(e.data); };
    window.__sockets.push(ws);
    opened.push(new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onclose = (e) => reject(new Error('WebSocket closed before it opened: code ' + e.code));
    }));
  }
  await Promise.all(opened);
  for (const ws of window.__sockets) ws.onclose = () => { window.__closed = (window.__closed || 0) + 1; };
}
"""

COUNTS_JS = "() => window.__sockets.map(ws => ws.texts.length)"
#: True once every socket holds at least ``n`` messages.
AT_LEAST_JS = "(n) => window.__sockets.every(ws => ws.texts.length >= n)"
#: True once every socket's last message shows the element with this id.
LAST_SHOWS_JS = "(id) => window.__sockets.every(ws => ws.texts.length && ws.texts[ws.texts.length - 1].includes(id))"


@pytest.fixture(scope="module", params=["redis", "cluster"])
def deployment(request):
    """Two site processes, each on its own port with its own database and user, on one memory: a
    private redis-server that also carries the channel layer ("redis"), or the session's Redis
    Cluster with that redis-server as the channel layer (``EMPATHY_CHANNELS_URL``: channels-redis
    cannot use a cluster). Their relays are the only readers of the teams' streams here."""
    channels = RedisServer()
    memory_url = channels.url if request.param == "redis" else request.getfixturevalue("redis_cluster").url
    sites = []
    try:
        with pytest.MonkeyPatch.context() as env:  # SiteServer copies this process's environment
            if request.param == "cluster":
                env.setenv("EMPATHY_CHANNELS_URL", channels.url)
            for _ in range(2):
                sites.append(SiteServer(memory_url, {"lee": "steward"}, PASSWORD))
        yield memory_url, sites
    finally:
        for site in sites:
            site.stop()
        channels.stop()


@pytest.fixture
def agents(deployment):
    """The agents' memory: the library on the servers' memory."""
    memory = RedisShortTermMemory(deployment[0])
    yield memory
    memory.client.close()


def open_sockets(browser, site, team: str, contexts: list):
    """A page of ``site`` logged in as lee (through the login form) holding SOCKETS_PER_SERVER
    dashboard WebSockets of ``team``, each with its snapshot received; and the real dashboard page."""
    context = browser.new_context(base_url=site.url)
    contexts.append(context)
    context.add_init_script(WS_PROBE_JS)
    holder = context.new_page()
    log_in(holder, "lee", PASSWORD)
    holder.goto("/api/v1/health")
    holder.evaluate(OPEN_JS, [f"{site.url.replace('http://', 'ws://')}/ws/teams/{team}/", SOCKETS_PER_SERVER])
    if message_counts(holder, 1) != [1] * SOCKETS_PER_SERVER:
        raise AssertionError(f"the snapshot did not reach every socket on {site.url}")
    dashboard = context.new_page()
    dashboard.goto(f"/teams/{team}/")
    return holder, live(dashboard)


def message_counts(holder, expected: int, timeout_ms: float = 10_000) -> list[int]:
    """The messages each socket of ``holder`` received, once all have ``expected`` (or time is up)."""
    try:
        holder.wait_for_function(AT_LEAST_JS, arg=expected, timeout=timeout_ms)
    except PlaywrightTimeoutError:
        pass  # the counts say which socket missed what
    return holder.evaluate(COUNTS_JS)


def test_it_delivers_each_change_once_to_dashboards_on_both_servers(browser, deployment, agents, team):
    two_sites = deployment[1]
    coordinator = AgentCoordinator(agents, team)
    coordinator.register_agent("alpha", ["review"])  # the team exists before the relays start
    events = agents.team(team).events
    contexts = []
    try:
        pages = [open_sockets(browser, site, team, contexts) for site in two_sites]
        holders = [holder for holder, _ in pages]
        for holder in holders:
            assert holder.evaluate(COUNTS_JS) == [1] * SOCKETS_PER_SERVER  # the snapshot, nothing else yet

        expected = 1
        for i in range(ROUNDS):
            changes = [lambda: coordinator.add_task(AgentTask(f"t{i}", "review")),
                       lambda: coordinator.claim_task("alpha", "review"),
                       lambda: coordinator.complete_task(f"t{i}", {"round": i}, agent_id="alpha")]
            for change in changes:
                before = agents.client.xlen(events)
                assert change()
                assert agents.client.xlen(events) == before + 1  # one change, one event
                expected += 1
                for holder in holders:
                    # A doubled delivery of an earlier event would show here as one message too many.
                    assert message_counts(holder, expected) == [expected] * SOCKETS_PER_SERVER

        # The last round's update is the last message each socket got, and it shows the last task.
        for holder in holders:
            assert holder.evaluate(LAST_SHOWS_JS, 'id="task-t%d"' % (ROUNDS - 1))
            assert holder.evaluate("() => window.__closed || 0") == 0
        for _, dashboard in pages:
            expect(dashboard.locator(f"#tasks-completed #task-t{ROUNDS - 1}")).to_have_attribute(
                "data-status", "completed")
            assert stayed_live(dashboard)

        # Both relays read the stream as members of one group, and every event was acknowledged.
        groups = agents.client.xinfo_groups(events)
        consumers = agents.client.xinfo_consumers(events, "relay")
        assert [g["name"] for g in groups] == ["relay"]
        assert groups[0]["pending"] == 0
        assert sorted(int(c["name"].rsplit("-", 1)[1]) for c in consumers) == sorted(
            site.process.pid for site in two_sites)
    finally:
        for context in contexts:
            context.close()
