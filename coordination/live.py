"""The base of every live page's WebSocket consumer.

Flow: authenticate the browser session -> join the groups this user may see -> send a snapshot ->
on each relayed event, re-read current state through the library and send the re-rendered
partials (each decides its own placement with ``hx-swap-oob``). Events are "re-render X" notices,
never deltas, so a missed or repeated one does no harm (a list shown newest first may get only its
new top item, which the page adds once however often it comes: see ``dashboard.ENTRY_TEMPLATES``).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.consumer import get_handler_name
from django.template.loader import render_to_string

from empathy_os import AccessTier, MemoryUnavailableError
from empathy_os.redis_memory import UNAVAILABLE

from .access import user_tier
from .hub import INBOX_LIMIT, RESYNC, RETRY_MAX_DELAY, local_groups, put
from .relay import STATUS_GROUP, ensure_embedded_relay

CLOSE_FORBIDDEN = 4403


def status_badge(online: bool) -> str:
    return render_to_string("partials/memory_status.html", {"online": online})


class SharedRenders:
    """Renders of one relayed event, shared by the consumers of this process that would render the
    same partials (same page, same tier): with 100 dashboards open on a team, an event is read and
    rendered once, not 100 times. Keyed by the event's stream id; the last ``size`` are kept."""

    def __init__(self, size: int = 512):
        self.size = size
        self._renders: OrderedDict[tuple, asyncio.Future] = OrderedDict()

    async def get(self, key: tuple, render) -> list[str]:
        key = (id(asyncio.get_running_loop()), *key)
        future = self._renders.get(key)
        if future is None:
            future = asyncio.ensure_future(render())
            self._renders[key] = future
            while len(self._renders) > self.size:
                self._renders.popitem(last=False)
        return await asyncio.shield(future)


SHARED_RENDERS = SharedRenders()


class LiveConsumer(AsyncWebsocketConsumer):
    """Subclasses set ``min_tier`` and implement ``groups_for_user``, ``snapshot`` and ``on_event``."""

    min_tier = AccessTier.OBSERVER
    #: The partials depend only on the URL and the tier, not on the person: renders of an event are
    #: shared with the other consumers of the same page (see SharedRenders).
    shared_renders = False

    async def connect(self):
        user = self.scope.get("user")
        self.tier = await database_sync_to_async(user_tier)(user) if user is not None else None
        if self.tier is None or self.tier < self.min_tier or not await self.allowed():
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user = user
        self.joined = []
        ensure_embedded_relay()
        await self.accept()
        try:
            await self._join_groups()
        except UNAVAILABLE:
            # The channel layer's Redis is away: keep the WebSocket (the browser would back off for up
            # to a minute before trying again), say so, and join as soon as it answers (then resync).
            await self.send_parts([status_badge(False)])
            self._joining = asyncio.ensure_future(self._join_when_back())
            return
        await self.send_parts(await self.safe(self.snapshot))

    async def _join_groups(self) -> None:
        """Join this page's groups (before its snapshot is read, so that no event falls in between)."""
        for group in [*self.groups_for_user(), STATUS_GROUP]:
            if group not in self.joined:
                await local_groups().join(group, self.inbox)
                self.joined.append(group)

    async def _join_when_back(self) -> None:
        delay = 0.05
        while True:
            await asyncio.sleep(delay)
            try:
                await self._join_groups()
            except UNAVAILABLE:
                delay = min(delay * 2, RETRY_MAX_DELAY)
                continue
            put(self.inbox, RESYNC)
            return

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A server shutting down cancels every connection's application (daphne), and no
            # disconnect is received: leave the groups all the same, or the channel layer would go
            # on sending this process's channels every event until the memberships expire (a day).
            await self.release()

    async def disconnect(self, code):
        await self.release()

    async def release(self) -> None:
        """Leave this page's groups and stop what it runs: once its WebSocket closed, or when the
        server stops. Safe to call more than once."""
        joining = getattr(self, "_joining", None)
        if joining is not None:
            joining.cancel()
        joined, self.joined = getattr(self, "joined", []), []
        for group in joined:
            await local_groups().leave(group, self.inbox)

    async def allowed(self) -> bool:
        """Further checks on the URL (e.g. the team exists); True by default."""
        return True

    def groups_for_user(self) -> list[str]:
        raise NotImplementedError

    async def snapshot(self) -> list[str]:
        """Every partial of the page, rendered for this user."""
        raise NotImplementedError

    async def on_event(self, event: dict) -> list[str]:
        """The partials to re-render after ``event`` (a relayed domain event)."""
        raise NotImplementedError

    async def dispatch(self, message):
        # Domain events ("task.claimed", "pattern.staged", ...) all go to on_event.
        kind = message["type"]
        if not kind.startswith("websocket.") and not hasattr(self, get_handler_name(message)):
            if self.shared_renders and message.get("event_id"):
                key = (type(self).__name__, repr(sorted(self.scope["url_route"]["kwargs"].items())),
                       int(self.tier), message["event_id"])
                parts = await self.safe(SHARED_RENDERS.get, key, lambda: self.on_event(message))
            else:
                parts = await self.safe(self.on_event, message)
            await self.send_parts(parts)
            return
        await super().dispatch(message)

    async def memory_status(self, event):
        await self.send_parts([status_badge(event["online"])])

    # -- messages: from this process's memberships (coordination/hub.py), not from the layer ---------
    # The hub joins each group once per process and puts what it receives in every member's inbox.
    # When the layer's Redis dies (it is usually the memory's Redis, so nothing can be relayed, not
    # even the relay's "memory offline"), the hub puts "memory.status" offline in the inboxes, joins
    # again as soon as Redis answers (a restarted Redis forgot the groups), then "live.resync": the
    # WebSocket stays open and the page gets a fresh snapshot, since what happened meanwhile was lost.

    @property
    def inbox(self) -> asyncio.Queue:
        if not hasattr(self, "_inbox"):
            self._inbox = asyncio.Queue(maxsize=INBOX_LIMIT)
        return self._inbox

    @property
    def channel_receive(self):
        return self.inbox.get

    @channel_receive.setter
    def channel_receive(self, receive):  # set by AsyncConsumer.__call__: the layer's own channel, unused
        pass

    async def live_resync(self, event):
        """Back after an outage: send every partial again; the badge says live if the memory answered."""
        try:
            parts = await self.snapshot()
        except MemoryUnavailableError:
            parts, online = [], False
        else:
            online = True
        badge = status_badge(online)
        await self.send_parts([*(p for p in parts if p != badge), badge])

    async def safe(self, fn, *args) -> list[str]:
        """Render, or render the offline badge if Redis went away meanwhile."""
        try:
            return await fn(*args)
        except MemoryUnavailableError:
            return [status_badge(False)]

    async def send_parts(self, parts) -> None:
        html = "".join(p for p in parts if p)
        if html:
            await self.send(text_data=html)
