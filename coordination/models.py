"""Durable things of the coordination app: agent tokens (only their hashes)."""

import hashlib
import secrets

from django.db import models

from empathy_os import AccessTier

TIER_CHOICES = [(t.value, t.name.lower()) for t in AccessTier]
TOKEN_PREFIX = "emp_"


def hash_token(token: str) -> str:
    """Tokens are 256 random bits, so one SHA-256 is enough (no password-style stretching)."""
    return hashlib.sha256(token.encode()).hexdigest()


class AgentToken(models.Model):
    """A bearer token an agent uses over HTTP. Its agent id, team and tier are fixed here, on the
    server: nothing in a request body can change who the caller is."""

    agent_id = models.CharField(max_length=128)
    team_id = models.CharField(max_length=128)
    tier = models.PositiveSmallIntegerField(choices=TIER_CHOICES)
    token_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=12, help_text="first characters of the token, to tell tokens apart")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["team_id", "agent_id"])]

    def __str__(self):
        return f"{self.hint}… {self.agent_id}@{self.team_id} ({self.get_tier_display()})"

    @property
    def access_tier(self) -> AccessTier:
        return AccessTier(self.tier)

    @classmethod
    def issue(cls, agent_id: str, team_id: str, tier: AccessTier, created_by: str = "") -> tuple[str, "AgentToken"]:
        """Create a token; returns the clear token (shown once, never stored) and its row."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = cls.objects.create(agent_id=agent_id, team_id=team_id, tier=int(tier), token_hash=hash_token(token),
                                 hint=token[:10], created_by=created_by)
        return token, row
