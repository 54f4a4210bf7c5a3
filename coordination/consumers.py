"""WebSocket consumers of the coordination pages (see live.py for the flow)."""

import asyncio
import logging

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.template.loader import render_to_string

from empathy_os import AccessTier
from patterns.consumers import StagingConsumer  # noqa: F401  (routed from coordination/routing.py)

from . import dashboard, metrics
from .live import LiveConsumer
from .memory import get_memory
from .relay import TEAMS_GROUP, team_group
from .views import render_team_list

log = logging.getLogger("coordination.consumers")


class TeamConsumer(LiveConsumer):
    """Live team dashboard: ``/ws/teams/<team>/`` (observers and above).

    On each relayed event of the team it re-reads, through the library, the partials that event
    can change (``dashboard.parts_for_event``) and sends them, rendered for this user (a finished
    task or a signal as one entry at the top of its list, see ``dashboard.ENTRY_TEMPLATES``).
    """

    min_tier = AccessTier.OBSERVER
    shared_renders = True

    async def allowed(self) -> bool:
        self.team_id = self.scope["url_route"]["kwargs"]["team_id"]
        return dashboard.is_valid_id(self.team_id)

    def groups_for_user(self) -> list[str]:
        return [team_group(self.team_id)]

    async def render(self, parts, event: dict | None = None) -> list[str]:
        credentials = dashboard.reader_credentials(self.user, self.team_id)
        return await sync_to_async(dashboard.render_parts, thread_sensitive=False)(
            get_memory(), credentials, parts, {"tier": self.tier}, event)

    async def snapshot(self) -> list[str]:
        # The snapshot was read, so the memory answers: say so (the badge may show an old outage).
        return [*await self.render(dashboard.ALL_PARTS),
                render_to_string("partials/memory_status.html", {"online": True})]

    async def on_event(self, event: dict) -> list[str]:
        return await self.render(dashboard.parts_for_event(event), event)


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
    """A page over every team's events (``TEAMS_GROUP``): events only say what to re-render; the
    renders are coalesced to at most one per ``refresh_seconds`` for this consumer, so a busy
    system (or the demo) does not cause one render per event."""

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


class TeamListConsumer(ThrottledConsumer):
    """Live team list: ``/ws/teams/`` (observers and above). Any team's event (a new team's first
    one included) re-renders ``#team-list``, throttled."""

    min_tier = AccessTier.OBSERVER

    def groups_for_user(self) -> list[str]:
        return [TEAMS_GROUP]

    def parts_for(self, event: dict) -> tuple[str, ...]:
        return ("team-list",)

    async def render(self, parts) -> list[str]:
        return [await sync_to_async(render_team_list, thread_sensitive=False)(get_memory())]

    async def snapshot(self) -> list[str]:
        return [*await self.render(("team-list",)),
                render_to_string("partials/memory_status.html", {"online": True})]


class MetricsConsumer(ThrottledConsumer):
    """Live metrics page: ``/ws/metrics/`` (observers and above).

    After each probe round (``metrics.METRICS_GROUP``) it re-renders the page's partials; team
    events re-render what they change (coordination latency, the teams table; see
    ``metrics.parts_for_event``). Both go through the throttle.
    """

    min_tier = AccessTier.OBSERVER

    async def allowed(self) -> bool:
        # Reached once the person may see the page. The probe thread sends its notices on this
        # loop from now on (the in-memory layer of mock mode is not thread-safe).
        metrics.NOTIFY.attach(asyncio.get_running_loop())
        return True

    def groups_for_user(self) -> list[str]:
        return [metrics.METRICS_GROUP, TEAMS_GROUP]

    def parts_for(self, event: dict) -> tuple[str, ...]:
        return metrics.parts_for_event(event.get("type", ""))

    async def render(self, parts) -> list[str]:
        return await database_sync_to_async(metrics.render_parts)(get_memory(), parts, extra={"tier": self.tier})

    async def snapshot(self) -> list[str]:
        return await self.render(metrics.ROUND_PARTS)
