"""WebSocket consumers of the coordination pages (see live.py for the flow)."""

from patterns.consumers import StagingConsumer  # noqa: F401  (routed from coordination/routing.py)

from .live import LiveConsumer


class TeamConsumer(LiveConsumer):
    """Live team dashboard: ``/ws/teams/<team>/``."""
