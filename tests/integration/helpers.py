"""Small helpers for the behavioural tests."""

from __future__ import annotations

from empathy_os import AccessTier, AgentCredentials


def creds(agent_id: str, tier=AccessTier.CONTRIBUTOR, team: str = "t1") -> AgentCredentials:
    return AgentCredentials(agent_id, tier, team)


class CommandCounter:
    """Counts the commands a client sends (each ``execute_command`` is one round trip)."""

    def __init__(self, client, monkeypatch):
        self.commands = []
        original = client.execute_command

        def counting(*args, **kwargs):
            self.commands.append(str(args[0]).upper())
            return original(*args, **kwargs)

        monkeypatch.setattr(client, "execute_command", counting)
