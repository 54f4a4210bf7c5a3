"""The live team list (``/``) over WebSocket, and the throttle its renders go through.

Changes are made through the library and relayed one batch at a time (``Relay.process_one``) on the
in-memory channel layer; the consumer runs inside the real ASGI application.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from coordination import consumers
from coordination.consumers import Coalescer
from coordination.relay import TEAMS_GROUP, groups_for
from empathy_os import AgentCoordinator, AgentTask

from .conftest import TEAM, ids_of
from .conftest import connect as open_socket

pytestmark = pytest.mark.django_db(transaction=True)

TIERS = ("observer", "contributor", "validator", "steward")


@pytest.fixture
def team(review_team):
    return review_team


async def relay_until_some(relay, tries: int = 20) -> int:
    """Relay until a batch has events (a new team's stream is joined on the reader's next look)."""
    for _ in range(tries):
        n = await relay.process_one(block_ms=200)
        if n:
            return n
    return 0


async def connect(cookie=None, origin=b"http://localhost"):
    return await open_socket("/ws/teams/", cookie, origin)


def row_of(html: str, team_id: str) -> list[str]:
    """The cells after the team's link: agents (active), pending, in progress, completed, failed."""
    row = html[html.index(f'<a id="team-{team_id}"'):]
    return re.findall(r"<td>(.*?)</td>", row[:row.index("</tr>")], re.S)


@pytest.mark.parametrize("tier", TIERS)
async def test_it_sends_the_team_list_on_connect(cookies, relay, tier):
    communicator, connected, _ = await connect(cookies[tier])
    assert connected
    snapshot = await communicator.receive_from(timeout=5)
    assert ids_of(snapshot) == ["team-list", "memory-status"]
    assert row_of(snapshot, TEAM)[1:] == ["1", "0", "0", "0"]
    await communicator.disconnect()


async def test_it_shows_a_new_team_without_reload(cookies, site_memory, relay):
    communicator, _, _ = await connect(cookies["observer"])
    snapshot = await communicator.receive_from(timeout=5)
    assert 'id="team-brand_new"' not in snapshot

    AgentCoordinator(site_memory, "brand_new").register_agent("scout", ["security"])
    assert await relay_until_some(relay) >= 1
    update = await communicator.receive_from(timeout=5)
    assert ids_of(update) == ["team-list"]
    assert '<a id="team-brand_new" href="/teams/brand_new/">brand_new</a>' in update
    assert row_of(update, "brand_new")[0].startswith("1 ")
    assert row_of(update, TEAM)[1:] == ["1", "0", "0", "0"]
    await communicator.disconnect()


async def test_it_updates_a_teams_counts(cookies, team, relay):
    communicator, _, _ = await connect(cookies["observer"])
    await communicator.receive_from(timeout=5)
    team.claim_task("alpha", "review")
    assert await relay.process_one(block_ms=1000) == 1
    update = await communicator.receive_from(timeout=5)
    assert row_of(update, TEAM)[1:] == ["0", "1", "0", "0"]
    await communicator.disconnect()


async def test_it_renders_a_burst_of_events_once(cookies, team, relay, monkeypatch):
    """Throttled: the first event renders at once, the other 39 wait for the interval (an hour here)."""
    monkeypatch.setattr(consumers.TeamListConsumer, "refresh_seconds", 3600)
    communicator, _, _ = await connect(cookies["observer"])
    await communicator.receive_from(timeout=5)

    for i in range(40):
        team.add_task(AgentTask(f"burst{i}", "review"))
    assert await relay.process_one(block_ms=1000) == 40
    update = await communicator.receive_from(timeout=5)
    assert row_of(update, TEAM)[1] == "41"  # the tasks were all added before the render
    assert await communicator.receive_nothing(timeout=0.5)  # 40 events, 1 render
    await communicator.disconnect()


async def test_it_says_when_there_is_no_team_yet(cookies, site_memory):
    communicator, connected, _ = await connect(cookies["observer"])
    assert connected
    snapshot = await communicator.receive_from(timeout=5)
    assert "No team has written to the memory yet" in snapshot
    await communicator.disconnect()


def test_it_relays_every_teams_events_to_the_all_teams_group():
    assert TEAMS_GROUP in groups_for("any_team", "agent.heartbeat")
    assert TEAMS_GROUP in groups_for("any_team", "pattern.staged")


# -- the throttle --------------------------------------------------------------------------------------


class Gate:
    """A ``sleep`` that waits until the test opens it, so the interval ends when the test says."""

    def __init__(self):
        self.opened = asyncio.Event()
        self.waiting = asyncio.Event()

    async def __call__(self, seconds):
        self.waiting.set()
        await self.opened.wait()


async def until(condition, steps: int = 100):
    for _ in range(steps):
        if condition():
            return True
        await asyncio.sleep(0)
    return condition()


async def test_it_renders_the_first_poke_at_once_and_merges_the_rest():
    renders = []

    async def flush(parts):
        renders.append(sorted(parts))

    gate = Gate()
    coalescer = Coalescer(flush, interval=3600, sleep=gate)
    coalescer.poke({"a"})
    assert await until(lambda: renders == [["a"]])

    for i in range(50):
        coalescer.poke({"b"} if i % 2 else {"c"})
    await gate.waiting.wait()  # the interval has not passed: the 50 pokes wait
    assert renders == [["a"]]
    gate.opened.set()
    assert await until(lambda: len(renders) == 2)
    assert renders == [["a"], ["b", "c"]] and coalescer.renders == 2
    assert not coalescer.pending


async def test_it_keeps_rendering_after_a_failed_render():
    calls = []

    async def flush(parts):
        calls.append(parts)
        if len(calls) == 1:
            raise RuntimeError("template error")

    gate = Gate()
    gate.opened.set()
    coalescer = Coalescer(flush, interval=3600, sleep=gate)
    coalescer.poke({"a"})
    assert await until(lambda: len(calls) == 1)
    coalescer.poke({"b"})
    assert await until(lambda: len(calls) == 2)
    assert calls == [{"a"}, {"b"}]


async def test_it_stops_when_cancelled():
    renders = []

    async def flush(parts):
        renders.append(parts)

    gate = Gate()
    coalescer = Coalescer(flush, interval=3600, sleep=gate)
    coalescer.poke({"a"})
    assert await until(lambda: len(renders) == 1)
    coalescer.poke({"b"})
    await gate.waiting.wait()
    coalescer.cancel()
    gate.opened.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert renders == [{"a"}]
