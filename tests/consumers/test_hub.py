"""The process-local fan-out (coordination/hub.py): one layer membership per group and process."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import InMemoryChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError

from coordination.hub import OFFLINE, RESYNC, LocalGroups, put


async def test_it_joins_a_group_once_and_hands_each_message_to_every_inbox():
    layer = InMemoryChannelLayer()
    groups = LocalGroups(layer)
    inboxes = [asyncio.Queue() for _ in range(3)]
    for inbox in inboxes:
        await groups.join("team.t1", inbox)
    assert len(layer.groups["team.t1"]) == 1

    await layer.group_send("team.t1", {"type": "task.added", "task": "t9"})
    for inbox in inboxes:
        assert await asyncio.wait_for(inbox.get(), 2) == {"type": "task.added", "task": "t9"}

    for inbox in inboxes:
        await groups.leave("team.t1", inbox)
    assert not layer.groups.get("team.t1") and not groups.groups


async def test_it_keeps_groups_apart_and_stops_delivering_after_leave():
    layer = InMemoryChannelLayer()
    groups = LocalGroups(layer)
    first, second = asyncio.Queue(), asyncio.Queue()
    await groups.join("team.a", first)
    await groups.join("team.b", second)
    await groups.join("team.a", second)
    await groups.leave("team.a", second)

    await layer.group_send("team.a", {"type": "x", "n": 1})
    await layer.group_send("team.b", {"type": "x", "n": 2})
    assert (await asyncio.wait_for(first.get(), 2))["n"] == 1
    assert (await asyncio.wait_for(second.get(), 2))["n"] == 2
    await asyncio.sleep(0.05)
    assert first.empty() and second.empty()
    await groups.leave("team.a", first)
    await groups.leave("team.b", second)


def test_a_full_inbox_is_replaced_by_one_resync():
    inbox = asyncio.Queue(maxsize=2)
    for n in range(3):
        put(inbox, {"type": "x", "n": n})
    assert inbox.qsize() == 1 and inbox.get_nowait() == RESYNC


class FlakyLayer(InMemoryChannelLayer):
    """A layer whose Redis is away while ``down``: reads and group_adds fail."""

    def __init__(self):
        super().__init__()
        self.down = False
        self.adds = 0

    async def receive(self, channel):
        if self.down:
            raise RedisConnectionError("Connection refused")
        return await super().receive(channel)

    async def group_add(self, group, channel):
        if self.down:
            raise RedisConnectionError("Connection refused")
        self.adds += 1
        await super().group_add(group, channel)


async def test_it_reports_an_outage_then_joins_again_and_asks_for_a_resync():
    layer = FlakyLayer()
    groups = LocalGroups(layer)
    inbox = asyncio.Queue()
    await groups.join("team.t1", inbox)
    await asyncio.sleep(0.01)  # the pump waits in its read
    layer.down = True
    await layer.send(groups.groups["team.t1"].channel, {"type": "wake"})  # the pump's next read fails

    assert await asyncio.wait_for(inbox.get(), 2) == {"type": "wake"}
    assert await asyncio.wait_for(inbox.get(), 2) == OFFLINE
    await asyncio.sleep(0.2)
    layer.down = False
    assert await asyncio.wait_for(inbox.get(), 2) == RESYNC
    assert layer.adds == 2

    await layer.group_send("team.t1", {"type": "task.added"})
    assert (await asyncio.wait_for(inbox.get(), 2))["type"] == "task.added"
    await groups.leave("team.t1", inbox)


async def test_an_outage_one_pump_saw_joins_every_group_again_before_anyone_resyncs():
    # channels-redis reads all of a process's channels on one connection: a pump whose read was not
    # in flight when Redis died sees no error, and the restarted Redis forgot its group all the same.
    layer = FlakyLayer()
    groups = LocalGroups(layer)
    seen, unseen = asyncio.Queue(), asyncio.Queue()
    await groups.join("team.a", seen)
    await groups.join("team.b", unseen)
    await asyncio.sleep(0.01)  # both pumps wait in their reads
    layer.down = True
    await layer.send(groups.groups["team.a"].channel, {"type": "wake"})  # only a's next read fails
    assert await asyncio.wait_for(seen.get(), 2) == {"type": "wake"}
    assert await asyncio.wait_for(seen.get(), 2) == OFFLINE
    assert await asyncio.wait_for(unseen.get(), 2) == OFFLINE
    await asyncio.sleep(0.1)
    layer.groups.clear()  # the restarted Redis knows no group
    layer.down = False

    assert await asyncio.wait_for(seen.get(), 2) == RESYNC
    assert set(layer.groups) == {"team.a", "team.b"}  # both joined before the first resync went out
    assert await asyncio.wait_for(unseen.get(), 2) == RESYNC
    await layer.group_send("team.b", {"type": "task.added"})
    assert (await asyncio.wait_for(unseen.get(), 2))["type"] == "task.added"
    assert seen.empty()
    await groups.leave("team.a", seen)
    await groups.leave("team.b", unseen)


class GarblingLayer(InMemoryChannelLayer):
    """A layer whose first read fails with something other than an outage (a message it cannot decode)."""

    def __init__(self):
        super().__init__()
        self.garbled = 0

    async def receive(self, channel):
        message = await super().receive(channel)
        if not self.garbled:
            self.garbled += 1
            raise ValueError("unpack(b) received extra data")
        return message


async def test_a_read_that_fails_otherwise_resyncs_the_members_and_the_group_goes_on():
    layer = GarblingLayer()
    groups = LocalGroups(layer)
    inbox = asyncio.Queue()
    await groups.join("team.t1", inbox)
    await layer.group_send("team.t1", {"type": "lost"})
    assert await asyncio.wait_for(inbox.get(), 2) == RESYNC  # not "offline": the layer answered

    await layer.group_send("team.t1", {"type": "task.added"})
    assert (await asyncio.wait_for(inbox.get(), 2))["type"] == "task.added"
    assert layer.garbled == 1 and inbox.empty()
    await groups.leave("team.t1", inbox)


async def test_a_failed_join_is_tried_afresh_by_the_next_page():
    layer = FlakyLayer()
    groups = LocalGroups(layer)
    layer.down = True
    with pytest.raises(RedisConnectionError):
        await groups.join("team.t1", asyncio.Queue())
    assert not groups.groups
    layer.down = False
    inbox = asyncio.Queue()
    await groups.join("team.t1", inbox)
    await layer.group_send("team.t1", {"type": "x"})
    assert (await asyncio.wait_for(inbox.get(), 2))["type"] == "x"
    await groups.leave("team.t1", inbox)


class CancelLosingLayer(InMemoryChannelLayer):
    """A layer whose ``receive`` loses its first cancellation and goes on waiting, as channels-redis
    does on Python 3.11 when asyncio.wait_for (around redis-py's writes) returns instead of raising."""

    def __init__(self):
        super().__init__()
        self.lost = 0

    async def receive(self, channel):
        while True:
            try:
                return await super().receive(channel)
            except asyncio.CancelledError:
                if self.lost:
                    raise
                self.lost += 1


async def test_leaving_ends_the_pump_even_when_its_cancellation_is_lost():
    layer = CancelLosingLayer()
    groups = LocalGroups(layer)
    inbox = asyncio.Queue()
    await groups.join("team.t1", inbox)
    pump = groups.groups["team.t1"].pump
    await asyncio.sleep(0.01)  # the pump waits in its read

    await groups.leave("team.t1", inbox)
    done, _ = await asyncio.wait([pump], timeout=2)
    assert done and layer.lost == 1 and inbox.empty()


async def test_leaving_ends_a_pump_that_waits_for_the_layer_to_come_back():
    layer = FlakyLayer()
    groups = LocalGroups(layer)
    inbox = asyncio.Queue()
    await groups.join("team.t1", inbox)
    pump = groups.groups["team.t1"].pump
    await asyncio.sleep(0.01)  # the pump waits in its read
    layer.down = True
    await layer.send(groups.groups["team.t1"].channel, {"type": "wake"})
    assert await asyncio.wait_for(inbox.get(), 2) == {"type": "wake"}
    assert await asyncio.wait_for(inbox.get(), 2) == OFFLINE  # now trying to join again

    await groups.leave("team.t1", inbox)
    done, _ = await asyncio.wait([pump], timeout=2)
    assert done and inbox.empty()
