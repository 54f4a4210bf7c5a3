"""Small helpers for the behavioural tests."""

from __future__ import annotations

from empathy_os import AccessTier, AgentCredentials


def creds(agent_id: str, tier=AccessTier.CONTRIBUTOR, team: str = "t1") -> AgentCredentials:
    return AgentCredentials(agent_id, tier, team)
