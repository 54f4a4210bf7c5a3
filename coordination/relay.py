"""The event relay: teams' event streams -> channel-layer groups.

Reads the events streams as a member of the ``relay`` consumer group (so several relays share the
work, and an event reaches each group once), ``group_send``s each event to the groups watching
it, then acknowledges it. Messages carry ids only (msgpack-safe); consumers re-read the current
state through the library and render it per recipient.

It runs inside the server process (started by the first WebSocket that connects) unless
``EMPATHY_EMBEDDED_RELAY`` is off, in which case ``manage.py relay_events`` runs it.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from empathy_os import MemoryUnavailableError
from empathy_os.events import EventReader
from empathy_os.redis_memory import UNAVAILABLE

from .memory import get_memory

log = logging.getLogger("coordination.relay")

STAGING_GROUP = "patterns.staging"
STATUS_GROUP = "memory.status"
#: Longest wait between two reads while Redis is away: the relay is back within this of Redis.
RETRY_MAX_DELAY = 0.5
#: Every team's events: the team list and the metrics page watch all teams (they throttle their renders).
TEAMS_GROUP = "teams.all"


def team_group(team_id: str) -> str:
    return f"team.{team_id}"


def groups_for(team_id: str, kind: str) -> list[str]:
    groups = [team_group(team_id), TEAMS_GROUP]
    if kind.startswith("pattern."):
        groups.append(STAGING_GROUP)
    return groups


def relayed(event_id: str, fields: dict) -> dict:
    """The channel-layer message of one event of a team's stream: its kind as ``type``, its id as
    ``event_id``, and its other fields."""
    return {"type": fields.get("kind", ""), "event_id": event_id, **{k: v for k, v in fields.items() if k != "kind"}}


class Relay:
    def __init__(self, memory=None, layer=None, reader: EventReader | None = None):
        self.memory = memory or get_memory()
        self.layer = layer or get_channel_layer()
        self.reader = reader or EventReader(self.memory)
        self.online = True

    async def process_one(self, block_ms: int = 1000) -> int:
        """Relay one batch of events; returns how many. Tests drive the relay with this."""
        events = await sync_to_async(self.reader.read, thread_sensitive=False)(block_ms)
        for team_id, event_id, fields in events:
            message = relayed(event_id, fields)
            for group in groups_for(team_id, message["type"]):
                await self.layer.group_send(group, message)
        if events:
            await sync_to_async(self.reader.ack, thread_sensitive=False)(events)
        return len(events)

    async def _set_online(self, online: bool) -> None:
        if online != self.online:
            self.online = online
            log.warning("memory %s", "back online" if online else "offline")
            try:
                await self.layer.group_send(STATUS_GROUP, {"type": "memory.status", "online": online})
            except UNAVAILABLE:  # the layer is on the same Redis: the pages hear of it from hub.py
                pass

    async def run(self) -> None:
        """Relay until cancelled; survives Redis outages (reports them to the pages).

        The loop also checks for a pending cancellation itself: on Python 3.11 one can be lost in
        redis-py's writes (see ``coordination.hub.LocalGroups._stop``), and the relay would never end."""
        task = asyncio.current_task()
        delay = 0.1
        while not task.cancelling():
            try:
                await self.process_one()
                await self._set_online(True)
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except MemoryUnavailableError:
                await self._set_online(False)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY)
            except UNAVAILABLE:  # the channel layer's Redis is away (events not acked are read again)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY)
            except Exception:  # never let one bad event stop the dashboards
                log.exception("relay error")
                await asyncio.sleep(1)


_embedded: dict[int, asyncio.Task] = {}


def ensure_embedded_relay() -> None:
    """Start the in-process relay on the running event loop, once (if enabled)."""
    if not settings.EMPATHY_EMBEDDED_RELAY:
        return
    loop = asyncio.get_running_loop()
    task = _embedded.get(id(loop))
    if task is None or task.done():
        _embedded[id(loop)] = loop.create_task(Relay().run(), name="empathy-relay")
