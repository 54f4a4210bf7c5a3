"""WebSocket consumer of the validators' review queue (see coordination/live.py for the flow)."""

from channels.db import database_sync_to_async

from coordination.live import LiveConsumer
from coordination.relay import STAGING_GROUP
from empathy_os import AccessTier

from .views import render_staged_list


class StagingConsumer(LiveConsumer):
    """Live review queue: ``/ws/patterns/staging/`` (validators and stewards).

    Every ``pattern.*`` event (staged, promoted, rejected, locked, unlocked) re-renders the whole
    ``#staged-list`` for this person: the lock badges say "you" or who, so each recipient gets its own.
    """

    min_tier = AccessTier.VALIDATOR

    def groups_for_user(self) -> list[str]:
        return [STAGING_GROUP]

    async def snapshot(self) -> list[str]:
        return [await self.staged_list()]

    async def on_event(self, event: dict) -> list[str]:
        if not event["type"].startswith("pattern."):
            return []
        return [await self.staged_list()]

    @database_sync_to_async
    def staged_list(self) -> str:
        return render_staged_list(self.user)
