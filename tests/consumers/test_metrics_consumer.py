"""The live metrics page over WebSocket: who may connect, the snapshot, probe rounds and team events.

The probe is driven one round at a time from a worker thread (as its own thread would), team changes
are made through the library and relayed one batch at a time (``Relay.process_one``) on the in-memory
channel layer, and the consumer runs inside the real ASGI application (origin check, session auth,
routing).
"""

from __future__ import annotations

import re
import threading

import pytest
from asgiref.sync import sync_to_async

from coordination import consumers, metrics, metrics_probe
from empathy_os import AgentCoordinator, AgentTask

from .conftest import connect as open_socket
from .conftest import ids_of

pytestmark = pytest.mark.django_db(transaction=True)

TEAM = "review_team"
TIERS = ("observer", "contributor", "validator", "steward")
ROUND = ["metrics-error", "metrics-probe", "metrics-latency", "metrics-reuse", "metrics-teams", "metrics-memory",
         "memory-status"]


@pytest.fixture
def team(site_memory):
    coordinator = AgentCoordinator(site_memory, TEAM)
    coordinator.register_agent("alpha", ["review"])
    return coordinator


@pytest.fixture
def relay(probe, relay):
    """The relay, with the test's own probe in place (the one the page shows)."""
    return relay


async def connect(cookie=None, origin=b"http://localhost"):
    return await open_socket("/ws/metrics/", cookie, origin)


def card(html: str, key: str) -> str:
    return re.search(rf'<article class="metric card" id="metric-{key}".*?</article>', html, re.S)[0]


@pytest.mark.parametrize("tier", TIERS)
async def test_it_sends_every_partial_on_connect(cookies, relay, tier):
    communicator, connected, _ = await connect(cookies[tier])
    assert connected
    snapshot = await communicator.receive_from(timeout=5)
    assert ids_of(snapshot) == ROUND
    assert 'id="metrics-team-review_team"' in snapshot
    assert "No samples yet" in card(snapshot, "signal_round_trip")
    assert 'class="badge badge-online">live</span>' in snapshot
    await communicator.disconnect()


async def test_it_pushes_a_probe_round_to_a_connected_page(cookies, relay, probe):
    communicator, _, _ = await connect(cookies["observer"])
    await communicator.receive_from(timeout=5)

    await sync_to_async(probe.round, thread_sensitive=False)()  # from a thread, like the probe's own
    update = await communicator.receive_from(timeout=5)
    assert ids_of(update) == ROUND
    chart = card(update, "signal_round_trip")
    assert "1 sample<" in chart and len(re.search(r'<polyline points="([^"]+)"', chart)[1].split()) == 1
    assert "(1 round)" in update
    assert await communicator.receive_nothing()
    await communicator.disconnect()


async def test_it_pushes_the_rounds_of_the_probe_thread(cookies, relay, site_memory):
    communicator, _, _ = await connect(cookies["observer"])
    await communicator.receive_from(timeout=5)
    probe = metrics_probe.Probe(memory_getter=lambda: site_memory, interval=3600)
    metrics_probe.PROBE = probe  # restored by the ``probe`` fixture (via ``relay``)
    stop = threading.Event()
    thread = probe.start(stop)  # its first round runs at once
    try:
        update = await communicator.receive_from(timeout=10)
    finally:
        stop.set()
        await sync_to_async(thread.join, thread_sensitive=False)(10)
    assert ids_of(update) == ROUND
    assert "probe every 3600 s" in update and "1 sample<" in card(update, "pattern_staging")
    await communicator.disconnect()


async def test_it_shows_a_failed_probe_round(cookies, relay, site_memory):
    class Broken(metrics_probe.Probe):
        def _measure(self):
            raise RuntimeError("no route to <redis>")

    communicator, _, _ = await connect(cookies["observer"])
    await communicator.receive_from(timeout=5)
    metrics_probe.PROBE = probe = Broken(memory_getter=lambda: site_memory)
    await sync_to_async(probe.round, thread_sensitive=False)()
    update = await communicator.receive_from(timeout=5)
    assert "1 failed" in update and "last error: RuntimeError: no route to &lt;redis&gt;" in update
    await communicator.disconnect()


async def test_it_refreshes_the_coordination_latency_when_a_task_is_claimed(cookies, team, relay):
    team.add_task(AgentTask("t1", "review"))
    await relay.process_one(block_ms=1000)
    communicator, _, _ = await connect(cookies["observer"])
    snapshot = await communicator.receive_from(timeout=5)
    assert "No claimed tasks yet." in card(snapshot, "coordination")

    team.claim_task("alpha", "review")
    assert await relay.process_one(block_ms=1000) == 1
    update = await communicator.receive_from(timeout=5)
    assert ids_of(update) == ["metric-coordination", "metrics-teams"]
    assert "1 sample<" in card(update, "coordination")
    row = re.search(r'<tr id="metrics-team-review_team">.*?</tr>', update, re.S)[0]
    assert re.findall(r"<td>(\d+)</td>", row)[:3] == ["1", "0", "1"]  # active agents, pending, in progress
    await communicator.disconnect()


async def test_it_renders_a_burst_of_team_events_once(cookies, team, relay, monkeypatch):
    """Throttled: the first event renders at once, the rest wait for the interval (an hour here)."""
    monkeypatch.setattr(consumers.MetricsConsumer, "refresh_seconds", 3600)
    team.add_tasks([AgentTask(f"t{i}", "review") for i in range(30)])
    await relay.process_one(block_ms=1000)
    communicator, _, _ = await connect(cookies["observer"])
    await communicator.receive_from(timeout=5)

    for _ in range(30):
        team.claim_task("alpha", "review")
    assert await relay.process_one(block_ms=1000) == 30
    update = await communicator.receive_from(timeout=5)
    assert "30 samples" in card(update, "coordination")  # the claims were all made before the render
    assert await communicator.receive_nothing(timeout=0.5)  # 30 events, 1 render
    await communicator.disconnect()


async def test_it_ignores_events_that_change_nothing_it_shows(cookies, team, relay):
    communicator, _, _ = await connect(cookies["observer"])
    await communicator.receive_from(timeout=5)
    team.broadcast("review.done", {"pr": 7})
    assert await relay.process_one(block_ms=1000) == 1
    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()


def test_it_maps_events_to_the_partials_they_change():
    assert metrics.parts_for_event("metrics.probed") == metrics.ROUND_PARTS
    assert metrics.parts_for_event("task.claimed") == ("coordination", "teams")
    assert metrics.parts_for_event("agent.registered") == ("teams",)
    assert metrics.parts_for_event("pattern.promoted") == ("reuse", "teams")
    assert metrics.parts_for_event("signal.sent") == ()
