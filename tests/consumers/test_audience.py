"""Pages alike share an audience (coordination/live.py): one hub membership per page, URL and tier;
each event rendered once and written to every page in one pass, after the page's snapshot."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from coordination import live
from coordination.consumers import TeamConsumer
from coordination.hub import LocalGroups, local_groups
from empathy_os import AgentTask

from .conftest import DASHBOARD_PARTS, TEAM, ids_of
from .conftest import connect as open_socket

pytestmark = pytest.mark.django_db(transaction=True)

GROUP = f"team.{TEAM}"
SNAPSHOT = [*DASHBOARD_PARTS, "memory-status"]


@pytest.fixture
def team(review_team):
    return review_team


async def connect(cookie):
    communicator, connected, _ = await open_socket(f"/ws/teams/{TEAM}/", cookie)
    assert connected
    return communicator


@pytest.fixture
def gate(monkeypatch):
    """While closed (``gate.clear()``), pages that connect wait before reading their snapshot."""
    gate = asyncio.Event()
    gate.set()
    real = TeamConsumer.snapshot

    async def snapshot(self):
        await gate.wait()
        return await real(self)

    monkeypatch.setattr(TeamConsumer, "snapshot", snapshot)
    return gate


async def pages_in_audience(n: int) -> None:
    """Wait until the team's audience has ``n`` pages."""
    for _ in range(500):
        if sum(len(a.pages) for a in live.audiences().by_key.values()) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {n} pages joined")


async def relay_task(team, relay, task_id: str) -> None:
    team.add_task(AgentTask(task_id, "review"))
    assert await relay.process_one(block_ms=1000) == 1


async def test_pages_alike_are_one_member_of_the_group(cookies, team, relay):
    pages = [await connect(cookies[tier]) for tier in ("observer", "observer", "observer", "steward")]
    for page in pages:
        await page.receive_from(timeout=5)
    assert len(local_groups().groups[GROUP].members) == 2  # one audience per tier

    await pages[0].disconnect()
    await relay_task(team, relay, "t2")
    for page in pages[1:]:
        assert 'id="task-t2"' in await page.receive_from(timeout=5)
    assert len(local_groups().groups[GROUP].members) == 2

    for page in pages[1:]:
        await page.disconnect()
    assert GROUP not in local_groups().groups and not live.audiences().by_key


async def test_a_page_gets_the_events_rendered_during_its_snapshot_after_it_in_order(cookies, team, relay, gate):
    first = await connect(cookies["observer"])
    await first.receive_from(timeout=5)
    gate.clear()
    second = await connect(cookies["observer"])
    await pages_in_audience(2)

    for task_id in ("t2", "t3"):
        await relay_task(team, relay, task_id)
        assert f'id="task-{task_id}"' in await first.receive_from(timeout=5)
    assert await second.receive_nothing()

    gate.set()
    assert ids_of(await second.receive_from(timeout=5)) == SNAPSHOT
    assert 'id="task-t2"' in await second.receive_from(timeout=5)
    assert 'id="task-t3"' in await second.receive_from(timeout=5)
    await relay_task(team, relay, "t4")  # and directly from then on
    assert 'id="task-t4"' in await second.receive_from(timeout=5)
    for page in (first, second):
        await page.disconnect()


async def test_a_page_whose_backlog_overflows_gets_a_fresh_snapshot_instead(cookies, team, relay, gate,
                                                                            monkeypatch):
    monkeypatch.setattr(live, "INBOX_LIMIT", 2)
    gate.clear()
    page = await connect(cookies["observer"])
    await pages_in_audience(1)
    for task_id in ("t2", "t3", "t4"):
        await relay_task(team, relay, task_id)

    gate.set()
    assert ids_of(await page.receive_from(timeout=5)) == SNAPSHOT
    resync = await page.receive_from(timeout=5)
    assert ids_of(resync) == SNAPSHOT and 'id="task-t4"' in resync
    assert await page.receive_nothing()
    await page.disconnect()


async def test_a_failed_render_does_not_stop_the_later_updates(cookies, team, relay, monkeypatch, caplog):
    page = await connect(cookies["observer"])
    await page.receive_from(timeout=5)
    real = TeamConsumer.on_event
    calls = []

    async def on_event(self, event):
        calls.append(event["type"])
        if len(calls) == 1:
            raise RuntimeError("template broke")
        return await real(self, event)

    monkeypatch.setattr(TeamConsumer, "on_event", on_event)
    await relay_task(team, relay, "t2")
    await relay_task(team, relay, "t3")
    update = await page.receive_from(timeout=5)
    assert 'id="task-t3"' in update and 'id="task-t2"' in update  # the next render shows both
    assert "live render failed" in caplog.text
    await page.disconnect()


async def test_a_page_that_goes_while_joining_leaves_its_audience_joined_for_the_others(cookies, team, relay,
                                                                                       monkeypatch):
    """The first page joins the group for its audience; if it goes before the join is done, the next
    page joins afresh (the hub dropped the inbox with the page that went), and the group the first
    join made is left once that join ends."""
    gate = asyncio.Event()
    real = LocalGroups._join_layer

    async def slow_join(self, group):
        await gate.wait()
        await real(self, group)

    monkeypatch.setattr(LocalGroups, "_join_layer", slow_join)
    going = await connect(cookies["observer"])
    staying = await connect(cookies["observer"])
    await pages_in_audience(2)
    going.future.cancel()
    await asyncio.wait([going.future], timeout=5)

    gate.set()
    assert ids_of(await staying.receive_from(timeout=5)) == SNAPSHOT
    await relay_task(team, relay, "t2")
    assert 'id="task-t2"' in await staying.receive_from(timeout=5)
    await staying.disconnect()
    layer = get_channel_layer()
    for _ in range(100):  # the first join's membership is discarded in a task of its own
        if GROUP not in layer.groups:
            break
        await asyncio.sleep(0.01)
    assert GROUP not in layer.groups
