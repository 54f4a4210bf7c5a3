"""The base of every live page's WebSocket consumer.

Flow: authenticate the browser session -> join the groups this user may see -> send a snapshot ->
on each relayed event, re-read current state through the library and send the re-rendered
partials (each decides its own placement with ``hx-swap-oob``). Events are "re-render X" notices,
never deltas, so a missed or repeated one does no harm.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.consumer import get_handler_name
from django.template.loader import render_to_string

from empathy_os import AccessTier, MemoryUnavailableError

from .access import user_tier
from .relay import STATUS_GROUP, ensure_embedded_relay

CLOSE_FORBIDDEN = 4403


class LiveConsumer(AsyncWebsocketConsumer):
    """Subclasses set ``min_tier`` and implement ``groups_for_user``, ``snapshot`` and ``on_event``."""

    min_tier = AccessTier.OBSERVER

    async def connect(self):
        user = self.scope.get("user")
        self.tier = await database_sync_to_async(user_tier)(user) if user is not None else None
        if self.tier is None or self.tier < self.min_tier or not await self.allowed():
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user = user
        self.joined = [*self.groups_for_user(), STATUS_GROUP]
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        ensure_embedded_relay()
        await self.accept()
        await self.send_parts(await self.safe(self.snapshot))

    async def disconnect(self, code):
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

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
        await self.send_parts([render_to_string("partials/memory_status.html", {"online": event["online"]})])

    async def safe(self, fn, *args) -> list[str]:
        """Render, or render the offline badge if Redis went away meanwhile."""
        try:
            return await fn(*args)
        except MemoryUnavailableError:
            return [render_to_string("partials/memory_status.html", {"online": False})]

    async def send_parts(self, parts) -> None:
        html = "".join(p for p in parts if p)
        if html:
            await self.send(text_data=html)
