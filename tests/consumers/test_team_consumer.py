"""The live team dashboard over WebSocket: who may connect, the snapshot, and live partials.

Changes are made through the library, the relay is driven one batch at a time
(``Relay.process_one``) on the in-memory channel layer, and the consumer runs inside the real
ASGI application (origin check, session auth, routing).
"""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from coordination.live import CLOSE_FORBIDDEN
from empathy_os import AgentCoordinator, AgentTask, TeamSession

from .conftest import DASHBOARD_PARTS, TEAM, ids_of
from .conftest import connect as open_socket

pytestmark = pytest.mark.django_db(transaction=True)

TIERS = ("observer", "contributor", "validator", "steward")
PARTS = DASHBOARD_PARTS


@pytest.fixture
def team(review_team):
    return review_team


async def connect(cookie=None, team_id=TEAM, origin=b"http://localhost"):
    return await open_socket(f"/ws/teams/{team_id}/", cookie, origin)


@pytest.mark.parametrize("tier", TIERS)
async def test_it_sends_every_partial_on_connect(cookies, relay, tier):
    communicator, connected, _ = await connect(cookies[tier])
    assert connected
    snapshot = await communicator.receive_from(timeout=5)
    assert ids_of(snapshot) == [*PARTS, "memory-status"]
    assert '<li id="task-t1" data-status="pending"' in snapshot
    assert 'id="agent-alpha"' in snapshot
    await communicator.disconnect()


async def test_it_pushes_a_claim_made_through_the_library(cookies, team, relay):
    communicator, connected, _ = await connect(cookies["observer"])
    assert connected
    await communicator.receive_from(timeout=5)

    assert team.claim_task("alpha", "review").task_id == "t1"
    assert await relay.process_one(block_ms=1000) == 1
    update = await communicator.receive_from(timeout=5)
    assert ids_of(update) == ["tasks-pending", "tasks-in_progress", "counters", "agents"]
    in_progress = update[update.index('id="tasks-in_progress"'):update.index('id="counters"')]
    assert '<li id="task-t1" data-status="in_progress"' in in_progress
    assert '<strong class="holder">alpha</strong>' in in_progress
    assert '<dd class="in_progress">1</dd>' in update
    await communicator.disconnect()


async def test_it_moves_a_completed_task_and_counts_it(cookies, team, relay):
    team.claim_task("alpha", "review")
    await relay.process_one(block_ms=1000)
    communicator, _, _ = await connect(cookies["observer"])
    await communicator.receive_from(timeout=5)

    team.complete_task("t1", {"findings": 2}, agent_id="alpha")
    assert await relay.process_one(block_ms=1000) == 1
    update = await communicator.receive_from(timeout=5)
    assert ids_of(update) == ["tasks-in_progress", "tasks-completed-head", "counters"]
    assert '<ol hx-swap-oob="afterbegin:#tasks-completed-list"><li id="task-t1" data-status="completed"' in update
    assert '<dd class="throughput">1<small>' in update
    await communicator.disconnect()


@pytest.mark.parametrize("change,parts,text", [
    (lambda m: AgentCoordinator(m, TEAM).broadcast("review.done", {"pr": 7}), ["signal-feed-head"],
     '<ol hx-swap-oob="afterbegin:#signal-list"><li id="signal-'),
    (lambda m: AgentCoordinator(m, TEAM).register_agent("beta", ["security"]), ["agents"], 'id="agent-beta"'),
    (lambda m: TeamSession(m, "triage", "sort the backlog", team_id=TEAM), ["sessions"], 'id="session-triage"'),
    (lambda m: AgentCoordinator(m, TEAM).add_task(AgentTask("t2", "review")), ["tasks-pending", "counters"],
     'id="task-t2"'),
], ids=["signal", "agent", "session", "task"])
async def test_it_rerenders_what_each_event_changes(cookies, site_memory, relay, change, parts, text):
    communicator, _, _ = await connect(cookies["observer"])
    await communicator.receive_from(timeout=5)

    change(site_memory)
    assert await relay.process_one(block_ms=1000) == 1
    update = await communicator.receive_from(timeout=5)
    assert ids_of(update) == parts
    assert text in update
    await communicator.disconnect()


