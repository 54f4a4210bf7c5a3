"""Process-local fan-out of channel-layer groups to the live consumers of this server process.

Without it, every open page is a member of its groups in the channel layer: an event for a team
watched by 100 pages is 100 messages in Redis, which the process then pops one by one (channels-redis
reads its process's messages with one BZPOPMIN each). With it, the process joins each group once,
with one channel per group, and hands every message it receives to the inboxes (asyncio queues) of
its local consumers: one message per event and per process, whatever the number of pages.

A consumer's inbox is read in the consumer's own task, in order, like its own channel would be.
If the layer's Redis goes away, every member of every group gets ``memory.status`` offline; when it
answers again every group is joined again (a restarted Redis forgot them all), and only then do they
all get ``live.resync`` (send a fresh snapshot: events relayed meanwhile were lost). One recovery
serves the whole process, whichever pump noticed: see ``LocalGroups._recover``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass, field

from channels.layers import get_channel_layer

from empathy_os.redis_memory import UNAVAILABLE

log = logging.getLogger("coordination.hub")

#: Messages an inbox holds before it is replaced by one "resync" (a page that cannot keep up gets a
#: fresh snapshot instead of a backlog: events are notices, the snapshot says everything).
INBOX_LIMIT = 256
#: channels-redis forgets a group membership after ``group_expiry`` (a day by default): join again
#: at least this often.
REJOIN_SECONDS = 3600.0
#: Longest wait between two tries to join a group again while the layer's Redis is away.
RETRY_MAX_DELAY = 0.5

#: How long ``leave`` waits for a cancelled pump to end before telling it to stop with a message.
STOP_GRACE_SECONDS = 0.5

OFFLINE = {"type": "memory.status", "online": False}
RESYNC = {"type": "live.resync"}
#: Sent by ``leave`` to the group's own channel when the pump outlived its cancellation.
STOP = {"type": "hub.stop"}


def put(inbox: asyncio.Queue, message: dict) -> None:
    """Queue ``message``; a full inbox is emptied and told to resync instead."""
    try:
        inbox.put_nowait(message)
    except asyncio.QueueFull:
        while not inbox.empty():
            inbox.get_nowait()
        inbox.put_nowait(RESYNC)


@dataclass
class _Group:
    name: str
    members: set = field(default_factory=set)
    channel: str | None = None
    joined: asyncio.Future | None = None
    joined_at: float = 0.0
    pump: asyncio.Task | None = None

    @property
    def stopped(self) -> bool:
        """The group was left: its pump's cancellation may have been lost (see LocalGroups._stop)."""
        return self.pump is not None and self.pump.cancelling() > 0


