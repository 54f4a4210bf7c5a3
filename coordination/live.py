"""The base of every live page's WebSocket consumer.

Flow: authenticate the browser session -> join the groups this user may see -> send a snapshot ->
on each relayed event, re-read current state through the library and send the re-rendered
partials (each decides its own placement with ``hx-swap-oob``). Events are "re-render X" notices,
never deltas, so a missed or repeated one does no harm (a list shown newest first may get only its
new top item, which the page adds once however often it comes: see ``dashboard.ENTRY_TEMPLATES``).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from empathy_os import AccessTier, MemoryUnavailableError
from empathy_os.redis_memory import UNAVAILABLE

from .access import user_tier
from .hub import INBOX_LIMIT, RESYNC, RETRY_MAX_DELAY, local_groups, put
from .relay import STATUS_GROUP, ensure_embedded_relay

log = logging.getLogger("coordination.live")

CLOSE_FORBIDDEN = 4403


def status_badge(online: bool) -> str:
    return render_to_string("partials/memory_status.html", {"online": online})


class Audience:
    """The pages of this process that show the same thing for a group's events: same consumer class,
    URL and tier (``LiveConsumer.shared_renders``).

    The audience, not each page, is the group's member in the hub: each event is rendered once, in
    the audience's own task, and the HTML written to every page's WebSocket in one pass. With 100
    dashboards open on a team, waking 100 pages' tasks to hand each of them the same HTML was most
    of the server's work per event (``manage.py bench --live``, measured page first of 100: p50
    18-25 ms before, 14-15 ms after; docs/benchmarks.md).
    A page gets the HTML once its snapshot is sent; until then the audience keeps it, in order, in
    the page's backlog (``LiveConsumer.push``). What the hub says about the layer itself
    (``memory.status``, ``live.resync``) goes to each page's inbox, as for any member.
    """

    def __init__(self):
        self.pages: dict[LiveConsumer, None] = {}  # in the order they came
        self.inbox: asyncio.Queue = asyncio.Queue(maxsize=INBOX_LIMIT)
        self.member = False  # the inbox is a member of the group in the hub
        self.joining = asyncio.Lock()
        self.task = asyncio.ensure_future(self.run())

    async def run(self) -> None:
        while True:
            message = await self.inbox.get()
            pages = list(self.pages)
            if not pages:
                continue
            if message["type"].startswith("websocket.") or hasattr(pages[0], get_handler_name(message)):
                for page in pages:
                    put(page.inbox, message)
                continue
            try:
                html = "".join(p for p in await pages[0].safe(pages[0].on_event, message) if p)
            except Exception:  # one failed render must not stop the pages' later updates
                log.exception("live render failed")
                continue
            if not html:
                continue
            for page in pages:
                try:
                    await page.push(html)
                except Exception:
                    log.exception("live send failed")


class Audiences:
    """This event loop's audiences: ``join(key, group, page)`` / ``leave(key, group, page)``."""

    def __init__(self):
        self.by_key: dict[tuple, Audience] = {}

    async def join(self, key: tuple, group: str, page: LiveConsumer) -> None:
        """Add ``page`` to the audience ``key`` of ``group``; returns once the process is a member of
        the group in the layer (see LocalGroups.join)."""
        audience = self.by_key.get(key)
        if audience is None:
            audience = self.by_key[key] = Audience()
        audience.pages[page] = None
        try:
            # One page joins for the audience. If it goes meanwhile (its connection closed: the hub
            # drops the inbox it was joining with), the next page waiting here joins afresh.
            async with audience.joining:
                if not audience.member:
                    await local_groups().join(group, audience.inbox)
                    audience.member = True
        except BaseException:
            await self.leave(key, group, page)
            raise

    async def leave(self, key: tuple, group: str, page: LiveConsumer) -> None:
        audience = self.by_key.get(key)
        if audience is None or page not in audience.pages:
            return
        del audience.pages[page]
        if audience.pages:
            return
        del self.by_key[key]
        audience.task.cancel()
        if audience.member:
            await local_groups().leave(group, audience.inbox)


_audiences: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Audiences]" = weakref.WeakKeyDictionary()


def audiences() -> Audiences:
    """The audiences of the running event loop (one set per server process; one per test's loop)."""
    return _audiences.setdefault(asyncio.get_running_loop(), Audiences())


