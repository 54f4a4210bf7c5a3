"""Agent tokens: who an HTTP caller is, decided on the server."""

from __future__ import annotations

from django.utils import timezone

from empathy_os import AccessTier, AgentCredentials

from .models import TOKEN_PREFIX, AgentToken, hash_token


def issue_token(agent_id: str, team_id: str, tier, created_by: str = "") -> tuple[str, AgentToken]:
    """Validate and create a token; returns the clear token (show it once) and its row."""
    creds = AgentCredentials(agent_id, AccessTier.parse(tier), team_id)  # validates ids and tier
    return AgentToken.issue(creds.agent_id, creds.team_id, creds.tier, created_by)


def revoke_tokens(agent_id: str, team_id: str | None = None) -> int:
    """Revoke every live token of an agent (of one team, or all). Returns how many."""
    live = AgentToken.objects.filter(agent_id=agent_id, revoked_at=None)
    if team_id:
        live = live.filter(team_id=team_id)
    return live.update(revoked_at=timezone.now())


async def credentials_for(token: str) -> AgentCredentials | None:
    """The credentials a live token stands for, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    row = await AgentToken.objects.filter(token_hash=hash_token(token), revoked_at=None).afirst()
    if row is None:
        return None
    return AgentCredentials(row.agent_id, row.access_tier, row.team_id)
