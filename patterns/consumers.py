"""WebSocket consumer of the validators' review queue (see coordination/live.py for the flow)."""

from channels.db import database_sync_to_async

from coordination.live import ThrottledConsumer
from coordination.relay import STAGING_GROUP
from empathy_os import AccessTier

from .views import render_staged_list


class StagingConsumer(ThrottledConsumer):
    """Live review queue: ``/ws/patterns/staging/`` (validators and stewards).

    Every ``pattern.*`` event (staged, promoted, rejected, locked, unlocked) re-renders the whole
    ``#staged-list`` for this person: the lock badges say "you" or who, so each recipient gets its own.
    The renders are throttled: a bulk decision on 200 patterns is 200 events, and two renders.
    """

    min_tier = AccessTier.VALIDATOR
    refresh_seconds = 0.5

    def groups_for_user(self) -> list[str]:
        return [STAGING_GROUP]

    def parts_for(self, event: dict) -> tuple[str, ...]:
        return ("staged-list",) if event["type"].startswith("pattern.") else ()

    async def render(self, parts) -> list[str]:
        return [await self.staged_list()]

    async def snapshot(self) -> list[str]:
        return await self.render(("staged-list",))

    @database_sync_to_async
    def staged_list(self) -> str:
        return render_staged_list(self.user)
