"""WebSocket consumers of the coordination pages (see live.py for the flow)."""

import asyncio

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.template.loader import render_to_string

from empathy_os import AccessTier
from patterns.consumers import StagingConsumer  # noqa: F401  (routed from coordination/routing.py)

from . import dashboard, metrics, metrics_probe
from .live import Coalescer, LiveConsumer, ThrottledConsumer  # noqa: F401  (Coalescer: tests)
from .memory import get_memory
from .relay import TEAMS_GROUP, team_group
from .views import render_team_list


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

    After each probe round (``metrics_probe.METRICS_GROUP``) it re-renders the page's partials; team
    events re-render what they change (coordination latency, the teams table; see
    ``metrics.parts_for_event``). Both go through the throttle.
    """

    min_tier = AccessTier.OBSERVER

    async def allowed(self) -> bool:
        # Reached once the person may see the page. The probe thread sends its notices on this
        # loop from now on (the in-memory layer of mock mode is not thread-safe).
        metrics_probe.NOTIFY.attach(asyncio.get_running_loop())
        return True

    def groups_for_user(self) -> list[str]:
        return [metrics_probe.METRICS_GROUP, TEAMS_GROUP]

    def parts_for(self, event: dict) -> tuple[str, ...]:
        return metrics.parts_for_event(event.get("type", ""))

    async def render(self, parts) -> list[str]:
        return await database_sync_to_async(metrics.render_parts)(get_memory(), parts, extra={"tier": self.tier})

    async def snapshot(self) -> list[str]:
        return await self.render(metrics.ROUND_PARTS)