class LocalGroups:
    """This event loop's memberships: ``join(group, inbox)`` / ``leave(group, inbox)``."""

    def __init__(self, layer=None):
        self.layer = layer or get_channel_layer()
        self.groups: dict[str, _Group] = {}
        self._recovery: asyncio.Task | None = None

    async def join(self, name: str, inbox: asyncio.Queue) -> None:
        """Add ``inbox`` to ``name``; returns once the process is a member of the group in the layer,
        so that a snapshot read afterwards misses no event."""
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = _Group(name)
            group.joined = asyncio.ensure_future(self._join_layer(group))
        group.members.add(inbox)
        try:
            await asyncio.shield(group.joined)
        except BaseException:
            group.members.discard(inbox)
            joined = group.joined
            failed = joined.done() and (joined.cancelled() or joined.exception() is not None)
            if self.groups.get(name) is group and (failed or not group.members):
                del self.groups[name]  # a failed join is tried afresh by the next page
                if not joined.done():  # the last page went while joining: leave once joined
                    joined.add_done_callback(lambda done: self._forget(group, done))
            raise
        if group.pump is None:
            group.pump = asyncio.ensure_future(self._pump(group))

    def _forget(self, group: _Group, joined: asyncio.Future) -> None:
        if not joined.cancelled() and joined.exception() is None:
            asyncio.ensure_future(self._discard(group))

    async def _discard(self, group: _Group) -> None:
        try:
            await self.layer.group_discard(group.name, group.channel)
        except UNAVAILABLE:
            pass  # the layer's Redis is away; it expires the membership by itself

    async def _join_layer(self, group: _Group) -> None:
        group.channel = await self.layer.new_channel(prefix="hub")
        await self.layer.group_add(group.name, group.channel)
        group.joined_at = time.monotonic()

    async def leave(self, name: str, inbox: asyncio.Queue) -> None:
        group = self.groups.get(name)
        if group is None:
            return
        group.members.discard(inbox)
        if group.members:
            return
        del self.groups[name]
        if group.channel is not None:
            await self._discard(group)
        if group.pump is not None:
            await self._stop(group)

    async def _stop(self, group: _Group) -> None:
        """End the group's pump. Cancelling it is not always enough: on Python 3.11, asyncio.wait_for
        (which redis-py wraps around each write) returns the result instead of raising when the
        cancellation and the write's end come together, and channels-redis then goes on waiting
        for a message on the channel. The pump would read a channel nobody writes to for ever (and
        keep its event loop from closing): a stop message on its own channel ends it."""
        group.pump.cancel()
        done, _ = await asyncio.wait([group.pump], timeout=STOP_GRACE_SECONDS)
        if not done:
            try:
                await self.layer.send(group.channel, STOP)
            except UNAVAILABLE:
                pass  # a pump whose layer is away fails its read and sees that it was cancelled

    async def _pump(self, group: _Group) -> None:
        while not group.stopped:  # left: cancelled, or told to stop (see _stop)
            try:
                message = await self.layer.receive(group.channel)
            except asyncio.CancelledError:
                raise
            except UNAVAILABLE:
                await self._recover(outage=True)
                continue
            except Exception:  # never let one bad read stop a group's pages for good
                log.exception("hub: reading group %s failed", group.name)
                await self._recover(outage=False)
                continue
            if group.stopped:
                return
            self._deliver(group, message)
            if time.monotonic() - group.joined_at > REJOIN_SECONDS:
                await self._try_rejoin(group)

    def _deliver(self, group: _Group, message: dict) -> None:
        for inbox in list(group.members):
            put(inbox, message)

    async def _recover(self, outage: bool) -> None:
        """Join every group of the process again, then have every member resync; returns when done.

        One recovery for all the groups, started by the first pump whose read failed; the others wait
        for it. Per group, each on its own back-off, a page heard "resync" (and said "live") from one
        of its groups while another was not joined yet, and an event relayed in between reached
        nobody until that group's own resync. And a group is joined again whether or not its own
        pump saw the error (a restarted Redis forgot every group). ``outage``: the layer's
        Redis is away (members are told "offline" first); otherwise a read failed for another reason
        (a message may have been lost: they resync all the same)."""
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.ensure_future(self._rejoin_all(outage))
        await asyncio.shield(self._recovery)

    async def _rejoin_all(self, outage: bool) -> None:
        if outage:
            for group in list(self.groups.values()):
                self._deliver(group, OFFLINE)
        delay = 0.05
        while True:
            try:
                for group in list(self.groups.values()):
                    if group.channel is None:  # still joining: its join adds it
                        continue
                    await self.layer.group_add(group.name, group.channel)
                    group.joined_at = time.monotonic()
                    if self.groups.get(group.name) is not group:  # left while being added
                        await self._discard(group)
                break
            except UNAVAILABLE:
                pass
            except Exception:  # noqa: BLE001 - keep trying: giving up would leave the groups unjoined
                log.exception("hub: joining the groups again failed")
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY)
        for group in list(self.groups.values()):
            self._deliver(group, RESYNC)

    async def _try_rejoin(self, group: _Group) -> bool:
        """Join ``group`` again (channels-redis forgets a membership after ``group_expiry``); False if
        the layer's Redis is away."""
        try:
            await self.layer.group_add(group.name, group.channel)
        except UNAVAILABLE:
            return False
        group.joined_at = time.monotonic()
        return True


_by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LocalGroups]" = weakref.WeakKeyDictionary()


def local_groups() -> LocalGroups:
    """The memberships of the running event loop (one per server process; one per test's loop)."""
    loop = asyncio.get_running_loop()
    groups = _by_loop.get(loop)
    if groups is None:
        groups = _by_loop[loop] = LocalGroups()
    return groups
