"""Small helpers for the behavioural tests."""

from __future__ import annotations

import time

from empathy_os import AccessTier, AgentCredentials


def creds(agent_id: str, tier=AccessTier.CONTRIBUTOR, team: str = "t1") -> AgentCredentials:
    return AgentCredentials(agent_id, tier, team)


def wait_until(condition, timeout: float = 5.0, interval: float = 0.01):
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(interval)


class CommandCounter:
    """Counts the commands a client sends (each ``execute_command`` is one round trip)."""

    def __init__(self, client, monkeypatch):
        self.commands = []
        original = client.execute_command

        def counting(*args, **kwargs):
            self.commands.append(str(args[0]).upper())
            return original(*args, **kwargs)

        monkeypatch.setattr(client, "execute_command", counting)
