"""WebSocket consumer of the validators' review queue (see coordination/live.py for the flow)."""

from coordination.live import LiveConsumer
from empathy_os import AccessTier


class StagingConsumer(LiveConsumer):
    """Live review queue: ``/ws/patterns/staging/`` (validators and stewards)."""

    min_tier = AccessTier.VALIDATOR
