"""The relay's loop (coordination/relay.py): it ends when cancelled, even if the cancellation is lost."""

from __future__ import annotations

import asyncio

from channels.layers import InMemoryChannelLayer

from coordination.relay import Relay
from empathy_os import AccessTier, AgentCredentials, StagedPattern
from empathy_os.events import EventReader


class CancelLosingLayer(InMemoryChannelLayer):
    """``group_send`` waits until cancelled the first time, then returns as if it had sent: what
    channels-redis does on Python 3.11 when asyncio.wait_for (around redis-py's writes) loses a
    cancellation."""

    def __init__(self):
        super().__init__()
        self.sending = asyncio.Event()
        self.lost = 0

    async def group_send(self, group, message):
        if self.lost:
            return
        self.sending.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.lost += 1


async def test_it_ends_when_its_cancellation_is_lost(memory):
    agent = AgentCredentials("perf", AccessTier.CONTRIBUTOR, "t1")
    layer = CancelLosingLayer()
    relay = Relay(memory, layer, EventReader(memory, teams_refresh_s=0))
    await relay.process_one(block_ms=1)  # joins the team's events stream: relays what happens from now on
    memory.stage_pattern(agent, StagedPattern("p1", "perf", pattern_type="optimization", name="Eager loading",
                                              description="Use select_related", confidence=0.9, code="p1()"))
    task = asyncio.ensure_future(relay.run())
    await asyncio.wait_for(layer.sending.wait(), 5)

    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert done and layer.lost == 1