async def test_it_sends_only_its_own_teams_events(cookies, site_memory, team, relay):
    other = AgentCoordinator(site_memory, "other_team")
    other.register_agent("beta", ["review"])
    await relay.process_one(block_ms=1)  # the relay joins the new team's stream
    communicator, _, _ = await connect(cookies["observer"])
    await communicator.receive_from(timeout=5)

    other.add_task(AgentTask("elsewhere", "review"))
    team.add_task(AgentTask("t2", "review"))
    assert await relay.process_one(block_ms=1000) == 2
    update = await communicator.receive_from(timeout=5)
    assert 'id="task-t2"' in update and "elsewhere" not in update
    assert await communicator.receive_nothing()
    await communicator.disconnect()


@pytest.mark.parametrize("team_id", ["-bad", "bad%20id", "x" * 129])
async def test_it_refuses_an_invalid_team_id(cookies, relay, team_id):
    _, connected, code = await connect(cookies["steward"], team_id=team_id)
    assert not connected and code == CLOSE_FORBIDDEN


async def test_it_shows_an_empty_board_for_an_unknown_team(cookies, site_memory, relay):
    communicator, connected, _ = await connect(cookies["observer"], team_id="nobody_here")
    assert connected
    snapshot = await communicator.receive_from(timeout=5)
    assert ids_of(snapshot) == [*PARTS, "memory-status"] and '<li id="task-' not in snapshot
    assert site_memory.list_teams() == [TEAM]
    await communicator.disconnect()


async def test_it_renders_an_event_once_per_tier_for_every_open_page(cookies, team, relay, monkeypatch):
    from coordination import dashboard

    renders = []
    real = dashboard.render_parts
    monkeypatch.setattr(dashboard, "render_parts", lambda *a, **k: renders.append(a[2]) or real(*a, **k))
    pages = [(await connect(cookies[tier]))[0] for tier in ("observer", "observer", "observer", "steward")]
    for page in pages:
        await page.receive_from(timeout=5)
    renders.clear()

    team.add_task(AgentTask("t2", "review"))
    assert await relay.process_one(block_ms=1000) == 1
    updates = [await page.receive_from(timeout=5) for page in pages]
    assert all('id="task-t2"' in update for update in updates)
    assert renders == [("tasks-pending", "counters")] * 2  # one for the observers, one for the steward
    for page in pages:
        await page.disconnect()


async def test_it_keeps_a_page_that_connects_while_the_layer_is_away_and_resyncs_it(cookies, team, relay,
                                                                                    monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    from coordination.hub import LocalGroups

    real_join = LocalGroups.join
    away = {"on": True}

    async def join(self, name, inbox):
        if away["on"]:
            raise RedisConnectionError("Connection refused")
        return await real_join(self, name, inbox)

    monkeypatch.setattr(LocalGroups, "join", join)
    communicator, connected, _ = await connect(cookies["observer"])
    assert connected
    first = await communicator.receive_from(timeout=5)
    assert ids_of(first) == ["memory-status"] and "memory offline" in first

    away["on"] = False
    resync = await communicator.receive_from(timeout=5)
    assert ids_of(resync) == [*PARTS, "memory-status"] and '<li id="task-t1"' in resync
    assert ">live<" in resync

    team.add_task(AgentTask("t2", "review"))  # and it is live from then on
    assert await relay.process_one(block_ms=1000) == 1
    assert 'id="task-t2"' in await communicator.receive_from(timeout=5)
    await communicator.disconnect()


async def test_a_stopping_server_leaves_the_groups_of_its_pages(cookies, team, relay):
    """daphne cancels every connection's application when it stops, and no disconnect arrives: the
    pages leave their groups all the same, so the layer stops sending to this process's channels."""
    layer = get_channel_layer()
    pages = [(await connect(cookies["observer"]))[0] for _ in range(2)]
    for page in pages:
        await page.receive_from(timeout=5)
    assert layer.groups.get(f"team.{TEAM}")

    for page in pages:
        page.future.cancel()
    await asyncio.wait([page.future for page in pages], timeout=5)
    assert all(page.future.done() for page in pages)
    assert f"team.{TEAM}" not in layer.groups and "memory.status" not in layer.groups