class LiveConsumer(AsyncWebsocketConsumer):
    """Subclasses set ``min_tier`` and implement ``groups_for_user``, ``snapshot`` and ``on_event``."""

    min_tier = AccessTier.OBSERVER
    #: The partials depend only on the URL and the tier, not on the person: the page's events are
    #: rendered once for all the pages alike in this process and sent to them in one pass (Audience).
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
        await self.send_snapshot(await self.safe(self.snapshot))

    def _audience_key(self, group: str) -> tuple | None:
        """The audience this page joins ``group`` through; None: it joins with its own inbox."""
        if not self.shared_renders or group == STATUS_GROUP:
            return None
        return group, type(self), repr(sorted(self.scope["url_route"]["kwargs"].items())), int(self.tier)

    async def _join_groups(self) -> None:
        """Join this page's groups (before its snapshot is read, so that no event falls in between)."""
        for group in [*self.groups_for_user(), STATUS_GROUP]:
            if group not in self.joined:
                key = self._audience_key(group)
                if key is None:
                    await local_groups().join(group, self.inbox)
                else:
                    await audiences().join(key, group, self)
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
            key = self._audience_key(group)
            if key is None:
                await local_groups().leave(group, self.inbox)
            else:
                await audiences().leave(key, group, self)

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
            await self.send_parts(await self.safe(self.on_event, message))
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
        self._ready = False  # what the audience renders meanwhile comes after the snapshot
        try:
            parts = await self.snapshot()
        except MemoryUnavailableError:
            parts, online = [], False
        else:
            online = True
        badge = status_badge(online)
        await self.send_snapshot([*(p for p in parts if p != badge), badge])

    # -- from the page's audience (shared_renders) -------------------------------------------------

    _ready = False  # the snapshot was sent: the audience writes to the WebSocket directly

    @property
    def backlog(self) -> deque:
        """What the audience rendered for this page before its snapshot was sent, oldest first."""
        if not hasattr(self, "_backlog"):
            self._backlog = deque()
        return self._backlog

    async def send_snapshot(self, parts) -> None:
        """Send the snapshot's partials, then the backlog; from then on the audience sends directly."""
        self._ready = False
        await self.send_parts(parts)
        while self.backlog:
            await self.send(text_data=self.backlog.popleft())
        self._ready = True

    async def push(self, html: str) -> None:
        """An event's HTML from the audience: sent now, or after the snapshot being prepared."""
        if self._ready:
            await self.send(text_data=html)
        elif len(self.backlog) < INBOX_LIMIT:
            self.backlog.append(html)
        else:  # the page cannot keep up: a fresh snapshot instead of a backlog (see hub.put)
            self.backlog.clear()
            put(self.inbox, RESYNC)

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


class Coalescer:
    """Renders at most once per ``interval`` seconds however often it is poked.

    The first poke after a quiet spell renders at once (no added latency); pokes meanwhile only
    collect the partials they want, rendered together once the interval has passed. So a burst of
    events costs two renders, a steady stream one per interval, and the last state always shows.
    ``sleep`` is injectable so tests can hold the interval open.
    """

    def __init__(self, flush, interval: float, sleep=asyncio.sleep):
        self.flush = flush  # async, takes the set of partial names
        self.interval = interval
        self.sleep = sleep
        self.pending: set[str] = set()
        self.renders = 0
        self._last: float | None = None
        self._task: asyncio.Task | None = None

    def poke(self, parts) -> None:
        if not parts:
            return
        self.pending.update(parts)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self.pending:
            if self._last is not None:
                wait = self._last + self.interval - loop.time()
                if wait > 0:
                    await self.sleep(wait)
            parts, self.pending = self.pending, set()
            self._last = loop.time()
            self.renders += 1
            try:
                await self.flush(parts)
            except Exception:  # one failed render must not stop the page's later updates
                log.exception("live render failed")

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


class ThrottledConsumer(LiveConsumer):
    """A page whose every render is costly, over many events (every team's, or every pattern
    decision): events only say what to re-render; the renders are coalesced to at most one per
    ``refresh_seconds`` for this consumer, so a busy system (or a bulk decision) does not cause one
    render per event."""

    refresh_seconds = 1.0

    async def connect(self):
        self.coalescer = Coalescer(self.flush, self.refresh_seconds)
        await super().connect()

    async def release(self) -> None:
        if hasattr(self, "coalescer"):
            self.coalescer.cancel()
        await super().release()

    def parts_for(self, event: dict) -> tuple[str, ...]:
        raise NotImplementedError

    async def render(self, parts) -> list[str]:
        raise NotImplementedError

    async def on_event(self, event: dict) -> list[str]:
        self.coalescer.poke(self.parts_for(event))
        return []  # sent by flush, later

    async def flush(self, parts) -> None:
        await self.send_parts(await self.safe(self.render, parts))
